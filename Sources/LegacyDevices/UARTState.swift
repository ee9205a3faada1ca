import DeviceModel

/// The register state of a 16550A UART and the rules that tie it together.
///
/// Pure state, no locking: `Serial16550` keeps one inside a `Mutex`. Every register value comes
/// from the guest and every path is total (no traps, no growth).
///
/// Timing model: a byte written to THR is sent at once, so THR and the transmitter are always
/// empty again when the guest next looks (LSR.THRE and LSR.TEMT read 1, like QEMU's UART when
/// its backend accepts the byte). Receive side: the 16-byte FIFO (one byte, RBR, in 16450 mode)
/// is refilled from a bounded host-side queue as the guest drains it. There is no character
/// timer: when the FIFO holds fewer bytes than the trigger level, no further byte is on its way
/// (the host queue is empty), so the character timeout is reported at once (IIR = 0x0C).
struct UARTState: Sendable {
    var ier: UInt8 = 0
    var lcr: UInt8 = 0
    var mcr: UInt8 = UART.MCR.out2
    var scratch: UInt8 = 0
    var divisor: UInt16 = UART.resetDivisor
    var fifosEnabled = false
    /// FCR bits 6–7 and 3 as last written (the FIFO Control Register itself is write-only).
    var fifoControl: UInt8 = 0
    /// Receive FIFO trigger level in bytes: 1, 4, 8 or 14.
    var triggerLevel = 1
    /// LSR error bits latched until LSR is read (OE, BI; parity and framing never occur).
    var lineErrors: UInt8 = 0
    /// THRE interrupt source: set when THR becomes empty or ETBEI is enabled, cleared by an
    /// IIR read that reports it or by a THR write.
    var transmitterInterruptPending = false
    /// MSR delta bits (0–3), cleared by an MSR read.
    var modemDeltas: UInt8 = 0
    var receiveFIFO = ByteQueue(capacity: UART.fifoDepth)
    var hostInput: ByteQueue
    var line = LineLevel()
    /// Set when the host was told there is no room; cleared when it is told there is room again.
    var inputWaiterArmed = false

    init(hostInputCapacity: Int) {
        hostInput = ByteQueue(capacity: hostInputCapacity)
    }

    // MARK: Derived values

    var loopback: Bool { mcr & UART.MCR.loopback != 0 }
    var divisorLatchAccess: Bool { lcr & UART.LCR.divisorLatchAccess != 0 }

    /// Bytes the receiver holds at most: the FIFO, or RBR alone in 16450 mode.
    var receiveLimit: Int { fifosEnabled ? UART.fifoDepth : 1 }

    var lineStatus: UInt8 {
        var lsr = UART.LSR.transmitterHoldingEmpty | UART.LSR.transmitterEmpty | lineErrors
        if !receiveFIFO.isEmpty { lsr |= UART.LSR.dataReady }
        if fifosEnabled && lineErrors & UART.LSR.breakInterrupt != 0 { lsr |= UART.LSR.fifoError }
        return lsr
    }

    /// The modem status inputs (MSR bits 4–7) as the UART sees them for a given MCR.
    ///
    /// Not in loopback: the host side is always ready, so CTS, DSR and DCD are asserted and RI
    /// is not. In loopback the outputs are wired to the inputs: RTS→CTS, DTR→DSR, OUT1→RI,
    /// OUT2→DCD (16550 data sheet, MCR bit 4).
    static func modemInputs(mcr: UInt8) -> UInt8 {
        guard mcr & UART.MCR.loopback != 0 else { return UART.MSR.cts | UART.MSR.dsr | UART.MSR.dcd }
        var msr: UInt8 = 0
        if mcr & UART.MCR.rts != 0 { msr |= UART.MSR.cts }
        if mcr & UART.MCR.dtr != 0 { msr |= UART.MSR.dsr }
        if mcr & UART.MCR.out1 != 0 { msr |= UART.MSR.ri }
        if mcr & UART.MCR.out2 != 0 { msr |= UART.MSR.dcd }
        return msr
    }

