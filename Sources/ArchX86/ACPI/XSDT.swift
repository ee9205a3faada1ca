/// The Extended and the Root System Description Tables (ACPI 6.5, 5.2.8 and 5.2.7).
public enum XSDT {
    /// The XSDT listing the 64-bit addresses of the other tables (not the DSDT, which the FADT points to).
    public static func build(tableAddresses: [UInt64]) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "XSDT", revision: 1)
        for address in tableAddresses { table.appendLittleEndian(address) }
        ACPITableHeader.finish(&table)
        return table
    }

    /// The RSDT: the same list with 32-bit addresses, for ACPI 1.0 readers.
    public static func buildRSDT(tableAddresses: [UInt32]) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "RSDT", revision: 1)
        for address in tableAddresses { table.appendLittleEndian(address) }
        ACPITableHeader.finish(&table)
        return table
    }
}
