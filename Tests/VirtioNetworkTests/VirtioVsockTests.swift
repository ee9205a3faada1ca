import Foundation
import Testing
@testable import Virtio
@testable import VirtioVsock

private let op = (request: VsockHeader.opRequest, response: VsockHeader.opResponse, rst: VsockHeader.opReset,
                  shutdown: VsockHeader.opShutdown, rw: VsockHeader.opReadWrite,
                  creditUpdate: VsockHeader.opCreditUpdate, creditRequest: VsockHeader.opCreditRequest)

struct VsockBasicsTests {
    @Test func headerRoundTripsAndConfigHoldsTheCID() throws {
        let h = VsockHeader(srcCID: 3, dstCID: 2, srcPort: 0x1234_5678, dstPort: 99, length: 7, op: 5, flags: 3, bufAlloc: 65536, fwdCnt: 0xdead_beef)
        let bytes = h.bytes
        #expect(bytes.count == 44)
        #expect(bytes.withUnsafeBytes { VsockHeader(bytes: $0) } == h)
        #expect(Array(bytes[16..<20]) == [0x78, 0x56, 0x34, 0x12])
        #expect([UInt8](repeating: 0, count: 43).withUnsafeBytes { VsockHeader(bytes: $0) } == nil)

        let v = try VsockHarness()
        var config = [UInt8](repeating: 0xee, count: 12)
        config.withUnsafeMutableBytes { v.device.readConfig(offset: 0, into: $0) }
        #expect(config == [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func invalidCIDsAndPathsAreRefused() throws {
        for cid: UInt32 in [0, 1, 2, 0xffff_ffff] {
            #expect(throws: (any Error).self) { try VirtioVsock(guestCID: cid, socketPath: NSTemporaryDirectory() + "never") }
        }
        #expect(throws: (any Error).self) { try VirtioVsock(guestCID: 3, socketPath: "/tmp/" + String(repeating: "x", count: 120)) }
        // An existing path is not taken over.
        let v = try VsockHarness()
        #expect(throws: (any Error).self) { try VirtioVsock(guestCID: 4, socketPath: v.path) }
    }

    @Test func connectLinesAreParsedStrictly() {
        func parse(_ s: String) -> UInt32? { VsockMuxer.parseConnectLine(Array(s.utf8)) }
        #expect(parse("CONNECT 52") == 52)
        #expect(parse("CONNECT 4294967295") == 4_294_967_295)
        for bad in ["CONNECT", "CONNECT ", "CONNECT 4294967296", "CONNECT -1", "CONNECT 5x", "connect 52", "CONNECT  52", "CONNECT 52\r", "HELLO 52"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }

    @Test func closingRemovesTheSocketPath() throws {
        let v = try VsockHarness()
        #expect(FileManager.default.fileExists(atPath: v.path))
        v.device.close()
        #expect(!FileManager.default.fileExists(atPath: v.path))
    }
}

struct VsockGuestInitiatedTests {
    @Test func aGuestConnectionReachesTheListenerAtPathPortAndRelaysBothWays() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_5000")
        try v.start()
        try v.postRx(16)
        try v.send(v.guestHeader(op: op.request, src: 1234, dst: 5000))
        let host = try #require(try service.accept())
        let response = try #require(try v.receive())
        #expect(response.header.op == op.response)
        #expect(response.header.srcCID == 2 && response.header.dstCID == 3)
        #expect(response.header.srcPort == 5000 && response.header.dstPort == 1234)
        #expect(response.header.bufAlloc == 65536)

        try v.send(v.guestHeader(op: op.rw, src: 1234, dst: 5000), payload: Array("hello host".utf8))
        #expect(host.read(exactly: 10) == Array("hello host".utf8))

        host.write("hello guest")
        let data = try #require(try v.receive())
        #expect(data.header.op == op.rw && data.header.dstPort == 1234 && data.header.srcPort == 5000)
        #expect(data.payload == Array("hello guest".utf8))
        #expect(data.header.fwdCnt == 10, "fwd_cnt counts bytes handed to the host")

