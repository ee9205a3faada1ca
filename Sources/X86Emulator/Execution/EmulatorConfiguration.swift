/// Settings that describe the guest CPU the emulator stands in for.
public struct EmulatorConfiguration: Sendable, Equatable {
    /// Features the guest's CPUID promises; instructions of other features raise #UD.
    public var guestFeatures: CPUFeatures
    /// The guest's MAXPHYADDR (CPUID 8000_0008h EAX[7:0]), for reserved-bit checks in page tables.
    public var physicalAddressBits: Int
    /// MXCSR bits LDMXCSR accepts; others raise #GP(0). 0xFFFF when DAZ is supported.
    public var mxcsrMask: UInt32
    /// Whether allow-listed SSE forms may be re-executed on the host CPU.
    public var hostReexecution: Bool

    public init(guestFeatures: CPUFeatures = .all, physicalAddressBits: Int = 48, mxcsrMask: UInt32 = 0xFFFF, hostReexecution: Bool = true) {
        self.guestFeatures = guestFeatures
        self.physicalAddressBits = physicalAddressBits
        self.mxcsrMask = mxcsrMask
        self.hostReexecution = hostReexecution
    }
}
