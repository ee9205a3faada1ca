/// VERR and VERW (Intel SDM vol. 2B): report in ZF whether a selector names a segment the
/// current privilege level may read or write. Linux runs `verw` on every return to user space
/// as the MDS buffer-clearing idiom; only ZF is architecturally visible.
extension InstructionContext {
    func executeVerifySegment(write: Bool, _ state: inout CPUState) -> Result<Completion, AccessFault> {
        switch state.mode {
        case .real, .virtual8086: return .failure(.invalidOpcode)
        default: break
        }
        let selector: UInt16
        switch readRM(state, size: 2) {
        case .success(let v): selector = UInt16(truncatingIfNeeded: v)
        case .failure(let f): return .failure(f)
        }
        let verified: Bool
        switch descriptor(for: selector, state) {
        case .success(let d?): verified = Self.accessible(d, selector: selector, cpl: state.cpl, write: write)
        case .success(nil): verified = false
        case .failure(let f): return .failure(f)
        }
        state.rflags = verified ? state.rflags | RFlags.zero : state.rflags & ~RFlags.zero
        return .success(.done(.registers))
    }

    /// The 8-byte descriptor `selector` names, nil when the selector is null or beyond its table's
    /// limit. The table read is a supervisor access, whatever the CPL.
    private func descriptor(for selector: UInt16, _ state: CPUState) -> Result<UInt64?, AccessFault> {
        let index = UInt64(selector >> 3)
        let local = selector & 4 != 0
        if !local && index == 0 { return .success(nil) }
        let base: UInt64
        let limit: UInt64
        if local {
            if state.ldtr.unusable || state.ldtr.selector & ~3 == 0 { return .success(nil) }
            base = state.ldtr.base
            limit = UInt64(state.ldtr.limit)
        } else {
            base = state.gdtBase
            limit = UInt64(state.gdtLimit)
        }
        guard index * 8 + 7 <= limit else { return .success(nil) }
        let table = LinearMemory(state: state, memory: memory, walker: walker, supervisor: true)
        let linear = state.mode.is64Bit ? base &+ index * 8 : (base &+ index * 8) & 0xFFFF_FFFF
        switch table.read(linear, count: 8) {
        case .success(let bytes): return .success(littleEndian(bytes))
        case .failure(let f): return .failure(f)
        }
    }

    /// The SDM's checks: a code or data descriptor (S = 1); VERW needs a writable data segment,
    /// VERR a data segment or readable code segment; DPL ≥ max(CPL, RPL) except for readable
    /// conforming code under VERR. The present bit is not checked.
    static func accessible(_ descriptor: UInt64, selector: UInt16, cpl: Int, write: Bool) -> Bool {
        let type = UInt8(truncatingIfNeeded: descriptor >> 40) & 0xF
        let codeOrData = descriptor & (1 << 44) != 0
        let dpl = Int(truncatingIfNeeded: descriptor >> 45) & 3
        let rpl = Int(selector & 3)
        guard codeOrData else { return false }
        let code = type & 0x8 != 0
        let readableOrWritable = type & 0x2 != 0
        if write { if code || !readableOrWritable { return false } }
        else if code {
            if !readableOrWritable { return false }
            if type & 0x4 != 0 { return true }  // conforming: no privilege check
        }
        return dpl >= max(cpl, rpl)
    }
}
