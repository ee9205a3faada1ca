/// The CPU vendor named by CPUID leaf 0.
public enum CPUVendor: Sendable, Equatable {
    case intel
    /// AMD, and Hygon (which follows AMD's CPUID layout).
    case amd
    case other(String)

    /// The vendor of the leaf-0 entry in `entries` (`.other("")` if absent).
    public init(cpuid entries: [CPUIDEntry]) {
        guard let leaf0 = entries.first(where: { $0.function == 0 }) else {
            self = .other("")
            return
        }
        self.init(leaf0: leaf0)
    }

    init(leaf0: CPUIDEntry) {
        var bytes: [UInt8] = []
        for register in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
            bytes.appendLittleEndian(register)
        }
        let name = String(decoding: bytes, as: UTF8.self)
        switch name {
        case "GenuineIntel": self = .intel
        case "AuthenticAMD", "HygonGenuine": self = .amd
        default: self = .other(name)
        }
    }
}
