import ArchX86
import GuestMemory
import Migration
import VMM

/// The migration stream as the target reads it from the socket: frame headers
/// (`MigrationFrame.parseHeader`), the hello (`MigrationHello`, the saved configuration in it
/// and the disk descriptors, `IncomingHello`, `IncomingDisks.check`), page batches
/// (`PageBatch`, placed in guest RAM when it is small), disk chunks (`DiskChunk`), the state
/// (`IncomingState`: a state file's machine and device sections, validated), aborts, sync and
/// complete, in the order the target accepts them.
///
/// Input: the bytes the source sends, frame after frame; the stream ends where the input
/// does (a connection the peer closed) or at the first refusal (the target then aborts).
///
/// Properties: refusals are typed (`MigrationError`, `VMError`); an accepted header is the
/// one `MigrationFrame.header` writes for its kind and length, within the kind's bound; an
/// accepted page batch is written again byte for byte, names only pages below the hello's
/// page count and holds 4 KiB for each non-zero page, and once placed each of its pages reads
/// back as the batch gave it; an accepted disk chunk lies within its disk and decodes again
/// equal; an accepted state, written again, reads back equal.
enum MigrationStreamHarness {
    /// Guest RAM up to this size is allocated so that page batches are placed as the target places them.
    static let maxPlacedMemory: UInt64 = 32 << 20

