import DeviceModel
import Synchronization

/// The PC reset control register at port 0xCF9 (PIIX/ICH "RCR"): Linux's `reboot=pci` writes
/// 0x02 and then 0x06 (soft) or 0x0E (hard reset). Writing a value with bit 2 (reset CPU) set
/// requests `.reset`, as QEMU's PIIX does; bits 1 (system reset) and 3 (full reset) are kept
/// and read back.
///
/// 0xCF9 lies inside the PCI configuration address register 0xCF8–0xCFB, so this device cannot
/// sit on the bus next to a PCI host bridge that claims all four bytes: the bridge should
/// forward one-byte accesses at 0xCF9 here (QEMU overlaps the two regions). Without PCI it can
/// be inserted alone with length 1.
public final class PCIResetControl: BusDevice {
    /// Length of the port range (0xCF9).
    public static let portRange: UInt64 = 1
    /// Bit 2: reset the CPU when written as 1.
    public static let resetCPU: UInt8 = 0x04
    /// Bits 1 (system reset) and 3 (full reset): what a write keeps.
    static let keptBits: UInt8 = 0x0a

    private let machine: any MachineControl
    // Internal rather than private for PCIResetControl+Persist.swift.
    let value = Mutex<UInt8>(0)

    /// - Parameter machine: receives `.reset`.
    public init(machine: any MachineControl) {
        self.machine = machine
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard offset == 0, unsafe !data.isEmpty else { return }
        unsafe data[0] = value.withLock { $0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == 0, let byte = unsafe data.first else { return }
        value.withLock { $0 = byte & Self.keptBits }
        if byte & Self.resetCPU != 0 { machine.request(.reset) }
    }
}
