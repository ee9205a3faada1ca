/// Turns segment:offset into a linear address with the checks of the current mode: segment type,
/// limit (expand-up and expand-down) outside 64-bit mode, canonical form in 64-bit mode.
struct Segmentation {
    let state: CPUState
    let mode: ProcessorMode

    init(state: CPUState) {
        self.state = state
        self.mode = state.mode
    }

    /// Linear addresses wrap at 4 GiB outside 64-bit mode.
    var linearMask: UInt64 { mode.is64Bit ? ~0 : 0xFFFF_FFFF }

    /// The linear address of `size` bytes at `segment:offset` for `kind` (read or write).
    ///
    /// `offset` must already be truncated to the address size.
    func linearAddress(segment: SegmentName, offset: UInt64, size: Int, kind: AccessKind) -> Result<UInt64, AccessFault> {
        let span = UInt64(max(size, 1) - 1)
        let fault: AccessFault = segment == .ss ? .stackFault(state) : .generalProtection(state)
        if mode.is64Bit {
            let base = (segment == .fs || segment == .gs) ? state[segment].base : 0
            let linear = base &+ offset
            guard isCanonical(linear), isCanonical(linear &+ span) else { return .failure(fault) }
            return .success(linear)
        }
        let seg = state[segment]
        let protected = state.cr0 & CR0.protectionEnable != 0 && mode != .virtual8086
        if protected {
            if seg.unusable || !seg.present { return .failure(fault) }
            switch kind {
            case .write:
                if seg.isCode || !seg.readableOrWritable { return .failure(fault) }
            case .read:
                if seg.isCode && !seg.readableOrWritable { return .failure(fault) }
            case .execute:
                break
            }
        }
        let last = offset &+ span
        let limit = UInt64(seg.limit)
        if protected && seg.expandDown {
            let upper: UInt64 = seg.defaultBig ? 0xFFFF_FFFF : 0xFFFF
            guard offset > limit, last <= upper, last >= offset else { return .failure(fault) }
        } else {
            guard last <= limit, last >= offset else { return .failure(fault) }
        }
        return .success((seg.base &+ offset) & 0xFFFF_FFFF)
    }

    /// Whether `address` is canonical for the current paging mode (48 or 57 bits).
    func isCanonical(_ address: UInt64) -> Bool {
        let bits: UInt64 = state.cr4 & CR4.la57 != 0 ? 57 : 48
        let top = Int64(bitPattern: address) >> (bits - 1)
        return top == 0 || top == -1
    }
}
