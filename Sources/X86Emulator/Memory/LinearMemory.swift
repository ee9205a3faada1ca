/// Reads and writes guest linear memory through the page walker, page by page, so an access that
/// spans two pages checks (and faults on) both before anything is written.
struct LinearMemory<Memory: GuestPhysicalMemory> {
    let state: CPUState
    let memory: Memory
    let walker: PageWalker
    let segmentation: Segmentation
    /// The privilege the page walk checks: the CPL, or 0 for implicit supervisor accesses
    /// (descriptor-table reads) whatever the CPL.
    let accessCPL: Int

    init(state: CPUState, memory: Memory, walker: PageWalker, supervisor: Bool = false) {
        self.state = state
        self.memory = memory
        self.walker = walker
        self.segmentation = Segmentation(state: state)
        self.accessCPL = supervisor ? 0 : state.cpl
    }

    /// The guest-physical pieces (address, length) of `count` bytes at `linear`, translated for `kind`.
    func translate(_ linear: UInt64, count: Int, kind: AccessKind) -> Result<[(physical: UInt64, length: Int)], AccessFault> {
        var pieces: [(physical: UInt64, length: Int)] = []
        var done = 0
        while done < count {
            let address = (linear &+ UInt64(done)) & segmentation.linearMask
            let inPage = Int(truncatingIfNeeded: 0x1000 - (address & 0xFFF))
            let length = min(inPage, count - done)
            switch walker.translate(address, access: kind, cpl: accessCPL, state: state, memory: memory) {
            case .physical(let p):
                pieces.append((p, length))
            case .pageFault(let code, let at):
                return .failure(.pageFault(errorCode: code, address: at))
            case .invalidTable(let why):
                return .failure(.stop(why))
            }
            done += length
        }
        return .success(pieces)
    }

    /// Reads `count` bytes at `linear`.
    func read(_ linear: UInt64, count: Int, kind: AccessKind = .read) -> Result<[UInt8], AccessFault> {
        let pieces: [(physical: UInt64, length: Int)]
        switch translate(linear, count: count, kind: kind) {
        case .success(let p): pieces = p
        case .failure(let f): return .failure(f)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for piece in pieces {
            var chunk = [UInt8](repeating: 0, count: piece.length)
            let ok = unsafe chunk.withUnsafeMutableBytes { unsafe memory.read(piece.physical, $0) }
            guard ok else { return .failure(.stop("guest-physical \(hex(piece.physical)) (+\(piece.length)) is not RAM")) }
            bytes += chunk
        }
        return .success(bytes)
    }

    /// Writes `bytes` at `linear`; all pages are translated (and may fault) before the first byte is written.
    func write(_ linear: UInt64, _ bytes: [UInt8]) -> Result<Void, AccessFault> {
        let pieces: [(physical: UInt64, length: Int)]
        switch translate(linear, count: bytes.count, kind: .write) {
        case .success(let p): pieces = p
        case .failure(let f): return .failure(f)
        }
        var offset = 0
        for piece in pieces {
            let ok = unsafe bytes[offset..<(offset + piece.length)].withUnsafeBytes { unsafe memory.write(piece.physical, $0) }
            guard ok else { return .failure(.stop("guest-physical \(hex(piece.physical)) (+\(piece.length)) is not RAM")) }
            offset += piece.length
        }
        return .success(())
    }
}
