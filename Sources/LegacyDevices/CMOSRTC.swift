import DeviceModel
import Synchronization

/// The PC CMOS RAM and MC146818 real-time clock: index port 0x70, data port 0x71.
///
/// Insert it at 0x70 with length `CMOSRTC.portRange` (2): offset 0 is the index port (bit 7 of
/// the value is the PC's NMI-disable bit, recorded only; reads return 0xFF), offset 1 the data
/// port for the 128 bytes of CMOS.
///
/// Clock: registers 0x00–0x09 and the century byte 0x32 are computed at read time from the
/// host's wall clock in UTC plus an offset the guest sets by writing the clock (with reg B SET,
/// or directly). Format follows reg B as the guest sets it: BCD or binary (DM), 24- or 12-hour
/// (bit 7 of the hour = PM); power-on is 24-hour BCD, as a PC BIOS leaves it. Daylight saving
/// (DSE) is ignored. Reg A's UIP bit is set during the last 244 µs of every second, like the
/// real part: Linux (`mc146818_get_time`) reads UIP before and after reading the clock and
/// retries, and guests that wait for the UIP edge to find the start of a second still work;
/// outside that window reads are stable. Reg C reports UF and PF (computed from the time since
/// its last read) and is cleared by reading; AF is not emulated. Reg D reads 0x80 (VRT).
///
/// No interrupts are generated on IRQ 8 (periodic, alarm and update interrupts are not
/// emulated); guests that poll the registers work, guests that wait for IRQ 8 do not.
///
/// Memory size bytes are filled from the RAM size as QEMU's pc machine does.
public final class CMOSRTC: BusDevice {
    /// Length of the port range (0x70–0x71).
    public static let portRange: UInt64 = 2
    /// Offset of the index port (0x70).
    public static let indexOffset: UInt64 = 0
    /// Offset of the data port (0x71).
    public static let dataOffset: UInt64 = 1
    /// CMOS offset of the century byte (for the FADT's CENTURY field).
    public static let centuryRegister: UInt8 = 0x32

    private let now: @Sendable () -> UnixTime
    // Internal rather than private for CMOSRTC+Persist.swift.
    let state: Mutex<CMOSState>

    /// Creates the CMOS with its memory-size bytes filled in.
    ///
    /// - Parameters:
    ///   - memorySize: guest RAM in bytes.
    ///   - lowMemoryEnd: where RAM below 4 GiB stops (the start of the 32-bit MMIO hole; the rest
    ///     of `memorySize` is counted above 4 GiB). Skiff's layout uses 0xC000_0000.
    ///   - cpuCount: number of vCPUs (CMOS 0x5F holds `cpuCount - 1`, as QEMU sets it).
    ///   - now: the host wall clock; tests pass a fake one.
    public init(
        memorySize: UInt64,
        lowMemoryEnd: UInt64 = 0xc000_0000,
        cpuCount: Int = 1,
        now: @escaping @Sendable () -> UnixTime = UnixTime.systemNow
    ) {
        self.now = now
        var cmos = CMOSState(now: now())
        let below = min(memorySize, lowMemoryEnd)
        cmos.fillMemorySize(belowFourGiB: below, aboveFourGiB: memorySize - below, cpuCount: cpuCount)
        self.state = Mutex(cmos)
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        let host = now()
        state.withLock { state in
            unsafe ByteLanes.read(offset: offset, into: data) { port in
                switch port {
                case Self.indexOffset: return 0xff  // the index register is write-only
                case Self.dataOffset: return state.readData(host: host)
                default: return nil
                }
            }
        }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        let host = now()
        state.withLock { state in
            unsafe ByteLanes.write(offset: offset, from: data) { port, value in
                switch port {
                case Self.indexOffset: state.writeIndex(value)
                case Self.dataOffset: state.writeData(value, host: host)
                default: break
                }
            }
        }
    }

    /// The guest's clock offset from the host's wall clock, in seconds (0 until the guest sets
    /// the time). Useful to carry across a snapshot.
    public var guestClockOffset: Int64 {
        get { state.withLock { $0.offsetSeconds } }
        set { state.withLock { $0.offsetSeconds = newValue } }
    }

    /// Whether the guest last wrote the index port with bit 7 (NMI disable) set.
    public var nmiDisabled: Bool {
        state.withLock { $0.nmiDisabled }
    }

    /// A CMOS byte as the guest would read it at index `index & 0x7F`, without side effects
    /// on register C.
    public func peek(_ index: UInt8) -> UInt8 {
        let host = now()
        return state.withLock { state in
            let register = index & 0x7f
            if register == CMOSState.Register.c { return state.latchedFlags }
            let saved = state.index
            state.index = register
            let value = state.readData(host: host)
            state.index = saved
            return value
        }
    }

    /// Runs `body` on the locked state (tests and invariant checks).
    func withState<R>(_ body: (inout CMOSState) -> R) -> R {
        state.withLock { body(&$0) }
    }
}
