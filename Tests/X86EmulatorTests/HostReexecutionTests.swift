import CX86Host
import Foundation
import Synchronization
import Testing
@testable import X86Emulator

/// The host re-execution machinery: generated stub, alignment table against the hardware, CPU
/// feature probing, and the guest-visible checks done before anything runs on the host.
@Suite struct HostReexecutionTests {
    /// The hand-assembled stub prologue and epilogue are what objdump says they are.
    @Test(.enabled(if: HostTools.shouldRun("objdump"), HostTools.skipReason("objdump")))
    func stubDisassemblesAsIntended() throws {
        let pxor: [UInt8] = [0x66, 0x0F, 0xEF, 0x07]  // pxor xmm0, [rdi]
        let listing = try #require(HostTools.objdump(HostSSEExecutor.stub(around: pxor)), "objdump is required with CI=true")
        let texts = listing.map(\.text)
        #expect(texts == [
            "fxsave64 [rcx]", "fxrstor64 [rsi]", "mov r8,rcx", "mov r9,rdx", "mov rax,QWORD PTR [rdx]", "mov rcx,QWORD PTR [rdx+0x8]",
            "mov rdx,QWORD PTR [rdx+0x10]", "pxor xmm0,XMMWORD PTR [rdi]", "mov QWORD PTR [r9],rax", "mov QWORD PTR [r9+0x8],rcx",
            "mov QWORD PTR [r9+0x10],rdx", "pushf", "pop rax", "fxsave64 [rsi]", "fxrstor64 [r8]", "ret",
        ])
    }

    /// The allow-list's alignment flags agree with what the host CPU does with a misaligned operand.
    @Test func alignmentRulesMatchHardware() throws {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x11, count: 256)
        let host = try #require(HostSSEExecutor())
        var probed = 0
        for form in SSEAllowList.forms where form.rm != .xmmOnly && host.features.contains(form.feature) {
            var code: [UInt8] = []
            if let p = form.prefix.byte { code.append(p) }
            code += form.map.escapeBytes + [form.opcode]
            let reg: UInt8 = form.reg == .xmm ? 1 : 0
            code.append(reg << 3 | 0x07)  // [rdi]
            if form.hasImmediate { code.append(0) }
            let aligned = code.withUnsafeBufferPointer { cx86_probe($0.baseAddress, $0.count, buffer + 64) }
            #expect(aligned == 0, "\(form.mnemonic) faulted on an aligned operand")
            let misaligned = code.withUnsafeBufferPointer { cx86_probe($0.baseAddress, $0.count, buffer + 65) }
            // SHA forms: AMD accepts misaligned operands, Intel documents a fault; the table follows AMD.
            if form.feature == .sha && host.vendor != "AuthenticAMD" { continue }
            #expect((misaligned != 0) == form.aligned, "\(form.mnemonic): hardware \(misaligned != 0 ? "faults" : "accepts") a misaligned operand")
            probed += 1
        }
        #expect(probed > 150)
    }

    /// Host features come from CPUID and agree with the kernel's view.
    @Test func hostFeaturesAgreeWithProcCPUInfo() throws {
        let host = try #require(HostSSEExecutor())
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        for name in ["sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "pclmulqdq", "aes", "abm", "bmi1", "smap",
                     "fsgsbase", "rdtscp", "rdpid", "xsave", "pdpe1gb", "syscall"] {
            let feature = CPUFeatures.all.names.firstIndex(of: name)
            #expect(feature != nil)
            #expect(host.features.names.contains(name) == flags.contains(name), "\(name)")
        }
        #expect(host.mxcsrMask & 0xFFBF == 0xFFBF)
        var vendor = [CChar](repeating: 0, count: 13)
        cx86_vendor(&vendor)
        #expect(host.vendor == String(decoding: vendor.prefix(12).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private func run(_ code: [UInt8], configure: (inout LongModeMachine) -> Void = { _ in },
                     configuration: EmulatorConfiguration = EmulatorConfiguration()) -> (EmulationResult, LongModeMachine) {
        var m = LongModeMachine()
        m.place(code)
        configure(&m)
        let r = Emulator(configuration: configuration).step(state: &m.state, memory: m.memory, platform: m.platform)
        return (r, m)
    }

    @Test func misalignedMovdqaRaisesGeneralProtection() {
        // movdqa xmm1, [rax]
        let (r, m) = run([0x66, 0x0F, 0x6F, 0x08]) { $0.state.gpr[.rax] = LongModeMachine.dataBase + 8 }
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        #expect(m.state.rip == LongModeMachine.codeBase)
    }

    @Test func misalignedMovdquLoadsAcrossAPageBoundary() {
        // movdqu xmm1, [rax] with the operand straddling two data pages.
        let (r, m) = run([0xF3, 0x0F, 0x6F, 0x08]) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase + 0xFF8
            m.memory.store(Array(1...16), at: m.dataPhysical(LongModeMachine.dataBase + 0xFF8))
        }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.xmm[1] == XMMValue(bytes: Array(1...16)))
    }

    @Test func storeWritesGuestMemoryThroughThePageTables() {
        // movdqu [rax+0x7f8], xmm9 straddles two pages; pextrd [rbx], xmm2, 2.
        var (r, m) = run([0xF3, 0x44, 0x0F, 0x7F, 0x88, 0xF8, 0x07, 0x00, 0x00]) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase + 0x800
            m.state.xmm[9] = XMMValue(bytes: Array(101...116))
        }
        #expect(r == .completed(changes: .registers))
        #expect(m.memory.load(m.dataPhysical(LongModeMachine.dataBase + 0xFF8), count: 16) == Array(101...116))
        // The dirty bits of both pages are set.
        for page: UInt64 in [0, 0x1000] {
            let pte = m.memory.load64(m.tables.entryAddress(LongModeMachine.dataBase + page, level: 1))
            #expect(pte & PTE.dirty != 0)
        }
        m.place([0x66, 0x0F, 0x3A, 0x16, 0x13, 0x02])  // pextrd dword [rbx], xmm2, 2
        m.state.rip = LongModeMachine.codeBase
        m.state.gpr[.rbx] = LongModeMachine.dataBase + 0x2002
        m.state.xmm[2] = XMMValue(low: 0, high: 0xAABB_CCDD_1122_3344)
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .completed(changes: .registers))
        #expect(m.memory.load(m.dataPhysical(LongModeMachine.dataBase + 0x2002), count: 4) == [0x44, 0x33, 0x22, 0x11])
    }

    @Test func storeToReadOnlyPageFaultsBeforeAnythingChanges() {
        // movq [rax], xmm3 (66 0F D6) with the page read-only at CPL 3.
        var m = LongModeMachine(cpl: 3)
        m.tables.map(LongModeMachine.dataBase, to: 0x30_0000, flags: PTE.present | PTE.user | PTE.noExecute)
        m.place([0x66, 0x0F, 0xD6, 0x18])
        m.state.gpr[.rax] = LongModeMachine.dataBase + 0x10
        m.state.xmm[3] = XMMValue(low: 0x1234, high: 0)
        let before = m.state
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .pageFault, errorCode: 0x7, payload: LongModeMachine.dataBase + 0x10),
                                      changes: .specialRegisters))
        #expect(m.state.cr2 == LongModeMachine.dataBase + 0x10)
        var expected = before
        expected.cr2 = LongModeMachine.dataBase + 0x10
        #expect(differences(m.state, expected).isEmpty)
        #expect(m.memory.load64(m.dataPhysical(LongModeMachine.dataBase + 0x10)) == 0)
    }

    @Test func sseAvailabilityChecks() {
        let pxor: [UInt8] = [0x66, 0x0F, 0xEF, 0xC1]
        var (r, _) = run(pxor) { $0.state.cr0 |= CR0.taskSwitched }
        #expect(r == .injectException(ExceptionInjection(vector: .deviceNotAvailable), changes: []))
        (r, _) = run(pxor) { $0.state.cr0 |= CR0.emulation }
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        (r, _) = run(pxor) { $0.state.cr4 &= ~CR4.osfxsr }
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        // pshufb needs SSSE3 in the guest's CPUID.
        (r, _) = run([0x66, 0x0F, 0x38, 0x00, 0xC1], configuration: EmulatorConfiguration(guestFeatures: CPUFeatures.all.subtracting(.ssse3)))
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        // A shift-by-immediate with a memory operand does not exist.
        (r, _) = run([0x66, 0x0F, 0x72, 0x10, 0x03])
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        // LOCK on an SSE instruction.
        (r, _) = run([0xF0] + pxor)
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
    }

    @Test func refusesWhatItMustNotRun() {
        // MMX pxor (no 66 prefix) is not allow-listed.
        var (r, _) = run([0x0F, 0xEF, 0xC1])
        guard case .unsupported(let u) = r else { Issue.record("\(r)"); return }
        #expect(u.bytes == [0x0F, 0xEF, 0xC1])
        // Floating-point forms only run with all SIMD exceptions masked.
        (r, _) = run([0x0F, 0x58, 0xC1]) { $0.state.mxcsr = 0x1F00 }  // addps, invalid-operation unmasked
        guard case .unsupported(let u2) = r else { Issue.record("\(r)"); return }
        #expect(u2.reason.contains("unmasked"))
        // Integer forms do not care.
        (r, _) = run([0x66, 0x0F, 0xEF, 0xC1]) { $0.state.mxcsr = 0x0000 }
        #expect(r == .completed(changes: .registers))
        // A guest MXCSR the host would refuse (reserved bits) never reaches FXRSTOR.
        (r, _) = run([0x66, 0x0F, 0xEF, 0xC1]) { $0.state.mxcsr = 0xFFFF_0000 }
        guard case .unsupported = r else { Issue.record("\(r)"); return }
        // Re-execution switched off.
        (r, _) = run([0x66, 0x0F, 0xEF, 0xC1], configuration: EmulatorConfiguration(hostReexecution: false))
        guard case .unsupported = r else { Issue.record("\(r)"); return }
    }

    /// One emulator shared by several threads (as by several vCPUs): results stay per-thread correct.
    @Test func concurrentStepsShareOneEmulator() {
        let emulator = Emulator()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            var m = LongModeMachine()
            m.place([0x66, 0x0F, 0xFE, 0xCA])  // paddd xmm1, xmm2
            for i in 0..<500 {
                m.state.rip = LongModeMachine.codeBase
                m.state.xmm[1] = XMMValue(low: UInt64(thread), high: UInt64(i))
                m.state.xmm[2] = XMMValue(low: 1, high: 1)
                let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
                if r != .completed(changes: [.registers, .fpu]) || m.state.xmm[1] != XMMValue(low: UInt64(thread) + 1, high: UInt64(i) + 1) {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(emulator.statistics().instructions["paddd"] == 2000)
    }

    /// Many distinct forms cycle through the stub cache (more than its slots) and still run correctly.
    @Test func stubCacheEvictsAndRefills() throws {
        let host = try #require(HostSSEExecutor())
        for round in 0..<3 {
            for imm in 0..<200 {
                // pshufd xmm0, xmm1, imm: 200 distinct stubs, more than the cache holds.
                var io = HostExecution(xmm: XMMRegisters([XMMValue(), XMMValue(low: 0x0000_0003_0000_0002, high: 0x0000_0001_0000_0000)]),
                                       mxcsr: 0x1F80, memory: [])
                #expect(host.run([0x66, 0x0F, 0x70, 0xC1, UInt8(imm)], &io), "round \(round)")
                let lanes: [UInt64] = [2, 3, 0, 1]
                let pick = { (k: Int) in lanes[(imm >> (2 * k)) & 3] }
                #expect(io.xmm[0] == XMMValue(low: pick(0) | pick(1) << 32, high: pick(2) | pick(3) << 32))
            }
        }
    }
}
