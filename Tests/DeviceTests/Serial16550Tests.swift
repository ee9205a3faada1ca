import DeviceModel
import Synchronization
import Testing

@testable import LegacyDevices

private enum Reg {
    static let data: UInt64 = 0, ier: UInt64 = 1, iir: UInt64 = 2, fcr: UInt64 = 2
    static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
}

private struct UART16550Fixture {
    let line = RecordingLine()
    let console = CapturingConsole()
    let uart: Serial16550

    init(inputCapacity: Int = 4096, onSpace: (@Sendable () -> Void)? = nil) {
        uart = Serial16550(interrupt: line, output: console, inputCapacity: inputCapacity, inputSpaceAvailable: onSpace)
    }

    func iir() -> UInt8 { uart.readByte(Reg.iir) }
    func lsr() -> UInt8 { uart.readByte(Reg.lsr) }
}

@Suite struct Serial16550Tests {
    @Test func powerOnRegisters() {
        let f = UART16550Fixture()
        #expect(f.uart.readByte(Reg.ier) == 0)
        #expect(f.iir() == 0x01)
        #expect(f.uart.readByte(Reg.lcr) == 0)
        #expect(f.uart.readByte(Reg.mcr) == 0x08)
        #expect(f.lsr() == 0x60)  // THRE | TEMT
        #expect(f.uart.readByte(Reg.msr) == 0xb0)  // DCD | DSR | CTS, no deltas
        #expect(f.uart.readByte(Reg.data) == 0)
        #expect(!f.line.isHigh)
    }