        // The host closes: the guest hears SHUTDOWN (no more sends, no more receives), answers RST.
        _ = host
        let closed = try #require(try { () throws -> (header: VsockHeader, payload: [UInt8])? in
            shutdownHost(host)
            return try v.receive()
        }())
        #expect(closed.header.op == op.shutdown)
        #expect(closed.header.flags & VsockHeader.shutdownSend != 0)
        try v.send(v.guestHeader(op: op.rst, src: 1234, dst: 5000))
        #expect(eventually { v.device.counters.connections.load(ordering: .relaxed) == 0 })
        #expect(v.device.counters.bytesToHost.load(ordering: .relaxed) == 10)
        #expect(v.device.counters.bytesToGuest.load(ordering: .relaxed) == 11)
    }

    @Test func aGuestConnectionToAMissingListenerIsReset() throws {
        let v = try VsockHarness()
        try v.start()
        try v.postRx(4)
        try v.send(v.guestHeader(op: op.request, src: 77, dst: 6000))
        let r = try #require(try v.receive())
        #expect(r.header.op == op.rst && r.header.srcPort == 6000 && r.header.dstPort == 77)
        #expect(v.device.counters.connectFailures.load(ordering: .relaxed) == 1)
        #expect(v.device.counters.connections.load(ordering: .relaxed) == 0)
    }

    @Test func theGuestClosingBothWaysGetsAnRSTAndTheHostAnEOF() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_7")
        try v.start()
        try v.postRx(8)
        try v.send(v.guestHeader(op: op.request, src: 9, dst: 7))
        let host = try #require(try service.accept())
        #expect(try v.receive()?.header.op == op.response)
        try v.send(v.guestHeader(op: op.rw, src: 9, dst: 7), payload: [1, 2, 3])
        try v.send(v.guestHeader(op: op.shutdown, src: 9, dst: 7, flags: 3))
        #expect(host.read(exactly: 3) == [1, 2, 3])
        #expect(host.read() == [], "end of stream after the guest's data")
        let r = try #require(try v.receive())
        #expect(r.header.op == op.rst)
        #expect(eventually { v.device.counters.connections.load(ordering: .relaxed) == 0 })
    }
}

/// Closes the host end of a connection.
private func shutdownHost(_ s: HostSocket) {
    _ = shutdown(s.fd.rawValue, Int32(SHUT_RDWR))
}

struct VsockHostInitiatedTests {
    @Test func connectThenOKThenBytesBothWays() throws {
        let v = try VsockHarness()
        try v.start()
        try v.postRx(16)
        let host = try HostSocket.connect(v.path)
        host.write("CONNECT 52\nearly bytes")
        let request = try #require(try v.receive())
        #expect(request.header.op == op.request)
        #expect(request.header.dstPort == 52 && request.header.srcPort == 1 << 30)
        #expect(request.header.dstCID == 3 && request.header.srcCID == 2)
        #expect(host.read(timeout: 0.1) == nil, "no OK before the guest accepts")
        try v.send(v.guestHeader(op: op.response, src: 52, dst: 1 << 30))
        #expect(host.read(exactly: 14) == Array("OK 1073741824\n".utf8))
        // Bytes written right after the CONNECT line belong to the stream.
        let early = try #require(try v.receive())
        #expect(early.header.op == op.rw && early.payload == Array("early bytes".utf8))
        try v.send(v.guestHeader(op: op.rw, src: 52, dst: 1 << 30), payload: Array("from guest".utf8))
        #expect(host.read(exactly: 10) == Array("from guest".utf8))
        #expect(v.device.counters.established.load(ordering: .relaxed) == 1)
    }

    @Test func aGuestResetClosesTheHostSocketWithoutOK() throws {
        let v = try VsockHarness()
        try v.start()
        try v.postRx(4)
        let host = try HostSocket.connect(v.path)
        host.write("CONNECT 99\n")
        let request = try #require(try v.receive())
        try v.send(v.guestHeader(op: op.rst, src: 99, dst: request.header.srcPort))
        #expect(host.read() == [], "end of stream, no OK line")
    }

