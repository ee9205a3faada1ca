/// Bytes to copy into guest RAM at `address`, followed by `zeroFill` zero bytes.
///
/// `bytes` is a slice of the caller's image (no copy); `zeroFill` covers an ELF segment's
/// `p_memsz` beyond `p_filesz` or a multiboot kernel's bss.
public struct LoadSegment: Sendable, Equatable {
    /// Guest-physical address of the first byte.
    public var address: UInt64
    /// Bytes to copy.
    public var bytes: ArraySlice<UInt8>
    /// Zero bytes that follow `bytes`.
    public var zeroFill: UInt64

    public init(address: UInt64, bytes: ArraySlice<UInt8>, zeroFill: UInt64 = 0) {
        self.address = address
        self.bytes = bytes
        self.zeroFill = zeroFill
    }

    /// The guest range the segment occupies (bytes and zero fill), or nil when its end does not
    /// fit in 64 bits.
    public var range: AddressRange? {
        let (size, overflow) = UInt64(bytes.count).addingReportingOverflow(zeroFill)
        if overflow { return nil }
        return AddressRange(start: address, size: size)
    }
}
