/// How an instruction finished.
enum Completion: Equatable {
    /// Done; RIP is to be advanced past the instruction.
    case done(StateChanges)
    /// Done, RIP advanced, and then this exception is raised (INT3 is a trap).
    case trap(ExceptionInjection, StateChanges)
    /// Done, and the handler set RIP itself (SYSRET).
    case jumped(StateChanges)
}

/// One instruction being executed: its decoded form, the guest's memory and platform, and helpers
/// for operands. Handlers mutate a copy of the state; the emulator commits it only on success.
struct InstructionContext<Memory: GuestPhysicalMemory, Platform: EmulatorPlatform> {
    let instruction: DecodedInstruction
    let memory: Memory
    let platform: Platform
    let walker: PageWalker
    let configuration: EmulatorConfiguration

    /// The address of the next instruction, wrapped to the code size.
    func nextRIP(_ state: CPUState) -> UInt64 {
        let next = state.rip &+ UInt64(instruction.length)
        if state.mode.is64Bit { return next }
        return state.mode.defaultOperandSize == 16 ? next & 0xFFFF : next & 0xFFFF_FFFF
    }

    /// The effective address (segment offset) of the memory operand, truncated to the address size.
    func effectiveAddress(_ m: MemoryOperand, _ state: CPUState) -> UInt64 {
        var ea = UInt64(bitPattern: m.displacement)
        if m.ripRelative { ea = ea &+ nextRIP(state) }
        if let b = m.base { ea = ea &+ state.gpr[b] }
        if let x = m.index { ea = ea &+ state.gpr[x] &* UInt64(m.scale) }
        switch m.addressSize {
        case 16: return ea & 0xFFFF
        case 32: return ea & 0xFFFF_FFFF
        default: return ea
        }
    }

    /// The linear address of `size` bytes of the memory operand, after segmentation checks.
    func linearAddress(_ state: CPUState, size: Int, kind: AccessKind) -> Result<UInt64, AccessFault> {
        guard let m = instruction.memory else { return .failure(.stop("instruction has no memory operand")) }
        let offset = effectiveAddress(m, state)
        return Segmentation(state: state).linearAddress(segment: m.segment, offset: offset, size: size, kind: kind)
    }

    /// #AC(0) if alignment checking is on (CR0.AM, RFLAGS.AC, CPL 3) and `linear` is not `size`-aligned.
    func checkAlignment(_ state: CPUState, linear: UInt64, size: Int) -> AccessFault? {
        guard size > 1, state.cr0 & CR0.alignmentMask != 0, state.rflags & RFlags.alignmentCheck != 0, state.cpl == 3 else { return nil }
        return linear % UInt64(size) == 0 ? nil : .alignmentCheck(state)
    }

    func linearMemory(_ state: CPUState) -> LinearMemory<Memory> {
        LinearMemory(state: state, memory: memory, walker: walker)
    }

    /// Reads `size` bytes of the memory operand (with the #AC check for natural alignment).
    func readMemoryOperand(_ state: CPUState, size: Int, alignmentCheck: Bool = true) -> Result<[UInt8], AccessFault> {
        let linear: UInt64
        switch linearAddress(state, size: size, kind: .read) {
        case .success(let l): linear = l
        case .failure(let f): return .failure(f)
        }
        if alignmentCheck, let f = checkAlignment(state, linear: linear, size: size) { return .failure(f) }
        return linearMemory(state).read(linear, count: size)
    }

    /// Writes `bytes` to the memory operand.
    func writeMemoryOperand(_ state: CPUState, _ bytes: [UInt8], alignmentCheck: Bool = true) -> Result<Void, AccessFault> {
        let linear: UInt64
        switch linearAddress(state, size: bytes.count, kind: .write) {
        case .success(let l): linear = l
        case .failure(let f): return .failure(f)
        }
        if alignmentCheck, let f = checkAlignment(state, linear: linear, size: bytes.count) { return .failure(f) }
        return linearMemory(state).write(linear, bytes)
    }

    /// The r/m operand as an integer of `size` bytes (register or memory).
    func readRM(_ state: CPUState, size: Int) -> Result<UInt64, AccessFault> {
        if instruction.memory == nil {
            return .success(state.gpr[instruction.rmField] & mask(bytes: size))
        }
        switch readMemoryOperand(state, size: size) {
        case .success(let bytes): return .success(littleEndian(bytes))
        case .failure(let f): return .failure(f)
        }
    }

    /// Writes a `size`-byte result to general-purpose register `index` the way x86 does: 32-bit
    /// results zero-extend into the full register, 8- and 16-bit results keep the upper bits.
    static func writeGPR(_ state: inout CPUState, _ index: Int, _ value: UInt64, size: Int) {
        switch size {
        case 8: state.gpr[index] = value
        case 4: state.gpr[index] = value & 0xFFFF_FFFF
        default:
            let m = mask(bytes: size)
            state.gpr[index] = (state.gpr[index] & ~m) | (value & m)
        }
    }
}

/// All-ones in the low `bytes` bytes.
func mask(bytes: Int) -> UInt64 {
    bytes >= 8 ? ~0 : (UInt64(1) << UInt64(8 * max(bytes, 0))) - 1
}

/// A little-endian integer from up to eight bytes.
func littleEndian(_ bytes: [UInt8]) -> UInt64 {
    var v: UInt64 = 0
    for (i, b) in bytes.prefix(8).enumerated() { v |= UInt64(b) << UInt64(8 * i) }
    return v
}

/// The low `count` bytes of `value`, little-endian.
func littleEndianBytes(_ value: UInt64, count: Int) -> [UInt8] {
    (0..<min(count, 8)).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
}
