/// The Root System Description Pointer, revision 2 (ACPI 6.5, 5.2.5.3).
public enum RSDP {
    /// Size of a revision-2 RSDP.
    public static let size = 36
    /// The RSDP must sit on a 16-byte boundary for the BIOS-area scan to find it.
    public static let alignment: UInt64 = 16

    /// The RSDP pointing at the RSDT (32-bit, may be 0) and the XSDT.
    ///
    /// The first checksum covers bytes 0–19 (the ACPI 1.0 part), the extended checksum all 36.
    public static func build(rsdtAddress: UInt32, xsdtAddress: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendFixedASCII("RSD PTR ", width: 8)
        bytes.append(0)  // checksum
        bytes.appendFixedASCII(ACPIIdentity.oemID, width: 6)
        bytes.append(2)  // revision
        bytes.appendLittleEndian(rsdtAddress)
        bytes.appendLittleEndian(UInt32(size))
        bytes.appendLittleEndian(xsdtAddress)
        bytes.append(0)  // extended checksum
        bytes += [0, 0, 0]
        bytes[8] = ByteChecksum.complement(bytes[0..<20])
        bytes[32] = ByteChecksum.complement(bytes)
        return bytes
    }
}
