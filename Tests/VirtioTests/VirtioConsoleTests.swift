import DeviceModel
import GuestMemory
import Synchronization
import Testing
@testable import Virtio

/// Collects what a console device writes.
final class RecordingOutput: ConsoleOutput, @unchecked Sendable {
    let bytes = Mutex<[UInt8]>([])
    func write(_ data: UnsafeRawBufferPointer) { bytes.withLock { $0.append(contentsOf: data) } }
    var count: Int { bytes.withLock { $0.count } }
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
}

/// A console behind the PCI transport with mock drivers on its receive (0) and transmit (1) queues.
final class ConsoleRig {
    let memory: GuestMemory
    let output = RecordingOutput()
    let device: VirtioConsole
    let h: TransportHarness
    var rx: MockDriver
    var tx: MockDriver

    init(features: UInt64 = VirtioFeature.version1) throws {
        let mem = try GuestMemory(ranges: [(0, 8 << 20)])
        memory = mem
        device = VirtioConsole(output: output)
        h = try TransportHarness(device: device, memory: mem)
        rx = MockDriver(memory: mem, size: 16, base: 0x10000)
        tx = MockDriver(memory: mem, size: 16, base: 0x40000)
        h.enableMSIX(vectors: 3)
        guard h.negotiate(features: features) else { throw BalloonRig.RigError.negotiation }
        h.setUpQueue(0, driver: rx, vector: 1)
        h.setUpQueue(1, driver: tx, vector: 2)
        h.setStatus(15)
        guard h.status == 15 else { throw BalloonRig.RigError.notRunning(h.status) }
    }

    /// Publishes one chain on the transmit queue holding `pieces` as readable buffers.
    func transmit(_ pieces: [[UInt8]], at base: UInt64? = nil) throws {
        var address = base ?? tx.dataBase
        let first = UInt16(truncatingIfNeeded: Int(tx.availIdx) * 4) % tx.size
        for (i, p) in pieces.enumerated() {
            try memory.write(p, at: address)
            let index = (first + UInt16(i)) % tx.size
            try tx.writeDescriptor(index, address: address, length: UInt32(p.count),
                                   flags: i == pieces.count - 1 ? 0 : SplitQueue.flagNext, next: (index + 1) % tx.size)
            address += UInt64(p.count)
        }
        try tx.publish(first)
        h.notify(1)
    }

    /// Publishes a transmit chain of one buffer of `length` bytes already in memory at `address`.
    func transmitRaw(address: UInt64, length: UInt32) throws {
        let head = UInt16(truncatingIfNeeded: Int(tx.availIdx) * 4) % tx.size
        try tx.writeDescriptor(head, address: address, length: length, flags: 0, next: 0)
        try tx.publish(head)
        h.notify(1)
    }

    /// Posts one receive buffer of `length` bytes (slot `slot` of the data area).
    func postReceive(length: UInt32, slot: UInt64, writable: Bool = true) throws {
        let head = rx.availIdx % rx.size
        try rx.writeDescriptor(head, address: rx.dataBase + 0x1000 * slot, length: length, flags: writable ? SplitQueue.flagWrite : 0, next: 0)
        try rx.publish(head)
        h.notify(0)
    }

    func received(slot: UInt64, count: Int) throws -> String {
        String(decoding: try memory.readBytes(at: rx.dataBase + 0x1000 * slot, count: count), as: UTF8.self)
    }

    func send(_ text: String) -> Int {
        Array(text.utf8).withUnsafeBytes { device.enqueueInput($0) }
    }

    deinit { h.setStatus(0) }
}

struct VirtioConsoleTests {
    @Test func transmittedBytesReachTheOutputInOrder() throws {
        let rig = try ConsoleRig()
        try rig.transmit([Array("hel".utf8), Array("lo\n".utf8)])
        #expect(eventually { rig.output.text == "hello\n" })
        #expect(try eventually { try rig.tx.usedIndex() == 1 })
        #expect(try rig.tx.usedElement(0).length == 0)
        try rig.transmit([Array("again\n".utf8)])
        #expect(eventually { rig.output.text == "hello\nagain\n" })
        #expect(eventually { rig.h.vectors.triggers.withLock { $0.contains(2) } })
    }

    @Test func aHugeTransmitRequestIsCutAndTheNextIsServed() throws {
        let rig = try ConsoleRig()
        let big: UInt64 = 4 << 20
        try rig.memory.write([UInt8](repeating: UInt8(ascii: "x"), count: Int(big)), at: 0x200000)
        try rig.transmitRaw(address: 0x200000, length: UInt32(big))
        #expect(try eventually { try rig.tx.usedIndex() == 1 })
        #expect(eventually { rig.output.count == VirtioConsole.maxOutputPerChain })
        #expect(rig.device.bytesDropped.load(ordering: .relaxed) == big - UInt64(VirtioConsole.maxOutputPerChain))
        try rig.transmit([Array("next\n".utf8)])
        #expect(eventually { rig.output.text.hasSuffix("xnext\n") })
    }