    @Test(arguments: ["CONNECT x\n", "HELLO\n", "CONNECT 4294967296\n", String(repeating: "A", count: 40), "CONNECT 12"])
    func malformedConnectLinesCloseTheHostSocket(line: String) throws {
        var limits = VsockLimits()
        limits.connectTimeout = 0.3
        let v = try VsockHarness(limits: limits)
        try v.start()
        try v.postRx(4)
        let host = try HostSocket.connect(v.path)
        host.write(line)
        #expect(host.read(timeout: 3) == [], "closed")
        #expect(try v.receive(timeout: 0.1) == nil, "nothing reached the guest")
        #expect(eventually { v.device.counters.connections.load(ordering: .relaxed) == 0 })
    }

    @Test func aGuestThatNeverAnswersTimesOut() throws {
        var limits = VsockLimits()
        limits.connectTimeout = 0.3
        let v = try VsockHarness(limits: limits)
        try v.start()
        try v.postRx(4)
        let host = try HostSocket.connect(v.path)
        host.write("CONNECT 1\n")
        let request = try #require(try v.receive())
        #expect(request.header.op == op.request)
        #expect(host.read(timeout: 3) == [], "closed after the timeout")
        let rst = try #require(try v.receive())
        #expect(rst.header.op == op.rst && rst.header.dstPort == 1)
        #expect(v.device.counters.timeouts.load(ordering: .relaxed) == 1)
    }
}

struct VsockFlowControlTests {
    /// Opens a guest-initiated connection with `bufAlloc` of guest credit; returns the host end.
    func connect(_ v: VsockHarness, service: HostListener, bufAlloc: UInt32) throws -> HostSocket? {
        try v.send(v.guestHeader(op: op.request, src: 40, dst: 8, bufAlloc: bufAlloc))
        guard let host = try service.accept(), try v.receive()?.header.op == op.response else { return nil }
        return host
    }

    @Test func theDeviceNeverSendsMoreThanTheGuestsCredit() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(32)
        let host = try #require(try connect(v, service: service, bufAlloc: 100))
        host.write([UInt8](repeating: 7, count: 1000))
        var got = 0
        var sawRequest = false
        for p in try v.receiveAll() {
            if p.header.op == op.rw { got += p.payload.count }
            if p.header.op == op.creditRequest { sawRequest = true }
        }
        #expect(got == 100)
        #expect(sawRequest)
        // The guest consumed 100 bytes: 100 more may come.
        try v.send(v.guestHeader(op: op.creditUpdate, src: 40, dst: 8, bufAlloc: 100, fwdCnt: 100))
        got = try v.receiveAll().filter { $0.header.op == op.rw }.reduce(0) { $0 + $1.payload.count }
        #expect(got == 100)
        // A larger buffer lets the rest through.
        try v.send(v.guestHeader(op: op.creditUpdate, src: 40, dst: 8, bufAlloc: 100_000, fwdCnt: 200))
        got = try v.receiveAll().filter { $0.header.op == op.rw }.reduce(0) { $0 + $1.payload.count }
        #expect(got == 800)
    }

    @Test func aCreditRequestGetsACreditUpdate() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(8)
        let host = try #require(try connect(v, service: service, bufAlloc: 4096))
        try v.send(v.guestHeader(op: op.rw, src: 40, dst: 8), payload: [1, 2, 3, 4])
        try v.send(v.guestHeader(op: op.creditRequest, src: 40, dst: 8))
        let u = try #require(try v.receive())
        #expect(u.header.op == op.creditUpdate && u.header.bufAlloc == 65536 && u.header.fwdCnt == 4)
        #expect(host.read(exactly: 4) == [1, 2, 3, 4])
    }

    @Test func theDeviceReturnsCreditBeforeTheGuestRunsOut() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(8)
        let host = try #require(try connect(v, service: service, bufAlloc: 4096))
        // 61 KiB: the guest now believes 3 KiB of the device's 64 KiB are free.
        let chunk = [UInt8](repeating: 9, count: 1024)
        for _ in 0..<61 { try v.send(v.guestHeader(op: op.rw, src: 40, dst: 8), payload: chunk) }
        #expect(host.read(exactly: 61 * 1024).count == 61 * 1024)
        let update = try #require(try v.receive())
        #expect(update.header.op == op.creditUpdate)
        #expect(update.header.fwdCnt == 61 * 1024 && update.header.bufAlloc == 65536)
        #expect(try v.receive(timeout: 0.2) == nil, "one update is enough")
    }

    @Test func aGuestIgnoringCreditIsResetAndHostMemoryStaysBounded() throws {
        var limits = VsockLimits()
        limits.bufferSize = 4096
        let v = try VsockHarness(limits: limits)
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(64)
        let host = try #require(try connect(v, service: service, bufAlloc: 4096))
        // The host never reads; the guest keeps sending 4 KiB packets regardless of credit.
        let chunk = [UInt8](repeating: 0x5a, count: 4096)
        var sent = 0
        for _ in 0..<400 {
            try v.send(v.guestHeader(op: op.rw, src: 40, dst: 8), payload: chunk)
            sent += chunk.count
            if v.device.counters.creditViolations.load(ordering: .relaxed) > 0 { break }
            _ = eventually(0.2) { (try? v.tx.usedIndex()) == v.tx.availIdx }
        }
        #expect(v.device.counters.creditViolations.load(ordering: .relaxed) == 1)
        let packets = try v.receiveAll()
        #expect(packets.contains { $0.header.op == op.rst })
        // What reached the host socket plus at most one buffer is all that was ever held.
        var drained = 0
        while let b = host.read(timeout: 0.5), !b.isEmpty { drained += b.count }
        #expect(drained <= sent)
        #expect(sent - drained <= 2 * limits.bufferSize + 4096)
        #expect(v.device.counters.connections.load(ordering: .relaxed) == 0)
    }
}

