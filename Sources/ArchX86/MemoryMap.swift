/// One entry of the BIOS-style (e820) memory map that Skiff hands to guests.
public struct E820Entry: Equatable, Sendable, CustomStringConvertible {
    /// The e820 entry types Skiff uses.
    public enum Kind: UInt32, Sendable {
        case ram = 1
        case reserved = 2
        case acpiReclaimable = 3
        case acpiNVS = 4
    }

    public var address: UInt64
    public var size: UInt64
    public var kind: Kind

    public init(address: UInt64, size: UInt64, kind: Kind) {
        self.address = address
        self.size = size
        self.kind = kind
    }

    /// One past the last byte of the entry.
    public var end: UInt64 { address &+ size }

    /// The entry as Linux prints it: `[mem 0x0000000000000000-0x000000000009fbff] usable`.
    public var description: String {
        let last = end &- 1
        let name: String
        switch kind {
        case .ram: name = "usable"
        case .reserved: name = "reserved"
        case .acpiReclaimable: name = "ACPI data"
        case .acpiNVS: name = "ACPI NVS"
        }
        return "[mem 0x\(hex16(address))-0x\(hex16(last))] \(name)"
    }
}

private func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// The guest RAM ranges and the e820 map for a VM of a given size.
public struct MemoryMap: Sendable, Equatable {
    /// Guest RAM as contiguous ranges: below the 3 GiB hole and, for large VMs, from 4 GiB.
    public let ramRanges: [(address: UInt64, size: UInt64)]
    /// Total guest RAM in bytes.
    public let ramSize: UInt64

    public static func == (a: MemoryMap, b: MemoryMap) -> Bool {
        a.ramSize == b.ramSize && a.ramRanges.elementsEqual(b.ramRanges, by: { $0 == $1 })
    }

    /// Smallest RAM size Skiff accepts (the boot structures and a kernel need room).
    public static let minimumRAMSize: UInt64 = 16 << 20
    /// Largest RAM size Skiff accepts (the boot identity map and MMIO layout assume < 1 TiB).
    public static let maximumRAMSize: UInt64 = 512 << 30

    /// Errors from building a memory map.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case sizeOutOfRange(UInt64)
        case sizeNotPageAligned(UInt64)

        public var description: String {
            switch self {
            case .sizeOutOfRange(let s):
                return "memory size \(s) bytes is out of range (\(MemoryMap.minimumRAMSize >> 20) MiB to \(MemoryMap.maximumRAMSize >> 30) GiB)"
            case .sizeNotPageAligned(let s):
                return "memory size \(s) bytes is not a multiple of 4 KiB"
            }
        }
    }

    /// Lays out `ramSize` bytes of RAM around the 32-bit MMIO hole.
    public init(ramSize: UInt64) throws(Error) {
        guard ramSize >= Self.minimumRAMSize, ramSize <= Self.maximumRAMSize else { throw .sizeOutOfRange(ramSize) }
        guard ramSize % 4096 == 0 else { throw .sizeNotPageAligned(ramSize) }
        self.ramSize = ramSize
        if ramSize <= Layout.mmioHoleStart {
            ramRanges = [(0, ramSize)]
        } else {
            ramRanges = [(0, Layout.mmioHoleStart), (Layout.highRAMStart, ramSize - Layout.mmioHoleStart)]
        }
    }

    /// End of RAM below 4 GiB.
    public var lowRAMEnd: UInt64 { ramRanges[0].address + ramRanges[0].size }

    /// One past the highest guest RAM address.
    public var ramEnd: UInt64 {
        let last = ramRanges[ramRanges.count - 1]
        return last.address + last.size
    }

    /// The e820 map: conventional RAM below the EBDA, the EBDA and the whole legacy
    /// VGA/BIOS area (where the MP and ACPI tables live) reserved, RAM from 1 MiB, the PCI
    /// MMCONFIG window reserved, and RAM above 4 GiB. Linux reserves the ISA hole
    /// 0xA0000–0xFFFFF itself on some boot paths; reserving it here too means the map the
    /// kernel prints is exactly this one.
    public var e820: [E820Entry] {
        var entries: [E820Entry] = [
            E820Entry(address: 0, size: Layout.ebdaAddress, kind: .ram),
            E820Entry(address: Layout.ebdaAddress, size: Layout.highMemoryStart - Layout.ebdaAddress, kind: .reserved),
            E820Entry(address: Layout.highMemoryStart, size: lowRAMEnd - Layout.highMemoryStart, kind: .ram),
            E820Entry(address: Layout.pciMMCONFIGStart, size: Layout.pciMMCONFIGSize, kind: .reserved),
        ]
        if ramRanges.count > 1 {
            entries.append(E820Entry(address: ramRanges[1].address, size: ramRanges[1].size, kind: .ram))
        }
        return entries
    }
}
