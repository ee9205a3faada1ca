import Storage
/// The list of chunks that make up one image in the store, as a small line-oriented text file:
///
///     skiff-manifest 1
///     name debian-12
///     size 2147483648
///     chunk <64 hex digits of SHA-256> <length>
///     zero <length>
///     end
///
/// The closing `end` line tells a complete manifest from a torn one.
public struct Manifest: Sendable, Equatable {
    public enum Entry: Sendable, Equatable {
        case chunk(hash: String, length: UInt64)
        case zero(length: UInt64)

        public var length: UInt64 {
            switch self {
            case .chunk(_, let length), .zero(let length): return length
            }
        }
    }

    public var name: String
    public var size: UInt64
    public var entries: [Entry]

    /// Image names: 1...128 of letters, digits, '.', '_' and '-', not starting with '.'.
    public static func validateName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2e || b == 0x5f || b == 0x2d
        }
        guard !name.isEmpty, name.utf8.count <= 128, allowed, !name.hasPrefix(".") else {
            throw StorageError.invalidArgument("image name '\(name)' must be 1-128 letters, digits, '.', '_' or '-'")
        }
    }

    static func isHash(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    public func serialize() -> String {
        var text = "skiff-manifest 1\nname \(name)\nsize \(size)\n"
        text.reserveCapacity(entries.count * 80 + 64)
        for entry in entries {
            switch entry {
            case .chunk(let hash, let length): text += "chunk \(hash) \(length)\n"
            case .zero(let length): text += "zero \(length)\n"
            }
        }
        return text + "end\n"
    }

    public static func parse(_ text: String, path: String) throws -> Manifest {
        func bad(_ reason: String) -> StorageError { .store("\(path): bad manifest: \(reason)") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == "skiff-manifest 1" else { throw bad("unknown header") }
        guard lines.count >= 5, lines[lines.count - 2] == "end", lines[lines.count - 1] == "" else {
            throw bad("truncated (no end line)")
        }
        guard lines[1].hasPrefix("name "), lines[2].hasPrefix("size "), let size = UInt64(lines[2].dropFirst(5)) else {
            throw bad("missing name or size")
        }
        guard size <= UInt64(1) << 62 else { throw bad("size \(size) is absurd") }
        let name = String(lines[1].dropFirst(5))
        try validateName(name)
        var entries: [Entry] = []
        var total: UInt64 = 0
        for line in lines[3..<(lines.count - 2)] {
            let fields = line.split(separator: " ")
            if fields.count == 3, fields[0] == "chunk", isHash(fields[1]), let length = UInt64(fields[2]), length > 0,
                length <= 64 << 20 {
                entries.append(.chunk(hash: String(fields[1]), length: length))
            } else if fields.count == 2, fields[0] == "zero", let length = UInt64(fields[1]), length > 0 {
                entries.append(.zero(length: length))
            } else {
                throw bad("unreadable line '\(line.prefix(80))'")
            }
            guard let sum = Checked.add(total, entries[entries.count - 1].length) else { throw bad("lengths overflow") }
            total = sum
        }
        guard total == size else { throw bad("chunk lengths add up to \(total), not \(size)") }
        return Manifest(name: name, size: size, entries: entries)
    }
}
