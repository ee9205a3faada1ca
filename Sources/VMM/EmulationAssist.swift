#if canImport(Glibc)
import Glibc
#endif
import Logging
import CKVM
import CSkiffSystem
import GuestMemory
import KVM
import Synchronization
import X86Emulator

/// Whether Skiff handles KVM emulation failures itself.
public enum EmulationAssistMode: String, Sendable, CaseIterable, Codable {
    /// Handle emulation failures when the host's KVM produces them (only emulating hosts do).
    case auto
    /// Always handle them.
    case on
    /// Stop the VM on the first emulation failure.
    case off
}

/// Completes instructions the host's KVM could not emulate (`KVM_EXIT_INTERNAL_ERROR`,
/// suberror 1): reads the vCPU state, lets `X86Emulator` fetch, decode and run the one
/// instruction (or name the exception to inject), and writes the result back through KVM.
/// One instance serves every vCPU of a VM.
final class EmulationAssist: Sendable {
    let emulator: Emulator
    /// Emulation failures seen (handled or not).
    let failures = Atomic<UInt64>(0)
    /// Instructions completed after a failing one without returning to KVM.
    let batchedInstructions = Atomic<UInt64>(0)
    /// Most instructions completed per exit; bounded so interrupts are not held off for long.
    static let batchLimit = 32

    /// - Parameter guestCPUID: the CPUID the guest really sees (from `CPUIDProbe` where it ran:
    ///   leaked bits count, because the guest uses them).
    init(guestCPUID: [kvm_cpuid_entry2]) {
        guard !guestCPUID.isEmpty else {
            emulator = Emulator()  // every feature the emulator knows
            return
        }
        func leaf(_ f: UInt32, _ i: UInt32 = 0) -> kvm_cpuid_entry2 {
            guestCPUID.first { $0.function == f && $0.index == i } ?? kvm_cpuid_entry2()
        }
        var config = EmulatorConfiguration()
        config.guestFeatures = CPUFeatures(
            leaf1ECX: leaf(1).ecx, leaf1EDX: leaf(1).edx, leaf7EBX: leaf(7).ebx, leaf7ECX: leaf(7).ecx,
            extendedECX: leaf(0x8000_0001).ecx, extendedEDX: leaf(0x8000_0001).edx)
        let bits = Int(leaf(0x8000_0008).eax & 0xff)
        if bits >= 32 && bits <= 52 { config.physicalAddressBits = bits }
        emulator = Emulator(configuration: config)
    }

    /// What happened to one emulation failure.
    enum Outcome {
        case resumed
        case stop(String)
    }

    /// Handles one emulation failure on `vcpu` (called on that vCPU's thread).
    func handle(_ vcpu: VCPUFD, memory: GuestMemory) -> Outcome {
        failures.add(1, ordering: .relaxed)
        let regs: kvm_regs
        let sregs: kvm_sregs
        var fpu: kvm_fpu
        do {
            regs = try vcpu.registers()
            sregs = try vcpu.specialRegisters()
            fpu = try vcpu.fpu()
        } catch {
            return .stop("emulation assist cannot read vCPU \(vcpu.id) state: \(error)")
        }
        var state = Self.state(regs: regs, sregs: sregs, fpu: fpu)
        let adapter = EmulatorAdapter(memory: memory, vcpu: vcpu)
        let rip = state.rip
        let result = emulator.step(state: &state, memory: adapter, platform: adapter)
        if Self.trace { Self.traceLog.notice("assist: vCPU \(vcpu.id) rip 0x\(String(rip, radix: 16)) -> \(result) new rip 0x\(String(state.rip, radix: 16))") }
        switch result {
        case .completed(var changes):
            // The instructions after a failing one are often of the same kind (SSE runs in
            // crypto code): complete them here too, up to a bound, instead of paying a KVM
            // round trip for each. Stop at the first one the emulator does not complete.
            var batched = 0
            while batched < Self.batchLimit {
                guard let more = emulator.stepIfCompletes(state: &state, memory: adapter, platform: adapter) else { break }
                changes.formUnion(more)
                batched += 1
            }
            if batched > 0 { batchedInstructions.add(UInt64(batched), ordering: .relaxed) }
            if let error = write(changes, state: state, regs: regs, sregs: sregs, fpu: &fpu, vcpu: vcpu) { return .stop(error) }
            return .resumed
        case .injectException(let exception, let changes):
            if let error = write(changes, state: state, regs: regs, sregs: sregs, fpu: &fpu, vcpu: vcpu) { return .stop(error) }
            do {
                var events = try vcpu.events()
                unsafe ckvm_events_inject_exception(&events, exception.vector.rawValue, exception.errorCode == nil ? 0 : 1, exception.errorCode ?? 0)
                try vcpu.setEvents(events)
            } catch {
                return .stop("emulation assist cannot inject \(exception.vector) on vCPU \(vcpu.id): \(error)")
            }
            return .resumed
        case .unsupported(let u):
            return .stop("vCPU \(vcpu.id): KVM_EXIT_INTERNAL_ERROR (emulation failure) and the emulation assist \(u.description)")
        }
    }