/// The device-wide budget for guest data waiting on host sockets.
struct VsockPendingBudgetTests {
    @Test func connectionsWhoseDataWouldPassTheBudgetAreReset() throws {
        var limits = VsockLimits()
        limits.bufferSize = 64 * 1024
        limits.maxPendingBytes = 160 * 1024  // room for two and a half full connections
        let v = try VsockHarness(limits: limits)
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(64)
        // Four guest connections to a host that accepts and never reads.
        var hosts: [HostSocket] = []
        for port in 0..<4 {
            try v.send(v.guestHeader(op: op.request, src: UInt32(100 + port), dst: 8))
            hosts.append(try #require(try service.accept()))
        }
        #expect(try v.receiveAll().filter { $0.header.op == op.response }.count == 4)
        // Each sends 4 KiB packets, always within its credit (following the device's credit
        // updates), until no more credit comes (the host socket is full and 64 KiB wait in the
        // device) or the device resets it.
        let chunk = [UInt8](repeating: 0x33, count: 4096)
        var resets = 0
        for port in 0..<4 {
            let src = UInt32(100 + port)
            var sent = 0
            var acked = 0
            var wasReset = false
            while !wasReset && sent < 1 << 20 {
                let canSend = sent - acked + chunk.count <= limits.bufferSize
                if canSend {
                    try v.send(v.guestHeader(op: op.rw, src: src, dst: 8), payload: chunk)
                    sent += chunk.count
                    _ = eventually(0.2) { (try? v.tx.usedIndex()) == v.tx.availIdx }
                }
                var moved = false
                for p in try v.receiveAll(timeout: canSend ? 0.01 : 0.3) where p.header.dstPort == src {
                    if p.header.op == op.rst { wasReset = true }
                    if Int(p.header.fwdCnt) > acked {
                        acked = Int(p.header.fwdCnt)
                        moved = true
                    }
                }
                if !wasReset && !canSend && !moved { break }  // full: no more credit will come
            }
            if wasReset { resets += 1 }
        }
        let pending = v.device.counters.pendingBytes.load(ordering: .relaxed)
        #expect(pending <= limits.maxPendingBytes, "\(pending) bytes pending")
        // Two connections fill their 64 KiB; the third and fourth would pass 160 KiB.
        #expect(resets == 2)
        #expect(v.device.counters.budgetResets.load(ordering: .relaxed) == 2)
        #expect(pending == 2 * limits.bufferSize, "\(pending) bytes pending")
        #expect(v.device.counters.creditViolations.load(ordering: .relaxed) == 0, "the guest kept to its credit")
        _ = hosts
    }
}

struct VsockHostileGuestTests {
    @Test func malformedPacketsAreDroppedOrReset() throws {
        let v = try VsockHarness()
        try v.start()
        try v.postRx(16)
        // Shorter than a header.
        try v.tx.add([(VsockHarness.txData, 20, false)])
        v.kick(VirtioVsock.txQueue)
        // Wrong source CID: dropped silently.
        var h = v.guestHeader(op: op.request, src: 1, dst: 2)
        h.srcCID = 99
        try v.send(h)
        // Unknown operation and a non-stream type: RST.
        try v.send(v.guestHeader(op: 99, src: 5, dst: 6))
        var seq = v.guestHeader(op: op.request, src: 7, dst: 8)
        seq.type = 2
        try v.send(seq)
        // A length beyond the chain, and one beyond 64 KiB (a "4 GiB" length field).
        var long = v.guestHeader(op: op.rw, src: 9, dst: 10)
        long.length = 100
        try v.send(long, payload: [1, 2, 3])
        var huge = v.guestHeader(op: op.rw, src: 11, dst: 12)
        huge.length = .max
        try v.send(huge)
        // Data and shutdowns for connections that do not exist.
        try v.send(v.guestHeader(op: op.rw, src: 13, dst: 14), payload: [1])
        // An RST for nothing gets no answer.
        try v.send(v.guestHeader(op: op.rst, src: 15, dst: 16))
        let replies = try v.receiveAll()
        #expect(replies.allSatisfy { $0.header.op == op.rst })
        #expect(Set(replies.map { $0.header.dstPort }) == [5, 7, 9, 11, 13])
        #expect(v.device.counters.badPackets.load(ordering: .relaxed) == 5)
        #expect(v.device.counters.unknownOps.load(ordering: .relaxed) == 1)
        #expect(v.interrupt.brokenCount.load(ordering: .relaxed) == 0)
    }

