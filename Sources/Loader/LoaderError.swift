/// Why a kernel image or a boot plan was refused.
///
/// Every case carries a complete, human-readable message naming the structure, the offending
/// value and the limit it broke, so that callers can show `description` as is.
public enum LoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file ends before a structure that it declares or that the format needs.
    case truncated(String)
    /// A magic number or signature is wrong.
    case badMagic(String)
    /// The image is well formed but needs something Skiff does not provide.
    case unsupported(String)
    /// A header field contradicts the file or another field.
    case malformed(String)
    /// Address or size arithmetic on values from the image overflows.
    case overflow(String)
    /// None of the supported formats matched; the message says what the file looks like.
    case unrecognizedFormat(String)
    /// A segment or boot structure would land outside guest RAM.
    case outsideRAM(String)
    /// A segment would land in the low megabyte, which holds the VMM's boot structures.
    case reservedMemory(String)
    /// Two segments, or two guest writes, overlap.
    case overlap(String)
    /// The kernel command line contains a NUL byte or is too long.
    case invalidCommandLine(String)
    /// An initrd, module or table does not fit where it has to go.
    case doesNotFit(String)
    /// A table would need more entries than it can hold.
    case tooManyEntries(String)

    /// The message alone, without the category.
    public var message: String {
        switch self {
        case .truncated(let m), .badMagic(let m), .unsupported(let m), .malformed(let m), .overflow(let m),
            .unrecognizedFormat(let m), .outsideRAM(let m), .reservedMemory(let m), .overlap(let m),
            .invalidCommandLine(let m), .doesNotFit(let m), .tooManyEntries(let m):
            return m
        }
    }

    public var description: String { message }
}
