/// Memory attributes of an address-space resource descriptor (`_MEM`).
public enum AMLMemoryCacheability: UInt8, Sendable {
    case nonCacheable = 0
    case cacheable = 1
    case writeCombining = 2
    case prefetchable = 3
}

/// One resource descriptor of a `ResourceTemplate` (ACPI 6.5, 6.4).
///
/// Address-space descriptors (`word…`, `dword…`, `qword…`) are encoded as a bridge *producing*
/// the range, with fixed minimum and maximum, positive decode, granularity 0 and no translation,
/// which is what a host bridge's `_CRS` needs. `io`, `irqNoFlags`, `memory32Fixed` and
/// `interrupt` describe resources a device consumes.
public enum AMLResource: Equatable, Sendable {
    /// `IO (Decode16, minimum, maximum, alignment, length)`.
    case io(minimum: UInt16, maximum: UInt16, alignment: UInt8, length: UInt8)
    /// `IRQNoFlags () {irqs}`: ISA IRQs 0–15, edge-triggered, active-high, exclusive.
    case irqNoFlags([UInt8])
    /// `Memory32Fixed (ReadWrite/ReadOnly, base, length)`.
    case memory32Fixed(base: UInt32, length: UInt32, writable: Bool)
    /// `WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, minimum, maximum, 0, length)`.
    case wordBusNumber(minimum: UInt16, maximum: UInt16)
    /// `WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, minimum, maximum, 0, length)`.
    case wordIO(minimum: UInt16, maximum: UInt16)
    /// `DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, cacheability, RW, 0, base, base+length-1, 0, length)`.
    case dwordMemory(base: UInt32, length: UInt32, cacheability: AMLMemoryCacheability, writable: Bool)
    /// `QWordMemory (...)`, the 64-bit form of `dwordMemory`.
    case qwordMemory(base: UInt64, length: UInt64, cacheability: AMLMemoryCacheability, writable: Bool)
    /// `Interrupt (ResourceConsumer, Edge/Level, ActiveHigh/ActiveLow, Exclusive/Shared) {gsis}`.
    case interrupt(gsis: [UInt32], edgeTriggered: Bool, activeLow: Bool, shared: Bool)

    // Small and large resource tags (ACPI 6.5, 6.4.2 and 6.4.3).
    static let irqTagNoFlags: UInt8 = 0x22  // small item 0x04, length 2
    static let ioTag: UInt8 = 0x47  // small item 0x08, length 7
    static let endTag: UInt8 = 0x79  // small item 0x0F, length 1
    static let memory32FixedTag: UInt8 = 0x86
    static let dwordAddressTag: UInt8 = 0x87
    static let wordAddressTag: UInt8 = 0x88
    static let extendedInterruptTag: UInt8 = 0x89
    static let qwordAddressTag: UInt8 = 0x8A

    // Address space resource types and flags.
    static let memoryRange: UInt8 = 0
    static let ioRange: UInt8 = 1
    static let busNumberRange: UInt8 = 2
    static let minAndMaxFixed: UInt8 = 0x0C  // _MAF | _MIF, producer, positive decode
    static let entireRange: UInt8 = 0x03  // _RNG for I/O ranges

