/// Why a value could not be encoded or decoded.
///
/// `path` is the coding path of the value at fault, rendered like `vcpus[1].lapic` (empty for
/// the top-level value); `offset` is the byte offset in the input (or, when encoding, the
/// output) where the value or key at fault starts.
public enum BinaryCodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A decoder limit that input can exceed.
    public enum Limit: String, Sendable {
        case inputSize = "maxInputSize"
        case depth = "maxDepth"
        case containerCount = "maxContainerCount"
        case stringLength = "maxStringLength"
        case byteStringLength = "maxByteStringLength"
    }

    /// The input ends inside the value (or key) at `offset`.
    case truncated(path: String, offset: Int)
    /// A byte where a value should start is not a tag of the format.
    case unknownTag(path: String, tag: UInt8, offset: Int)
    /// The value is of another kind than the type being decoded needs (`expected` and `found`
    /// name kinds of value: "integer", "bytes", "keyed container", …).
    case typeMismatch(path: String, expected: String, found: String, offset: Int)
    /// An integer that the requested type cannot represent (300 as a `UInt8`, -1 as a `UInt`).
    case integerOutOfRange(path: String, value: String, type: String, offset: Int)
    /// A varint longer than its value needs, or longer than 10 bytes, or over 64 bits.
    case malformedVarint(path: String, offset: Int)
    /// A string or key that is not valid UTF-8.
    case invalidUTF8(path: String, offset: Int)
    /// `value` is over the limit `maximum` (a length, count, depth or input size).
    case limitExceeded(path: String, limit: Limit, value: UInt64, maximum: Int, offset: Int)
    /// A keyed container holds the key that ends `path` twice.
    case duplicateKey(path: String, offset: Int)
    /// A required key, the last component of `path`, is absent.
    case keyNotFound(path: String)
    /// A type read past the last of an array's `count` elements.
    case endOfArray(path: String, count: Int)
    /// Bytes follow the top-level value, which ends at `offset`.
    case trailingBytes(offset: Int, count: Int)
    /// A type's own `encode(to:)` or `init(from:)` rejected the value (or misused its
    /// encoder or decoder); `reason` is its message.
    case invalidValue(path: String, reason: String)

    /// One line: the path (or "top level"), the problem, and where in the input it is.
    public var description: String {
        switch self {
        case .truncated(let path, let offset):
            "\(at(path)): input ends inside the value at offset \(offset)"
        case .unknownTag(let path, let tag, let offset):
            "\(at(path)): unknown tag 0x\(tag < 0x10 ? "0" : "")\(String(tag, radix: 16)) at offset \(offset)"
        case .typeMismatch(let path, let expected, let found, let offset):
            "\(at(path)): expected \(expected), found \(found) at offset \(offset)"
        case .integerOutOfRange(let path, let value, let type, let offset):
            "\(at(path)): \(value) is out of range for \(type) at offset \(offset)"
        case .malformedVarint(let path, let offset):
            "\(at(path)): malformed varint in the value at offset \(offset)"
        case .invalidUTF8(let path, let offset):
            "\(at(path)): invalid UTF-8 in the string at offset \(offset)"
        case .limitExceeded(let path, let limit, let value, let maximum, let offset):
            "\(at(path)): \(limit.quantity) \(value) exceeds \(limit.rawValue) (\(maximum)) at offset \(offset)"
        case .duplicateKey(let path, let offset):
            "\(at(path)): duplicate key at offset \(offset)"
        case .keyNotFound(let path):
            "\(at(path)): required key not found"
        case .endOfArray(let path, let count):
            "\(at(path)): the array has only \(count) element\(count == 1 ? "" : "s")"
        case .trailingBytes(let offset, let count):
            "\(count) trailing byte\(count == 1 ? "" : "s") after the top-level value at offset \(offset)"
        case .invalidValue(let path, let reason):
            "\(at(path)): \(sanitized(reason, maxCharacters: 256, escapingQuotes: false))"
        }
    }

    private func at(_ path: String) -> String { path.isEmpty ? "top level" : path }
}

extension BinaryCodingError.Limit {
    /// What the limit measures, for messages.
    fileprivate var quantity: String {
        switch self {
        case .inputSize: "input size"
        case .depth: "nesting depth"
        case .containerCount: "element count"
        case .stringLength: "string length"
        case .byteStringLength: "byte string length"
        }
    }
}

extension BinaryCodingError {
    /// The error a type's `encode(to:)` or `init(from:)` threw, as a `BinaryCodingError`: ours
    /// pass through; `DecodingError` and `EncodingError` keep their path and message; any other
    /// error becomes `.invalidValue` at `node`'s path, with the error's description.
    static func wrapping(_ error: any Error, at node: some CodingPathNode) -> BinaryCodingError {
        let context: (path: [any CodingKey], message: String)
        switch error {
        case let error as BinaryCodingError:
            return error
        case let error as DecodingError:
            switch error {
            case .keyNotFound(let key, let decodingContext):
                return .keyNotFound(path: path(decodingContext.codingPath + [key], orIfShorter: node))
            case .dataCorrupted(let decodingContext), .typeMismatch(_, let decodingContext), .valueNotFound(_, let decodingContext):
                context = (decodingContext.codingPath, decodingContext.debugDescription)
            @unknown default:
                context = ([], String(describing: error))
            }
        case let error as EncodingError:
            switch error {
            case .invalidValue(_, let encodingContext):
                context = (encodingContext.codingPath, encodingContext.debugDescription)
            @unknown default:
                context = ([], String(describing: error))
            }
        default:
            context = ([], String(describing: error))
        }
        return .invalidValue(path: path(context.path, orIfShorter: node), reason: context.message)
    }

    /// `codingPath` rendered, or `node`'s own path when the error carried a shorter one (types
    /// that throw without a path, or with a made-up one).
    private static func path(_ codingPath: [any CodingKey], orIfShorter node: some CodingPathNode) -> String {
        let own = node.pathComponents
        return renderPath(codingPath.count >= own.count ? codingPath.map(PathComponent.init) : own)
    }
}
