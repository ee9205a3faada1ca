import BinaryCoding

/// The snapshot state file: a versioned container of named, checksummed sections.
///
/// ```
/// offset  size  field
/// 0       8     magic "SKIFFSNP"
/// 8       4     format version (UInt32 LE) — loading refuses any other version
/// 12      4     section count (UInt32 LE, at most `maxSections`)
/// 16      ...   sections, each:
///               16  name (printable ASCII, NUL-padded: nothing but NULs after it)
///               8   payload length (UInt64 LE, at most `maxSectionSize`)
///               8   CRC-64/XZ of the payload
///               n   payload (BinaryCoding)
/// end     16    trailer: "SKIFFEND" + CRC-64/XZ of every byte before the trailer
/// ```
/// Everything is bounded and checked before use: the file size, the section count, every
/// length against the bytes left, each checksum, the trailer; names must be known to the
/// reader (unknown sections are refused, not skipped) and appear once.
public struct StateFile: Equatable, Sendable {
    public static let magic: [UInt8] = Array("SKIFFSNP".utf8)
    static let trailerMagic: [UInt8] = Array("SKIFFEND".utf8)
    /// The format this build writes and reads.
    public static let formatVersion: UInt32 = 1
    public static let maxSections = 64
    public static let maxSectionSize: UInt64 = 64 << 20
    public static let maxFileSize: UInt64 = 256 << 20
    static let nameLength = 16

    /// Sections in file order: (name, payload).
    public private(set) var sections: [(name: String, payload: [UInt8])]

    public init() { sections = [] }

    public static func == (a: StateFile, b: StateFile) -> Bool {
        a.sections.map(\.name) == b.sections.map(\.name) && a.sections.map(\.payload) == b.sections.map(\.payload)
    }

    /// Adds a section holding `value` encoded with BinaryCoding.
    public mutating func add<T: Encodable>(_ name: String, _ value: T) throws(SnapshotError) {
        guard name.utf8.count <= Self.nameLength, !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .sections("invalid section name '\(name)'")
        }
        guard !sections.contains(where: { $0.name == name }) else { throw .sections("section '\(name)' added twice") }
        let payload: [UInt8]
        do {
            payload = try BinaryEncoder().encode(value)
        } catch {
            throw .invalid(section: name, reason: "cannot encode: \(error)")
        }
        sections.append((name, payload))
    }

    /// Adds a section whose payload is already encoded (copying sections between files).
    public mutating func appendRaw(_ name: String, _ payload: [UInt8]) {
        sections.append((name, payload))
    }

    /// The whole file.
    public func serialized() -> [UInt8] {
        var out = Self.magic
        append32(&out, Self.formatVersion)
        append32(&out, UInt32(sections.count))
        for s in sections {
            var name = Array(s.name.utf8)
            name += [UInt8](repeating: 0, count: Self.nameLength - name.count)
            out += name
            append64(&out, UInt64(s.payload.count))
            append64(&out, CRC64.checksum(s.payload))
            out += s.payload
        }
        let crc = CRC64.checksum(out)
        out += Self.trailerMagic
        append64(&out, crc)
        return out
    }

    /// Parses a file, accepting only sections named in `known`.
    public init(parsing bytes: [UInt8], path: String, known: Set<String>) throws(SnapshotError) {
        guard UInt64(bytes.count) <= Self.maxFileSize else {
            throw .tooLarge(what: path, size: UInt64(bytes.count), limit: Self.maxFileSize)
        }
        guard bytes.count >= 8, Array(bytes[0..<8]) == Self.magic else {
            if bytes.count < 8 && Self.magic.starts(with: bytes) { throw .truncated(path: path, what: "header") }
            throw .notASnapshot(path: path)
        }
        guard bytes.count >= 16 else { throw .truncated(path: path, what: "header") }
        let version = read32(bytes, 8)
        guard version == Self.formatVersion else { throw .version(found: version, supported: Self.formatVersion) }
        let count = read32(bytes, 12)
        guard count <= UInt32(Self.maxSections) else { throw .tooLarge(what: "section count", size: UInt64(count), limit: UInt64(Self.maxSections)) }
        // The trailer covers the whole file: check it before looking at any section.
        guard bytes.count >= 16 + 16 else { throw .truncated(path: path, what: "trailer") }
        let trailerStart = bytes.count - 16
        guard Array(bytes[trailerStart..<(trailerStart + 8)]) == Self.trailerMagic else {
            throw .truncated(path: path, what: "no trailer")
        }
        let fileCRC = unsafe bytes.withUnsafeBytes { unsafe CRC64.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<trailerStart])) }
        guard fileCRC == read64(bytes, trailerStart + 8) else { throw .checksum(section: "whole file") }
        var offset = 16
        var parsed: [(String, [UInt8])] = []
        for _ in 0..<count {
            guard trailerStart - offset >= Self.nameLength + 16 else { throw .truncated(path: path, what: "section header") }
            let field = bytes[offset..<(offset + Self.nameLength)]
            let nameBytes = field.prefix { $0 != 0 }
            guard nameBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), !nameBytes.isEmpty else { throw .sections("a section name is not printable ASCII") }
            // NUL-padded: bytes after the name's end would be dropped without notice.
            guard field.dropFirst(nameBytes.count).allSatisfy({ $0 == 0 }) else { throw .sections("a section name is not NUL-padded") }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let length = read64(bytes, offset + Self.nameLength)
            let crc = read64(bytes, offset + Self.nameLength + 8)
            offset += Self.nameLength + 16
            guard length <= Self.maxSectionSize else { throw .tooLarge(what: "section '\(name)'", size: length, limit: Self.maxSectionSize) }
            guard UInt64(trailerStart - offset) >= length else { throw .truncated(path: path, what: "section '\(name)'") }
            let payload = Array(bytes[offset..<(offset + Int(length))])
            offset += Int(length)
            guard known.contains(name) else { throw .sections("unknown section '\(name)' (written by a newer Skiff?)") }
            guard !parsed.contains(where: { $0.0 == name }) else { throw .sections("section '\(name)' appears twice") }
            guard CRC64.checksum(payload) == crc else { throw .checksum(section: name) }
            parsed.append((name, payload))
        }
        guard offset == trailerStart else { throw .sections("\(trailerStart - offset) stray bytes after the last section") }
        sections = parsed
    }

    /// Whether a section is present.
    public func has(_ name: String) -> Bool { sections.contains { $0.name == name } }

    /// Decodes section `name` as `T`; throws if it is missing or malformed.
    public func decode<T: Decodable>(_ type: T.Type, section name: String) throws(SnapshotError) -> T {
        guard let payload = sections.first(where: { $0.name == name })?.payload else { throw .sections("section '\(name)' is missing") }
        var limits = BinaryDecoder.Limits.default
        limits.maxInputSize = Int(Self.maxSectionSize)
        do {
            return try BinaryDecoder(limits: limits).decode(type, from: payload)
        } catch {
            throw .invalid(section: name, reason: error.description)
        }
    }
}

private func append32(_ out: inout [UInt8], _ v: UInt32) {
    for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
}

private func append64(_ out: inout [UInt8], _ v: UInt64) {
    for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
}

private func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
}

private func read64(_ b: [UInt8], _ at: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
}
