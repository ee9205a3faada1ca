/// Fetches up to 15 instruction bytes at CS:RIP through segmentation and paging, page by page.
///
/// Fetching stops at the first byte that cannot be fetched (CS limit, non-canonical address, page
/// fault, memory outside RAM); that fault is delivered only if the decoder needs the byte.
struct InstructionFetcher {
    struct Fetched {
        var bytes: [UInt8]
        /// Why fetching stopped before 15 bytes, if it did.
        var stop: AccessFault?
    }

    static func fetch(state: CPUState, memory: some GuestPhysicalMemory, walker: PageWalker) -> Fetched {
        let mode = state.mode
        let segmentation = Segmentation(state: state)
        var bytes: [UInt8] = []
        let ipMask: UInt64 = mode.is64Bit ? ~0 : (mode.defaultOperandSize == 16 ? 0xFFFF : 0xFFFF_FFFF)
        while bytes.count < Decoder.maximumLength {
            let offset = (state.rip &+ UInt64(bytes.count)) & ipMask
            let linear: UInt64
            if mode.is64Bit {
                guard segmentation.isCanonical(offset) else { return Fetched(bytes: bytes, stop: .generalProtection(state)) }
                linear = offset
            } else {
                guard offset <= UInt64(state.cs.limit) else { return Fetched(bytes: bytes, stop: .generalProtection(state)) }
                linear = (state.cs.base &+ offset) & 0xFFFF_FFFF
            }
            let toPageEnd = Int(truncatingIfNeeded: 0x1000 - (linear & 0xFFF))
            var count = min(toPageEnd, Decoder.maximumLength - bytes.count)
            if !mode.is64Bit {
                let toLimit = UInt64(state.cs.limit) - offset + 1
                if toLimit < UInt64(count) { count = Int(truncatingIfNeeded: toLimit) }
                let toWrap = ipMask - offset + 1
                if toWrap < UInt64(count) { count = Int(truncatingIfNeeded: toWrap) }
            }
            let physical: UInt64
            switch walker.translate(linear, access: .execute, cpl: state.cpl, state: state, memory: memory) {
            case .physical(let p): physical = p
            case .pageFault(let code, let address): return Fetched(bytes: bytes, stop: .pageFault(errorCode: code, address: address))
            case .invalidTable(let why): return Fetched(bytes: bytes, stop: .stop(why))
            }
            var chunk = [UInt8](repeating: 0, count: count)
            let ok = unsafe chunk.withUnsafeMutableBytes { unsafe memory.read(physical, $0) }
            guard ok else {
                return Fetched(bytes: bytes, stop: .stop("instruction bytes at guest-physical \(hex(physical)) are not in RAM"))
            }
            bytes += chunk
        }
        return Fetched(bytes: bytes, stop: nil)
    }
}
