import Foundation
import GuestMemory
import Testing
@testable import Virtio
@testable import VirtioNet

struct VirtioNetConfigTests {
    @Test func configSpaceHoldsTheMACAndLinkUp() throws {
        let mac = try MACAddress(parsing: "52:54:00:12:34:56")
        let h = try NetHarness(mac: mac)
        var bytes = [UInt8](repeating: 0xee, count: 8)
        bytes.withUnsafeMutableBytes { h.device.readConfig(offset: 0, into: $0) }
        #expect(bytes == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 1, 0])
        // Odd offsets and sizes, and reads past the end, are harmless.
        var tail = [UInt8](repeating: 0xee, count: 8)
        tail.withUnsafeMutableBytes { h.device.readConfig(offset: 5, into: $0) }
        #expect(tail == [0x56, 1, 0, 0, 0, 0, 0, 0])
        tail.withUnsafeMutableBytes { h.device.readConfig(offset: Int.max, into: $0) }
        #expect(tail == [0, 0, 0, 0, 0, 0, 0, 0])
        [UInt8](repeating: 0xff, count: 6).withUnsafeBytes { h.device.writeConfig(offset: 0, from: $0) }
        bytes.withUnsafeMutableBytes { h.device.readConfig(offset: 0, into: $0) }
        #expect(Array(bytes[0..<6]) == mac.bytes)
    }

    @Test func featuresOfferOffloadsOnlyWhenTheBackendCanSetThem() throws {
        let plain = try NetHarness()
        let f = plain.device.deviceFeatures
        #expect(f & VirtioNetFeature.mac != 0 && f & VirtioNetFeature.status != 0 && f & VirtioNetFeature.mergeableRxBuffers != 0)
        #expect(f & VirtioNetFeature.offloads == 0)
        let capable = try NetHarness(offloads: true)
        #expect(capable.device.deviceFeatures & VirtioNetFeature.offloads == VirtioNetFeature.offloads)
        try capable.start(features: VirtioFeature.version1 | VirtioNetFeature.guestCSUM | VirtioNetFeature.guestTSO4 | VirtioNetFeature.hostTSO4)
        // TUN_F_CSUM | TUN_F_TSO4: the host TSO bit needs nothing from the TAP.
        #expect(capable.backend.offloadCalls.withLock { $0 } == [0x03])
        capable.device.reset()
        #expect(capable.backend.offloadCalls.withLock { $0 } == [0x03, 0])
        // TSO without the checksum offload is not passed on.
        #expect(VirtioNet.tunOffloads(features: VirtioNetFeature.guestTSO4 | VirtioNetFeature.guestTSO6) == 0)
    }

    @Test func randomMACsAreUnicastAndLocallyAdministered() throws {
        for _ in 0..<64 {
            let m = MACAddress.random()
            #expect(m.bytes.count == 6 && m.bytes[0] & 1 == 0 && m.isLocallyAdministered)
        }
        #expect(try MACAddress(parsing: "02:00:00:aa:BB:0f").description == "02:00:00:aa:bb:0f")
        for bad in ["", "02:00:00:aa:bb", "02:00:00:aa:bb:cc:dd", "01:00:00:00:00:00", "0g:00:00:00:00:00", "2:0:0:0:0:0", "02:00:00:aa:bb:ccc"] {
            #expect(throws: MACAddress.ParseError.self) { try MACAddress(parsing: bad) }
        }
    }

    @Test func tapNamesAreCheckedBeforeTheKernelSeesThem() throws {
        for bad in ["", "a/b", "with space", "0123456789abcdef", ".", "..", "tap:0"] {
            #expect(throws: (any Error).self) { try TapDevice.validateName(bad) }
        }
        try TapDevice.validateName("tap0")
        try TapDevice.validateName("skiff-test-1234")
    }
}

