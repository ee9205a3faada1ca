import ArchX86

/// A kernel command line: checked text plus helpers to add options without duplicating them.
///
/// The kernel reads it as a NUL-terminated string at `Layout.commandLineAddress`, so it may not
/// contain NUL. Options are separated by whitespace outside double quotes, as the kernel's
/// `next_arg` splits them.
public struct KernelCommandLine: Sendable, Equatable, CustomStringConvertible {
    /// The command line text (without the terminating NUL).
    public private(set) var text: String

    /// Checks `text`: a NUL byte is refused.
    public init(_ text: String = "") throws(LoaderError) {
        try Self.checkNoNUL(text, what: "kernel command line")
        self.text = text
    }

    public var description: String { text }

    /// Length in bytes (UTF-8), without the NUL.
    public var byteCount: Int { text.utf8.count }

    /// The whitespace-separated options, quotes kept.
    public var options: [String] { Self.split(text) }

    /// Whether `option` appears as a whole option (`"noxsave"`, `"console=ttyS0"`).
    public func contains(option: String) -> Bool {
        options.contains(option)
    }

    /// Whether some option is `key` or starts with `key=`.
    public func hasParameter(_ key: String) -> Bool {
        options.contains { $0 == key || $0.hasPrefix(key + "=") }
    }

    /// Appends each option of `options` that is not already present as a whole option.
    public mutating func append(_ options: String) throws(LoaderError) {
        try Self.checkNoNUL(options, what: "option")
        for option in Self.split(options) where !contains(option: option) {
            text = text.isEmpty || text.last.map(Self.isSpace) == true ? text + option : text + " " + option
        }
    }

    /// Appends `option` unless some option already sets `key` (`key` or `key=…`), so that a
    /// user's `console=hvc0` is not joined by a default `console=ttyS0`.
    public mutating func appendIfParameterAbsent(_ key: String, option: String) throws(LoaderError) {
        guard !hasParameter(key) else { return }
        try append(option)
    }

    /// The longest command line (bytes, NUL excluded) a kernel with this protocol accepts: the
    /// bzImage's `cmdline_size` (boot.rst: "The maximum size of the command line without the
    /// terminating zero"), otherwise what fits in Skiff's buffer, `Layout.commandLineMaxSize − 1`.
    public static func limit(for bootProtocol: BootProtocol) -> Int {
        let buffer = Int(Layout.commandLineMaxSize) - 1
        switch bootProtocol {
        case .linux64(let header): return min(header.commandLineLimit, buffer)
        case .pvh, .multiboot: return buffer
        }
    }

    /// The bytes to write at `Layout.commandLineAddress`: UTF-8 text and a NUL; refused when the
    /// text is longer than `limit` bytes.
    public func encoded(limit: Int) throws(LoaderError) -> [UInt8] {
        guard byteCount <= limit else {
            throw .invalidCommandLine("kernel command line is \(byteCount) bytes; this kernel accepts at most \(limit)")
        }
        return Array(text.utf8) + [0]
    }

    static func checkNoNUL(_ text: String, what: String) throws(LoaderError) {
        if let index = text.utf8.firstIndex(of: 0) {
            let position = text.utf8.distance(from: text.utf8.startIndex, to: index)
            throw .invalidCommandLine("\(what) contains a NUL byte at position \(position)")
        }
    }

    static func isSpace(_ c: Character) -> Bool {
        c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0B}" || c == "\u{0C}"
    }

    static func split(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var inQuote = false
        for c in text {
            if c == "\"" { inQuote.toggle() }
            if isSpace(c) && !inQuote {
                if !current.isEmpty { result.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
