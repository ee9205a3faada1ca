/// Why a value could not be encoded as AML.
public enum AMLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A name segment is empty, longer than four characters or uses characters outside `A–Z`, `0–9`, `_`
    /// (the first character may not be a digit).
    case invalidNameSegment(String)
    /// A name path has more than 255 segments or is otherwise malformed.
    case invalidNamePath(String)
    /// A string contains a NUL or a non-ASCII character.
    case invalidString(String)
    /// An EISA ID is not three capital letters followed by four upper-case hexadecimal digits.
    case invalidEISAID(String)
    /// An object is too large for a 28-bit PkgLength.
    case objectTooLarge(Int)
    /// A method declares more than 7 arguments or a sync level above 15.
    case invalidMethodFlags(argumentCount: Int, syncLevel: Int)
    /// A resource descriptor has inconsistent or out-of-range fields.
    case invalidResource(String)

    public var description: String {
        switch self {
        case .invalidNameSegment(let s): return "invalid AML name segment \"\(s)\""
        case .invalidNamePath(let s): return "invalid AML name path \"\(s)\""
        case .invalidString(let s): return "AML strings must be non-NUL ASCII: \"\(s)\""
        case .invalidEISAID(let s): return "invalid EISA ID \"\(s)\" (expected e.g. PNP0A03)"
        case .objectTooLarge(let n): return "AML object of \(n) bytes exceeds the 256 MiB PkgLength limit"
        case .invalidMethodFlags(let args, let sync):
            return "AML method with \(args) arguments and sync level \(sync) (limits are 7 and 15)"
        case .invalidResource(let s): return "invalid resource descriptor: \(s)"
        }
    }
}
