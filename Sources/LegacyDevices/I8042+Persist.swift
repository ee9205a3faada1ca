import DeviceModel

/// The saved state of an `I8042` keyboard controller and the minimal keyboard behind it.
///
/// The status register is not a field of its own: every bit of it follows from the fields here
/// (OBF from the output buffer, SYS from the command byte, CMD/DATA from
/// `lastWriteWasCommand`, INH always 1, IBF and AUX always 0). The A20 gate is bit 1 of
/// `outputPort`, the CPU reset line its bit 0.
public struct I8042State: ValidatedState {
    /// The controller's 32 bytes of internal RAM (commands 0x20–0x3F read, 0x60–0x7F write);
    /// byte 0 is the controller command byte (CTR).
    public var controllerRAM: [UInt8]
    /// The output port (0xD0 reads, 0xD1 writes): bit 0 CPU reset (active low), bit 1 A20.
    public var outputPort: UInt8
    /// A controller response (self test, CTR read, ...) in the output buffer, read before any
    /// keyboard byte; nil when there is none.
    public var controllerResponse: UInt8?
    /// Bytes the keyboard has sent that the guest has not read yet, oldest first (at most 15).
    public var keyboardOutput: [UInt8]
    /// The byte a port 0x60 read returns when the output buffer is empty: the last one read.
    public var lastReadByte: UInt8
    /// A controller command written to port 0x64 that waits for its data byte on port 0x60
    /// (0x60–0x7F, 0xD1–0xD4); nil when none.
    public var commandAwaitingData: UInt8?
    /// A keyboard command that waits for its parameter byte (0xED LEDs, 0xF0 scan code set,
    /// 0xF3 typematic); nil when none.
    public var keyboardCommandAwaitingParameter: UInt8?
    /// Status bit 3: the last write went to the command port (0x64) rather than the data port.
    public var lastWriteWasCommand: Bool
    /// The keyboard scans keys (0xF4 enables, 0xF5 disables).
    public var keyboardScanning: Bool
    /// The keyboard's scan code set, 1–3 (0xF0 selects).
    public var scanCodeSet: UInt8
    /// The level the controller drives on IRQ 1: high exactly when the output buffer holds a
    /// byte the guest can read and CTR bit 0 enables the keyboard interrupt.
    public var interruptLineHigh: Bool

    public init(
        controllerRAM: [UInt8], outputPort: UInt8, controllerResponse: UInt8?, keyboardOutput: [UInt8],
        lastReadByte: UInt8, commandAwaitingData: UInt8?, keyboardCommandAwaitingParameter: UInt8?,
        lastWriteWasCommand: Bool, keyboardScanning: Bool, scanCodeSet: UInt8, interruptLineHigh: Bool
    ) {
        self.controllerRAM = controllerRAM
        self.outputPort = outputPort
        self.controllerResponse = controllerResponse
        self.keyboardOutput = keyboardOutput
        self.lastReadByte = lastReadByte
        self.commandAwaitingData = commandAwaitingData
        self.keyboardCommandAwaitingParameter = keyboardCommandAwaitingParameter
        self.lastWriteWasCommand = lastWriteWasCommand
        self.keyboardScanning = keyboardScanning
        self.scanCodeSet = scanCodeSet
        self.interruptLineHigh = interruptLineHigh
    }

    static let component = "i8042"
    static let ramSize = 32

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        try DeviceStateError.require(
            controllerRAM.count == Self.ramSize, c, "controllerRAM has \(controllerRAM.count) bytes, not \(Self.ramSize)")
        if let command = commandAwaitingData {
            typealias Command = I8042Controller.Command
            let takesData =
                (Command.writeRAMFirst...Command.writeRAMLast).contains(command)
                || (Command.writeOutputPort...Command.writeAux).contains(command)
            try DeviceStateError.require(
                takesData, c, "commandAwaitingData \(StateText.hex(command)) is not a command that takes a data byte")
            try DeviceStateError.require(
                lastWriteWasCommand, c, "commandAwaitingData \(StateText.hex(command)) is set but the last write was data")
        }
        if let command = keyboardCommandAwaitingParameter {
            typealias Keyboard = I8042Controller.Keyboard
            try DeviceStateError.require(
                [Keyboard.setLEDs, Keyboard.scanCodeSet, Keyboard.setTypematic].contains(command), c,
                "keyboardCommandAwaitingParameter \(StateText.hex(command)) is not a keyboard command that takes a parameter")
        }
        let capacity = I8042Controller.keyboardQueueCapacity
        try DeviceStateError.require(
            keyboardOutput.count <= capacity, c, "keyboardOutput holds \(keyboardOutput.count) bytes, more than \(capacity)")
        try DeviceStateError.require((1...3).contains(scanCodeSet), c, "scanCodeSet \(scanCodeSet) is not 1, 2 or 3")
        let asserted = I8042Controller(restoring: self).interruptAsserted
        try DeviceStateError.require(
            interruptLineHigh == asserted, c,
            "interruptLineHigh is \(interruptLineHigh) but the output buffer and command byte make the line \(asserted ? "high" : "low")")
    }
}

extension I8042Controller {
    /// The controller state `saved` describes (already validated), with the line low; the
    /// caller sets the line level.
    init(restoring saved: I8042State) {
        self.init()
        for (i, byte) in saved.controllerRAM.prefix(ram.count).enumerated() { ram[i] = byte }
        outputPort = saved.outputPort
        controllerReply = saved.controllerResponse
        keyboardQueue = ByteQueue(capacity: Self.keyboardQueueCapacity, contents: saved.keyboardOutput)
        lastOutput = saved.lastReadByte
        pendingCommand = saved.commandAwaitingData
        pendingKeyboardCommand = saved.keyboardCommandAwaitingParameter
        lastWriteWasCommand = saved.lastWriteWasCommand
        scanning = saved.keyboardScanning
        scanSet = saved.scanCodeSet
    }

    var saved: I8042State {
        I8042State(
            controllerRAM: ram, outputPort: outputPort, controllerResponse: controllerReply,
            keyboardOutput: keyboardQueue.contents, lastReadByte: lastOutput, commandAwaitingData: pendingCommand,
            keyboardCommandAwaitingParameter: pendingKeyboardCommand, lastWriteWasCommand: lastWriteWasCommand,
            keyboardScanning: scanning, scanCodeSet: scanSet, interruptLineHigh: line.isHigh)
    }
}

extension I8042: StatePersistable {
    public func saveState() -> I8042State {
        state.withLock { $0.saved }
    }

    /// Validates `saved` and replaces the controller's state with it; on error nothing changes.
    ///
    /// Interrupt line: as `Serial16550.restoreState(_:)`, the controller takes
    /// `saved.interruptLineHigh` as IRQ 1's current level without driving it, because the
    /// interrupt controllers restored from the same snapshot already hold the pin at that level
    /// (and driving it high again would re-deliver an edge KVM has already delivered). The
    /// next change, such as the guest reading the output buffer, is an edge as on the source.
    public func restoreState(_ saved: I8042State) throws(DeviceStateError) {
        try saved.validate()
        state.withLock { state in
            var restored = I8042Controller(restoring: saved)
            restored.line = state.line
            restored.line.adopt(saved.interruptLineHigh)
            state = restored
        }
    }
}
