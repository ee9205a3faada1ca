/// POPCNT, LZCNT and TZCNT on 16-, 32- and 64-bit operands.
///
/// Defined flags follow the SDM. The flags the SDM leaves undefined for LZCNT and TZCNT (OF, SF,
/// AF, PF) are set the way AMD Zen processors set them, measured: OF unchanged, SF, AF and PF clear.
extension InstructionContext {
    enum BitCount {
        case popcnt, lzcnt, tzcnt
    }

    func executeBitCount(_ kind: BitCount, _ state: inout CPUState) -> Result<Completion, AccessFault> {
        let size = instruction.operandSize / 8
        let source: UInt64
        switch readRM(state, size: size) {
        case .success(let v): source = v
        case .failure(let f): return .failure(f)
        }
        let bits = instruction.operandSize
        let result: UInt64
        var flags = state.rflags
        switch kind {
        case .popcnt:
            result = UInt64(source.nonzeroBitCount)
            flags &= ~RFlags.arithmetic
            if source == 0 { flags |= RFlags.zero }
        case .lzcnt:
            result = source == 0 ? UInt64(bits) : UInt64(source.leadingZeroBitCount - (64 - bits))
            flags &= ~(RFlags.carry | RFlags.zero | RFlags.sign | RFlags.auxiliaryCarry | RFlags.parity)
            if source == 0 { flags |= RFlags.carry }
            if result == 0 { flags |= RFlags.zero }
        case .tzcnt:
            result = source == 0 ? UInt64(bits) : UInt64(source.trailingZeroBitCount)
            flags &= ~(RFlags.carry | RFlags.zero | RFlags.sign | RFlags.auxiliaryCarry | RFlags.parity)
            if source == 0 { flags |= RFlags.carry }
            if result == 0 { flags |= RFlags.zero }
        }
        Self.writeGPR(&state, instruction.regField, result, size: size)
        state.rflags = flags
        return .success(.done(.registers))
    }
}
