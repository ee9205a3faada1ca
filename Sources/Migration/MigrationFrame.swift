import BinaryCoding

/// The live-migration stream: a sequence of frames in both directions over one connection.
///
/// ```
/// frame header (16 bytes, little-endian)
///   0   4  magic "SKMG"
///   4   2  protocol version (this build speaks `MigrationFrame.version` only)
///   6   2  frame type (`MigrationFrame.Kind`)
///   8   8  payload length (bounded per kind, `Kind.maxPayload`)
/// payload
/// ```
/// Source → target: `hello`, then `pages` and `disk` frames during the rounds, each round
/// ending with `sync`, then `state` and `complete`. Target → source: `accept` (or `abort`)
/// after `hello`, `synced` for each `sync` once it has applied everything before it (so the
/// source measures what really arrived, not what sits in socket buffers), `ready` after
/// `complete` once the VM is built and about to run. Either side may send `abort` with a
/// reason at any time. Unknown kinds, other versions, oversized lengths and payloads that do
/// not decode are refused: the stream is untrusted input.
public enum MigrationFrame {
    public static let magic: [UInt8] = Array("SKMG".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 16

    public enum Kind: UInt16, Sendable, CaseIterable {
        case hello = 1
        case accept = 2
        case pages = 3
        case disk = 4
        case state = 5
        case complete = 6
        case ready = 7
        case abort = 8
        /// Source → target: answer with `synced` once everything before this is applied.
        case sync = 9
        /// Target → source: every frame before the `sync` is applied.
        case synced = 10

        /// Largest payload of this kind.
        public var maxPayload: UInt64 {
            switch self {
            case .hello, .accept, .complete, .ready, .abort: return 1 << 20
            case .sync, .synced: return 0
            case .pages: return UInt64(PageBatch.maxPages) * (4096 + 16) + 64
            case .disk: return UInt64(DiskChunk.maxBytes) + 64
            case .state: return 64 << 20
            }
        }
    }

    /// The header for a payload of `length` bytes.
    public static func header(_ kind: Kind, length: Int) -> [UInt8] {
        var h = magic
        h += [UInt8(truncatingIfNeeded: version), UInt8(truncatingIfNeeded: version >> 8)]
        h += [UInt8(truncatingIfNeeded: kind.rawValue), UInt8(truncatingIfNeeded: kind.rawValue >> 8)]
        let n = UInt64(length)
        for i in 0..<8 { h.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        return h
    }

    /// Parses a header: the kind and payload length, after checking magic, version and bounds.
    public static func parseHeader(_ h: [UInt8]) throws(MigrationError) -> (kind: Kind, length: Int) {
        guard h.count == headerSize, Array(h[0..<4]) == magic else { throw .version("not a Skiff migration stream") }
        let v = UInt16(h[4]) | UInt16(h[5]) << 8
        guard v == version else { throw .version("the peer speaks version \(v), this side version \(version)") }
        let rawKind = UInt16(h[6]) | UInt16(h[7]) << 8
        guard let kind = Kind(rawValue: rawKind) else { throw .malformed("unknown frame type \(rawKind)") }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(h[8 + i]) << (8 * UInt64(i)) }
        guard length <= kind.maxPayload else { throw .malformed("\(kind) frame of \(length) bytes (at most \(kind.maxPayload))") }
        return (kind, Int(length))
    }

    /// Encodes a Codable payload.
    public static func encode<T: Encodable>(_ value: T) throws(MigrationError) -> [UInt8] {
        do {
            return try BinaryEncoder().encode(value)
        } catch {
            throw .malformed("cannot encode: \(error)")
        }
    }

    /// Decodes a Codable payload.
    public static func decode<T: Decodable>(_ type: T.Type, _ payload: [UInt8], kind: Kind) throws(MigrationError) -> T {
        var limits = BinaryDecoder.Limits.default
        limits.maxInputSize = Int(kind.maxPayload)
        do {
            return try BinaryDecoder(limits: limits).decode(type, from: payload)
        } catch {
            throw .malformed("\(kind) frame: \(error)")
        }
    }
}

/// A batch of guest pages: page numbers (counted across the RAM regions in order) and, for
/// pages that are not all zeros, their 4 KiB contents back to back. Encoded by hand, not with
/// BinaryCoding, because it is the bulk of the stream.
///
/// ```
/// u32 count, then count × { u64 page number | flag bit 63 = zero page }, then data
/// ```
public struct PageBatch: Equatable, Sendable {
    public static let maxPages = 256
    public static let pageSize = 4096
    static let zeroFlag: UInt64 = 1 << 63

