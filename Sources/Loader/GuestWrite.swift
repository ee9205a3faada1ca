/// One copy into guest RAM: `bytes` at `address`, then `zeroFill` zero bytes.
public struct GuestWrite: Sendable, Equatable, CustomStringConvertible {
    /// What is written ("kernel segment 0", "initrd", "zero page", …), for logs and errors.
    public var label: String
    /// Guest-physical address of the first byte.
    public var address: UInt64
    /// Bytes to copy.
    public var bytes: ArraySlice<UInt8>
    /// Zero bytes after `bytes`.
    public var zeroFill: UInt64

    public init(label: String, address: UInt64, bytes: ArraySlice<UInt8>, zeroFill: UInt64 = 0) {
        self.label = label
        self.address = address
        self.bytes = bytes
        self.zeroFill = zeroFill
    }

    /// The range written (bytes and zero fill), or nil when its end does not fit in 64 bits.
    public var range: AddressRange? {
        let (size, overflow) = UInt64(bytes.count).addingReportingOverflow(zeroFill)
        if overflow { return nil }
        return AddressRange(start: address, size: size)
    }

    public var description: String {
        let shown = range?.description ?? "\(hex(address)) + overflow"
        return "\(label) \(shown)" + (zeroFill == 0 ? "" : " (\(hex(zeroFill)) zero bytes)")
    }
}