    static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        var input = FuzzInput(data)
        var hello: IncomingHello?
        var memory: GuestMemory?
        var diskSizes: [UInt64] = []
        var stateSeen = false
        while input.remaining >= MigrationFrame.headerSize {
            let header = input.bytes(MigrationFrame.headerSize)
            let kind: MigrationFrame.Kind
            let length: Int
            do {
                (kind, length) = try MigrationFrame.parseHeader(header)
            } catch {
                return
            }
            try require(UInt64(length) <= kind.maxPayload, "\(kind) frame of \(length) bytes accepted (at most \(kind.maxPayload))")
            try require(MigrationFrame.header(kind, length: length) == header, "an accepted \(kind) header is not the one written for it")
            guard input.remaining >= length else { return }  // the peer closed the connection
            let payload = input.bytes(length)

            // The first frame must be the hello (`receive(.hello, as:)`).
            guard let accepted = hello else {
                guard kind == .hello else { return }
                do {
                    let decoded = try MigrationFrame.decode(MigrationHello.self, payload, kind: .hello)
                    let checked = try IncomingHello(decoded, restore: RestoreOptions())
                    if !decoded.disks.isEmpty {
                        _ = try IncomingDisks.check(decoded.disks, pathCount: checked.diskPaths.count)
                    }
                    try require(checked.pageCount == decoded.pageCount, "hello accepted with \(decoded.pageCount) pages for \(checked.pageCount)")
                    diskSizes = decoded.disks.map(\.size)
                    hello = checked
                    if checked.memorySize <= maxPlacedMemory {
                        memory = try? GuestMemory(ranges: checked.memoryMap.ramRanges)
                    }
                } catch let violation as FuzzInvariantViolation {
                    throw violation
                } catch {
                    return
                }
                continue
            }

            switch kind {
            case .pages:
                let batch: PageBatch
                do {
                    batch = try PageBatch(parsing: payload, pageCount: accepted.pageCount)
                } catch {
                    return
                }
                try checkBatch(batch, payload: payload, pageCount: accepted.pageCount)
                if let memory {
                    do {
                        try VirtualMachine.apply(batch, to: memory)
                    } catch {
                        throw FuzzInvariantViolation("an accepted page batch cannot be placed: \(error)")
                    }
                    try checkPlaced(batch, in: memory)
                }
            case .disk:
                guard !diskSizes.isEmpty else { return }  // disk data for a VM without copied disks
                let chunk: DiskChunk
                do {
                    chunk = try MigrationFrame.decode(DiskChunk.self, payload, kind: .disk)
                    try chunk.validate(diskCount: diskSizes.count, diskSizes: diskSizes)
                } catch {
                    return
                }
                try require(chunk.disk >= 0 && chunk.disk < diskSizes.count, "disk chunk for disk \(chunk.disk) of \(diskSizes.count)")
                try require(chunk.offset + chunk.length <= diskSizes[chunk.disk], "disk chunk past the end of its disk")
                try require(chunk.data.map { UInt64($0.count) == chunk.length } ?? true, "disk chunk data is not its length")
                do {
                    let again = try MigrationFrame.decode(DiskChunk.self, try MigrationFrame.encode(chunk), kind: .disk)
                    try require(again == chunk, "a disk chunk written again decodes different")
                } catch let violation as FuzzInvariantViolation {
                    throw violation
                } catch {
                    throw FuzzInvariantViolation("an accepted disk chunk does not survive encoding: \(error)")
                }
            case .state:
                guard !stateSeen else { return }  // the state twice
                stateSeen = true
                let state: IncomingState
                do {
                    state = try IncomingState(parsing: payload, vcpuCount: accepted.vcpuCount)
                } catch {
                    return
                }
                do {
                    let again = try IncomingState(parsing: try state.serialized(), vcpuCount: accepted.vcpuCount)
                    try require(again == state, "a state written again reads back different")
                } catch let violation as FuzzInvariantViolation {
                    throw violation
                } catch {
                    throw FuzzInvariantViolation("an accepted state written again is refused: \(error)")
                }
            case .abort:
                // `receive()` turns an abort into `.aborted` with the reason, if it decodes.
                _ = try? MigrationFrame.decode(MigrationAbort.self, payload, kind: .abort)
                return
            case .sync:
                continue
            case .complete:
                return
            default:
                return  // unexpected from the source
            }
        }
    }

    static func checkBatch(_ batch: PageBatch, payload: [UInt8], pageCount: UInt64) throws(FuzzInvariantViolation) {
        try require(batch.pages.count <= PageBatch.maxPages, "batch of \(batch.pages.count) pages")
        try require(batch.pages.allSatisfy { $0.number < pageCount }, "batch names a page past \(pageCount)")
        let withData = batch.pages.filter { !$0.zero }.count
        try require(batch.data.count == withData * PageBatch.pageSize, "batch data of \(batch.data.count) bytes for \(withData) pages")
        try require(batch.serialized() == payload, "an accepted page batch is not written back byte for byte")
    }

    /// Each page of `batch` (its last occurrence) reads back as the batch gave it.
    static func checkPlaced(_ batch: PageBatch, in memory: GuestMemory) throws(FuzzInvariantViolation) {
        var expected: [UInt64: Int?] = [:]  // page → offset of its data, nil for a zero page
        var offset = 0
        for page in batch.pages {
            if page.zero {
                expected[page.number] = .some(nil)
            } else {
                expected[page.number] = .some(offset)
                offset += PageBatch.pageSize
            }
        }
        for (number, dataOffset) in expected {
            guard let address = guestAddress(ofPage: number, in: memory) else {
                throw FuzzInvariantViolation("placed page \(number) is not in guest RAM")
            }
            let contents: [UInt8]
            do {
                contents = try memory.readBytes(at: address, count: PageBatch.pageSize)
            } catch {
                throw FuzzInvariantViolation("placed page \(number) cannot be read: \(error)")
            }
            if let start = dataOffset {
                try require(contents[...] == batch.data[start..<(start + PageBatch.pageSize)], "page \(number) does not hold the batch's data")
            } else {
                try require(contents.allSatisfy { $0 == 0 }, "zero page \(number) is not zero")
            }
        }
    }

    static func guestAddress(ofPage number: UInt64, in memory: GuestMemory) -> UInt64? {
        var n = number
        for region in memory.regions {
            let pages = region.size / GuestMemory.pageSize
            if n < pages { return region.guestAddress + n * GuestMemory.pageSize }
            n -= pages
        }
        return nil
    }
}
