/// A 48-bit Ethernet address.
public struct MACAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parse failures, each with the reason in words.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Takes six bytes; refuses other lengths and group (multicast) addresses.
    public init(bytes: [UInt8]) throws(ParseError) {
        guard bytes.count == 6 else { throw ParseError(description: "a MAC address has 6 bytes, not \(bytes.count)") }
        guard bytes[0] & 1 == 0 else { throw ParseError(description: "a multicast address cannot be a device's MAC address") }
        self.bytes = bytes
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (two hex digits per byte, `:` or `-` between them).
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let fields = parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count == 6 else { throw ParseError(description: "'\(text)' is not six hex bytes separated by ':'") }
        var bytes: [UInt8] = []
        for f in fields {
            guard f.utf8.count == 2, let b = UInt8(f, radix: 16) else {
                throw ParseError(description: "'\(text)' is not six hex bytes separated by ':'")
            }
            bytes.append(b)
        }
        try self.init(bytes: bytes)
    }

    /// A random unicast, locally administered address (bit 1 of the first byte set, bit 0 clear).
    public static func random() -> MACAddress {
        var g = SystemRandomNumberGenerator()
        var b = (0..<6).map { _ in UInt8.random(in: 0...255, using: &g) }
        b[0] = (b[0] & 0xfc) | 0x02
        // Six bytes, unicast: cannot fail.
        return (try? MACAddress(bytes: b)) ?? MACAddress(unchecked: [0x02, 0, 0, 0, 0, 1])
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Whether bit 1 of the first byte (locally administered) is set.
    public var isLocallyAdministered: Bool { bytes[0] & 2 != 0 }

    public var description: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}