struct VirtioNetTransmitTests {
    @Test func aTransmittedFrameReachesTheBackendWhole() throws {
        let h = try NetHarness()
        try h.start()
        let frame = makeFrame(payloadLength: 1514, seed: 3)
        try h.transmit(frame, pieces: 3)
        #expect(h.backend.receive() == frame)
        #expect(try eventually { try h.tx.usedIndex() == 1 })
        let used = try h.tx.takeUsed()
        #expect(used.count == 1 && used[0].length == 0)
        #expect(eventually { h.interrupt.signals(VirtioNet.txQueue) == 1 })
        #expect(h.device.counters.txFrames.load(ordering: .relaxed) == 1)
        #expect(h.device.counters.txBytes.load(ordering: .relaxed) == 1514)
    }

    @Test func malformedTransmitChainsAreDroppedAndCounted() throws {
        let h = try NetHarness()
        try h.start()
        // Shorter than the header.
        try h.transmit([1, 2, 3, 4, 5], slot: 0)
        // Longer than 64 KiB plus the header: one descriptor of 1 MiB.
        try h.tx.add([(NetHarness.txData, 1 << 20, false)])
        // A chain with only device-writable space (no header at all).
        try h.tx.add([(NetHarness.txData, 64, true)])
        // Exactly the largest frame is fine.
        let biggest = makeFrame(payloadLength: VirtioNetHeader.maxFrameSize)
        try h.transmit(biggest, pieces: 2, slot: 2)
        #expect(try eventually { try h.tx.usedIndex() == 4 })
        #expect(h.device.counters.txDroppedMalformed.load(ordering: .relaxed) == 3)
        #expect(h.backend.receive() == biggest)
        #expect(h.backend.receiveNow() == nil)
        #expect(h.interrupt.brokenCount.load(ordering: .relaxed) == 0)
    }

    @Test func aFullBackendPausesTransmissionWithoutSpinning() throws {
        let h = try NetHarness()
        try h.start()
        // Fill the socket until the device's writes would block, then keep sending.
        let frame = makeFrame(payloadLength: 60000)
        var sent = 0
        for i in 0..<200 {
            try h.transmit(frame, slot: i % 32, kick: true)
            sent += 1
            if h.device.counters.txBlocked.load(ordering: .relaxed) > 0 { break }
            _ = eventually(0.5) { (try? h.tx.usedIndex()) == UInt16(sent) || h.device.counters.txBlocked.load(ordering: .relaxed) > 0 }
        }
        #expect(h.device.counters.txBlocked.load(ordering: .relaxed) == 1)
        #expect(h.isIdle(), "the worker keeps waking while blocked")
        // Draining the host side lets everything through, in order.
        var received = 0
        while let f = h.backend.receive(timeout: 2) {
            #expect(f == frame)
            received += 1
            if received == sent { break }
        }
        #expect(received == sent)
        #expect(try eventually { try h.tx.usedIndex() == UInt16(sent) })
    }
}

struct VirtioNetReceiveTests {
    @Test func aFrameSpansMergeableBuffersWithNumBuffers() throws {
        let h = try NetHarness()
        try h.start()
        try h.postRxBuffers(4, length: 1526)
        let frame = makeFrame(payloadLength: 3000, seed: 9)
        #expect(h.backend.inject(frame))
        // One used entry per buffer.
        #expect(try eventually { try h.rx.usedIndex() == 2 })
        let used = try h.rx.takeUsed()
        #expect(used.map(\.length) == [1526, 3012 - 1526])
        let first = try h.rxBuffer(0, length: 1526)
        let second = try h.rxBuffer(1, length: 3012 - 1526)
        #expect(first[10] == 2 && first[11] == 0, "num_buffers")
        #expect(Array(first[12...]) + second == Array(frame[12...]))
        #expect(eventually { h.interrupt.signals(VirtioNet.rxQueue) >= 1 })
        #expect(h.device.counters.rxFrames.load(ordering: .relaxed) == 1)
    }