    public var pages: [(number: UInt64, zero: Bool)]
    public var data: [UInt8]

    public static func == (a: PageBatch, b: PageBatch) -> Bool {
        a.pages.map(\.number) == b.pages.map(\.number) && a.pages.map(\.zero) == b.pages.map(\.zero) && a.data == b.data
    }

    public init() {
        pages = []
        data = []
    }

    public var isFull: Bool { pages.count >= Self.maxPages }
    public var isEmpty: Bool { pages.isEmpty }

    public mutating func appendZero(_ number: UInt64) {
        pages.append((number, true))
    }

    public mutating func append(_ number: UInt64, contents: UnsafeRawBufferPointer) {
        pages.append((number, false))
        unsafe data.append(contentsOf: contents.prefix(Self.pageSize))
    }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + pages.count * 8 + data.count)
        let n = UInt32(pages.count)
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt32(i)))) }
        for p in pages {
            let v = p.number | (p.zero ? Self.zeroFlag : 0)
            for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
        }
        out += data
        return out
    }

    /// Parses a batch; `pageCount` bounds the page numbers.
    public init(parsing bytes: [UInt8], pageCount: UInt64) throws(MigrationError) {
        guard bytes.count >= 4 else { throw .malformed("page batch too short") }
        let n = Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        guard n <= Self.maxPages else { throw .malformed("page batch of \(n) pages") }
        guard bytes.count >= 4 + 8 * n else { throw .malformed("page batch truncated") }
        var list: [(UInt64, Bool)] = []
        list.reserveCapacity(n)
        var withData = 0
        for i in 0..<n {
            var v: UInt64 = 0
            for j in 0..<8 { v |= UInt64(bytes[4 + 8 * i + j]) << (8 * UInt64(j)) }
            let zero = v & Self.zeroFlag != 0
            let number = v & ~Self.zeroFlag
            guard number < pageCount else { throw .malformed("page \(number) is outside guest RAM (\(pageCount) pages)") }
            if !zero { withData += 1 }
            list.append((number, zero))
        }
        guard bytes.count == 4 + 8 * n + withData * Self.pageSize else { throw .malformed("page batch data is \(bytes.count - 4 - 8 * n) bytes for \(withData) pages") }
        pages = list.map { (number: $0.0, zero: $0.1) }
        data = Array(bytes[(4 + 8 * n)...])
    }
}

/// A piece of a disk copied with the VM (non-shared storage): disk index, byte offset and
/// data (a multiple of 512 bytes), or a zeroed range without data.
public struct DiskChunk: Codable, Equatable, Sendable {
    public static let maxBytes = 1 << 20
    public var disk: Int
    public var offset: UInt64
    public var length: UInt64
    /// nil for a range that reads as zeros.
    public var data: [UInt8]?

    public init(disk: Int, offset: UInt64, length: UInt64, data: [UInt8]?) {
        self.disk = disk
        self.offset = offset
        self.length = length
        self.data = data
    }

    public func validate(diskCount: Int, diskSizes: [UInt64]) throws(MigrationError) {
        guard disk >= 0, disk < diskCount, disk < diskSizes.count else { throw .malformed("disk chunk for disk \(disk)") }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= diskSizes[disk], offset % 512 == 0, length % 512 == 0, length > 0, length <= UInt64(Self.maxBytes) else {
            throw .malformed("disk chunk \(offset)+\(length) outside disk \(disk)")
        }
        if let data { guard UInt64(data.count) == length else { throw .malformed("disk chunk data length") } }
    }
}
