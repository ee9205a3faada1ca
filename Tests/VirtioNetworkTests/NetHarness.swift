import CSkiffSystem
import GuestMemory
import Synchronization
import SystemExtras
@testable import Virtio
@testable import VirtioNet
#if canImport(Glibc)
import Glibc
#endif

/// A frame backend made of a SOCK_SEQPACKET socket pair: the device gets one end, the test
/// plays the host network on the other (each message is one frame with its 12-byte header).
final class SocketPairBackend: VirtioNetBackend, @unchecked Sendable {
    let deviceEnd: OwnedFileDescriptor
    let peer: OwnedFileDescriptor
    let supportsOffloads: Bool
    let offloadCalls = Mutex<[UInt32]>([])

    init(offloads: Bool = false) throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError.current("socketpair")
        }
        deviceEnd = OwnedFileDescriptor(taking: fds[0])
        peer = OwnedFileDescriptor(taking: fds[1])
        supportsOffloads = offloads
    }

    var fd: Int32 { deviceEnd.rawValue }
    func setOffloads(_ flags: UInt32) throws(SystemError) { offloadCalls.withLock { $0.append(flags) } }
    func close() {}

    /// Sends one frame (header included) towards the guest; false if the socket is full.
    @discardableResult
    func inject(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { send(peer.rawValue, $0.baseAddress, $0.count, 0) } == frame.count
    }

    /// Receives one frame the guest sent, waiting up to `timeout` seconds.
    func receive(timeout: Double = 5) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 70000)
        var p = pollfd(fd: peer.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        let n = buffer.withUnsafeMutableBytes { recv(peer.rawValue, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? Array(buffer[0..<n]) : nil
    }

    /// Receives without waiting.
    func receiveNow() -> [UInt8]? { receive(timeout: 0) }
}

/// A virtio-net device activated directly (no PCI transport) with two mock-driver rings.
final class NetHarness {
    let memory: GuestMemory
    var rx: RingDriver
    var tx: RingDriver
    let backend: SocketPairBackend
    let device: VirtioNet
    let interrupt = RecordingInterrupt()
    let notifiers: [EventFD]
    static let rxData: UInt64 = 0x10_0000
    static let txData: UInt64 = 0x120_0000

    init(rxSize: UInt16 = 256, offloads: Bool = false, mac: MACAddress? = nil, memorySize: UInt64 = 24 << 20,
         receiveLimiter: RateLimiter = RateLimiter(), transmitLimiter: RateLimiter = RateLimiter()) throws {
        memory = try GuestMemory(ranges: [(0, memorySize)])
        rx = RingDriver(memory: memory, base: 0x1_0000, size: rxSize)
        tx = RingDriver(memory: memory, base: 0x2_0000)
        backend = try SocketPairBackend(offloads: offloads)
        device = VirtioNet(backend: backend, mac: mac, receiveLimiter: receiveLimiter, transmitLimiter: transmitLimiter)
        notifiers = [try EventFD(), try EventFD()]
    }

    func start(features: UInt64 = VirtioNetFeature.mergeableRxBuffers | VirtioFeature.version1, eventIndex: Bool = false) throws {
        let a = VirtioActivation(memory: memory, features: features,
                                 queues: [rx.queue(eventIndex: eventIndex), tx.queue(eventIndex: eventIndex)],
                                 notifiers: notifiers, interrupt: interrupt)
        try device.activate(a)
    }

    func kick(_ q: Int) { notifiers[q].signal() }

    /// Whether the worker stays asleep for `seconds` (at most a couple of stray wakeups).
    func isIdle(for seconds: Double = 0.3) -> Bool {
        sleepSeconds(0.05)
        let before = device.counters.wakeups.load(ordering: .relaxed)
        sleepSeconds(seconds)
        return device.counters.wakeups.load(ordering: .relaxed) - before <= 2
    }

    /// Posts `count` receive buffers of `length` bytes each (one writable descriptor per chain).
    func postRxBuffers(_ count: Int, length: UInt32, from first: Int = 0) throws {
        for i in first..<(first + count) {
            try rx.add([(Self.rxData + UInt64(i % 256) * 0x1_0000, length, true)])
        }
        kick(VirtioNet.rxQueue)
    }

    /// Sends `frame` (header included) as a chain split into `pieces` readable descriptors.
    func transmit(_ frame: [UInt8], pieces: Int = 1, slot: Int = 0, kick doKick: Bool = true) throws {
        let base = Self.txData + UInt64(slot % 32) * 0x1_0000
        try memory.write(frame, at: base)
        var buffers: [(UInt64, UInt32, Bool)] = []
        let step = max(1, (frame.count + pieces - 1) / pieces)
        var offset = 0
        while offset < frame.count {
            let n = min(step, frame.count - offset)
            buffers.append((base + UInt64(offset), UInt32(n), false))
            offset += n
        }
        try tx.add(buffers)
        if doKick { kick(VirtioNet.txQueue) }
    }

    /// Reads what the device wrote into receive buffer `i`.
    func rxBuffer(_ i: Int, length: Int) throws -> [UInt8] {
        try memory.readBytes(at: Self.rxData + UInt64(i % 256) * 0x1_0000, count: length)
    }

    deinit { device.reset() }
}

/// A frame with a zeroed virtio-net header and `payloadLength` bytes of a pattern seeded by `seed`.
func makeFrame(payloadLength: Int, seed: UInt8 = 0) -> [UInt8] {
    var f = [UInt8](repeating: 0, count: VirtioNetHeader.size)
    f.reserveCapacity(VirtioNetHeader.size + payloadLength)
    for i in 0..<payloadLength { f.append(UInt8(truncatingIfNeeded: i &* 7 &+ Int(seed))) }
    return f
}