    @Test func withoutMergeableBuffersAFrameMustFitOneChain() throws {
        let h = try NetHarness()
        try h.start(features: VirtioFeature.version1)
        try h.postRxBuffers(1, length: 200)
        #expect(h.backend.inject(makeFrame(payloadLength: 500)))
        #expect(eventually { h.device.counters.rxDroppedTooLarge.load(ordering: .relaxed) == 1 })
        #expect(try h.rx.usedIndex() == 0)
        // The chain was kept and takes the next frame that fits.
        let small = makeFrame(payloadLength: 100, seed: 1)
        #expect(h.backend.inject(small))
        #expect(try eventually { try h.rx.usedIndex() == 1 })
        let got = try h.rxBuffer(0, length: small.count)
        #expect(got[10] == 1, "num_buffers is 1 without MRG_RXBUF")
        #expect(Array(got[12...]) == Array(small[12...]))
        #expect(try h.rx.takeUsed().map(\.length) == [UInt32(small.count)])
    }

    @Test func noReceiveBuffersPausesReadingUntilTheDriverAddsSome() throws {
        let h = try NetHarness()
        try h.start()
        for i in 0..<5 { #expect(h.backend.inject(makeFrame(payloadLength: 100, seed: UInt8(i)))) }
        #expect(eventually { h.device.counters.rxStalls.load(ordering: .relaxed) == 1 })
        #expect(h.isIdle(), "the worker keeps waking with no receive buffers")
        #expect(h.device.counters.rxFrames.load(ordering: .relaxed) == 0)
        try h.postRxBuffers(8, length: 1526)
        #expect(try eventually { try h.rx.usedIndex() == 5 })
        for i in 0..<5 {
            let b = try h.rxBuffer(i, length: 112)
            #expect(Array(b[12...]) == Array(makeFrame(payloadLength: 100, seed: UInt8(i))[12...]), "frame \(i) in order")
        }
        #expect(h.device.counters.rxDroppedTooLarge.load(ordering: .relaxed) == 0)
    }

    @Test func aFrameLargerThanEveryBufferIsDroppedNotStalled() throws {
        let h = try NetHarness(rxSize: 4)
        try h.start()
        try h.postRxBuffers(4, length: 100)
        #expect(h.backend.inject(makeFrame(payloadLength: 1000)))
        #expect(eventually { h.device.counters.rxDroppedTooLarge.load(ordering: .relaxed) == 1 })
        // The four buffers stay usable.
        #expect(h.backend.inject(makeFrame(payloadLength: 150, seed: 4)))
        #expect(try eventually { try h.rx.usedIndex() == 2 })
        #expect(try h.rx.takeUsed().map(\.length) == [100, 62])
    }

    @Test func shortFramesFromTheBackendAndBuffersWithoutRoomAreCounted() throws {
        let h = try NetHarness()
        try h.start()
        #expect(h.backend.inject([1, 2, 3]))
        #expect(eventually { h.device.counters.rxDroppedMalformed.load(ordering: .relaxed) == 1 })
        // A receive chain that is device-readable only: returned empty, device keeps going.
        try h.rx.add([(NetHarness.rxData, 64, false)])
        try h.rx.add([(NetHarness.rxData + 0x1_0000, 1 << 20, true)])  // 1 MiB buffer: only the frame is written
        h.kick(VirtioNet.rxQueue)
        let frame = makeFrame(payloadLength: 64)
        #expect(h.backend.inject(frame))
        #expect(try eventually { try h.rx.usedIndex() == 2 })
        #expect(try h.rx.takeUsed().map(\.length) == [0, UInt32(frame.count)])
        #expect(h.device.counters.rxBadBuffers.load(ordering: .relaxed) == 1)
    }
}

struct VirtioNetHostileDriverTests {
    @Test func aBrokenRingStopsTheDeviceWithoutSpinning() throws {
        let h = try NetHarness()
        try h.start()
        // avail.idx far ahead of the device (reliability item 3).
        try h.tx.setAvailIndex(0x8000)
        h.kick(VirtioNet.txQueue)
        #expect(eventually { h.interrupt.brokenCount.load(ordering: .relaxed) == 1 })
        #expect(h.device.counters.queueErrors.load(ordering: .relaxed) == 1)
        // Frames keep arriving on the backend; the broken device must not busy-loop on them.
        for _ in 0..<4 { h.backend.inject(makeFrame(payloadLength: 100)) }
        #expect(h.isIdle(), "a broken device keeps waking")
    }

