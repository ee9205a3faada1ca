import DeviceModel
import Synchronization

/// A PCI function on Skiff's root bus.
///
/// Calls come from vCPU threads; implementations lock their state. Offsets, sizes and
/// values are the guest's and must be checked.
public protocol PCIDevice: AnyObject, Sendable {
    /// Reads configuration space (`size` is 1, 2 or 4; `offset` below 4096).
    func configRead(offset: Int, size: Int) -> UInt32
    /// Writes configuration space.
    func configWrite(offset: Int, size: Int, value: UInt32)
    /// The BARs as currently programmed, and whether memory decoding is on.
    var barMappings: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool) { get }
    /// A guest access inside BAR `index`.
    func barRead(index: Int, offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    func barWrite(index: Int, offset: UInt64, from data: UnsafeRawBufferPointer)
    /// Told when BAR `index` is mapped at a new guest address (or unmapped: nil), e.g. to move ioeventfds.
    func barMapped(index: Int, at address: UInt64?)
}

extension PCIDevice {
    public func barMapped(index: Int, at address: UInt64?) {}
}

/// The host bridge at 00:00.0.
public final class PCIHostBridge: PCIDevice, Sendable {
    // Internal rather than private for PCIRoot+Persist.swift.
    let config: Mutex<PCIConfiguration>

    public init() {
        // Red Hat, QEMU PCIe host bridge; class 06:00:00 (host bridge).
        config = Mutex(PCIConfiguration(vendor: 0x1b36, device: 0x0008, classCode: 0x06_00_00))
    }

    public func configRead(offset: Int, size: Int) -> UInt32 { config.withLock { $0.read(offset: offset, size: size) } }
    public func configWrite(offset: Int, size: Int, value: UInt32) {}
    public var barMappings: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool) { ([], false, false) }
    public func barRead(index: Int, offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
    public func barWrite(index: Int, offset: UInt64, from data: UnsafeRawBufferPointer) {}
}
