import DeviceModel
import Testing

@testable import LegacyDevices

private let dataPort: UInt64 = 0
private let commandPort: UInt64 = 4

private struct KBCBench {
    let line = RecordingLine()
    let machine = RecordingMachine()
    let kbc: I8042

    init() {
        kbc = I8042(interrupt: line, machine: machine)
    }

    var status: UInt8 { kbc.readByte(commandPort) }

    /// Status and data reads until the output buffer is empty, as an interrupt handler would.
    func drain() -> [UInt8] {
        var trace: [UInt8] = []
        for _ in 0..<40 {
            let s = status
            trace.append(s)
            guard s & 0x01 != 0 else { break }
            trace.append(kbc.readByte(dataPort))
        }
        return trace
    }
}

/// A controller in the middle of things: a new command byte with translation, A20 off, a CTR
/// read answered but not yet read, keyboard bytes queued behind it, 0xD1 waiting for its data
/// byte and the keyboard waiting for the parameter of 0xF0.
private func driveIntoBusyState(_ b: KBCBench) {
    b.kbc.writeByte(commandPort, 0x60)
    b.kbc.writeByte(dataPort, 0x45)  // KBDINT | SYS | translate
    b.kbc.writeByte(commandPort, 0xdd)  // A20 off
    b.kbc.writeByte(dataPort, 0xf0)  // keyboard: select scan code set... (ACK queued)
    b.kbc.injectKeyboardBytes([0x1e, 0x9e])
    b.kbc.writeByte(commandPort, 0x20)  // read CTR: the reply goes first
    b.kbc.writeByte(commandPort, 0xd1)  // write output port: waits for data
}

@Suite struct I8042PersistTests {
    @Test func savedStateNamesEverything() throws {
        let b = KBCBench()
        driveIntoBusyState(b)
        let s = b.kbc.saveState()
        #expect(s.controllerRAM.count == 32)
        #expect(s.controllerRAM[0] == 0x45)
        #expect(s.outputPort == 0xcd)
        #expect(s.controllerResponse == 0x45)
        #expect(s.keyboardOutput == [0xfa, 0x1e, 0x9e])
        #expect(s.commandAwaitingData == 0xd1)
        #expect(s.keyboardCommandAwaitingParameter == 0xf0)
        #expect(s.lastWriteWasCommand)
        #expect(s.keyboardScanning)
        #expect(s.scanCodeSet == 2)
        #expect(s.interruptLineHigh)
        try s.validate()
    }

    @Test func restoredControllerContinuesLikeTheOriginal() throws {
        let original = KBCBench()
        driveIntoBusyState(original)
        let saved = original.kbc.saveState()
        let restored = KBCBench()
        try restored.kbc.restoreState(saved)
        #expect(restored.kbc.saveState() == saved)
        #expect(restored.line.history.isEmpty)
        original.line.clear()

        var traces: [[UInt8]] = []
        for b in [original, restored] {
            var trace: [UInt8] = [b.status]
            b.kbc.writeByte(dataPort, 0xcf)  // the 0xD1 data byte: A20 back on, no reset
            trace += b.drain()  // CTR reply, then ACK and the two scan codes
            b.kbc.writeByte(dataPort, 0x01)  // the 0xF0 parameter: scan code set 1
            b.kbc.writeByte(dataPort, 0xf0)
            b.kbc.writeByte(dataPort, 0x00)  // query the set
            trace += b.drain()
            b.kbc.writeByte(commandPort, 0xd0)  // read the output port
            trace += b.drain()
            trace.append(b.kbc.readByte(dataPort))  // empty buffer: the last byte again
            traces.append(trace)
        }
        #expect(traces[0] == traces[1])
        #expect(traces[0].contains(0x45) && traces[0].contains(0xcf))
        #expect(original.line.history == restored.line.history)
        #expect(original.machine.requests == restored.machine.requests)
        #expect(original.kbc.saveState() == restored.kbc.saveState())
    }

    @Test func heldKeyboardBytesStayHeldUntilTheKeyboardIsEnabled() throws {
        let original = KBCBench()
        original.kbc.writeByte(commandPort, 0xad)  // disable the keyboard interface
        original.kbc.injectKeyboardBytes([0x2a, 0xaa])
        #expect(!original.line.isHigh)
        let restored = KBCBench()
        try restored.kbc.restoreState(original.kbc.saveState())
        original.line.clear()
        for b in [original, restored] {
            #expect(b.status & 0x01 == 0)
            b.kbc.writeByte(commandPort, 0xae)
            #expect(b.line.isHigh)
        }
        #expect(original.drain() == restored.drain())
        #expect(original.line.history == restored.line.history)
    }

