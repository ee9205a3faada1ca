/// The identity Skiff writes into every ACPI table header.
public enum ACPIIdentity {
    /// OEMID (6 bytes).
    public static let oemID = "SKIFF "
    /// Prefix of every OEM Table ID; the table signature completes it (`SKIFDSDT`).
    public static let oemTableIDPrefix = "SKIF"
    /// OEM Revision.
    public static let oemRevision: UInt32 = 1
    /// Creator ID (ASL compiler vendor).
    public static let creatorID = "SKIF"
    /// Creator Revision.
    public static let creatorRevision: UInt32 = 1
}

/// The 36-byte System Description Table header (ACPI 6.5, 5.2.6) and checksum handling.
enum ACPITableHeader {
    static let size = 36
    static let lengthOffset = 4
    static let checksumOffset = 9

    /// A header with length and checksum left zero; `finish` fills them once the body is appended.
    static func make(signature: String, revision: UInt8) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendFixedASCII(signature, width: 4)
        bytes.appendLittleEndian(UInt32(0))  // length
        bytes.append(revision)
        bytes.append(0)  // checksum
        bytes.appendFixedASCII(ACPIIdentity.oemID, width: 6)
        bytes.appendFixedASCII(ACPIIdentity.oemTableIDPrefix + signature, width: 8)
        bytes.appendLittleEndian(ACPIIdentity.oemRevision)
        bytes.appendFixedASCII(ACPIIdentity.creatorID, width: 4)
        bytes.appendLittleEndian(ACPIIdentity.creatorRevision)
        return bytes
    }

    /// Stores the table length and the checksum that makes the whole table sum to zero.
    static func finish(_ table: inout [UInt8]) {
        table.storeLittleEndian(UInt32(truncatingIfNeeded: table.count), at: lengthOffset)
        table[checksumOffset] = 0
        table[checksumOffset] = ByteChecksum.complement(table)
    }
}

/// An ACPI Generic Address Structure (ACPI 6.5, 5.2.3.2), 12 bytes.
public struct GenericAddress: Equatable, Sendable {
    /// Address space of the register.
    public enum Space: UInt8, Sendable {
        case systemMemory = 0
        case systemIO = 1
    }

    /// Access size of the register.
    public enum AccessSize: UInt8, Sendable {
        case undefined = 0
        case byte = 1
        case word = 2
        case dword = 3
        case qword = 4
    }

    public var space: Space
    public var bitWidth: UInt8
    public var bitOffset: UInt8
    public var accessSize: AccessSize
    public var address: UInt64

    public init(space: Space, bitWidth: UInt8, bitOffset: UInt8 = 0, accessSize: AccessSize, address: UInt64) {
        self.space = space
        self.bitWidth = bitWidth
        self.bitOffset = bitOffset
        self.accessSize = accessSize
        self.address = address
    }

    /// An 8-bit register in system I/O space.
    public static func ioPort8(_ port: UInt16) -> GenericAddress {
        GenericAddress(space: .systemIO, bitWidth: 8, accessSize: .byte, address: UInt64(port))
    }

    /// The all-zero structure meaning "not present".
    public static let notPresent = GenericAddress(space: .systemMemory, bitWidth: 0, accessSize: .undefined, address: 0)

    /// The 12 bytes of the structure.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = [space.rawValue, bitWidth, bitOffset, accessSize.rawValue]
        bytes.appendLittleEndian(address)
        return bytes
    }
}
