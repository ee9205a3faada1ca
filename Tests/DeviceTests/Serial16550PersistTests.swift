import DeviceModel
import Synchronization
import Testing

@testable import LegacyDevices

private enum Reg {
    static let data: UInt64 = 0, ier: UInt64 = 1, iir: UInt64 = 2, fcr: UInt64 = 2
    static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
}

/// Counts calls from any thread.
private final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// A UART with its line, console and host-input wake-up counter.
private final class UARTBench: Sendable {
    let line = RecordingLine()
    let console = CapturingConsole()
    let wakeUps = Counter()
    let uart: Serial16550

    init(inputCapacity: Int = 64) {
        let counter = wakeUps
        uart = Serial16550(interrupt: line, output: console, inputCapacity: inputCapacity,
                           inputSpaceAvailable: { counter.increment() })
    }

    /// Reads every register the way a guest's interrupt handler and a status poll would, and
    /// drains the receiver; returns everything read.
    func guestDrain() -> [UInt8] {
        var trace: [UInt8] = []
        for _ in 0..<200 {
            let iir = uart.readByte(Reg.iir)
            trace.append(iir)
            let lsr = uart.readByte(Reg.lsr)
            trace.append(lsr)
            if lsr & 0x01 != 0 {
                trace.append(uart.readByte(Reg.data))
            } else if iir & 0x01 != 0 {
                break
            }
        }
        trace.append(uart.readByte(Reg.msr))
        return trace
    }
}

/// Drives a UART as a Linux 8250 driver and a busy console would: FIFO mode, trigger 8, all
/// interrupts on, a divisor programmed, a receive backlog in the host queue, a latched overrun
/// and modem deltas from a loopback test, THRE pending after a transmit, DLAB left set.
private func driveIntoBusyState(_ b: UARTBench) {
    let uart = b.uart
    uart.writeByte(Reg.lcr, 0x83)
    uart.writeByte(Reg.data, 0x01)  // DLL: 115200 baud
    uart.writeByte(Reg.ier, 0x00)  // DLM
    uart.writeByte(Reg.lcr, 0x03)
    uart.writeByte(Reg.fcr, 0x87)  // FIFO on, both reset, trigger 8, DMA mode 0
    uart.writeByte(Reg.mcr, 0x10)  // loopback with every output off: the modem inputs fall
    uart.writeByte(Reg.mcr, 0x0b)  // back: DTR | RTS | OUT2, deltas latched
    uart.writeByte(Reg.scr, 0x5a)
    uart.writeByte(Reg.ier, 0x0f)
    for byte in "login: ".utf8 { uart.writeByte(Reg.data, byte) }
    // 16 bytes into the FIFO, the rest wait in the host queue; one more than fits is an overrun.
    let offered = (0..<90).map { UInt8(truncatingIfNeeded: 0x30 + $0) }
    #expect(uart.enqueueInput(offered) == 64 + 16)  // capacity 64 plus the FIFO's 16
    _ = uart.readByte(Reg.data)  // the guest starts reading: one byte moves up from the host queue
    uart.writeByte(Reg.lcr, 0x83)  // a divisor read-back in progress
}

@Suite struct Serial16550PersistTests {
    @Test func savedStateNamesEveryRegister() {
        let b = UARTBench()
        driveIntoBusyState(b)
        let s = b.uart.saveState()
        #expect(s.interruptEnable == 0x0f)
        #expect(s.lineControl == 0x83)
        #expect(s.modemControl == 0x0b)
        #expect(s.scratch == 0x5a)
        #expect(s.divisorLatch == 1)
        #expect(s.fifosEnabled)
        #expect(s.fifoControl == 0x80)
        #expect(s.receiveTriggerLevel == 8)
        #expect(s.latchedLineErrors == 0x02)  // OE
        #expect(s.transmitterEmptyInterruptPending)
        #expect(s.modemStatusDeltas != 0)
        #expect(s.receiveFIFO == (1...16).map { UInt8(0x30 + $0) })
        #expect(s.pendingHostInput == (17..<80).map { UInt8(truncatingIfNeeded: 0x30 + $0) })
        #expect(s.interruptLineHigh)
        #expect(throws: Never.self) { try s.validate() }
    }