    @Test func lineLevelIsAdoptedNotDriven() throws {
        let original = KBCBench()
        original.kbc.injectKeyboardBytes([0x1c])
        #expect(original.line.isHigh)
        let restored = KBCBench()
        try restored.kbc.restoreState(original.kbc.saveState())
        #expect(restored.line.history.isEmpty)
        #expect(restored.kbc.readByte(dataPort) == 0x1c)
        #expect(restored.line.history == [false])

        // A device with its line high restored to a quiet state: not driven either.
        let busy = KBCBench()
        busy.kbc.injectKeyboardBytes([0x1c])
        busy.line.clear()
        try busy.kbc.restoreState(KBCBench().kbc.saveState())
        #expect(busy.line.history.isEmpty)
        busy.kbc.injectKeyboardBytes([0x1d])
        #expect(busy.line.history == [true])
    }

    static let corruptions: [Corruption<I8042State>] = [
        Corruption("controllerRAM", "31 bytes") { $0.controllerRAM.removeLast() },
        Corruption("controllerRAM", "33 bytes") { $0.controllerRAM.append(0) },
        Corruption("commandAwaitingData", "a read command") { $0.commandAwaitingData = 0x20 },
        Corruption("commandAwaitingData", "self test") { $0.commandAwaitingData = 0xaa },
        Corruption("commandAwaitingData", "after a data write") { $0.lastWriteWasCommand = false },
        Corruption("keyboardCommandAwaitingParameter", "enable scanning") { $0.keyboardCommandAwaitingParameter = 0xf4 },
        Corruption("keyboardOutput", "16 bytes") { $0.keyboardOutput = [UInt8](repeating: 0x1e, count: 16) },
        Corruption("scanCodeSet", "0") { $0.scanCodeSet = 0 },
        Corruption("scanCodeSet", "4") { $0.scanCodeSet = 4 },
        Corruption("interruptLineHigh", "low with a byte waiting") { $0.interruptLineHigh = false },
        Corruption("interruptLineHigh", "high with KBDINT off") { $0.controllerRAM[0] &= ~0x01 },
        Corruption("interruptLineHigh", "high with nothing to read") {
            $0.controllerResponse = nil
            $0.keyboardOutput = []
        },
        Corruption("interruptLineHigh", "high with only held keyboard bytes") {
            $0.controllerResponse = nil
            $0.controllerRAM[0] |= 0x10
        },
    ]

    @Test(arguments: Self.corruptions)
    func corruptStateIsRefused(_ corruption: Corruption<I8042State>) {
        let source = KBCBench()
        driveIntoBusyState(source)
        let bad = corruption.applied(to: source.kbc.saveState())
        expectInvalid(bad, component: "i8042", field: corruption.field)
        let target = KBCBench()
        target.kbc.writeByte(commandPort, 0xaa)  // self test answered, line high
        target.line.clear()
        expectRestoreRefused(target.kbc, bad, component: "i8042", field: corruption.field)
        #expect(target.line.history.isEmpty)
        #expect(target.kbc.readByte(dataPort) == 0x55)
        #expect(target.line.history == [false])
    }

    @Test(arguments: [UInt64(0x8042_0001), 0x8042_0002, 0x8042_0003, 0x8042_0004])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let original = KBCBench()
        func step(_ benches: [KBCBench], _ random: inout SplitMix64) -> [[UInt8]] {
            switch UInt8.random(in: 0..<20, using: &random) {
            case 0:
                let bytes = (0..<Int.random(in: 0...6, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                return benches.map { [UInt8(truncatingIfNeeded: $0.kbc.injectKeyboardBytes(bytes))] }
            case 1:
                return benches.map { [$0.kbc.sendCtrlAltDel() ? 1 : 0] }
            default:
                // Commands other than resets (0xF0–0xFF pulses) keep the history interesting.
                var access = GuestAccess.random(range: I8042.portRange, favouring: [0, 4], using: &random)
                if access.isWrite, access.offset == 4, access.bytes.count == 1, access.bytes[0] >= 0xf0 {
                    access = GuestAccess(offset: 4, bytes: [0x20], isWrite: true)
                }
                return benches.map { access.perform(on: $0.kbc) }
            }
        }
        for _ in 0..<3_000 { _ = step([original], &random) }
        let saved = original.kbc.saveState()
        try saved.validate()
        let restored = KBCBench()
        try restored.kbc.restoreState(saved)
        #expect(restored.kbc.saveState() == saved)
        original.line.clear()
        let requestsBefore = original.machine.requests.count
        for i in 0..<3_000 {
            let results = step([original, restored], &random)
            if results[0] != results[1] {
                Issue.record("step \(i) after restore: original \(results[0]), restored \(results[1])")
                return
            }
        }
        #expect(original.line.history == restored.line.history)
        #expect(Array(original.machine.requests.dropFirst(requestsBefore)) == restored.machine.requests)
        #expect(original.kbc.saveState() == restored.kbc.saveState())
    }
}
