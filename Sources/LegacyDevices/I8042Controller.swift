import DeviceModel

/// Register state of an 8042 keyboard controller with a minimal AT keyboard behind it and no
/// auxiliary (mouse) device.
///
/// Pure state, no locking: `I8042` keeps one inside a `Mutex`.
struct I8042Controller: Sendable {
    /// Controller commands written to port 0x64.
    enum Command {
        static let readRAMFirst: UInt8 = 0x20  // 0x20 reads the command byte (CTR)
        static let readRAMLast: UInt8 = 0x3f
        static let writeRAMFirst: UInt8 = 0x60  // 0x60 writes the command byte (CTR)
        static let writeRAMLast: UInt8 = 0x7f
        static let disableAux: UInt8 = 0xa7
        static let enableAux: UInt8 = 0xa8
        static let testAux: UInt8 = 0xa9
        static let selfTest: UInt8 = 0xaa
        static let testKeyboard: UInt8 = 0xab
        static let disableKeyboard: UInt8 = 0xad
        static let enableKeyboard: UInt8 = 0xae
        static let readInputPort: UInt8 = 0xc0
        static let readOutputPort: UInt8 = 0xd0
        static let writeOutputPort: UInt8 = 0xd1
        static let writeKeyboardBuffer: UInt8 = 0xd2
        static let writeAuxBuffer: UInt8 = 0xd3
        static let writeAux: UInt8 = 0xd4
        static let disableA20: UInt8 = 0xdd
        static let enableA20: UInt8 = 0xdf
        /// 0xF0–0xFF pulse output-port bits 0–3 low where the command's bit is 0; bit 0 is the
        /// CPU reset line, so 0xFE (and every even value in this range) resets the machine.
        static let pulseFirst: UInt8 = 0xf0
    }

    /// Status register (port 0x64 reads) bits.
    enum Status {
        static let outputFull: UInt8 = 0x01
        static let inputFull: UInt8 = 0x02
        static let system: UInt8 = 0x04
        static let lastWriteWasCommand: UInt8 = 0x08
        static let notInhibited: UInt8 = 0x10
        static let auxData: UInt8 = 0x20
    }

    /// Controller configuration byte (CTR, RAM byte 0) bits.
    enum Config {
        static let keyboardInterrupt: UInt8 = 0x01
        static let auxInterrupt: UInt8 = 0x02
        static let system: UInt8 = 0x04
        static let keyboardDisabled: UInt8 = 0x10
        static let auxDisabled: UInt8 = 0x20
        static let translate: UInt8 = 0x40
        /// Power-on value: keyboard interrupt on, system flag set (POST done), aux interface
        /// disabled (there is none), no set-2 → set-1 translation (as Firecracker's CTR).
        static let initial: UInt8 = keyboardInterrupt | system | auxDisabled
    }

    /// Output port bits: bit 0 is the CPU reset line (0 = reset), bit 1 the A20 gate.
    enum OutputPort {
        static let reset: UInt8 = 0x01
        static let a20: UInt8 = 0x02
        /// Power-on value as QEMU's: not reset, A20 on, unused lines high.
        static let initial: UInt8 = 0xcf
    }

    /// Controller responses.
    enum Reply {
        static let selfTestPassed: UInt8 = 0x55
        static let interfaceOK: UInt8 = 0x00
        /// Interface test result for the absent aux port: "clock line stuck high", what the
        /// pull-ups of an empty PS/2 socket give.
        static let auxAbsent: UInt8 = 0x02
        static let inputPort: UInt8 = 0x80
    }