    @Test func restoredUARTContinuesLikeTheOriginal() throws {
        let original = UARTBench()
        driveIntoBusyState(original)
        let saved = original.uart.saveState()
        let restored = UARTBench()
        try restored.uart.restoreState(saved)
        #expect(restored.uart.saveState() == saved)
        #expect(restored.line.history.isEmpty)  // the level is adopted, not driven

        original.line.clear()
        let consoleBefore = original.console.output.count
        for b in [original, restored] {
            // The divisor read-back in progress finishes, then the interrupt handler runs.
            _ = b.uart.readByte(Reg.data)
        }
        #expect(original.uart.readByte(Reg.data) == restored.uart.readByte(Reg.data))
        #expect(original.uart.readByte(Reg.ier) == restored.uart.readByte(Reg.ier))
        original.uart.writeByte(Reg.lcr, 0x03)
        restored.uart.writeByte(Reg.lcr, 0x03)
        let a = original.guestDrain()
        let b = restored.guestDrain()
        #expect(a == b)
        #expect(a.contains(0xc6))  // the overrun was still pending
        #expect(a.contains(0xcc) || a.contains(0xc4))
        // More traffic both ways after the drain.
        for bench in [original, restored] {
            bench.uart.enqueueInput(Array("abc".utf8))
            bench.uart.writeByte(Reg.data, UInt8(ascii: "!"))
        }
        #expect(original.guestDrain() == restored.guestDrain())
        #expect(original.line.history == restored.line.history)
        #expect(Array(original.console.output.dropFirst(consoleBefore)) == restored.console.output)
        #expect(original.uart.saveState() == restored.uart.saveState())
    }

    @Test func lineLevelIsAdoptedInBothDirections() throws {
        // Saved high, restored into a device whose line is low: nothing is driven, and the
        // first change afterwards is the lowering edge the original makes too.
        let original = UARTBench()
        original.uart.writeByte(Reg.ier, 0x02)
        #expect(original.line.isHigh)
        let high = original.uart.saveState()
        let restored = UARTBench()
        try restored.uart.restoreState(high)
        #expect(restored.line.history.isEmpty)
        #expect(restored.uart.readByte(Reg.iir) == 0x02)
        #expect(restored.line.history == [false])

        // Saved low, restored into a device whose line is high (restore while paused, the
        // interrupt controller restored from the same snapshot): nothing is driven either, and
        // a new interrupt raises the line again.
        let busy = UARTBench()
        busy.uart.writeByte(Reg.ier, 0x02)
        busy.line.clear()
        let low = UARTBench().uart.saveState()
        #expect(!low.interruptLineHigh)
        try busy.uart.restoreState(low)
        #expect(busy.line.history.isEmpty)
        busy.uart.writeByte(Reg.ier, 0x02)
        #expect(busy.line.history == [true])
    }

    @Test func loopbackWithHeldHostInputSurvives() throws {
        let original = UARTBench()
        original.uart.writeByte(Reg.mcr, 0x1b)  // loopback, OUT2, DTR, RTS
        original.uart.writeByte(Reg.data, 0x11)  // 16450 mode: RBR takes it
        original.uart.writeByte(Reg.data, 0x22)  // overwrites RBR, OE
        original.uart.enqueueInput([0x41, 0x42, 0x43])  // held while in loopback
        let saved = original.uart.saveState()
        #expect(saved.receiveFIFO == [0x22])
        #expect(saved.pendingHostInput == [0x41, 0x42, 0x43])
        let restored = UARTBench()
        try restored.uart.restoreState(saved)
        for b in [original, restored] { b.uart.writeByte(Reg.mcr, 0x0b) }
        #expect(original.guestDrain() == restored.guestDrain())
        #expect(original.uart.saveState() == restored.uart.saveState())
    }

    @Test func inputCapacityMustHoldThePendingInput() {
        let original = UARTBench(inputCapacity: 64)
        driveIntoBusyState(original)
        let small = UARTBench(inputCapacity: 8)
        small.uart.writeByte(Reg.scr, 0x77)
        expectRestoreRefused(small.uart, original.uart.saveState(), component: "uart", field: "pendingHostInput")
        #expect(small.uart.readByte(Reg.scr) == 0x77)
        #expect(small.line.history.isEmpty)
    }

    @Test func waitingHostReaderIsWokenWhenTheRestoredQueueHasRoom() throws {
        let b = UARTBench(inputCapacity: 8)
        b.uart.enqueueInput([UInt8](repeating: 1, count: 30))
        #expect(!b.uart.hasRoomForInput())  // the host reader now waits for a wake-up
        #expect(b.wakeUps.value == 0)
        try b.uart.restoreState(UARTBench(inputCapacity: 8).uart.saveState())
        #expect(b.wakeUps.value == 1)
        #expect(b.uart.availableInputSpace() == 8 + 1)
        // A reader that was not waiting is not woken.
        let idle = UARTBench(inputCapacity: 8)
        try idle.uart.restoreState(b.uart.saveState())
        #expect(idle.wakeUps.value == 0)
    }

