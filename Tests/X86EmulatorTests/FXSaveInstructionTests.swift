import Testing
@testable import X86Emulator

/// FXSAVE/FXRSTOR in their 64-bit (REX.W) and legacy forms: the image layout of Intel SDM vol. 2A
/// tables 3-53 and 3-56, alignment, MXCSR checks and the XMM count per mode.
@Suite struct FXSaveInstructionTests {
    static let fxsave64: [UInt8] = [0x48, 0x0F, 0xAE, 0x03]   // fxsave64 [rbx]
    static let fxrstor64: [UInt8] = [0x48, 0x0F, 0xAE, 0x0B]  // fxrstor64 [rbx]
    static let fxsave: [UInt8] = [0x0F, 0xAE, 0x03]           // fxsave [rbx]

    func step(_ code: [UInt8], _ configure: (inout LongModeMachine) -> Void = { _ in }) -> (EmulationResult, LongModeMachine) {
        var m = LongModeMachine(cpl: 0)
        m.place(code)
        m.state.gpr[.rbx] = LongModeMachine.dataBase
        configure(&m)
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        return (r, m)
    }

    /// A state with a distinct value in every field FXSAVE stores.
    static func populate(_ s: inout CPUState) {
        s.fcw = 0x027F
        s.fsw = 0x3A41
        s.ftwx = 0xC3
        s.fop = 0x0123
        s.fip = 0x1122_3344_5566_7788
        s.fdp = 0x99AA_BBCC_DDEE_FF00
        s.mxcsr = 0x1F80 | 0x21
        for i in 0..<8 { s.x87[i] = (0..<10).map { UInt8(truncatingIfNeeded: 0x10 * i + $0) } }
        for i in 0..<16 { s.xmm[i] = XMMValue(low: 0x0101_0101_0101_0101 &* UInt64(i + 1), high: ~UInt64(i)) }
    }

    static func le(_ bytes: [UInt8], _ offset: Int, _ size: Int) -> UInt64 {
        (0..<size).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) }
    }

    @Test func fxsave64WritesTheSDMLayout() {
        let (r, m) = step(Self.fxsave64) { Self.populate(&$0.state) }
        #expect(r == .completed(changes: .registers))
        let image = m.memory.load(m.dataPhysical(LongModeMachine.dataBase), count: 512)
        #expect(Self.le(image, 0, 2) == 0x027F)
        #expect(Self.le(image, 2, 2) == 0x3A41)
        #expect(image[4] == 0xC3 && image[5] == 0)
        #expect(Self.le(image, 6, 2) == 0x0123)
        #expect(Self.le(image, 8, 8) == 0x1122_3344_5566_7788)
        #expect(Self.le(image, 16, 8) == 0x99AA_BBCC_DDEE_FF00)
        #expect(Self.le(image, 24, 4) == 0x1FA1)
        #expect(Self.le(image, 28, 4) == 0xFFFF, "MXCSR_MASK")
        for i in 0..<8 {
            #expect(Array(image[(32 + 16 * i)..<(42 + 16 * i)]) == m.state.x87[i])
            #expect(image[(42 + 16 * i)..<(48 + 16 * i)].allSatisfy { $0 == 0 }, "reserved bytes of ST(\(i))")
        }
        for i in 0..<16 { #expect(Array(image[(160 + 16 * i)..<(176 + 16 * i)]) == m.state.xmm[i].bytes) }
        #expect(image[416..<512].allSatisfy { $0 == 0 })
        #expect(m.state.rip == LongModeMachine.codeBase + 4)
    }

    @Test func legacyFxsaveStores32BitPointersWithZeroSelectors() {
        let (r, m) = step(Self.fxsave) { Self.populate(&$0.state) }
        #expect(r == .completed(changes: .registers))
        let image = m.memory.load(m.dataPhysical(LongModeMachine.dataBase), count: 32)
        #expect(Self.le(image, 8, 4) == 0x5566_7788 && Self.le(image, 12, 4) == 0, "FIP, FCS")
        #expect(Self.le(image, 16, 4) == 0xDDEE_FF00 && Self.le(image, 20, 4) == 0, "FDP, FDS")
    }

    @Test func fxrstor64RestoresWhatFxsave64Saved() {
        var source = LongModeMachine(cpl: 0)
        Self.populate(&source.state)
        let (_, saved) = step(Self.fxsave64) { Self.populate(&$0.state) }
        let image = saved.memory.load(saved.dataPhysical(LongModeMachine.dataBase), count: 512)
        let (r, m) = step(Self.fxrstor64) { $0.memory.store(image, at: $0.dataPhysical(LongModeMachine.dataBase)) }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.fcw == source.state.fcw && m.state.fsw == source.state.fsw && m.state.ftwx == source.state.ftwx)
        #expect(m.state.fop == source.state.fop && m.state.fip == source.state.fip && m.state.fdp == source.state.fdp)
        #expect(m.state.mxcsr == source.state.mxcsr)
        #expect(m.state.x87 == source.state.x87)
        #expect(m.state.xmm == source.state.xmm)
    }

    @Test func misalignedImageIsAGeneralProtectionFault() {
        for code in [Self.fxsave64, Self.fxrstor64] {
            let (r, m) = step(code) { $0.state.gpr[.rbx] = LongModeMachine.dataBase + 8 }
            #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []), "\(code)")
            #expect(m.state.rip == LongModeMachine.codeBase)
        }
    }

    @Test func fxrstorWithReservedMXCSRBitsFaultsAndChangesNothing() {
        let (r, m) = step(Self.fxrstor64) { s in
            s.memory.store32(0x0001_0000, at: s.dataPhysical(LongModeMachine.dataBase) + 24)
            s.memory.store([0x7F, 0x03], at: s.dataPhysical(LongModeMachine.dataBase))
            s.state.fcw = 0x1234
        }
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        #expect(m.state.fcw == 0x1234)
    }

    @Test func fxsaveFaultsWhenTheFPUIsNotAvailable() {
        let (r, _) = step(Self.fxsave64) { $0.state.cr0 |= CR0.taskSwitched }
        #expect(r == .injectException(ExceptionInjection(vector: .deviceNotAvailable), changes: []))
    }

    @Test func fastFxsaveSkipsXMMAtCPL0() {
        let (_, m) = step(Self.fxsave64) { s in
            Self.populate(&s.state)
            s.state.efer |= 1 << 14
        }
        let image = m.memory.load(m.dataPhysical(LongModeMachine.dataBase), count: 512)
        #expect(image[160..<416].allSatisfy { $0 == 0 })
        #expect(Self.le(image, 24, 4) == 0x1FA1, "MXCSR is still saved")
    }

    @Test func anImageAcrossAnUnmappedPageIsAPageFault() {
        // The data window is four pages; an image at its last 256 bytes runs off the end.
        let (r, _) = step(Self.fxsave64) { $0.state.gpr[.rbx] = LongModeMachine.dataBase + 0x4000 - 256 }
        guard case .injectException(let e, _) = r else {
            Issue.record("expected #PF, got \(r)")
            return
        }
        #expect(e.vector == .pageFault)
    }
}