    /// The descriptor's bytes.
    public func encoded() throws(AMLError) -> [UInt8] {
        switch self {
        case .io(let minimum, let maximum, let alignment, let length):
            guard minimum <= maximum else { throw .invalidResource("IO minimum 0x\(hex(minimum)) above maximum 0x\(hex(maximum))") }
            var bytes: [UInt8] = [Self.ioTag, 0x01]  // Decode16
            bytes.appendLittleEndian(minimum)
            bytes.appendLittleEndian(maximum)
            bytes += [alignment, length]
            return bytes

        case .irqNoFlags(let irqs):
            guard !irqs.isEmpty, irqs.allSatisfy({ $0 < 16 }) else { throw .invalidResource("IRQNoFlags needs ISA IRQs 0–15, got \(irqs)") }
            var mask: UInt16 = 0
            for irq in irqs { mask |= 1 << UInt16(irq) }
            var bytes: [UInt8] = [Self.irqTagNoFlags]
            bytes.appendLittleEndian(mask)
            return bytes

        case .memory32Fixed(let base, let length, let writable):
            guard length > 0, base.addingReportingOverflow(length - 1).overflow == false else {
                throw .invalidResource("Memory32Fixed 0x\(hex(base)) + 0x\(hex(length)) is empty or wraps")
            }
            var bytes: [UInt8] = [Self.memory32FixedTag]
            bytes.appendLittleEndian(UInt16(9))
            bytes.append(writable ? 1 : 0)
            bytes.appendLittleEndian(base)
            bytes.appendLittleEndian(length)
            return bytes

        case .wordBusNumber(let minimum, let maximum):
            return try Self.wordAddress(type: Self.busNumberRange, typeFlags: 0, minimum: minimum, maximum: maximum)

        case .wordIO(let minimum, let maximum):
            return try Self.wordAddress(type: Self.ioRange, typeFlags: Self.entireRange, minimum: minimum, maximum: maximum)

        case .dwordMemory(let base, let length, let cacheability, let writable):
            let (last, overflow) = base.addingReportingOverflow(length &- 1)
            guard length > 0, !overflow else { throw .invalidResource("DWordMemory 0x\(hex(base)) + 0x\(hex(length)) is empty or wraps") }
            var bytes: [UInt8] = [Self.dwordAddressTag]
            bytes.appendLittleEndian(UInt16(23))
            bytes += [Self.memoryRange, Self.minAndMaxFixed, Self.memoryFlags(cacheability, writable)]
            for field in [0, base, last, 0, length] { bytes.appendLittleEndian(field) }
            return bytes

        case .qwordMemory(let base, let length, let cacheability, let writable):
            let (last, overflow) = base.addingReportingOverflow(length &- 1)
            guard length > 0, !overflow else { throw .invalidResource("QWordMemory 0x\(hex(base)) + 0x\(hex(length)) is empty or wraps") }
            var bytes: [UInt8] = [Self.qwordAddressTag]
            bytes.appendLittleEndian(UInt16(43))
            bytes += [Self.memoryRange, Self.minAndMaxFixed, Self.memoryFlags(cacheability, writable)]
            for field in [0, base, last, 0, length] { bytes.appendLittleEndian(field) }
            return bytes

        case .interrupt(let gsis, let edgeTriggered, let activeLow, let shared):
            guard (1...255).contains(gsis.count) else { throw .invalidResource("Interrupt needs 1–255 GSIs, got \(gsis.count)") }
            var bytes: [UInt8] = [Self.extendedInterruptTag]
            bytes.appendLittleEndian(UInt16(2 + 4 * gsis.count))
            let flags: UInt8 = 0x01 | (edgeTriggered ? 0x02 : 0) | (activeLow ? 0x04 : 0) | (shared ? 0x08 : 0)
            bytes += [flags, UInt8(gsis.count)]
            for gsi in gsis { bytes.appendLittleEndian(gsi) }
            return bytes
        }
    }

    private static func memoryFlags(_ cacheability: AMLMemoryCacheability, _ writable: Bool) -> UInt8 {
        (cacheability.rawValue << 1) | (writable ? 1 : 0)
    }

    private static func wordAddress(type: UInt8, typeFlags: UInt8, minimum: UInt16, maximum: UInt16) throws(AMLError) -> [UInt8] {
        guard minimum <= maximum else { throw .invalidResource("word range 0x\(hex(minimum))–0x\(hex(maximum)) is reversed") }
        let length = UInt32(maximum) - UInt32(minimum) + 1
        guard length <= UInt32(UInt16.max) else { throw .invalidResource("word range 0x\(hex(minimum))–0x\(hex(maximum)) is longer than 0xFFFF") }
        var bytes: [UInt8] = [wordAddressTag]
        bytes.appendLittleEndian(UInt16(13))
        bytes += [type, minAndMaxFixed, typeFlags]
        for field in [0, minimum, maximum, 0, UInt16(length)] { bytes.appendLittleEndian(field) }
        return bytes
    }
}

extension AML {
    /// Encodes `ResourceTemplate () { resources }`: a buffer holding the descriptors and an end tag.
    ///
    /// By default the end tag's checksum byte is 0, which ACPI 6.5 (6.4.2.9) defines as "treat the
    /// checksum as valid"; `iasl` and ACPICA's resource manager both emit 0, and ACPICA's
    /// `acpiexec` reports any other value as a conversion mismatch. With `computeChecksum` the byte
    /// instead makes all descriptor bytes, end tag included, sum to zero.
    public static func resourceTemplate(_ resources: [AMLResource], computeChecksum: Bool = false) throws(AMLError) -> [UInt8] {
        var data: [UInt8] = []
        for resource in resources { data += try resource.encoded() }
        data.append(AMLResource.endTag)
        data.append(computeChecksum ? ByteChecksum.complement(data) : 0)
        return try buffer(data)
    }
}

func hex<T: BinaryInteger>(_ value: T) -> String {
    String(value, radix: 16, uppercase: true)
}
