import DeviceModel
import Synchronization

/// The PC keyboard controller (8042): data port 0x60, status/command port 0x64, IRQ 1.
///
/// Insert it once at 0x60 with length `I8042.portRange` (5): offset 0 is the data port and
/// offset 4 the status/command port; offsets 1–3 read 0xFF and ignore writes (port 0x61 is
/// handled by KVM's in-kernel PIT speaker port when one is created).
///
/// Emulated: the status register, the command byte (0x20 / 0x60, and the rest of the 32-byte
/// RAM through 0x21–0x3F / 0x61–0x7F), self test 0xAA → 0x55, interface test 0xAB → 0x00,
/// keyboard disable/enable 0xAD/0xAE, output port read/write 0xD0/0xD1 (bit 0 = 0 resets),
/// 0xD2, A20 0xDD/0xDF, and pulse commands 0xF0–0xFF (0xFE resets). The aux (mouse) port is
/// absent: 0xA9 answers 0x02, 0xA7/0xA8 leave CTR alone, 0xD3/0xD4 data goes nowhere. A minimal
/// MF2 keyboard answers ACK/ID/reset so Linux's atkbd probes it without timeouts. Linux needs
/// `i8042.noaux` (or finds no aux port after its probes) and, with ACPI, a PNP0303 device or
/// FADT IAPC_BOOT_ARCH bit 1 to look for the controller at all.
public final class I8042: BusDevice {
    /// Length of the port range starting at the data port (0x60–0x64).
    public static let portRange: UInt64 = 5
    /// Offset of the data port (0x60).
    public static let dataOffset: UInt64 = 0
    /// Offset of the status/command port (0x64).
    public static let commandOffset: UInt64 = 4

    // Internal rather than private for I8042+Persist.swift.
    let interrupt: any InterruptLine
    private let machine: any MachineControl
    let state = Mutex(I8042Controller())

    /// Creates the controller.
    ///
    /// - Parameters:
    ///   - interrupt: IRQ 1, high while a byte waits in the output buffer and CTR bit 0 is set.
    ///   - machine: receives `.reset` for 0xFE (and other reset pulses) and output-port writes
    ///     that clear bit 0. Called without the device lock held.
    public init(interrupt: any InterruptLine, machine: any MachineControl) {
        self.interrupt = interrupt
        self.machine = machine
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        state.withLock { state in
            unsafe ByteLanes.read(offset: offset, into: data) { port in
                switch port {
                case Self.dataOffset:
                    let byte = state.readData()
                    // One byte left the output buffer: drop the line so that the next byte,
                    // if any, gives an edge-triggered PIC a new edge (as the real 8042 does).
                    state.line.drive(interrupt, high: false)
                    return byte
                case Self.commandOffset:
                    return state.status
                default:
                    return nil
                }
            }
            state.line.drive(interrupt, high: state.interruptAsserted)
        }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        let resetRequested = state.withLock { state -> Bool in
            var reset = false
            unsafe ByteLanes.write(offset: offset, from: data) { port, value in
                switch port {
                case Self.dataOffset:
                    if state.writeData(value) { reset = true }
                case Self.commandOffset:
                    if state.writeCommand(value) { reset = true }
                default:
                    break
                }
            }
            state.line.drive(interrupt, high: state.interruptAsserted)
            return reset
        }
        if resetRequested { machine.request(.reset) }
    }

    // MARK: Host side

    /// Queues raw bytes as if the keyboard sent them (scan codes in the guest's current set);
    /// returns how many fit in the 15-byte keyboard queue.
    @discardableResult
    public func injectKeyboardBytes(_ bytes: some Collection<UInt8>) -> Int {
        state.withLock { state in
            let accepted = state.injectKeyboardBytes(bytes)
            state.line.drive(interrupt, high: state.interruptAsserted)
            return accepted
        }
    }

    /// Presses Ctrl, Alt and Delete (make codes only, as Firecracker's SendCtrlAltDel): Linux
    /// then asks init to reboot. Uses set-1 codes when the guest enabled translation (CTR bit 6),
    /// set-2 otherwise. Returns false, sending nothing, when the queue lacks room for the four
    /// bytes or the guest disabled scanning.
    @discardableResult
    public func sendCtrlAltDel() -> Bool {
        state.withLock { state in
            guard state.scanning, state.keyboardQueue.freeSpace >= 4 else { return false }
            let translated = state.config & I8042Controller.Config.translate != 0
            // Left Ctrl, left Alt, Delete (extended).
            let codes: [UInt8] = translated ? [0x1d, 0x38, 0xe0, 0x53] : [0x14, 0x11, 0xe0, 0x71]
            _ = state.injectKeyboardBytes(codes)
            state.line.drive(interrupt, high: state.interruptAsserted)
            return true
        }
    }

    /// Returns the controller to its power-on state (machine reset).
    public func reset() {
        state.withLock { state in
            state.reset()
            state.line.drive(interrupt, high: state.interruptAsserted)
        }
    }

    /// Runs `body` on the locked state (tests and invariant checks).
    func withState<R>(_ body: (inout I8042Controller) -> R) -> R {
        state.withLock { body(&$0) }
    }
}