    @Test func aFloodOfRequestsIsWrittenInBoundedBatches() throws {
        let rig = try ConsoleRig()
        let chunk = 60 * 1024
        try rig.memory.write([UInt8](repeating: UInt8(ascii: "y"), count: chunk), at: 0x200000)
        // Sixteen 60 KiB requests in one go (more than one wake-up's worth).
        for _ in 0..<16 {
            let head = UInt16(truncatingIfNeeded: Int(rig.tx.availIdx) * 4) % rig.tx.size
            try rig.tx.writeDescriptor(head, address: 0x200000, length: UInt32(chunk), flags: 0, next: 0)
            try rig.tx.publish(head)
        }
        rig.h.notify(1)
        #expect(try eventually { try rig.tx.usedIndex() == 16 })
        #expect(eventually { rig.output.count == 16 * chunk })
        #expect(rig.device.bytesDropped.load(ordering: .relaxed) == 0)
    }

    @Test func hostInputWaitsForReceiveBuffers() throws {
        let rig = try ConsoleRig()
        #expect(rig.send("abc") == 3)
        #expect(rig.device.pendingInputCount == 3)
        try rig.postReceive(length: 2, slot: 0)
        #expect(try eventually { try rig.rx.usedIndex() == 1 })
        #expect(try rig.rx.usedElement(0).length == 2)
        #expect(try rig.received(slot: 0, count: 2) == "ab")
        try rig.postReceive(length: 64, slot: 1)
        #expect(try eventually { try rig.rx.usedIndex() == 2 })
        #expect(try rig.rx.usedElement(1).length == 1)
        #expect(try rig.received(slot: 1, count: 1) == "c")
        // A buffer posted before input arrives is filled when it does.
        try rig.postReceive(length: 64, slot: 2)
        usleepSeconds(0.05)
        #expect(try rig.rx.usedIndex() == 2)
        #expect(rig.send("late\n") == 5)
        #expect(try eventually { try rig.rx.usedIndex() == 3 })
        #expect(try rig.received(slot: 2, count: 5) == "late\n")
        #expect(eventually { rig.h.vectors.triggers.withLock { $0.contains(1) } })
    }

    @Test func aGuestThatNeverReadsBoundsHostInput() throws {
        let rig = try ConsoleRig()
        let flood = [UInt8](repeating: UInt8(ascii: "z"), count: 100_000)
        let first = flood.withUnsafeBytes { rig.device.enqueueInput($0) }
        #expect(first == VirtioConsole.defaultInputCapacity)
        #expect(flood.withUnsafeBytes { rig.device.enqueueInput($0) } == 0)
        #expect(rig.device.pendingInputCount == VirtioConsole.defaultInputCapacity)
        // Once the guest reads, there is room again.
        try rig.postReceive(length: 1000, slot: 0)
        #expect(eventually { rig.device.pendingInputCount == VirtioConsole.defaultInputCapacity - 1000 })
        #expect(flood.withUnsafeBytes { rig.device.enqueueInput($0) } == 1000)
    }

    @Test func receiveBuffersWithoutRoomAreReturnedEmpty() throws {
        let rig = try ConsoleRig()
        #expect(rig.send("ok") == 2)
        try rig.postReceive(length: 16, slot: 0, writable: false)  // device-readable: no room
        #expect(try eventually { try rig.rx.usedIndex() == 1 })
        #expect(try rig.rx.usedElement(0).length == 0)
        try rig.postReceive(length: 16, slot: 1)
        #expect(try eventually { try rig.rx.usedIndex() == 2 })
        #expect(try rig.received(slot: 1, count: 2) == "ok")
    }

    @Test func emergencyWritePrintsOneByte() throws {
        let rig = try ConsoleRig(features: VirtioFeature.version1 | VirtioConsole.featureEmergencyWrite)
        #expect(rig.h.offeredFeatures() & VirtioConsole.featureEmergencyWrite != 0)
        rig.h.write(0x2008, UInt64(UInt8(ascii: "!")), size: 4)
        rig.h.write(0x2009, 0x41, size: 1)  // not the field's start: ignored
        #expect(rig.output.text == "!")
        #expect(rig.h.read(0x2000, size: 8) == 0)
    }

    @Test func aBrokenTransmitChainNeedsResetAndInputSurvivesIt() throws {
        let rig = try ConsoleRig()
        #expect(rig.send("kept") == 4)
        try rig.tx.writeDescriptor(0, address: 0xffff_0000_0000, length: 8, flags: 0, next: 0)
        try rig.tx.publish(0)
        rig.h.notify(1)
        #expect(eventually { rig.h.status & VirtioPCIDevice.statusNeedsReset != 0 })
        // Reset and set up again: pending input is delivered to the new driver.
        let rx = MockDriver(memory: rig.memory, size: 16, base: 0x100000)
        let tx = MockDriver(memory: rig.memory, size: 16, base: 0x130000)
        #expect(rig.h.negotiate(features: VirtioFeature.version1))
        rig.h.setUpQueue(0, driver: rx, vector: 1)
        rig.h.setUpQueue(1, driver: tx, vector: 2)
        rig.h.setStatus(15)
        rig.rx = rx
        rig.tx = tx
        try rig.postReceive(length: 16, slot: 0)
        #expect(try eventually { try rig.rx.usedIndex() == 1 })
        #expect(try rig.received(slot: 0, count: 4) == "kept")
        try rig.transmit([Array("fine\n".utf8)])
        #expect(eventually { rig.output.text == "fine\n" })
    }
}
