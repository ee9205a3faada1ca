#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import GuestMemory
import Virtio
import VirtioVsock

/// virtio-vsock (`VsockMuxer`): guest packets of any header and payload on the transmit queue,
/// receive buffers of any shape, and a host side that connects, sends `CONNECT` lines and data,
/// reads and hangs up, all through real AF_UNIX sockets.
///
/// Checks: every packet the device puts on the receive queue has a whole header naming the host
/// (CID 2) and the guest, a stream type, a known operation, and a payload that fits the used
/// length; a RW packet carries data, other operations none.
public enum VirtioVsockHarness {
    static let guestCID: UInt32 = 3
    static let guestPort: UInt32 = 1024

    final class Host {
        let directory: String
        let socketPath: String
        let listener: Int32
        let portListener: Int32

        init() throws(FuzzInvariantViolation) {
            directory = "/tmp/skiff-fuzz-vsock-\(getpid())"
            unsafe mkdir(directory, 0o700)
            socketPath = directory + "/v.sock"
            listener = FuzzUnixSocket.listen(path: socketPath)
            portListener = FuzzUnixSocket.listen(path: "\(socketPath)_\(VirtioVsockHarness.guestPort)")
            guard listener >= 0, portListener >= 0 else { throw FuzzInvariantViolation("cannot listen in \(directory)") }
        }
    }

    nonisolated(unsafe) static var ram: FuzzGuestRAM?
    nonisolated(unsafe) static var host: Host?

