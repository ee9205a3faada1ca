import DeviceModel

/// QEMU's isa-debug-exit device (port 0xF4 by default): a guest write ends the VM with a status
/// the test harness can check.
///
/// A 1-, 2- or 4-byte write of `v` at offset 0 (little-endian) requests
/// `.debugExit(status: DebugExit.status(forValue: v))`, where the status is `(v << 1) | 1`
/// computed in 32 bits with wrap-around (QEMU calls `exit((val << 1) | 1)`). As a process exit
/// status only the low 8 bits survive (`status & 0xFF`): v = 0 → 1, 1 → 3, 0x10 → 33,
/// 0xFF → 511 (exit code 255), 0xFFFF_FFFF → −1 (exit code 255). Writes of other sizes or at
/// other offsets are ignored; reads return all ones.
///
/// Insert it with length 1 (QEMU iosize=1) or 4 (iosize=4). It holds no state, so it has no
/// saved state for snapshots.
public final class DebugExit: BusDevice {
    /// Length of the port range as QEMU's default iosize (1); 4 works as well.
    public static let portRange: UInt64 = 1

    private let machine: any MachineControl

    /// - Parameter machine: receives `.debugExit(status:)`.
    public init(machine: any MachineControl) {
        self.machine = machine
    }

    /// The status for a written value: `(value << 1) | 1`, wrapping in 32 bits.
    public static func status(forValue value: UInt32) -> Int32 {
        Int32(bitPattern: (value &<< 1) | 1)
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { unsafe data[i] = 0xff }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == 0, [1, 2, 4].contains(data.count) else { return }
        let value = unsafe UInt32(truncatingIfNeeded: ByteLanes.littleEndianValue(data))
        machine.request(.debugExit(status: Self.status(forValue: value)))
    }
}
