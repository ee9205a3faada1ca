/// A device that claims a range of port-I/O or MMIO addresses.
///
/// Calls arrive on vCPU threads, possibly several at once, so a device guards its state
/// with a lock. `offset` is relative to the base the device was inserted at and the whole
/// access (`offset ..< offset + data.count`) lies inside the device's range; accesses are
/// 1, 2, 4 or 8 bytes for port I/O and up to 8 bytes for MMIO. Every value comes from the
/// guest: a device checks it and never traps on it.
public protocol BusDevice: AnyObject, Sendable {
    /// Fills `data` with the value read at `offset`. Bytes the device does not set read as
    /// whatever the bus put there (all ones).
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    /// Handles a guest write of `data` at `offset`.
    func write(offset: UInt64, from data: UnsafeRawBufferPointer)
}

/// An interrupt line from a device to the interrupt controller (an IOAPIC/PIC pin).
public protocol InterruptLine: Sendable {
    /// Drives the line high (`true`) or low (`false`). Edge-triggered ISA inputs see a
    /// rising edge when the level goes from low to high.
    func setLevel(_ high: Bool)
}

extension InterruptLine {
    /// Raises and lowers the line: one edge for an edge-triggered input.
    public func pulse() {
        setLevel(true)
        setLevel(false)
    }
}

/// What a device can ask of the machine it sits in.
public enum MachineEvent: Equatable, Sendable {
    /// The guest turned itself off (ACPI S5).
    case powerOff
    /// The guest asked for a reset (i8042 0xFE, ACPI reset register, triple fault).
    case reset
    /// The guest wrote to the debug-exit port: the VMM exits with this status.
    case debugExit(status: Int32)
}

/// Receives machine-level requests from devices.
public protocol MachineControl: AnyObject, Sendable {
    func request(_ event: MachineEvent)
}

/// Where a console device writes the guest's output.
public protocol ConsoleOutput: AnyObject, Sendable {
    func write(_ bytes: UnsafeRawBufferPointer)
}
