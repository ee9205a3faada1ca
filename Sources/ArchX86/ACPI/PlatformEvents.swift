/// ACPI devices through which the VMM tells the guest about events: a VM Generation ID
/// (Microsoft's "Virtual Machine Generation ID" spec, Linux's vmgenid driver) that changes when
/// the VM is restored or forked, a power button, and the hardware-reduced Generic Event
/// Device (ACPI0013) whose interrupts raise `Notify` on them.
///
/// ```
/// Device (\_SB.VGEN) { _HID "SKFVGID0", _CID "VM_GEN_COUNTER", _DDN "VM_GEN_COUNTER",
///                      Name (ADDR, Package { low 32 bits, high 32 bits of the GUID's address }) }
/// Device (\_SB.PWRB) { _HID PNP0C0C, _UID 0 }
/// Device (\_SB.GED)  { _HID ACPI0013, _CRS { Interrupt (edge, high) { gsi… } },
///                      Method (_EVT, 1) { If (Arg0 == gsi) { Notify (device, 0x80) } … } }
/// ```
public enum PlatformEvents {
    /// One GED interrupt and the device it notifies.
    public struct Event: Sendable, Equatable {
        public var gsi: UInt32
        /// Absolute path of the device to notify, e.g. `\_SB.VGEN`.
        public var device: String
        public init(gsi: UInt32, device: String) {
            self.gsi = gsi
            self.device = device
        }
    }

    /// The VM Generation ID device; the 16-byte GUID lives at `address` (reserved RAM).
    public static func generationIDDevice(address: UInt64) throws(AMLError) -> [UInt8] {
        try AML.device("VGEN", [
            try AML.name("_HID", AML.string("SKFVGID0")),
            try AML.name("_CID", AML.string("VM_GEN_COUNTER")),
            try AML.name("_DDN", AML.string("VM_GEN_COUNTER")),
            try AML.name("ADDR", AML.package([AML.integer(address & 0xffff_ffff), AML.integer(address >> 32)])),
        ])
    }

    /// An ACPI power button (PNP0C0C): a `Notify (PWRB, 0x80)` asks the guest to shut down.
    public static func powerButtonDevice() throws(AMLError) -> [UInt8] {
        try AML.device("PWRB", [
            try AML.name("_HID", AML.eisaID("PNP0C0C")),
            try AML.name("_UID", AML.integer(0)),
        ])
    }

    /// The Generic Event Device: one edge-triggered, active-high interrupt per event, and an
    /// `_EVT` method that notifies the event's device with 0x80.
    public static func genericEventDevice(_ events: [Event]) throws(AMLError) -> [UInt8] {
        var handlers: [[UInt8]] = []
        for e in events {
            handlers.append(try AML.ifThen(AML.equal(AML.arg0, AML.integer(UInt64(e.gsi))), [try AML.notify(e.device, 0x80)]))
        }
        return try AML.device("GED_", [
            try AML.name("_HID", AML.string("ACPI0013")),
            try AML.name("_UID", AML.integer(0)),
            try AML.name("_CRS", AML.resourceTemplate([.interrupt(gsis: events.map(\.gsi), edgeTriggered: true, activeLow: false, shared: false)])),
            try AML.method("_EVT", argumentCount: 1, serialized: true, handlers),
        ])
    }
}