    @Test func hugeAndTinyReceiveBuffersAreHandled() throws {
        let v = try VsockHarness()
        try v.start()
        // A buffer too small for a header is returned empty; a 1 MiB one only gets the packet.
        try v.rx.add([(VsockHarness.rxData, 20, true)])
        try v.rx.add([(VsockHarness.rxData + 0x10_0000, 1 << 20, true)])
        v.kick(VirtioVsock.rxQueue)
        try v.send(v.guestHeader(op: op.request, src: 1, dst: 404))
        #expect(try eventually { try v.rx.usedIndex() == 2 })
        let used = try v.rx.takeUsed()
        #expect(used.map(\.length) == [0, 44])
        #expect(v.device.counters.rxBadBuffers.load(ordering: .relaxed) == 1)
    }

    @Test func aDescriptorOutsideRAMBreaksTheQueueNotTheVMM() throws {
        let v = try VsockHarness()
        try v.start()
        try v.tx.writeDescriptor(0, address: 0x10_0000, length: .max, flags: 0, next: 0)
        try v.tx.publish(0)
        v.kick(VirtioVsock.txQueue)
        #expect(eventually { v.interrupt.brokenCount.load(ordering: .relaxed) == 1 })
        #expect(v.isIdle())
    }

    @Test func connectionFloodsAreCappedFromBothSides() throws {
        var limits = VsockLimits()
        limits.maxConnections = 8
        let v = try VsockHarness(limits: limits)
        let service = try HostListener(path: v.path + "_9")
        try v.start()
        try v.postRx(64)
        // Guest side: 20 requests, 8 get through, 12 are reset.
        for port in 0..<20 { try v.send(v.guestHeader(op: op.request, src: UInt32(100 + port), dst: 9)) }
        let replies = try v.receiveAll()
        #expect(replies.filter { $0.header.op == op.response }.count == 8)
        #expect(replies.filter { $0.header.op == op.rst }.count == 12)
        // Host side: with the table full, new host connections are closed at once.
        var hosts: [HostSocket] = []
        for _ in 0..<10 { hosts.append(try HostSocket.connect(v.path)) }
        for h in hosts { #expect(h.read(timeout: 2) == [], "refused") }
        #expect(v.device.counters.refused.load(ordering: .relaxed) == 22)
        #expect(v.device.counters.connections.load(ordering: .relaxed) == 8)
        _ = service
    }

    @Test func resetsForAGuestWithoutReceiveBuffersAreBounded() throws {
        var limits = VsockLimits()
        limits.maxQueuedResets = 16
        let v = try VsockHarness(limits: limits)
        try v.start()
        // 200 requests to a port nobody listens on, and no receive buffers at all.
        for port in 0..<200 { try v.send(v.guestHeader(op: op.request, src: UInt32(port), dst: 31337)) }
        #expect(try eventually { try v.tx.usedIndex() == 200 })
        #expect(v.device.counters.droppedResets.load(ordering: .relaxed) == 184)
        #expect(v.isIdle(), "no spinning while starved")
        try v.postRx(64)
        #expect(try v.receiveAll().count == 16)
    }

    @Test func hostDataWaitsForReceiveBuffersWithoutSpinning() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(1)
        try v.send(v.guestHeader(op: op.request, src: 40, dst: 8))
        let host = try #require(try service.accept())
        #expect(try v.receive()?.header.op == op.response)
        host.write([UInt8](repeating: 1, count: 10000))
        #expect(eventually { v.device.counters.rxStalls.load(ordering: .relaxed) >= 1 })
        #expect(v.isIdle())
        try v.postRx(8)
        let got = try v.receiveAll().filter { $0.header.op == op.rw }.reduce(0) { $0 + $1.payload.count }
        #expect(got == 10000)
    }
}

/// The connection cap keeps `descriptorReserve` descriptors free under the open-files limit.
struct VsockConnectionCapTests {
    @Test func theCapLeavesTheReserveUnderTheOpenFilesLimit() {
        let limits = VsockLimits()
        // Plenty of descriptors: the configured limit.
        #expect(VsockMuxer.connectionCap(limits: limits, openFiles: 1 << 20, openNow: 40) == limits.maxConnections)
        #expect(VsockMuxer.connectionCap(limits: limits, openFiles: nil, openNow: 40) == limits.maxConnections)
        // A common soft limit of 1024 with 40 open: 1024 - 40 - 128.
        #expect(VsockMuxer.connectionCap(limits: limits, openFiles: 1024, openNow: 40) == 1024 - 40 - limits.descriptorReserve)
        // Unknown open count: counted as none.
        #expect(VsockMuxer.connectionCap(limits: limits, openFiles: 512, openNow: nil) == 512 - limits.descriptorReserve)
        // No room at all: no connections, never a negative cap.
        #expect(VsockMuxer.connectionCap(limits: limits, openFiles: 100, openNow: 40) == 0)
    }
}

/// The pending queue of one connection: FIFO order across chunks, its capacity, partial drains.
struct VsockByteQueueTests {
    @Test func bytesComeOutInOrderAcrossChunksAndPartialReads() {
        var q = VsockByteQueue(capacity: 20000)
        var next: UInt8 = 0
        var expected: [UInt8] = []
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        for _ in 0..<200 {
            let n = Int.random(in: 0...3000, using: &rng)
            let bytes = (0..<n).map { _ -> UInt8 in defer { next &+= 1 }; return next }
            let fits = bytes.count <= q.freeSpace
            #expect(bytes.withUnsafeBytes { q.append($0) } == fits)
            if fits { expected += bytes }
            // A reader that takes a random part of what it is offered.
            let budget = Int.random(in: 0...5000, using: &rng)
            var left = budget
            q.drain { chunk in
                let take = min(left, chunk.count)
                out += chunk[0..<take]
                left -= take
                return take
            }
            #expect(q.count == expected.count - out.count)
            #expect(q.count <= q.capacity)
        }
        q.drain { chunk in
            out += chunk
            return chunk.count
        }
        #expect(out == expected)
        #expect(q.isEmpty && q.freeSpace == q.capacity)
    }
}