    /// Keyboard commands (written to port 0x60 with no controller command pending) and replies.
    enum Keyboard {
        static let setLEDs: UInt8 = 0xed
        static let echo: UInt8 = 0xee
        static let scanCodeSet: UInt8 = 0xf0
        static let identify: UInt8 = 0xf2
        static let setTypematic: UInt8 = 0xf3
        static let enableScanning: UInt8 = 0xf4
        static let disableScanning: UInt8 = 0xf5
        static let setDefaults: UInt8 = 0xf6
        static let resend: UInt8 = 0xfe
        static let reset: UInt8 = 0xff
        static let ack: UInt8 = 0xfa
        static let selfTestPassed: UInt8 = 0xaa
        static let resendReply: UInt8 = 0xfe
        /// Reply to 0xF2: an MF2 keyboard.
        static let identity: (UInt8, UInt8) = (0xab, 0x83)
    }

    /// Keyboard-side output queue: at most 15 bytes, plus the controller's one-byte response,
    /// keeps everything the guest can find waiting within the 16 reads Linux's `i8042_flush`
    /// allows before it declares "No controller found".
    static let keyboardQueueCapacity = 15

    /// The controller's 32 bytes of RAM; byte 0 is the configuration byte (CTR).
    var ram = [UInt8](repeating: 0, count: 32)
    var outputPort = OutputPort.initial
    /// A controller reply (self test, CTR read, ...) waiting in the output buffer; it is read
    /// before any keyboard byte and a newer reply replaces an unread one.
    var controllerReply: UInt8?
    var keyboardQueue = ByteQueue(capacity: I8042Controller.keyboardQueueCapacity)
    /// The last byte the guest read from port 0x60 (what the output buffer reads when empty).
    var lastOutput: UInt8 = 0
    /// Controller command waiting for its data byte on port 0x60.
    var pendingCommand: UInt8?
    /// Keyboard command waiting for its parameter byte.
    var pendingKeyboardCommand: UInt8?
    var lastWriteWasCommand = true
    var scanning = true
    var scanSet: UInt8 = 2
    var line = LineLevel()

    init() {
        ram[0] = Config.initial
    }

    var config: UInt8 {
        get { ram[0] }
        set { ram[0] = newValue }
    }

    /// The byte the guest would read from port 0x60 now, if the output buffer is full.
    /// Keyboard bytes are held back while the keyboard interface is disabled (CTR bit 4).
    var visibleOutput: UInt8? {
        if let controllerReply { return controllerReply }
        guard config & Config.keyboardDisabled == 0 else { return nil }
        return keyboardQueue.first
    }

    var status: UInt8 {
        var status = Status.notInhibited
        if visibleOutput != nil { status |= Status.outputFull }
        if config & Config.system != 0 { status |= Status.system }
        if lastWriteWasCommand { status |= Status.lastWriteWasCommand }
        return status
    }

    /// IRQ 1 is asserted while the output buffer is full and CTR enables the keyboard interrupt.
    var interruptAsserted: Bool {
        visibleOutput != nil && config & Config.keyboardInterrupt != 0
    }

    // MARK: Guest access

    /// Port 0x60 read: takes the byte in the output buffer.
    mutating func readData() -> UInt8 {
        if let reply = controllerReply {
            controllerReply = nil
            lastOutput = reply
        } else if config & Config.keyboardDisabled == 0, let byte = keyboardQueue.pop() {
            lastOutput = byte
        }
        return lastOutput
    }

    /// Port 0x64 write. Returns true when the command resets the machine.
    mutating func writeCommand(_ command: UInt8) -> Bool {
        lastWriteWasCommand = true
        pendingCommand = nil
        switch command {
        case Command.readRAMFirst...Command.readRAMLast:
            reply(ram[Int(command & 0x1f)])
        case Command.writeRAMFirst...Command.writeRAMLast,
            Command.writeOutputPort, Command.writeKeyboardBuffer, Command.writeAuxBuffer, Command.writeAux:
            pendingCommand = command
        case Command.disableAux, Command.enableAux:
            break  // no aux interface: CTR bit 5 does not follow, which is how drivers tell
        case Command.testAux:
            reply(Reply.auxAbsent)
        case Command.selfTest:
            config |= Config.system
            reply(Reply.selfTestPassed)
        case Command.testKeyboard:
            reply(Reply.interfaceOK)
        case Command.disableKeyboard:
            config |= Config.keyboardDisabled
        case Command.enableKeyboard:
            config &= ~Config.keyboardDisabled
        case Command.readInputPort:
            reply(Reply.inputPort)
        case Command.readOutputPort:
            reply(outputPort)
        case Command.disableA20:
            outputPort &= ~OutputPort.a20
        case Command.enableA20:
            outputPort |= OutputPort.a20
        case Command.pulseFirst...0xff:
            return command & OutputPort.reset == 0
        default:
            break  // unsupported commands are ignored
        }
        return false
    }