    private func write(_ changes: StateChanges, state: CPUState, regs: kvm_regs, sregs: kvm_sregs, fpu: inout kvm_fpu, vcpu: VCPUFD) -> String? {
        do {
            if changes.contains(.specialRegisters) { try vcpu.setSpecialRegisters(Self.sregs(state, base: sregs)) }
            if changes.contains(.fpu) {
                Self.apply(state, to: &fpu)
                try vcpu.setFPU(fpu)
            }
            // Registers last: KVM_SET_SREGS does not touch them, and RIP must move after the rest is in place.
            if changes.contains(.registers) { try vcpu.setRegisters(Self.regs(state, base: regs)) }
            return nil
        } catch {
            return "emulation assist cannot write vCPU \(vcpu.id) state: \(error)"
        }
    }

    /// SKIFF_TRACE_ASSIST=1 prints every assisted instruction on stderr.
    static let trace: Bool = unsafe getenv("SKIFF_TRACE_ASSIST").map { unsafe String(cString: $0) == "1" } ?? false
    static let traceLog = MonitorLog.logger()

    /// Per-instruction counters, e.g. "int3 1, clac 1530, popcnt 12".
    var summary: String { emulator.statistics().summary }

    // MARK: kvm ⇄ CPUState

    static func state(regs r: kvm_regs, sregs s: kvm_sregs, fpu f: kvm_fpu) -> CPUState {
        var st = CPUState()
        let values = [r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15]
        for (i, reg) in GPR.kvmRegsOrder.enumerated() { st.gpr[reg] = values[i] }
        st.rip = r.rip
        st.rflags = r.rflags
        st.cs = segment(s.cs)
        st.ds = segment(s.ds)
        st.es = segment(s.es)
        st.fs = segment(s.fs)
        st.gs = segment(s.gs)
        st.ss = segment(s.ss)
        st.ldtr = segment(s.ldt)
        st.gdtBase = s.gdt.base
        st.gdtLimit = s.gdt.limit
        st.cr0 = s.cr0
        st.cr2 = s.cr2
        st.cr3 = s.cr3
        st.cr4 = s.cr4
        st.efer = s.efer
        var xmm = f.xmm
        unsafe withUnsafeBytes(of: &xmm) { raw in
            for i in 0..<16 { st.xmm[i] = unsafe XMMValue(bytes: raw[(i * 16)..<(i * 16 + 16)]) }
        }
        st.mxcsr = f.mxcsr
        st.fcw = f.fcw
        st.fsw = f.fsw
        st.ftwx = f.ftwx
        st.fop = f.last_opcode
        st.fip = f.last_ip
        st.fdp = f.last_dp
        var fpr = f.fpr
        unsafe withUnsafeBytes(of: &fpr) { raw in
            for i in 0..<8 { st.x87[i] = unsafe Array(raw[(i * 16)..<(i * 16 + 10)]) }
        }
        return st
    }

