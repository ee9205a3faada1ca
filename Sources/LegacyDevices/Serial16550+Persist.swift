import DeviceModel

/// The saved state of a `Serial16550`: every guest-visible register, the bytes on their way to
/// the guest, and the level the UART drives on its interrupt line.
///
/// Not saved, because it belongs to the host side of this process rather than to the guest:
/// the output console, the input capacity (configuration: the restoring device's own capacity
/// must hold `pendingHostInput`) and the host reader's flow-control flag (see
/// `Serial16550.restoreState(_:)`). The transmitter needs no state: bytes leave as they are
/// written, so THR and the transmit FIFO are always empty when the VM is paused.
public struct Serial16550State: ValidatedState {
    /// Interrupt Enable Register: ERBFI, ETBEI, ELSI, EDSSI (bits 0–3; bits 4–7 are always 0).
    public var interruptEnable: UInt8
    /// Line Control Register, all eight bits (bit 7 is DLAB, the divisor latch access bit).
    public var lineControl: UInt8
    /// Modem Control Register: DTR, RTS, OUT1, OUT2, LOOP (bits 0–4; bits 5–7 are always 0).
    public var modemControl: UInt8
    /// Scratch register.
    public var scratch: UInt8
    /// Divisor latch, DLM (high byte) and DLL (low byte).
    public var divisorLatch: UInt16
    /// FCR bit 0 as last written: FIFO (16550) mode rather than 16450 mode.
    public var fifosEnabled: Bool
    /// FCR bits 7–6 (receive trigger) and 3 (DMA mode select) as last written while FIFO mode
    /// was on (FCR is write-only; a write with bit 0 clear leaves them). Other bits are 0.
    public var fifoControl: UInt8
    /// Receive FIFO trigger level in bytes: 1, 4, 8 or 14, the one FCR bits 7–6 select.
    public var receiveTriggerLevel: UInt8
    /// LSR error bits latched until LSR is read: OE (bit 1) and BI (bit 4). Parity and
    /// framing errors (bits 2, 3) never occur.
    public var latchedLineErrors: UInt8
    /// The THR-empty interrupt source is pending: set when THR empties or ETBEI is enabled,
    /// cleared by an IIR read that reports it or by a THR write.
    public var transmitterEmptyInterruptPending: Bool
    /// MSR delta bits not yet cleared by an MSR read: DCTS, DDSR, TERI, DDCD (bits 0–3).
    public var modemStatusDeltas: UInt8
    /// Bytes received and not yet read by the guest, oldest first: the receive FIFO (at most
    /// 16 bytes) in FIFO mode, RBR (at most 1) in 16450 mode.
    public var receiveFIFO: [UInt8]
    /// Host input accepted but not yet moved into the receiver, oldest first (at most the
    /// restoring device's input capacity, and never more than 1 MiB).
    public var pendingHostInput: [UInt8]
    /// The level the UART drives on its IRQ line: high exactly when an enabled interrupt is
    /// pending, OUT2 is set and loopback is off.
    public var interruptLineHigh: Bool

    public init(
        interruptEnable: UInt8, lineControl: UInt8, modemControl: UInt8, scratch: UInt8, divisorLatch: UInt16,
        fifosEnabled: Bool, fifoControl: UInt8, receiveTriggerLevel: UInt8, latchedLineErrors: UInt8,
        transmitterEmptyInterruptPending: Bool, modemStatusDeltas: UInt8, receiveFIFO: [UInt8],
        pendingHostInput: [UInt8], interruptLineHigh: Bool
    ) {
        self.interruptEnable = interruptEnable
        self.lineControl = lineControl
        self.modemControl = modemControl
        self.scratch = scratch
        self.divisorLatch = divisorLatch
        self.fifosEnabled = fifosEnabled
        self.fifoControl = fifoControl
        self.receiveTriggerLevel = receiveTriggerLevel
        self.latchedLineErrors = latchedLineErrors
        self.transmitterEmptyInterruptPending = transmitterEmptyInterruptPending
        self.modemStatusDeltas = modemStatusDeltas
        self.receiveFIFO = receiveFIFO
        self.pendingHostInput = pendingHostInput
        self.interruptLineHigh = interruptLineHigh
    }

