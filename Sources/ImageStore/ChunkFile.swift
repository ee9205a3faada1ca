import Storage
/// The on-disk form of one stored chunk: a 16-byte header then the payload.
///
///     0  "SKCH"   4  version (1)   5  compression (0 none, 1 raw deflate)   6  reserved (2)
///     8  raw length (u32 BE)      12  payload length (u32 BE)   16  payload
enum ChunkFile {
    static let magic: [UInt8] = Array("SKCH".utf8)
    static let headerSize = 16

    static func encode(_ data: UnsafeRawBufferPointer, compress: Bool) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: headerSize)
        header.replaceSubrange(0..<4, with: magic)
        header[4] = 1
        header.putBE32(UInt32(data.count), at: 8)
        if compress, let packed = unsafe Compression.deflateRaw(data, level: 1) {
            header[5] = 1
            header.putBE32(UInt32(packed.count), at: 12)
            return header + packed
        }
        header.putBE32(UInt32(data.count), at: 12)
        return unsafe header + Array(data)
    }

    /// Decodes a chunk file's bytes; nil if the file is damaged.
    static func decode(_ bytes: [UInt8], maxLength: Int) -> [UInt8]? {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic, bytes[4] == 1,
            let raw = bytes.be32(at: 8), let payload = bytes.be32(at: 12),
            Int(raw) <= maxLength, headerSize + Int(payload) == bytes.count
        else { return nil }
        let body = bytes[headerSize...]
        switch bytes[5] {
        case 0:
            return payload == raw ? Array(body) : nil
        case 1:
            var out = [UInt8](repeating: 0, count: Int(raw))
            let ok = unsafe body.withUnsafeBytes { input in
                unsafe out.withUnsafeMutableBytes { unsafe Compression.inflateRaw(input, into: $0) }
            }
            return ok ? out : nil
        default:
            return nil
        }
    }

    /// The raw length recorded in a chunk header, if the header is sane.
    static func rawLength(header bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic, bytes[4] == 1, let raw = bytes.be32(at: 8) else {
            return nil
        }
        return UInt64(raw)
    }
}
