/// A small encoder for the ACPI Machine Language (ACPI 6.5, chapter 20) needed to describe
/// a virtual machine's devices in a DSDT.
///
/// Every function returns the encoded bytes of one AML term or data object; terms compose by
/// concatenation. Only the subset Skiff needs is implemented: names, scopes, devices, methods
/// returning a value, packages, buffers, integers, strings, EISA IDs and resource templates.
public enum AML {
    // Opcodes (ACPI 6.5, 20.3).
    static let zeroOp: UInt8 = 0x00
    static let oneOp: UInt8 = 0x01
    static let nameOp: UInt8 = 0x08
    static let bytePrefix: UInt8 = 0x0A
    static let wordPrefix: UInt8 = 0x0B
    static let dwordPrefix: UInt8 = 0x0C
    static let stringPrefix: UInt8 = 0x0D
    static let qwordPrefix: UInt8 = 0x0E
    static let scopeOp: UInt8 = 0x10
    static let bufferOp: UInt8 = 0x11
    static let packageOp: UInt8 = 0x12
    static let varPackageOp: UInt8 = 0x13
    static let methodOp: UInt8 = 0x14
    static let dualNamePrefix: UInt8 = 0x2E
    static let multiNamePrefix: UInt8 = 0x2F
    static let extOpPrefix: UInt8 = 0x5B
    static let deviceOp: UInt8 = 0x82  // after ExtOpPrefix
    static let rootChar: UInt8 = 0x5C  // '\'
    static let parentPrefixChar: UInt8 = 0x5E  // '^'
    static let returnOp: UInt8 = 0xA4

    /// Largest value a PkgLength can encode (28 bits).
    public static let maximumPackageLength = (1 << 28) - 1

    // MARK: - PkgLength

