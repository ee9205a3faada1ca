/// FXSAVE and FXRSTOR (Intel SDM vol. 2A, "FXSAVE", tables 3-53 to 3-56): the 512-byte x87/SSE
/// state image. Linux uses them for every FPU switch when XSAVE is off (`noxsave`).
extension InstructionContext {
    /// The 512-byte image: a 16-byte-aligned memory operand, #GP(0) otherwise.
    static var fxImageSize: Int { 512 }

    /// EFER.FFXSR (AMD fast FXSAVE/FXRSTOR): at CPL 0 in 64-bit mode the XMM registers are skipped.
    static var fastFXSR: UInt64 { 1 << 14 }

    /// The aligned linear address of the image, or the fault to raise.
    private func fxImageAddress(_ state: CPUState, kind: AccessKind) -> Result<UInt64, AccessFault> {
        if state.cr0 & (CR0.emulation | CR0.taskSwitched) != 0 { return .failure(.deviceNotAvailable) }
        switch linearAddress(state, size: Self.fxImageSize, kind: kind) {
        case .success(let linear):
            return linear % 16 == 0 ? .success(linear) : .failure(.generalProtection(state))
        case .failure(let f):
            return .failure(f)
        }
    }

    /// How many XMM registers the image carries: 16 in 64-bit mode, 8 elsewhere, none when CR4.OSFXSR
    /// is clear or fast FXSAVE applies.
    private func fxXMMCount(_ state: CPUState) -> Int {
        if state.cr4 & CR4.osfxsr == 0 { return 0 }
        if state.mode.is64Bit && state.cpl == 0 && state.efer & Self.fastFXSR != 0 { return 0 }
        return state.mode.is64Bit ? 16 : 8
    }

    /// FXSAVE / FXSAVE64 m512byte.
    func executeFXSAVE(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        let linear: UInt64
        switch fxImageAddress(state, kind: .write) {
        case .success(let l): linear = l
        case .failure(let f): return .failure(f)
        }
        var image = [UInt8](repeating: 0, count: Self.fxImageSize)
        func put(_ value: UInt64, at offset: Int, size: Int) {
            for i in 0..<size { image[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
        }
        put(UInt64(state.fcw), at: 0, size: 2)
        put(UInt64(state.fsw), at: 2, size: 2)
        put(UInt64(state.ftwx), at: 4, size: 1)
        put(UInt64(state.fop & 0x7FF), at: 6, size: 2)
        if instruction.rex?.w == true {
            put(state.fip, at: 8, size: 8)
            put(state.fdp, at: 16, size: 8)
        } else {
            // FCS and FDS are stored as zero (CPUID.(EAX=7,ECX=0):EBX[13], "FPU CS and DS deprecated").
            put(state.fip & 0xFFFF_FFFF, at: 8, size: 4)
            put(state.fdp & 0xFFFF_FFFF, at: 16, size: 4)
        }
        if state.cr4 & CR4.osfxsr != 0 {
            put(UInt64(state.mxcsr), at: 24, size: 4)
            put(UInt64(configuration.mxcsrMask), at: 28, size: 4)
        }
        for i in 0..<8 { image.replaceSubrange((32 + 16 * i)..<(42 + 16 * i), with: state.x87[i]) }
        for i in 0..<fxXMMCount(state) { image.replaceSubrange((160 + 16 * i)..<(176 + 16 * i), with: state.xmm[i].bytes) }
        if case .failure(let f) = linearMemory(state).write(linear, image) { return .failure(f) }
        return .success(.done(.registers))
    }

    /// FXRSTOR / FXRSTOR64 m512byte: reserved MXCSR bits set → #GP(0), nothing changed.
    func executeFXRSTOR(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        let linear: UInt64
        switch fxImageAddress(state, kind: .read) {
        case .success(let l): linear = l
        case .failure(let f): return .failure(f)
        }
        let image: [UInt8]
        switch linearMemory(state).read(linear, count: Self.fxImageSize) {
        case .success(let bytes) where bytes.count == Self.fxImageSize: image = bytes
        case .success: return .failure(.stop("FXRSTOR read a short image"))
        case .failure(let f): return .failure(f)
        }
        func get(_ offset: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(UInt64(0)) { $0 | UInt64(image[offset + $1]) << UInt64(8 * $1) }
        }
        let mxcsr = UInt32(truncatingIfNeeded: get(24, 4))
        let restoresSSE = state.cr4 & CR4.osfxsr != 0
        if restoresSSE && mxcsr & ~configuration.mxcsrMask != 0 { return .failure(.generalProtection(state)) }
        state.fcw = UInt16(truncatingIfNeeded: get(0, 2))
        state.fsw = UInt16(truncatingIfNeeded: get(2, 2))
        state.ftwx = UInt8(truncatingIfNeeded: get(4, 1))
        state.fop = UInt16(truncatingIfNeeded: get(6, 2)) & 0x7FF
        if instruction.rex?.w == true {
            state.fip = get(8, 8)
            state.fdp = get(16, 8)
        } else {
            state.fip = get(8, 4)
            state.fdp = get(16, 4)
        }
        if restoresSSE { state.mxcsr = mxcsr }
        for i in 0..<8 { state.x87[i] = Array(image[(32 + 16 * i)..<(42 + 16 * i)]) }
        for i in 0..<fxXMMCount(state) { state.xmm[i] = XMMValue(bytes: image[(160 + 16 * i)..<(176 + 16 * i)]) }
        return .success(.done([.registers, .fpu]))
    }
}