    static func regs(_ st: CPUState, base: kvm_regs) -> kvm_regs {
        var r = base
        let g = st.gpr
        r.rax = g[.rax]; r.rbx = g[.rbx]; r.rcx = g[.rcx]; r.rdx = g[.rdx]
        r.rsi = g[.rsi]; r.rdi = g[.rdi]; r.rsp = g[.rsp]; r.rbp = g[.rbp]
        r.r8 = g[.r8]; r.r9 = g[.r9]; r.r10 = g[.r10]; r.r11 = g[.r11]
        r.r12 = g[.r12]; r.r13 = g[.r13]; r.r14 = g[.r14]; r.r15 = g[.r15]
        r.rip = st.rip
        r.rflags = st.rflags
        return r
    }

    static func sregs(_ st: CPUState, base: kvm_sregs) -> kvm_sregs {
        var s = base
        s.cs = kvmSegment(st.cs, base: s.cs)
        s.ds = kvmSegment(st.ds, base: s.ds)
        s.es = kvmSegment(st.es, base: s.es)
        s.fs = kvmSegment(st.fs, base: s.fs)
        s.gs = kvmSegment(st.gs, base: s.gs)
        s.ss = kvmSegment(st.ss, base: s.ss)
        s.cr0 = st.cr0
        s.cr2 = st.cr2
        s.cr3 = st.cr3
        s.cr4 = st.cr4
        s.efer = st.efer
        return s
    }

    static func apply(_ st: CPUState, to f: inout kvm_fpu) {
        unsafe withUnsafeMutableBytes(of: &f.xmm) { raw in
            for i in 0..<16 {
                for (j, b) in st.xmm[i].bytes.prefix(16).enumerated() { unsafe raw[i * 16 + j] = b }
            }
        }
        unsafe withUnsafeMutableBytes(of: &f.fpr) { raw in
            for i in 0..<8 {
                for (j, b) in st.x87[i].prefix(10).enumerated() { unsafe raw[i * 16 + j] = b }
            }
        }
        f.mxcsr = st.mxcsr
        f.fcw = st.fcw
        f.fsw = st.fsw
        f.ftwx = st.ftwx
        f.last_opcode = st.fop
        f.last_ip = st.fip
        f.last_dp = st.fdp
    }

    static func segment(_ k: kvm_segment) -> SegmentRegister {
        SegmentRegister(selector: k.selector, base: k.base, limit: k.limit, type: k.type, present: k.present != 0, dpl: k.dpl,
                        defaultBig: k.db != 0, codeOrData: k.s != 0, long: k.l != 0, granularity: k.g != 0,
                        available: k.avl != 0, unusable: k.unusable != 0)
    }

    static func kvmSegment(_ s: SegmentRegister, base: kvm_segment) -> kvm_segment {
        var k = base
        k.selector = s.selector
        k.base = s.base
        k.limit = s.limit
        k.type = s.type
        k.present = s.present ? 1 : 0
        k.dpl = s.dpl
        k.db = s.defaultBig ? 1 : 0
        k.s = s.codeOrData ? 1 : 0
        k.l = s.long ? 1 : 0
        k.g = s.granularity ? 1 : 0
        k.avl = s.available ? 1 : 0
        k.unusable = s.unusable ? 1 : 0
        return k
    }
}

/// Guest memory and MSRs as the emulator sees them.
struct EmulatorAdapter: GuestPhysicalMemory, EmulatorPlatform {
    let memory: GuestMemory
    let vcpu: VCPUFD

    func read(_ address: UInt64, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        unsafe (try? memory.read(at: address, into: buffer)) != nil
    }

    func write(_ address: UInt64, _ buffer: UnsafeRawBufferPointer) -> Bool {
        unsafe (try? memory.write(at: address, from: buffer)) != nil
    }

    func atomicOr(_ address: UInt64, _ bits: UInt8) -> Bool {
        unsafe (try? memory.withHostPointer(at: address, length: 1, writing: true) { p in
            guard let base = p.baseAddress else { return false }
            unsafe csystem_atomic_or8(base.assumingMemoryBound(to: UInt8.self), bits)
            return true
        }) ?? false
    }

    func readMSR(_ index: UInt32) -> UInt64? {
        guard let values = try? vcpu.msrs([index]), let first = values.first, first.index == index else { return nil }
        return first.value
    }

    func writeMSR(_ index: UInt32, _ value: UInt64) -> Bool {
        (try? vcpu.setMSRs([(index, value)])) != nil
    }
}