    static let corruptions: [Corruption<Serial16550State>] = [
        Corruption("interruptEnable", "bit 4") { $0.interruptEnable = 0x1f },
        Corruption("modemControl", "bit 5") { $0.modemControl = 0x2b },
        Corruption("fifoControl", "bit 0 kept") { $0.fifoControl = 0x81 },
        Corruption("fifoControl", "reset bits kept") { $0.fifoControl = 0x86 },
        Corruption("receiveTriggerLevel", "not an encoding") { $0.receiveTriggerLevel = 5 },
        Corruption("receiveTriggerLevel", "another FCR's level") { $0.receiveTriggerLevel = 14 },
        Corruption("latchedLineErrors", "parity error") { $0.latchedLineErrors = 0x04 },
        Corruption("latchedLineErrors", "data ready") { $0.latchedLineErrors = 0x03 },
        Corruption("modemStatusDeltas", "a modem input bit") { $0.modemStatusDeltas = 0x11 },
        Corruption("receiveFIFO", "17 bytes") { $0.receiveFIFO.append(0) },
        Corruption("receiveFIFO", "16 bytes in 16450 mode") {
            $0.fifosEnabled = false
            $0.fifoControl = 0
            $0.receiveTriggerLevel = 1
        },
        Corruption("pendingHostInput", "more than 1 MiB") {
            $0.pendingHostInput = [UInt8](repeating: 0, count: (1 << 20) + 1)
        },
        Corruption("pendingHostInput", "waiting while the FIFO has room") { $0.receiveFIFO.removeLast() },
        Corruption("interruptLineHigh", "low with an enabled interrupt pending") { $0.interruptLineHigh = false },
        Corruption("interruptLineHigh", "high with OUT2 off") { $0.modemControl = 0x03 },
        Corruption("interruptLineHigh", "high in loopback") { $0.modemControl = 0x1b },
    ]

    @Test(arguments: Self.corruptions)
    func corruptStateIsRefused(_ corruption: Corruption<Serial16550State>) {
        let source = UARTBench()
        driveIntoBusyState(source)
        let good = source.uart.saveState()
        let bad = corruption.applied(to: good)
        expectInvalid(bad, component: "uart", field: corruption.field)
        // Into a device in another non-trivial state (THRE pending, line high).
        let target = UARTBench(inputCapacity: 64)
        target.uart.writeByte(Reg.ier, 0x02)
        target.uart.writeByte(Reg.scr, 0x99)
        target.line.clear()
        expectRestoreRefused(target.uart, bad, component: "uart", field: corruption.field)
        #expect(target.line.history.isEmpty)
        #expect(target.uart.readByte(Reg.iir) == 0x02)
        #expect(target.line.history == [false])
    }

    /// A few thousand random guest accesses and host events, save, restore into a new UART,
    /// then the same random accesses on the original and the copy read the same bytes, drive
    /// the same line levels and send the same console output.
    @Test(arguments: [UInt64(0x5eed_0001), 0x5eed_0002, 0x5eed_0003, 0x5eed_0004])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let original = UARTBench(inputCapacity: 32)
        func step(_ benches: [UARTBench], _ random: inout SplitMix64) -> [[UInt8]] {
            switch UInt8.random(in: 0..<16, using: &random) {
            case 0:
                let bytes = (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                return benches.map { [UInt8(truncatingIfNeeded: $0.uart.enqueueInput(bytes))] }
            case 1:
                return benches.map { [$0.uart.sendBreak() ? 1 : 0] }
            case 2:
                return benches.map { [UInt8(truncatingIfNeeded: $0.uart.availableInputSpace())] }
            default:
                let access = GuestAccess.random(range: 8, favouring: [0, 2, 4, 5], using: &random)
                return benches.map { access.perform(on: $0.uart) }
            }
        }
        for _ in 0..<3_000 { _ = step([original], &random) }
        let saved = original.uart.saveState()
        try saved.validate()
        let restored = UARTBench(inputCapacity: 32)
        try restored.uart.restoreState(saved)
        #expect(restored.uart.saveState() == saved)
        original.line.clear()
        let consoleBefore = original.console.output.count
        for i in 0..<3_000 {
            let results = step([original, restored], &random)
            if results[0] != results[1] {
                Issue.record("step \(i) after restore: original \(results[0]), restored \(results[1])")
                return
            }
        }
        #expect(original.line.history == restored.line.history)
        #expect(Array(original.console.output.dropFirst(consoleBefore)) == restored.console.output)
        #expect(original.uart.saveState() == restored.uart.saveState())
    }
}