    @Test func divisorLatch() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.lcr, 0x83)  // DLAB | 8N1
        #expect(f.uart.readByte(Reg.data) == 12)  // reset divisor: 9600 baud
        #expect(f.uart.readByte(Reg.ier) == 0)
        f.uart.writeByte(Reg.data, 0x01)
        f.uart.writeByte(Reg.ier, 0x02)
        #expect(f.uart.readByte(Reg.data) == 0x01)
        #expect(f.uart.readByte(Reg.ier) == 0x02)
        #expect(f.console.output.isEmpty)  // DLL writes are not transmitted
        #expect(f.uart.withState { $0.divisor } == 0x0201)
        f.uart.writeByte(Reg.lcr, 0x03)
        #expect(f.uart.readByte(Reg.ier) == 0)  // IER untouched by the DLM write
        f.uart.writeByte(Reg.data, UInt8(ascii: "A"))
        #expect(f.console.text == "A")
        #expect(f.uart.readByte(Reg.lcr) == 0x03)
    }

    @Test func transmitGoesToConsoleAndLSRStaysEmpty() {
        let f = UART16550Fixture()
        for byte in "hello\n".utf8 {
            #expect(f.lsr() & 0x20 != 0)
            f.uart.writeByte(Reg.data, byte)
        }
        #expect(f.console.text == "hello\n")
        #expect(f.lsr() == 0x60)
    }

    @Test func scratchRegister() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.scr, 0xa5)
        #expect(f.uart.readByte(Reg.scr) == 0xa5)
    }

    @Test func thrEmptyInterruptArmAndClear() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.ier, 0x02)
        #expect(f.line.isHigh)
        #expect(f.line.risingEdges == 1)
        // Reading IIR while THRE is the source clears it.
        #expect(f.iir() == 0x02)
        #expect(!f.line.isHigh)
        #expect(f.iir() == 0x01)
        // Each byte written re-arms THRE with a fresh edge.
        f.uart.writeByte(Reg.data, 0x41)
        #expect(f.line.isHigh)
        #expect(f.line.risingEdges == 2)
        f.uart.writeByte(Reg.data, 0x42)
        #expect(f.line.risingEdges == 3)
        #expect(f.iir() == 0x02)
        // Disabling ETBEI masks it; enabling again re-raises it (Linux's UART_BUG_THRE probe).
        f.uart.writeByte(Reg.ier, 0x00)
        #expect(f.iir() == 0x01)
        f.uart.writeByte(Reg.ier, 0x02)
        #expect(f.iir() == 0x02)
        #expect(f.iir() == 0x01)
    }

    @Test func out2GatesTheInterruptLine() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.mcr, 0x03)  // DTR | RTS, OUT2 off
        f.uart.writeByte(Reg.ier, 0x02)
        #expect(!f.line.isHigh)
        f.uart.writeByte(Reg.mcr, 0x0b)
        #expect(f.line.isHigh)
        #expect(f.iir() == 0x02)  // IIR reports the source regardless of OUT2
        #expect(!f.line.isHigh)
    }

    @Test func fifoEnableBitsInIIR() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.fcr, 0x01)
        #expect(f.iir() == 0xc1)
        f.uart.writeByte(Reg.fcr, 0xc7)  // enable, reset both, trigger 14
        #expect(f.iir() == 0xc1)
        #expect(f.uart.withState { $0.triggerLevel } == 14)
        f.uart.writeByte(Reg.fcr, 0x00)
        #expect(f.iir() == 0x01)
        // FCR bits other than bit 0 are not programmed while bit 0 is clear.
        f.uart.writeByte(Reg.fcr, 0x40)
        #expect(f.iir() == 0x01)
        #expect(f.uart.withState { $0.triggerLevel } == 14)
    }

    @Test(arguments: [(UInt8(0x01), 1), (0x41, 4), (0x81, 8), (0xc1, 14)])
    func receiveTriggerLevels(fcr: UInt8, level: Int) {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.fcr, fcr)
        f.uart.writeByte(Reg.ier, 0x01)
        if level > 1 {
            f.uart.enqueueInput([UInt8](repeating: 0x61, count: level - 1))
            #expect(f.iir() == 0xcc)  // below the trigger level: character timeout
            #expect(f.line.isHigh)
        }
        f.uart.enqueueInput([0x62])
        #expect(f.iir() == 0xc4)  // trigger level reached: received data available
        #expect(f.line.isHigh)
        for _ in 0..<level { _ = f.uart.readByte(Reg.data) }
        #expect(f.iir() == 0xc1)
        #expect(!f.line.isHigh)
        #expect(f.lsr() & 0x01 == 0)
    }

    @Test func interruptPriorities() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.fcr, 0x01)
        // Loopback fills the FIFO past its end (overrun) and toggles modem inputs (delta bits).
        f.uart.writeByte(Reg.mcr, 0x1f)
        for i in 0..<17 { f.uart.writeByte(Reg.data, UInt8(i)) }
        f.uart.writeByte(Reg.mcr, 0x08)  // leave loopback, OUT2 on
        f.uart.writeByte(Reg.ier, 0x0f)
        #expect(f.line.isHigh)
        #expect(f.iir() == 0xc6)  // receiver line status (OE) first
        #expect(f.lsr() & 0x03 == 0x03)  // DR | OE; reading clears OE
        #expect(f.iir() == 0xc4)  // then received data (16 bytes ≥ trigger 1)
        var received: [UInt8] = []
        while f.lsr() & 0x01 != 0 { received.append(f.uart.readByte(Reg.data)) }
        #expect(received == Array(0..<16))  // the 17th byte was lost, the FIFO kept its contents
        #expect(f.iir() == 0xc2)  // then THR empty, cleared by this read
        let msr = f.uart.readByte(Reg.msr)
        #expect(msr & 0x0f != 0)
        #expect(f.iir() == 0xc1)
        #expect(!f.line.isHigh)
    }

    @Test func modemStatusInterruptOnlyAfterThr() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.mcr, 0x18)  // loopback with OUT2: CTS and DSR fall, DCD stays
        f.uart.writeByte(Reg.mcr, 0x19)  // DTR → DSR rises
        f.uart.writeByte(Reg.mcr, 0x08)  // back to normal: inputs change again
        f.uart.writeByte(Reg.ier, 0x0a)  // THRE and modem status
        #expect(f.iir() == 0x02)
        #expect(f.iir() == 0x00)
        #expect(f.line.isHigh)
        _ = f.uart.readByte(Reg.msr)
        #expect(f.iir() == 0x01)
        #expect(!f.line.isHigh)
    }

    @Test func loopback() {
        let f = UART16550Fixture()
        // Linux's 8250 probe: loopback with OUT2 | RTS must read back DCD | CTS.
        f.uart.writeByte(Reg.mcr, 0x1a)
        #expect(f.uart.readByte(Reg.msr) & 0xf0 == 0x90)
        f.uart.writeByte(Reg.mcr, 0x15)  // loopback, DTR, OUT1 → DSR, RI
        #expect(f.uart.readByte(Reg.msr) == 0x60 | 0x01 | 0x02 | 0x08)  // DSR|RI; ΔCTS, ΔDSR, ΔDCD
        f.uart.writeByte(Reg.mcr, 0x10)
        #expect(f.uart.readByte(Reg.msr) == 0x02 | 0x04)  // ΔDSR, trailing edge RI
        // Transmitted bytes come back to the receiver, not the console.
        f.uart.writeByte(Reg.data, 0x5a)
        #expect(f.lsr() & 0x01 == 0x01)
        #expect(f.uart.readByte(Reg.data) == 0x5a)
        #expect(f.console.output.isEmpty)
        // The IRQ output is gated off in loopback even though RX data is enabled and pending.
        f.uart.writeByte(Reg.ier, 0x01)
        f.uart.writeByte(Reg.data, 0x33)
        #expect(f.iir() == 0x04)
        #expect(!f.line.isHigh)
        // Host input waits while in loopback, then arrives.
        f.uart.enqueueInput([0x77])
        #expect(f.uart.readByte(Reg.data) == 0x33)
        #expect(f.lsr() & 0x01 == 0)
        f.uart.writeByte(Reg.mcr, 0x08)
        #expect(f.uart.readByte(Reg.data) == 0x77)
    }

    @Test func overrunIn16450ModeOverwritesRBR() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.mcr, 0x10)
        f.uart.writeByte(Reg.data, 0x01)
        f.uart.writeByte(Reg.data, 0x02)
        #expect(f.lsr() == 0x63)  // THRE | TEMT | OE | DR
        #expect(f.lsr() == 0x61)  // OE cleared by the read
        #expect(f.uart.readByte(Reg.data) == 0x02)
    }

    @Test func receiveInterruptOnEnqueueInput() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.ier, 0x01)
        #expect(!f.line.isHigh)
        #expect(f.uart.enqueueInput(Array("ok".utf8)) == 2)
        #expect(f.line.isHigh)
        #expect(f.iir() == 0x04)
        #expect(f.uart.readByte(Reg.data) == UInt8(ascii: "o"))
        // 16450 mode: RBR holds one byte; the next arrives from the host queue as it is read.
        #expect(f.line.isHigh)
        #expect(f.uart.readByte(Reg.data) == UInt8(ascii: "k"))
        #expect(!f.line.isHigh)
        #expect(f.iir() == 0x01)
        #expect(f.lsr() & 0x01 == 0)
    }

    @Test func inputIsBoundedAndOverrunIsReported() {
        let notified = Mutex(0)
        let f = UART16550Fixture(inputCapacity: 32) { notified.withLock { $0 += 1 } }
        f.uart.writeByte(Reg.fcr, 0x01)
        #expect(f.uart.availableInputSpace() == 32 + 16)
        let offered = [UInt8](repeating: 0x78, count: 100)
        #expect(f.uart.enqueueInput(offered) == 48)
        #expect(!f.uart.hasRoomForInput())
        #expect(f.uart.availableInputSpace() == 0)
        #expect(f.uart.enqueueInput([0x79]) == 0)
        #expect(f.uart.withState { $0.hostInput.count + $0.receiveFIFO.count } == 48)
        #expect(f.lsr() & 0x02 == 0x02)  // the refused bytes are an overrun for the guest
        #expect(f.lsr() & 0x02 == 0)
        // Draining half of the host queue tells the host reader it may resume, once.
        for _ in 0..<15 { _ = f.uart.readByte(Reg.data) }
        #expect(notified.withLock { $0 } == 0)
        _ = f.uart.readByte(Reg.data)
        #expect(notified.withLock { $0 } == 1)
        for _ in 0..<10 { _ = f.uart.readByte(Reg.data) }
        #expect(notified.withLock { $0 } == 1)
        #expect(f.uart.hasRoomForInput())
        var count = 26
        while f.lsr() & 0x01 != 0 {
            _ = f.uart.readByte(Reg.data)
            count += 1
        }
        #expect(count == 48)
    }

    @Test func receiverFIFOResetKeepsHostQueue() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.fcr, 0x01)
        f.uart.enqueueInput(Array(0..<20))
        f.uart.writeByte(Reg.fcr, 0x03)  // reset the receive FIFO: 16 bytes dropped
        #expect(f.uart.readByte(Reg.data) == 16)
        #expect(f.uart.readByte(Reg.data) == 17)
    }

    @Test func breakSetsBIWithANul() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.ier, 0x05)
        #expect(f.uart.sendBreak())
        #expect(f.iir() == 0x06)
        #expect(f.lsr() == 0x71)  // BI | THRE | TEMT | DR
        #expect(f.iir() == 0x04)
        #expect(f.uart.readByte(Reg.data) == 0)
        f.uart.enqueueInput([1])
        #expect(!f.uart.sendBreak())  // unread data: refused
    }

    @Test func wideAccessesAreByteLanes() {
        let f = UART16550Fixture()
        f.uart.write(Reg.lcr, [0x83, 0x0b])  // LCR = 0x83, MCR = 0x0b
        #expect(f.uart.read(Reg.data, size: 2) == [12, 0])
        #expect(f.uart.read(Reg.lcr, size: 4) == [0x83, 0x0b, 0x60, 0xb0])
        f.uart.write(Reg.data, [0x03, 0x00])  // DLL = 3, DLM = 0
        #expect(f.uart.withState { $0.divisor } == 3)
    }

    @Test func resetRestoresPowerOnState() {
        let f = UART16550Fixture()
        f.uart.writeByte(Reg.ier, 0x0f)
        f.uart.writeByte(Reg.lcr, 0x9f)
        f.uart.writeByte(Reg.fcr, 0xc1)
        #expect(f.line.isHigh)
        f.uart.reset()
        #expect(!f.line.isHigh)
        #expect(f.iir() == 0x01)
        #expect(f.uart.readByte(Reg.lcr) == 0)
    }

    @Test func concurrentHostInputAndGuestReads() async {
        let f = UART16550Fixture(inputCapacity: 64)
        f.uart.writeByte(Reg.fcr, 0x01)
        let total = 20_000
        let uart = f.uart
        await withTaskGroup(of: [UInt8].self) { group in
            group.addTask {
                var sent = 0
                while sent < total {
                    let space = min(uart.availableInputSpace(), total - sent)
                    let chunk = (sent..<(sent + space)).map { UInt8(truncatingIfNeeded: $0) }
                    sent += uart.enqueueInput(chunk)
                    if space == 0 { await Task.yield() }
                }
                return []
            }
            group.addTask {
                var received: [UInt8] = []
                while received.count < total {
                    if uart.readByte(Reg.lsr) & 0x01 != 0 {
                        received.append(uart.readByte(Reg.data))
                    } else {
                        await Task.yield()
                    }
                }
                return received
            }
            var received: [UInt8] = []
            for await part in group where !part.isEmpty { received = part }
            #expect(received == (0..<total).map { UInt8(truncatingIfNeeded: $0) })
        }
        #expect(f.lsr() & 0x02 == 0)  // a reader that honours the space never overruns
    }
}