    /// Closes the listening sockets and removes their directory.
    static func removeHost() {
        guard let host = unsafe host else { return }
        close(host.listener)
        close(host.portListener)
        unsafe unlink(host.socketPath)
        unsafe unlink("\(host.socketPath)_\(guestPort)")
        unsafe rmdir(host.directory)
        unsafe Self.host = nil
    }

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        let host: Host
        if let existing = unsafe Self.host {
            host = existing
        } else {
            host = try Host()
            unsafe Self.host = host
        }
        let memory = ram.memory
        var input = FuzzInput(data)
        let flags = input.u8()
        var features = VirtioFeature.version1
        if flags & 1 != 0 { features |= VirtioFeature.indirectDescriptors }
        if flags & 2 != 0 { features |= VirtioFeature.eventIndex }
        var limits = VsockLimits()
        if flags & 4 != 0 {
            limits.bufferSize = 1 + input.below(8192)
            limits.creditUpdateThreshold = input.below(4096)
            limits.maxConnections = 1 + input.below(4)
            limits.maxQueuedResets = input.below(8)
        }
        var driver = FuzzDriver(memory: memory, queues: 3)
        let interrupt = FuzzInterrupt()
        let activation = try fuzzActivation(memory: memory, driver: driver, queues: 3, features: features, interrupt: interrupt)
        var hostSockets: [Int32] = []
        defer {
            for fd in hostSockets { close(fd) }
            // Connections the guest opened to the port listener and nobody accepted.
            while case let fd = FuzzUnixSocket.accept(host.portListener), fd >= 0 { close(fd) }
        }
        do {
            let muxer: VsockMuxer
            do {
                muxer = try VsockMuxer(activation: activation, guestCID: UInt64(guestCID), socketPath: host.socketPath,
                                       listenerFD: host.listener, limits: limits, counters: VsockCounters())
            } catch {
                throw FuzzInvariantViolation("cannot create the muxer: \(error)")
            }
            var steps = 0
            while !input.isAtEnd && steps < 96 {
                steps += 1
                switch input.u8() % 12 {
                case 0:
                    ram.scribble(&input, sparing: FuzzDriver.isUsedRing)
                case 1, 2:
                    publishPacket(&driver, &input, indirect: features & VirtioFeature.indirectDescriptors != 0)
                case 3:
                    // Receive buffers.
                    let parts = FuzzDriver.randomParts(&input, maxCount: 3).map { FuzzDriver.Part(address: $0.address, length: $0.length, writable: input.u8() != 0) }
                    driver.publish(queue: VirtioVsock.rxQueue, parts: parts, contents: [], indirect: false, input: &input)
                case 4:
                    // A host process connects and sends a CONNECT line (or garbage).
                    let fd = FuzzUnixSocket.connect(path: host.socketPath)
                    if fd >= 0 {
                        hostSockets.append(fd)
                        let line = input.bool() ? Array("CONNECT \(input.bool() ? guestPort : input.u32())\n".utf8) : input.bytes(Int(input.u8() % 40))
                        _ = unsafe line.withUnsafeBytes { unsafe send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                    }
                case 5:
                    // The host accepts a guest-initiated connection.
                    let fd = FuzzUnixSocket.accept(host.portListener)
                    if fd >= 0 { hostSockets.append(fd) }
                case 6:
                    // A host socket sends data, reads what it got, or hangs up.
                    guard !hostSockets.isEmpty else { break }
                    let i = input.below(hostSockets.count)
                    switch input.u8() % 4 {
                    case 0:
                        close(hostSockets[i])
                        hostSockets.remove(at: i)
                    case 1:
                        _ = shutdown(hostSockets[i], Int32(SHUT_WR))
                    case 2:
                        var sink = [UInt8](repeating: 0, count: 70000)
                        _ = unsafe sink.withUnsafeMutableBytes { unsafe recv(hostSockets[i], $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    default:
                        var bytes = input.bytes(Int(input.u8()))
                        if input.bool() { bytes += [UInt8](repeating: 0x61, count: Int(input.u16())) }
                        _ = unsafe bytes.withUnsafeBytes { unsafe send(hostSockets[i], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                    }
                default:
                    let sources: [VirtioWorker.Source] = [.queue(VirtioVsock.txQueue), .queue(VirtioVsock.rxQueue), .queue(VirtioVsock.eventQueue),
                                                          .backend(0), .backend(1), .backend(2), .backend(3)]
                    let before = driver.usedIndex(VirtioVsock.rxQueue)
                    muxer.handle(sources[input.below(sources.count)], events: UInt32(EPOLLIN.rawValue))
                    try checkLatestReceived(driver: driver, memory: memory, before: before)
                }
            }
            let before = driver.usedIndex(VirtioVsock.rxQueue)
            muxer.handle(.queue(VirtioVsock.txQueue), events: 0)
            muxer.handle(.queue(VirtioVsock.rxQueue), events: 0)
            try checkLatestReceived(driver: driver, memory: memory, before: before)
        }
    }

    /// A guest packet: a header (mostly to the host, to the guest port or a few others) and payload.
    static func publishPacket(_ driver: inout FuzzDriver, _ input: inout FuzzInput, indirect: Bool) {
        let ports: [UInt32] = [guestPort, 1025, 1 << 30, 0xffff_ffff]
        let random = input.u8() & 0x7 == 0
        var header = VsockHeader()
        header.srcCID = random ? input.u64() : UInt64(guestCID)
        header.dstCID = random ? input.u64() : 2
        header.srcPort = input.bool() ? UInt32(40000 + input.below(4)) : input.u32()
        header.dstPort = input.bool() ? ports[input.below(ports.count)] : input.u32()
        header.type = random ? input.u16() : VsockHeader.typeStream
        header.op = UInt16(1 + input.below(8))
        header.flags = UInt32(input.u8() % 4)
        header.bufAlloc = input.bool() ? 65536 : input.u32()
        header.fwdCnt = input.bool() ? 0 : input.u32()
        let payload = input.bytes(Int(input.u16() % 2048))
        header.length = input.u8() & 0xf == 0 ? input.u32() : UInt32(payload.count)
        let bytes = header.bytes
        let split = input.bool()
        var parts = [FuzzDriver.Part(address: FuzzDriver.dataStart + UInt64(input.below(0x100)) * 64,
                                     length: UInt32(split ? VsockHeader.size : VsockHeader.size + payload.count), writable: false)]
        if split && !payload.isEmpty {
            parts.append(FuzzDriver.Part(address: FuzzDriver.dataStart + 0x8000 + UInt64(input.below(0x100)) * 64, length: UInt32(payload.count), writable: false))
        }
        if input.u8() & 0xf == 0 { parts += FuzzDriver.randomParts(&input, maxCount: 2) }
        driver.publish(queue: VirtioVsock.txQueue, parts: parts, contents: bytes + payload, indirect: indirect && input.bool(), input: &input)
    }

    /// The packet the device delivered last in one `handle` call is well formed. (Earlier ones
    /// of the same call may share buffers with it, and the guest may rewrite buffers between
    /// calls, so only the latest is checked, right after the call.)
    static func checkLatestReceived(driver: FuzzDriver, memory: GuestMemory, before: UInt16) throws(FuzzInvariantViolation) {
        let used = driver.usedIndex(VirtioVsock.rxQueue)
        guard used != before, !driver.usedRingsExposed else { return }
        let element = driver.usedElement(VirtioVsock.rxQueue, used &- 1)
        try require(element.id < UInt32(FuzzDriver.queueSize), "used id \(element.id)")
        guard element.length > 0 else { return }
        try require(element.length >= UInt32(VsockHeader.size), "used length \(element.length) shorter than a header")
        // The header went to the chain's first writable descriptor (direct chains only); the
        // payload after it must not have landed on it (a chain may overlap itself).
        var index = UInt64(element.id)
        var writable: [(address: UInt64, length: UInt64)] = []
        for _ in 0..<Int(FuzzDriver.queueSize) {
            let base = FuzzDriver.table(VirtioVsock.rxQueue) + 16 * index
            guard let address = try? memory.load(UInt64.self, at: base), let length = try? memory.load(UInt32.self, at: base + 8),
                  let flags = try? memory.load(UInt16.self, at: base + 12), let next = try? memory.load(UInt16.self, at: base + 14),
                  flags & SplitQueue.flagIndirect == 0 else { return }
            if flags & SplitQueue.flagWrite != 0 { writable.append((address, UInt64(length))) }
            guard flags & SplitQueue.flagNext != 0, next < FuzzDriver.queueSize else { break }
            index = UInt64(next)
        }
        guard let first = writable.first, first.length >= UInt64(VsockHeader.size) else { return }
        let header = first.address..<(first.address &+ UInt64(VsockHeader.size))
        for other in writable.dropFirst() where other.address < header.upperBound && header.lowerBound < other.address &+ other.length {
            return
        }
        guard let bytes = try? memory.readBytes(at: first.address, count: VsockHeader.size),
              let packet = unsafe bytes.withUnsafeBytes({ unsafe VsockHeader(bytes: $0) }) else { return }
        try require(packet.srcCID == 2 && packet.dstCID == UInt64(guestCID), "received \(packet.srcCID) -> \(packet.dstCID)")
        try require(packet.type == VsockHeader.typeStream, "received type \(packet.type)")
        try require((1...7).contains(packet.op), "received op \(packet.op)")
        try require(UInt64(packet.length) + UInt64(VsockHeader.size) == UInt64(element.length),
                    "header length \(packet.length) but used length \(element.length)")
        try require(packet.op == VsockHeader.opReadWrite || packet.length == 0, "op \(packet.op) with \(packet.length) payload bytes")
    }
}
