/// Decodes `Decodable` values from the binary format `BinaryEncoder` writes.
///
/// Safe on untrusted input: any input either decodes or throws a `BinaryCodingError`, never
/// traps, never recurses deeper than `limits.maxDepth`, and allocates nothing sized by a length
/// or count that the input is too short to back. Unknown keys are ignored (fields added by a
/// later version); bytes after the top-level value are an error.
///
/// A keyed container is indexed when a type first reads it: every key is checked (UTF-8, no
/// duplicates) and located, so lookups need no scan of the input. Values no type reads (those of
/// unknown keys) are checked for structure only: tags, canonical varints, lengths and limits.
public struct BinaryDecoder: Sendable {
    /// What input the decoder accepts.
    public var limits: Limits

    /// A decoder that accepts input within `limits`.
    public init(limits: Limits = .default) {
        self.limits = limits
    }

    /// Decodes a `T` from `bytes`, which must hold exactly one encoded value.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(BinaryCodingError) -> T {
        let result = unsafe bytes.withUnsafeBytes { buffer in
            Result { () throws(BinaryCodingError) -> T in try unsafe decode(type, from: buffer) }
        }
        return try result.get()
    }

    /// Decodes a `T` from `bytes` (not copied; only read during the call), which must hold
    /// exactly one encoded value.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws(BinaryCodingError) -> T {
        guard limits.maxInputSize >= 0, bytes.count <= limits.maxInputSize else {
            throw .limitExceeded(path: "", limit: .inputSize, value: UInt64(bytes.count), maximum: limits.maxInputSize, offset: 0)
        }
        let state = unsafe DecodingState(input: bytes, limits: limits)
        defer { state.finish() }
        let root = ValueDecoder(state: state, offset: 0, parent: nil, component: nil, enclosingDepth: 0)
        var knownEnd: Int?
        let value = try root.decodeValue(type, end: &knownEnd)
        let end: Int
        if let knownEnd {
            end = knownEnd
        } else {
            do { end = try state.skipValue(at: 0, enclosingDepth: 0) } catch { throw error.located(at: "") }
        }
        guard end == bytes.count else { throw .trailingBytes(offset: end, count: bytes.count - end) }
        return value
    }
}
