/// The `_HID` of a device: a compressed EISA ID (`PNP0501`) or an ACPI ID string (`LNRO0005`).
public enum AMLHardwareID: Equatable, Sendable {
    case eisa(String)
    case string(String)

    /// The encoded `_HID` value.
    public func encoded() throws(AMLError) -> [UInt8] {
        switch self {
        case .eisa(let id): return try AML.eisaID(id)
        case .string(let id): return try AML.string(id)
        }
    }
}

extension AML {
    /// `_STA` value of a device that is present, enabled, shown in the UI and functioning.
    public static let deviceStatusPresent: UInt64 = 0x0F

    /// Encodes a device with `_HID`, `_UID`, `Method (_STA) { Return (0x0F) }` and a `_CRS`
    /// resource template, followed by `extraTerms`.
    ///
    /// This is the shape of every fixed platform device Skiff describes (serial port, keyboard
    /// controller, RTC, virtio-mmio transports).
    public static func device(
        _ path: String, hardwareID: AMLHardwareID, uniqueID: UInt64, resources: [AMLResource], extraTerms: [[UInt8]] = []
    ) throws(AMLError) -> [UInt8] {
        var terms: [[UInt8]] = [
            try name("_HID", hardwareID.encoded()),
            try name("_UID", integer(uniqueID)),
            try method("_STA", [returnValue(integer(deviceStatusPresent))]),
        ]
        if !resources.isEmpty {
            terms.append(try name("_CRS", resourceTemplate(resources)))
        }
        return try device(path, terms + extraTerms)
    }
}
