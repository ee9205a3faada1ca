/// The few x87 instructions the emulation assist completes (Intel SDM vol. 2: FCLEX/FNCLEX,
/// FINIT/FNINIT, EMMS, FILD). They touch only x87 state and, for FILD, one memory operand.
extension InstructionContext {
    /// x87 instructions raise #NM when CR0.EM or CR0.TS is set.
    func checkX87Available(_ state: CPUState) -> AccessFault? {
        if state.cr0 & (CR0.emulation | CR0.taskSwitched) != 0 { return .deviceNotAvailable }
        return nil
    }

    /// FNCLEX: clears the exception flags (bits 0–5), SF, ES and B of the status word.
    func executeFNCLEX(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if let f = checkX87Available(state) { return .failure(f) }
        state.fsw &= ~0x80FF
        return .success(.done([.registers, .fpu]))
    }

    /// FNINIT: FCW 0x037F, FSW 0, all tags empty, last instruction and data pointers cleared.
    func executeFNINIT(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if let f = checkX87Available(state) { return .failure(f) }
        state.fcw = 0x037F
        state.fsw = 0
        state.ftwx = 0
        state.fop = 0
        state.fip = 0
        state.fdp = 0
        return .success(.done([.registers, .fpu]))
    }

    /// EMMS: marks every x87 register empty. #UD when CR0.EM is set, #NM when CR0.TS is set.
    func executeEMMS(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if state.cr0 & CR0.emulation != 0 { return .failure(.invalidOpcode) }
        if state.cr0 & CR0.taskSwitched != 0 { return .failure(.deviceNotAvailable) }
        state.ftwx = 0
        return .success(.done([.registers, .fpu]))
    }

    /// FILD m32int: pushes the signed 32-bit integer, converted exactly to 80-bit extended
    /// precision. A push onto a valid register is a stack overflow: with IE masked the QNaN
    /// "indefinite" is pushed and IE, SF and C1 are set; unmasked, #MF is left for the next
    /// x87 instruction as on hardware (ES set, the stack unchanged).
    func executeFILD32(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if let f = checkX87Available(state) { return .failure(f) }
        let bytes: [UInt8]
        switch readMemoryOperand(state, size: 4, alignmentCheck: false) {
        case .success(let b): bytes = b
        case .failure(let f): return .failure(f)
        }
        let value = Int32(bitPattern: UInt32(truncatingIfNeeded: littleEndian(bytes)))
        let top = Int((state.fsw >> 11) & 7)
        let newTop = (top + 7) & 7
        if state.ftwx & (1 << UInt8(newTop)) != 0 {
            state.fsw |= 0x0041 | 0x0200  // IE, SF, C1 (overflow)
            if state.fcw & 0x0001 == 0 {
                state.fsw |= 0x8080  // B, ES: the exception is pending
                return .success(.done([.registers, .fpu]))
            }
            state.x87.push(Self.indefinite)
        } else {
            state.x87.push(Self.extended(value))
        }
        state.fsw = (state.fsw & ~0x3800) | UInt16(newTop << 11)
        state.ftwx |= 1 << UInt8(newTop)
        if let m = instruction.memory {
            let modrm = instruction.modRM.map { UInt16($0.mod) << 6 | UInt16($0.reg) << 3 | UInt16($0.rm) } ?? 0
            state.fop = UInt16(0xDB & 7) << 8 | modrm
            state.fip = state.rip
            state.fdp = effectiveAddress(m, state)
        }
        return .success(.done([.registers, .fpu]))
    }

    /// The 80-bit extended-precision QNaN indefinite (sign 1, exponent all ones, significand 0xC000…).
    static var indefinite: [UInt8] { [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF] }

    /// `value` as an 80-bit extended-precision number (exact for every 32-bit integer).
    static func extended(_ value: Int32) -> [UInt8] {
        guard value != 0 else { return [UInt8](repeating: 0, count: 10) }
        let negative = value < 0
        let magnitude = UInt64(value.magnitude)
        let msb = 63 - magnitude.leadingZeroBitCount
        let significand = magnitude << UInt64(63 - msb)
        let exponent = UInt16(16383 + msb) | (negative ? 0x8000 : 0)
        var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: significand >> (8 * UInt64($0))) }
        out.append(UInt8(truncatingIfNeeded: exponent))
        out.append(UInt8(truncatingIfNeeded: exponent >> 8))
        return out
    }
}