    /// The highest-priority pending, enabled interrupt source as an IIR code, or nil.
    ///
    /// Priorities from the 16550 data sheet: receiver line status, then received data
    /// available / character timeout, then THR empty, then modem status.
    var pendingInterrupt: UInt8? {
        if ier & UART.IER.lineStatus != 0 && lineErrors & UART.LSR.errorBits != 0 {
            return UART.IIR.lineStatus
        }
        if ier & UART.IER.receivedData != 0 && !receiveFIFO.isEmpty {
            if !fifosEnabled || receiveFIFO.count >= triggerLevel { return UART.IIR.receivedData }
            return UART.IIR.characterTimeout
        }
        if ier & UART.IER.transmitterEmpty != 0 && transmitterInterruptPending {
            return UART.IIR.transmitterEmpty
        }
        if ier & UART.IER.modemStatus != 0 && modemDeltas != 0 {
            return UART.IIR.modemStatus
        }
        return nil
    }

    var interruptIdentification: UInt8 {
        (fifosEnabled ? UART.IIR.fifosEnabled : 0) | (pendingInterrupt ?? UART.IIR.noInterruptPending)
    }

    /// Whether the IRQ line is driven: an enabled source is pending and, as on a PC, OUT2 gates
    /// the UART's interrupt output onto the bus. In loopback the modem outputs are forced
    /// inactive at the pins, so the IRQ is gated off as well.
    var interruptAsserted: Bool {
        pendingInterrupt != nil && mcr & UART.MCR.out2 != 0 && !loopback
    }

    // MARK: Guest register access

    /// A guest read of register `register` (0–7).
    mutating func read(_ register: UInt64) -> UInt8 {
        switch register {
        case UART.Offset.data:
            if divisorLatchAccess { return UInt8(truncatingIfNeeded: divisor) }
            return receiveFIFO.pop() ?? 0
        case UART.Offset.interruptEnable:
            if divisorLatchAccess { return UInt8(truncatingIfNeeded: divisor >> 8) }
            return ier
        case UART.Offset.interruptIdentification:
            let iir = interruptIdentification
            if iir & 0x0f == UART.IIR.transmitterEmpty { transmitterInterruptPending = false }
            return iir
        case UART.Offset.lineControl:
            return lcr
        case UART.Offset.modemControl:
            return mcr
        case UART.Offset.lineStatus:
            let lsr = lineStatus
            lineErrors = 0
            return lsr
        case UART.Offset.modemStatus:
            let msr = Self.modemInputs(mcr: mcr) | modemDeltas
            modemDeltas = 0
            return msr
        case UART.Offset.scratch:
            return scratch
        default:
            return 0xff
        }
    }

    /// A guest write of `value` to register `register` (0–7). Bytes to send to the console are
    /// appended to `transmitted`.
    mutating func write(_ register: UInt64, _ value: UInt8, line interrupt: any InterruptLine, transmitted: inout [UInt8]) {
        switch register {
        case UART.Offset.data:
            if divisorLatchAccess {
                divisor = (divisor & 0xff00) | UInt16(value)
            } else {
                transmit(value, line: interrupt, transmitted: &transmitted)
            }
        case UART.Offset.interruptEnable:
            if divisorLatchAccess {
                divisor = (divisor & 0x00ff) | (UInt16(value) << 8)
            } else {
                ier = value & UART.IER.mask
                // Enabling ETBEI while THR is empty (it always is here) raises THRE at once.
                if ier & UART.IER.transmitterEmpty != 0 { transmitterInterruptPending = true }
            }
        case UART.Offset.interruptIdentification:
            writeFIFOControl(value)
        case UART.Offset.lineControl:
            lcr = value
        case UART.Offset.modemControl:
            let oldInputs = Self.modemInputs(mcr: mcr)
            mcr = value & UART.MCR.mask
            recordModemChange(from: oldInputs, to: Self.modemInputs(mcr: mcr))
        case UART.Offset.scratch:
            scratch = value
        default:
            // LSR and MSR writes are factory-test only on a 16550A: ignored.
            break
        }
    }

    /// THR write: the byte leaves at once (to the console, or back to the receiver in loopback)
    /// and THR is empty again, so the THRE interrupt is re-armed. The line is updated between the
    /// two steps, as QEMU does, so that an edge-triggered PIC sees a fresh edge per byte.
    private mutating func transmit(_ byte: UInt8, line interrupt: any InterruptLine, transmitted: inout [UInt8]) {
        transmitterInterruptPending = false
        line.drive(interrupt, high: interruptAsserted)
        if loopback {
            receiveLoopedByte(byte)
        } else {
            transmitted.append(byte)
        }
        transmitterInterruptPending = true
    }