    @Test(arguments: [
        // (address, length, flags, next) of descriptor 0 in the transmit ring.
        (UInt64(0x10_0000), UInt32(64), SplitQueue.flagNext, UInt16(0)),              // loops to itself
        (UInt64(0x10_0000), UInt32(64), SplitQueue.flagNext, UInt16(0xffff)),         // next out of range
        (UInt64.max - 10, UInt32(64), UInt16(0), UInt16(0)),                           // wraps the address space
        (UInt64(24 << 20) - 10, UInt32(64), UInt16(0), UInt16(0)),                     // ends past RAM
        (UInt64(0x10_0000), UInt32.max, UInt16(0), UInt16(0)),                         // 4 GiB descriptor
        (UInt64(0x10_0000), UInt32(17), SplitQueue.flagIndirect, UInt16(0)),           // indirect not a multiple of 16
    ])
    func hostileTransmitDescriptorsBreakTheQueueNotTheVMM(address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let h = try NetHarness()
        try h.start()
        try h.tx.writeDescriptor(0, address: address, length: length, flags: flags, next: next)
        try h.tx.publish(0)
        h.kick(VirtioNet.txQueue)
        #expect(eventually { h.interrupt.brokenCount.load(ordering: .relaxed) == 1 })
        #expect(h.backend.receiveNow() == nil)
    }

    @Test func resetStopsTheWorkerAndTheDeviceCanStartAgain() throws {
        let h = try NetHarness()
        try h.start()
        h.device.reset()
        #expect(h.backend.inject(makeFrame(payloadLength: 80, seed: 2)))
        sleepSeconds(0.05)
        #expect(h.device.counters.rxFrames.load(ordering: .relaxed) == 0)
        // A fresh activation (new rings, as after a driver reset) picks the frame up.
        h.rx = RingDriver(memory: h.memory, base: 0x5_0000)
        h.tx = RingDriver(memory: h.memory, base: 0x6_0000)
        try h.start()
        try h.postRxBuffers(1, length: 1526)
        #expect(try eventually { try h.rx.usedIndex() == 1 })
        #expect(Array(try h.rxBuffer(0, length: 92)[12...]) == Array(makeFrame(payloadLength: 80, seed: 2)[12...]))
    }
}

struct VirtioNetEventIndexTests {
    /// With EVENT_IDX the driver kicks once for a whole batch; more frames than the worker
    /// moves per wakeup must still all go out (the worker re-arms itself).
    @Test func aBatchLargerThanOneWakeupIsFullyTransmitted() throws {
        let h = try NetHarness()
        try h.start(eventIndex: true)
        let count = 200
        let drained = CountingReader(fd: h.backend.peer.rawValue, expected: count, size: 74)
        for i in 0..<count {
            try h.transmit(makeFrame(payloadLength: 62, seed: UInt8(truncatingIfNeeded: i)), slot: i, kick: false)
        }
        // One kick for all of them, as a driver with EVENT_IDX does.
        h.kick(VirtioNet.txQueue)
        #expect(try eventually { try h.tx.usedIndex() == UInt16(count) })
        #expect(drained.wait() == count)
    }

    @Test func receiveRecoversFromStarvationWithEventIndex() throws {
        let h = try NetHarness()
        try h.start(eventIndex: true)
        // More than the socket holds at once: a sender thread waits for room.
        Thread.detachNewThreadSending(fd: h.backend.peer.rawValue, frame: makeFrame(payloadLength: 60), count: 300)
        var received = 0
        var round = 0
        while received < 300 && round < 20 {
            // 64 buffers at a time, one kick each: the device asks for a notification when it runs dry.
            for i in 0..<64 { try h.rx.add([(NetHarness.rxData + UInt64(i) * 0x1_0000, 2048, true)]) }
            h.kick(VirtioNet.rxQueue)
            let before = received
            _ = try eventually(2) { received += try h.rx.takeUsed().count; return received - before >= min(64, 300 - before) }
            round += 1
        }
        #expect(received == 300)
        #expect(h.device.counters.rxFrames.load(ordering: .relaxed) == 300)
    }
}