    /// Encodes the PkgLength of an object whose body (everything after the PkgLength) is
    /// `bodyLength` bytes long. The encoded length counts the PkgLength bytes themselves.
    ///
    /// One byte holds lengths up to 63; longer lengths use 2–4 bytes, the lead byte carrying the
    /// count of following bytes in bits 7–6 and the low nibble of the length in bits 3–0.
    public static func packageLength(bodyLength: Int) throws(AMLError) -> [UInt8] {
        guard bodyLength >= 0, bodyLength <= maximumPackageLength else { throw .objectTooLarge(bodyLength) }
        if bodyLength + 1 <= 0x3F {
            return [UInt8(bodyLength + 1)]
        }
        for size in 2...4 {
            let total = bodyLength + size
            let limit = 1 << (4 + 8 * (size - 1))  // 12, 20 or 28 bits
            if total < limit {
                var bytes: [UInt8] = [UInt8((size - 1) << 6) | UInt8(total & 0x0F)]
                for i in 1..<size {
                    bytes.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * (i - 1))))
                }
                return bytes
            }
        }
        throw .objectTooLarge(bodyLength)
    }

    /// `body` prefixed with its PkgLength.
    static func withPackageLength(_ body: [UInt8]) throws(AMLError) -> [UInt8] {
        try packageLength(bodyLength: body.count) + body
    }

    // MARK: - Names

    /// Encodes one NameSeg: up to four characters, padded with `_`.
    public static func nameSegment(_ segment: String) throws(AMLError) -> [UInt8] {
        let bytes = Array(segment.utf8)
        guard (1...4).contains(bytes.count) else { throw .invalidNameSegment(segment) }
        for (i, c) in bytes.enumerated() {
            let isLead = (c >= 0x41 && c <= 0x5A) || c == 0x5F  // A-Z, _
            let isDigit = c >= 0x30 && c <= 0x39
            guard isLead || (i > 0 && isDigit) else { throw .invalidNameSegment(segment) }
        }
        return bytes + Array(repeating: 0x5F, count: 4 - bytes.count)
    }

    /// Encodes a NameString such as `_HID`, `\_SB.PCI0` or `^^COM1`.
    ///
    /// A leading `\` roots the path; each leading `^` steps to the parent scope; segments are
    /// separated by `.`. `\` alone names the root.
    public static func nameString(_ path: String) throws(AMLError) -> [UInt8] {
        var rest = Substring(path)
        var prefix: [UInt8] = []
        if rest.first == "\\" {
            prefix.append(rootChar)
            rest = rest.dropFirst()
        } else {
            while rest.first == "^" {
                prefix.append(parentPrefixChar)
                rest = rest.dropFirst()
            }
        }
        if rest.isEmpty {
            guard !prefix.isEmpty else { throw .invalidNamePath(path) }
            return prefix + [0x00]  // NullName
        }
        let segments = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count <= 255 else { throw .invalidNamePath(path) }
        var encoded: [UInt8] = []
        for segment in segments {
            encoded += try nameSegment(String(segment))
        }
        switch segments.count {
        case 1: return prefix + encoded
        case 2: return prefix + [dualNamePrefix] + encoded
        default: return prefix + [multiNamePrefix, UInt8(segments.count)] + encoded
        }
    }

    // MARK: - Data objects

    /// Encodes an integer in the shortest form: `Zero`, `One`, or a byte, word, dword or qword constant.
    public static func integer(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0: return [zeroOp]
        case 1: return [oneOp]
        case 2...0xFF: return [bytePrefix, UInt8(value)]
        case 0x100...0xFFFF:
            var bytes = [wordPrefix]
            bytes.appendLittleEndian(UInt16(value))
            return bytes
        case 0x1_0000...0xFFFF_FFFF:
            var bytes = [dwordPrefix]
            bytes.appendLittleEndian(UInt32(value))
            return bytes
        default:
            var bytes = [qwordPrefix]
            bytes.appendLittleEndian(value)
            return bytes
        }
    }

    /// Encodes a string constant (ASCII, NUL-terminated).
    public static func string(_ text: String) throws(AMLError) -> [UInt8] {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 >= 0x01 && $0 <= 0x7F }) else { throw .invalidString(text) }
        return [stringPrefix] + bytes + [0x00]
    }

    /// The 32-bit compressed form of an EISA ID such as `PNP0A03`, as ASL's `EISAID()` produces it.
    ///
    /// Three letters are packed five bits each (`A` = 1) above the 16-bit product number, and the
    /// resulting big-endian value is stored byte-swapped: `PNP0A03` is `0x030AD041`.
    public static func eisaIDValue(_ id: String) throws(AMLError) -> UInt32 {
        let bytes = Array(id.utf8)
        guard bytes.count == 7 else { throw .invalidEISAID(id) }
        var value: UInt32 = 0
        for c in bytes[0..<3] {
            guard c >= 0x41 && c <= 0x5A else { throw .invalidEISAID(id) }
            value = (value << 5) | UInt32(c - 0x40)
        }
        for c in bytes[3..<7] {
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x41...0x46: digit = c - 0x41 + 10
            default: throw .invalidEISAID(id)
            }
            value = (value << 4) | UInt32(digit)
        }
        return value.byteSwapped
    }

    /// Encodes an EISA ID as an integer object (always a DWord constant).
    public static func eisaID(_ id: String) throws(AMLError) -> [UInt8] {
        var bytes = [dwordPrefix]
        bytes.appendLittleEndian(try eisaIDValue(id))
        return bytes
    }

    /// Encodes `Buffer () { bytes }`.
    public static func buffer(_ bytes: [UInt8]) throws(AMLError) -> [UInt8] {
        [bufferOp] + (try withPackageLength(integer(UInt64(bytes.count)) + bytes))
    }

    /// Encodes `Package () { elements }`; more than 255 elements use a VarPackage.
    public static func package(_ elements: [[UInt8]]) throws(AMLError) -> [UInt8] {
        let body = elements.flatMap { $0 }
        if elements.count <= 255 {
            return [packageOp] + (try withPackageLength([UInt8(elements.count)] + body))
        }
        return [varPackageOp] + (try withPackageLength(integer(UInt64(elements.count)) + body))
    }

    // MARK: - Named objects and terms

    /// Encodes `Name (path, object)`.
    public static func name(_ path: String, _ object: [UInt8]) throws(AMLError) -> [UInt8] {
        [nameOp] + (try nameString(path)) + object
    }

    /// Encodes `Scope (path) { terms }`.
    public static func scope(_ path: String, _ terms: [[UInt8]]) throws(AMLError) -> [UInt8] {
        [scopeOp] + (try withPackageLength(nameString(path) + terms.flatMap { $0 }))
    }

    /// Encodes `Device (path) { terms }`.
    public static func device(_ path: String, _ terms: [[UInt8]]) throws(AMLError) -> [UInt8] {
        [extOpPrefix, deviceOp] + (try withPackageLength(nameString(path) + terms.flatMap { $0 }))
    }

    /// Encodes `Method (path, argumentCount, Serialized/NotSerialized, syncLevel) { terms }`.
    public static func method(
        _ path: String, argumentCount: Int = 0, serialized: Bool = false, syncLevel: Int = 0, _ terms: [[UInt8]]
    ) throws(AMLError) -> [UInt8] {
        guard (0...7).contains(argumentCount), (0...15).contains(syncLevel) else {
            throw .invalidMethodFlags(argumentCount: argumentCount, syncLevel: syncLevel)
        }
        let flags = UInt8(argumentCount) | (serialized ? 0x08 : 0) | UInt8(syncLevel << 4)
        return [methodOp] + (try withPackageLength(nameString(path) + [flags] + terms.flatMap { $0 }))
    }

    /// Encodes `Return (value)`.
    public static func returnValue(_ value: [UInt8]) -> [UInt8] {
        [returnOp] + value
    }
}
