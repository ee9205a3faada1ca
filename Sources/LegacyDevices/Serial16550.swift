import DeviceModel
import Synchronization

/// A 16550A UART (COM1 on a PC: ports 0x3F8–0x3FF, IRQ 4).
///
/// The device sees register offsets 0–7; the bus decides the port. Guest output (THR writes)
/// goes to a `ConsoleOutput`; host input enters through `enqueueInput(_:)` into a bounded queue
/// that feeds the 16-byte receive FIFO as the guest drains it, so a guest that stops reading
/// makes the host stop reading its input source instead of making the VMM buffer without limit.
///
/// The interrupt is level-driven: the line is high while an enabled interrupt is pending and
/// MCR.OUT2 is set (the PC gates the UART's IRQ with OUT2), low otherwise; an edge-triggered
/// PIC input sees the rising edges. `InterruptLine.setLevel` is called with the device's lock
/// held, so it must not call back into the device.
///
/// Register accesses may come from several vCPU threads and input from a host thread at once.
public final class Serial16550: BusDevice {
    /// Length of the port range (eight registers, 0x3F8–0x3FF for COM1).
    public static let portRange: UInt64 = UART.Offset.count
    /// Default capacity of the host-side input queue.
    public static let defaultInputCapacity = 4096

    // Internal rather than private for Serial16550+Persist.swift.
    let interrupt: any InterruptLine
    private let output: any ConsoleOutput
    let inputSpaceAvailable: (@Sendable () -> Void)?
    let state: Mutex<UARTState>

    /// Creates a UART in its power-on state.
    ///
    /// - Parameters:
    ///   - interrupt: the IRQ line (IRQ 4 for COM1).
    ///   - output: receives every byte the guest transmits (except in loopback mode).
    ///   - inputCapacity: bytes the host-side input queue holds (clamped to 1...1 MiB), in
    ///     addition to the 16-byte receive FIFO.
    ///   - inputSpaceAvailable: called (without the device lock) when the guest has drained at
    ///     least half of the input queue after the host found it full, so a host reader that
    ///     paused (`hasRoomForInput()` returned false) can resume. Keep it cheap (e.g. an eventfd
    ///     write): it runs on a vCPU thread.
    public init(
        interrupt: any InterruptLine,
        output: any ConsoleOutput,
        inputCapacity: Int = Serial16550.defaultInputCapacity,
        inputSpaceAvailable: (@Sendable () -> Void)? = nil
    ) {
        self.interrupt = interrupt
        self.output = output
        self.inputSpaceAvailable = inputSpaceAvailable
        let capacity = min(max(inputCapacity, 1), 1 << 20)
        self.state = Mutex(UARTState(hostInputCapacity: capacity))
    }

    // MARK: BusDevice

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        let notify = state.withLock { state -> Bool in
            unsafe ByteLanes.read(offset: offset, into: data) { register in
                guard register < UART.Offset.count else { return nil }
                let value = state.read(register)
                state.refillReceiver()
                return value
            }
            state.line.drive(interrupt, high: state.interruptAsserted)
            return state.takeInputSpaceNotification()
        }
        if notify { inputSpaceAvailable?() }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        var transmitted: [UInt8] = []
        state.withLock { state in
            unsafe ByteLanes.write(offset: offset, from: data) { register, value in
                guard register < UART.Offset.count else { return }
                state.write(register, value, line: interrupt, transmitted: &transmitted)
                state.refillReceiver()
            }
            state.line.drive(interrupt, high: state.interruptAsserted)
        }
        if !transmitted.isEmpty {
            unsafe transmitted.withUnsafeBytes { unsafe output.write($0) }
        }
    }

    // MARK: Host side

    /// Queues bytes typed on the host for the guest to read; returns how many were accepted.
    ///
    /// Accepts at most `availableInputSpace()` bytes. If more are offered, the rest are refused
    /// (not consumed: the caller still has them) and, since a character arrived that the UART
    /// had no room for, LSR.OE is set for the guest to see. A caller that sizes its reads with
    /// `availableInputSpace()` never causes an overrun.
    @discardableResult
    public func enqueueInput(_ bytes: some Collection<UInt8>) -> Int {
        state.withLock { state in
            let accepted = state.enqueue(bytes)
            state.line.drive(interrupt, high: state.interruptAsserted)
            return accepted
        }
    }

    /// How many bytes `enqueueInput(_:)` would accept now. When it is zero, `inputSpaceAvailable`
    /// will be called once the guest has drained half of the queue.
    public func availableInputSpace() -> Int {
        state.withLock { state in
            let space = state.inputSpace
            if space == 0 { state.inputWaiterArmed = true }
            return space
        }
    }

    /// Whether the host may read more input for the guest (FC issue #2177: don't buffer input
    /// without bound when the guest does not drain it).
    public func hasRoomForInput() -> Bool {
        availableInputSpace() > 0
    }

    /// Sends a break (a NUL with LSR.BI set, Linux turns it into SysRq when followed by a key).
    /// Returns false, sending nothing, unless the guest has read everything received so far.
    @discardableResult
    public func sendBreak() -> Bool {
        state.withLock { state in
            let sent = state.receiveBreak()
            state.line.drive(interrupt, high: state.interruptAsserted)
            return sent
        }
    }

    /// Returns the registers to their power-on values (machine reset). Host input that was
    /// queued but not yet in the receive FIFO stays queued.
    public func reset() {
        state.withLock { state in
            state.reset()
            state.refillReceiver()
            state.line.drive(interrupt, high: state.interruptAsserted)
        }
    }

    /// Runs `body` on the locked state (tests and invariant checks).
    func withState<R>(_ body: (inout UARTState) -> R) -> R {
        state.withLock { body(&$0) }
    }
}