    static let component = "uart"
    /// The largest input capacity a `Serial16550` accepts.
    static let maximumHostInput = 1 << 20

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        try DeviceStateError.require(
            interruptEnable & ~UART.IER.mask == 0, c,
            "interruptEnable \(StateText.hex(interruptEnable)) has bits outside 0x0f")
        try DeviceStateError.require(
            modemControl & ~UART.MCR.mask == 0, c,
            "modemControl \(StateText.hex(modemControl)) has bits outside 0x1f")
        let programmable = UART.FCR.triggerMask | Self.fcrDMAMode
        try DeviceStateError.require(
            fifoControl & ~programmable == 0, c,
            "fifoControl \(StateText.hex(fifoControl)) has bits outside 0xc8")
        let expectedTrigger = Self.triggerLevel(fifoControl: fifoControl)
        try DeviceStateError.require(
            Int(receiveTriggerLevel) == expectedTrigger, c,
            "receiveTriggerLevel \(receiveTriggerLevel) does not match fifoControl \(StateText.hex(fifoControl)) (\(expectedTrigger))")
        let errors = UART.LSR.overrunError | UART.LSR.breakInterrupt
        try DeviceStateError.require(
            latchedLineErrors & ~errors == 0, c,
            "latchedLineErrors \(StateText.hex(latchedLineErrors)) has bits other than OE and BI")
        try DeviceStateError.require(
            modemStatusDeltas & ~UART.MSR.deltaMask == 0, c,
            "modemStatusDeltas \(StateText.hex(modemStatusDeltas)) has bits outside 0x0f")
        let receiveLimit = fifosEnabled ? UART.fifoDepth : 1
        try DeviceStateError.require(
            receiveFIFO.count <= receiveLimit, c,
            "receiveFIFO holds \(receiveFIFO.count) bytes, more than \(receiveLimit) in \(fifosEnabled ? "FIFO" : "16450") mode")
        try DeviceStateError.require(
            pendingHostInput.count <= Self.maximumHostInput, c,
            "pendingHostInput holds \(pendingHostInput.count) bytes, more than \(Self.maximumHostInput)")
        let loopback = modemControl & UART.MCR.loopback != 0
        try DeviceStateError.require(
            loopback || pendingHostInput.isEmpty || receiveFIFO.count == receiveLimit, c,
            "pendingHostInput holds \(pendingHostInput.count) bytes while the receiver has room and loopback is off")
        let registers = UARTState(restoring: self, hostInputCapacity: max(1, pendingHostInput.count))
        try DeviceStateError.require(
            interruptLineHigh == registers.interruptAsserted, c,
            "interruptLineHigh is \(interruptLineHigh) but the registers make the line \(registers.interruptAsserted ? "high" : "low")")
    }

    /// FCR bit 3 (DMA mode select), kept and otherwise ignored.
    static let fcrDMAMode: UInt8 = 0x08

    /// The receive trigger level FCR bits 7–6 select.
    static func triggerLevel(fifoControl: UInt8) -> Int {
        switch fifoControl & UART.FCR.triggerMask {
        case 0x00: return 1
        case 0x40: return 4
        case 0x80: return 8
        default: return 14
        }
    }
}

extension UARTState {
    /// The registers of `saved` with a host input queue of `hostInputCapacity` bytes; the line
    /// level and the host reader's flag are the caller's. `saved` is already validated and its
    /// host input fits the capacity.
    init(restoring saved: Serial16550State, hostInputCapacity: Int) {
        self.init(hostInputCapacity: hostInputCapacity)
        ier = saved.interruptEnable
        lcr = saved.lineControl
        mcr = saved.modemControl
        scratch = saved.scratch
        divisor = saved.divisorLatch
        fifosEnabled = saved.fifosEnabled
        fifoControl = saved.fifoControl
        triggerLevel = Int(saved.receiveTriggerLevel)
        lineErrors = saved.latchedLineErrors
        transmitterInterruptPending = saved.transmitterEmptyInterruptPending
        modemDeltas = saved.modemStatusDeltas
        receiveFIFO = ByteQueue(capacity: UART.fifoDepth, contents: saved.receiveFIFO)
        hostInput = ByteQueue(capacity: hostInputCapacity, contents: saved.pendingHostInput)
    }

    var saved: Serial16550State {
        Serial16550State(
            interruptEnable: ier, lineControl: lcr, modemControl: mcr, scratch: scratch, divisorLatch: divisor,
            fifosEnabled: fifosEnabled, fifoControl: fifoControl, receiveTriggerLevel: UInt8(clamping: triggerLevel),
            latchedLineErrors: lineErrors, transmitterEmptyInterruptPending: transmitterInterruptPending,
            modemStatusDeltas: modemDeltas, receiveFIFO: receiveFIFO.contents, pendingHostInput: hostInput.contents,
            interruptLineHigh: line.isHigh)
    }
}

extension Serial16550: StatePersistable {
    public func saveState() -> Serial16550State {
        state.withLock { $0.saved }
    }

    /// Validates `saved`, checks that its pending host input fits this UART's input capacity,
    /// and replaces the UART's state with it; on error nothing changes.
    ///
    /// Interrupt line: the UART takes `saved.interruptLineHigh` as its line's current level
    /// without driving the line. The interrupt controllers are restored from the same snapshot
    /// (KVM_SET_IRQCHIP, before or after this call), and their saved state already holds this
    /// pin as the UART left it: the PIC's edge detector (`last_irr`) and the IOAPIC's IRR.
    /// Raising the line again would not be harmless: KVM leaves an edge-triggered IOAPIC pin
    /// whose interrupt was already delivered out of the IRR it saves, so a fresh rising edge
    /// would deliver that interrupt a second time. Adopting the level keeps the next change
    /// the UART makes (lowering the line when the guest clears the cause, raising it for a new
    /// one) an edge on the controller exactly where it would have been on the source.
    ///
    /// Host input flow control: whether the host reader is waiting for room is this process's
    /// business, not the guest's, so it is kept, not restored; if the reader is waiting and the
    /// restored input queue is at most half full, `inputSpaceAvailable` is called at once.
    public func restoreState(_ saved: Serial16550State) throws(DeviceStateError) {
        try saved.validate()
        let notify = try state.withLock { (state) throws(DeviceStateError) -> Bool in
            let capacity = state.hostInput.capacity
            try DeviceStateError.require(
                saved.pendingHostInput.count <= capacity, Serial16550State.component,
                "pendingHostInput holds \(saved.pendingHostInput.count) bytes, more than this UART's input capacity \(capacity)")
            var restored = UARTState(restoring: saved, hostInputCapacity: capacity)
            restored.line = state.line
            restored.line.adopt(saved.interruptLineHigh)
            restored.inputWaiterArmed = state.inputWaiterArmed
            state = restored
            return state.takeInputSpaceNotification()
        }
        if notify { inputSpaceAvailable?() }
    }
}