    /// Port 0x60 write. Returns true when it resets the machine (output port bit 0 cleared).
    mutating func writeData(_ value: UInt8) -> Bool {
        lastWriteWasCommand = false
        guard let command = pendingCommand else {
            keyboardReceive(value)
            return false
        }
        pendingCommand = nil
        switch command {
        case Command.writeRAMFirst...Command.writeRAMLast:
            ram[Int(command & 0x1f)] = value
        case Command.writeOutputPort:
            outputPort = value
            return value & OutputPort.reset == 0
        case Command.writeKeyboardBuffer:
            keyboardQueue.push(value)
        default:
            break  // 0xD3 / 0xD4: the aux device is absent, the byte goes nowhere
        }
        return false
    }

    private mutating func reply(_ byte: UInt8) {
        controllerReply = byte
    }

    // MARK: The keyboard

    /// A byte sent to the keyboard. Replies go to the keyboard queue; a full queue drops them.
    private mutating func keyboardReceive(_ byte: UInt8) {
        if let command = pendingKeyboardCommand {
            pendingKeyboardCommand = nil
            keyboardParameter(byte, for: command)
            return
        }
        switch byte {
        case Keyboard.setLEDs, Keyboard.setTypematic, Keyboard.scanCodeSet:
            pendingKeyboardCommand = byte
            keyboardQueue.push(Keyboard.ack)
        case Keyboard.echo:
            keyboardQueue.push(Keyboard.echo)
        case Keyboard.identify:
            keyboardQueue.push(Keyboard.ack)
            keyboardQueue.push(Keyboard.identity.0)
            keyboardQueue.push(Keyboard.identity.1)
        case Keyboard.enableScanning:
            scanning = true
            keyboardQueue.push(Keyboard.ack)
        case Keyboard.disableScanning:
            scanning = false
            keyboardQueue.push(Keyboard.ack)
        case Keyboard.setDefaults, 0xf7...0xfd, Keyboard.resend:
            keyboardQueue.push(Keyboard.ack)
        case Keyboard.reset:
            scanning = true
            scanSet = 2
            keyboardQueue.push(Keyboard.ack)
            keyboardQueue.push(Keyboard.selfTestPassed)
        default:
            keyboardQueue.push(Keyboard.resendReply)
        }
    }

    private mutating func keyboardParameter(_ byte: UInt8, for command: UInt8) {
        guard command == Keyboard.scanCodeSet else {
            keyboardQueue.push(Keyboard.ack)
            return
        }
        switch byte {
        case 0:
            keyboardQueue.push(Keyboard.ack)
            keyboardQueue.push(scanSet)
        case 1...3:
            scanSet = byte
            keyboardQueue.push(Keyboard.ack)
        default:
            keyboardQueue.push(Keyboard.resendReply)
        }
    }

    /// Queues bytes as if the keyboard had sent them; returns how many fit.
    mutating func injectKeyboardBytes(_ bytes: some Collection<UInt8>) -> Int {
        var accepted = 0
        for byte in bytes {
            guard keyboardQueue.push(byte) else { break }
            accepted += 1
        }
        return accepted
    }

    /// Back to power-on state.
    mutating func reset() {
        let line = self.line
        self = I8042Controller()
        self.line = line
    }
}
