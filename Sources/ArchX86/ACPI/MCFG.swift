/// The PCI Express memory-mapped configuration table (PCI Firmware Specification 3.3, 4.1.2).
public enum MCFG {
    public static let revision: UInt8 = 1

    /// One ECAM allocation for `segment`, buses `buses`, at `base`.
    public static func build(base: UInt64, segment: UInt16 = 0, buses: ClosedRange<UInt8> = 0...255) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "MCFG", revision: revision)
        table.appendLittleEndian(UInt64(0))  // reserved
        table.appendLittleEndian(base)
        table.appendLittleEndian(segment)
        table += [buses.lowerBound, buses.upperBound]
        table.appendLittleEndian(UInt32(0))  // reserved
        ACPITableHeader.finish(&table)
        return table
    }
}
