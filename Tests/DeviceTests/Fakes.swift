import DeviceModel
import LegacyDevices
import Synchronization

/// An interrupt line that records every level it is driven to.
final class RecordingLine: InterruptLine {
    private let levels = Mutex<[Bool]>([])

    func setLevel(_ high: Bool) {
        levels.withLock { $0.append(high) }
    }

    /// Every level set so far, oldest first.
    var history: [Bool] { levels.withLock { $0 } }
    /// The current level (low before the first call).
    var isHigh: Bool { levels.withLock { $0.last ?? false } }
    /// Number of low-to-high transitions: what an edge-triggered PIC input counts.
    var risingEdges: Int {
        levels.withLock { levels in
            var previous = false
            var edges = 0
            for level in levels {
                if level && !previous { edges += 1 }
                previous = level
            }
            return edges
        }
    }

    func clear() {
        levels.withLock { $0.removeAll() }
    }
}

/// Records machine requests.
final class RecordingMachine: MachineControl {
    private let events = Mutex<[MachineEvent]>([])

    func request(_ event: MachineEvent) {
        events.withLock { $0.append(event) }
    }

    var requests: [MachineEvent] { events.withLock { $0 } }
}

/// Captures console output.
final class CapturingConsole: ConsoleOutput {
    private let bytes = Mutex<[UInt8]>([])

    func write(_ data: UnsafeRawBufferPointer) {
        bytes.withLock { $0.append(contentsOf: data) }
    }

    var output: [UInt8] { bytes.withLock { $0 } }
    var text: String { String(decoding: output, as: UTF8.self) }
}

/// A settable clock for the RTC.
final class FakeClock: Sendable {
    private let time: Mutex<UnixTime>

    init(_ time: UnixTime) {
        self.time = Mutex(time)
    }

    var now: UnixTime {
        get { time.withLock { $0 } }
        set { time.withLock { $0 = newValue } }
    }

    func advance(nanoseconds: Int64) {
        time.withLock { time in
            let total = time.nanoseconds + nanoseconds
            time.seconds += total / 1_000_000_000
            time.nanoseconds = total % 1_000_000_000
        }
    }
}

/// Register-level access as the bus performs it (the buffer starts as all ones).
extension BusDevice {
    func readByte(_ offset: UInt64) -> UInt8 {
        read(offset, size: 1)[0]
    }

    func read(_ offset: UInt64, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xff, count: size)
        bytes.withUnsafeMutableBytes { read(offset: offset, into: $0) }
        return bytes
    }

    func writeByte(_ offset: UInt64, _ value: UInt8) {
        write(offset, [value])
    }

    func write(_ offset: UInt64, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write(offset: offset, from: $0) }
    }
}