    /// A byte arriving at the receiver from the UART's own transmitter (loopback mode).
    ///
    /// FIFO mode: a full FIFO keeps its contents and the new byte is lost with OE set. 16450
    /// mode: the new byte overwrites RBR, OE set (16550 data sheet, LSR bit 1).
    private mutating func receiveLoopedByte(_ byte: UInt8) {
        if receiveFIFO.count < receiveLimit {
            receiveFIFO.push(byte)
            return
        }
        lineErrors |= UART.LSR.overrunError
        if !fifosEnabled {
            _ = receiveFIFO.pop()
            receiveFIFO.push(byte)
        }
    }

    private mutating func writeFIFOControl(_ value: UInt8) {
        let enable = value & UART.FCR.enable != 0
        if enable != fifosEnabled {
            // Switching between FIFO and 16450 mode clears both FIFOs.
            receiveFIFO.removeAll()
            fifosEnabled = enable
        }
        // Other bits are only programmed while bit 0 is set (16550 data sheet, FCR bit 0).
        guard enable else { return }
        if value & UART.FCR.resetReceiver != 0 { receiveFIFO.removeAll() }
        // The transmitter FIFO is always empty: bytes leave as they are written.
        fifoControl = value & (UART.FCR.triggerMask | 0x08)
        switch value & UART.FCR.triggerMask {
        case 0x00: triggerLevel = 1
        case 0x40: triggerLevel = 4
        case 0x80: triggerLevel = 8
        default: triggerLevel = 14
        }
    }

    private mutating func recordModemChange(from old: UInt8, to new: UInt8) {
        let changed = old ^ new
        if changed & UART.MSR.cts != 0 { modemDeltas |= UART.MSR.deltaCTS }
        if changed & UART.MSR.dsr != 0 { modemDeltas |= UART.MSR.deltaDSR }
        if changed & UART.MSR.dcd != 0 { modemDeltas |= UART.MSR.deltaDCD }
        if old & UART.MSR.ri != 0 && new & UART.MSR.ri == 0 { modemDeltas |= UART.MSR.trailingEdgeRI }
    }

    // MARK: Host input

    /// Moves bytes from the host queue into the receiver while it has room. In loopback the
    /// receiver is disconnected from the line, so host bytes wait.
    mutating func refillReceiver() {
        guard !loopback else { return }
        while receiveFIFO.count < receiveLimit, let byte = hostInput.pop() {
            receiveFIFO.push(byte)
        }
    }

    /// Space for host bytes: the host queue plus whatever the receiver could take directly.
    var inputSpace: Int {
        let receiverRoom = hostInput.isEmpty && !loopback ? max(0, receiveLimit - receiveFIFO.count) : 0
        return hostInput.freeSpace + receiverRoom
    }

    /// Accepts host bytes up to the free space; returns how many were taken. Bytes refused
    /// because everything is full are an overrun from the guest's point of view: OE is set.
    mutating func enqueue(_ bytes: some Collection<UInt8>) -> Int {
        var accepted = 0
        for byte in bytes {
            refillReceiver()
            guard hostInput.push(byte) else {
                lineErrors |= UART.LSR.overrunError
                inputWaiterArmed = true
                break
            }
            accepted += 1
        }
        refillReceiver()
        if hostInput.isFull { inputWaiterArmed = true }
        return accepted
    }

    /// A break condition on the line: a NUL byte with LSR.BI. Only delivered when the receive
    /// path is empty, so that BI belongs to that NUL; returns false otherwise.
    mutating func receiveBreak() -> Bool {
        guard hostInput.isEmpty, receiveFIFO.isEmpty, !loopback else { return false }
        receiveFIFO.push(0)
        lineErrors |= UART.LSR.breakInterrupt
        return true
    }

    /// Whether the host should be told that input space is available again (at least half of
    /// the host queue free after it was reported full); disarms the notification.
    mutating func takeInputSpaceNotification() -> Bool {
        guard inputWaiterArmed, hostInput.freeSpace >= max(1, hostInput.capacity / 2) else { return false }
        inputWaiterArmed = false
        return true
    }

    /// Back to the power-on register state. Host bytes not yet delivered stay queued (they are
    /// still "on the line"); the receive FIFO is cleared.
    mutating func reset() {
        var fresh = UARTState(hostInputCapacity: hostInput.capacity)
        fresh.hostInput = hostInput
        fresh.line = line
        fresh.inputWaiterArmed = inputWaiterArmed
        self = fresh
    }
}
