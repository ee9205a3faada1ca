import Foundation
import GuestMemory
import SystemExtras
@testable import Virtio
@testable import VirtioVsock

/// A virtio-vsock device activated directly with mock-driver rings: the test plays the
/// guest's vsock driver (packets on the queues) and the host's processes (AF_UNIX sockets).
final class VsockHarness {
    static let guestCID: UInt64 = 3
    static let rxData: UInt64 = 0x10_0000
    static let txData: UInt64 = 0x130_0000
    static let slot: UInt64 = 0x1_1000
    static let txSlots = 64

    let memory: GuestMemory
    var rx: RingDriver
    var tx: RingDriver
    var events: RingDriver
    let directory: String
    let path: String
    let device: VirtioVsock
    let interrupt = RecordingInterrupt()
    let notifiers: [EventFD]
    private var rxAddress: [UInt32: UInt64] = [:]
    private var nextRxSlot = 0
    private var nextTxSlot = 0
    private var received: [(VsockHeader, [UInt8])] = []

    init(limits: VsockLimits = VsockLimits(), rxSize: UInt16 = 256) throws {
        memory = try GuestMemory(ranges: [(0, 24 << 20)])
        rx = RingDriver(memory: memory, base: 0x1_0000, size: rxSize)
        tx = RingDriver(memory: memory, base: 0x2_0000)
        events = RingDriver(memory: memory, base: 0x3_0000)
        directory = NSTemporaryDirectory() + "skiff-vsock-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/v.sock"
        device = try VirtioVsock(guestCID: UInt32(Self.guestCID), socketPath: path, limits: limits)
        notifiers = [try EventFD(), try EventFD(), try EventFD()]
    }

    deinit {
        device.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func start(eventIndex: Bool = false) throws {
        try device.activate(VirtioActivation(memory: memory, features: VirtioFeature.version1,
                                             queues: [rx.queue(eventIndex: eventIndex), tx.queue(eventIndex: eventIndex), events.queue()],
                                             notifiers: notifiers, interrupt: interrupt))
    }

    func kick(_ q: Int) { notifiers[q].signal() }

    /// Whether the worker stays asleep for `seconds` (at most a couple of stray wakeups).
    func isIdle(for seconds: Double = 0.3) -> Bool {
        sleepSeconds(0.05)
        let before = device.counters.wakeups.load(ordering: .relaxed)
        sleepSeconds(seconds)
        return device.counters.wakeups.load(ordering: .relaxed) - before <= 2
    }

    /// Posts `count` receive buffers of `length` bytes.
    func postRx(_ count: Int, length: UInt32 = 4096 + 44) throws {
        for _ in 0..<count {
            let address = Self.rxData + UInt64(nextRxSlot % 256) * Self.slot
            nextRxSlot += 1
            let head = try rx.add([(address, length, true)])
            rxAddress[UInt32(head)] = address
        }
        kick(VirtioVsock.rxQueue)
    }

    /// Sends a packet from the guest: the header in one descriptor, the payload in another.
    func send(_ h: VsockHeader, payload: [UInt8] = []) throws {
        var h = h
        if h.length == 0 { h.length = UInt32(payload.count) }
        // Reuse a slot only after the device consumed the packet that used it.
        if nextTxSlot >= Self.txSlots {
            let needed = UInt16(truncatingIfNeeded: nextTxSlot - Self.txSlots + 1)
            _ = eventually { (try? tx.usedIndex()).map { $0 &- needed < 0x8000 } ?? false }
        }
        let address = Self.txData + UInt64(nextTxSlot % Self.txSlots) * Self.slot
        nextTxSlot += 1
        try memory.write(h.bytes, at: address)
        try memory.write(payload, at: address + 0x100)
        var buffers: [(UInt64, UInt32, Bool)] = [(address, UInt32(VsockHeader.size), false)]
        if !payload.isEmpty { buffers.append((address + 0x100, UInt32(payload.count), false)) }
        try tx.add(buffers)
        kick(VirtioVsock.txQueue)
    }

    /// A guest packet header from guest port `src` to host port `dst`.
    func guestHeader(op: UInt16, src: UInt32, dst: UInt32, bufAlloc: UInt32 = 256 * 1024, fwdCnt: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        VsockHeader(srcCID: Self.guestCID, dstCID: 2, srcPort: src, dstPort: dst, op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    /// The next packet the device put on the receive queue, waiting up to `timeout` seconds.
    func receive(timeout: Double = 5) throws -> (header: VsockHeader, payload: [UInt8])? {
        let deadline = monotonicSeconds() + timeout
        while received.isEmpty {
            for (id, length) in try rx.takeUsed() {
                guard let address = rxAddress[id], length >= UInt32(VsockHeader.size) else {
                    received.append((VsockHeader(op: 0xffff), []))
                    continue
                }
                let bytes = try memory.readBytes(at: address, count: Int(length))
                guard let h = bytes.withUnsafeBytes({ VsockHeader(bytes: $0) }) else { continue }
                received.append((h, Array(bytes[VsockHeader.size...])))
            }
            if !received.isEmpty { break }
            if monotonicSeconds() > deadline { return nil }
            sleepSeconds(0.001)
        }
        return received.removeFirst()
    }

    /// Packets received within `timeout` seconds, until none arrives for that long.
    func receiveAll(timeout: Double = 0.2) throws -> [(header: VsockHeader, payload: [UInt8])] {
        var out: [(VsockHeader, [UInt8])] = []
        while let p = try receive(timeout: timeout) { out.append(p) }
        return out
    }
}

/// A blocking AF_UNIX stream socket end on the host, with timeouts.
final class HostSocket {
    let fd: OwnedFileDescriptor

    init(fd: OwnedFileDescriptor) throws {
        self.fd = fd
        try fd.setNonBlocking(false)
    }

    /// Connects to `path`.
    static func connect(_ path: String) throws -> HostSocket {
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw SystemError.current("socket") }
        let fd = OwnedFileDescriptor(taking: raw)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw SystemError.current("connect \(path)") }
        return try HostSocket(fd: fd)
    }

    func write(_ s: String) { write(Array(s.utf8)) }
    func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads what is available within `timeout`: bytes, [] on end of stream, nil on timeout.
    func read(max: Int = 65536, timeout: Double = 5) -> [UInt8]? {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: max)
        let n = buffer.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, max, 0) }
        return n >= 0 ? Array(buffer[0..<n]) : []
    }

    /// Reads exactly `count` bytes (or what arrived before end of stream / timeout).
    func read(exactly count: Int, timeout: Double = 5) -> [UInt8] {
        var out: [UInt8] = []
        let deadline = monotonicSeconds() + timeout
        while out.count < count, monotonicSeconds() < deadline {
            guard let chunk = read(max: count - out.count, timeout: deadline - monotonicSeconds()), !chunk.isEmpty else { break }
            out += chunk
        }
        return out
    }
}

/// A listening AF_UNIX socket at `path` (a host service for guest-initiated connections).
final class HostListener {
    let fd: OwnedFileDescriptor
    let path: String

    init(path: String) throws {
        self.path = path
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw SystemError.current("socket") }
        fd = OwnedFileDescriptor(taking: raw)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0, listen(raw, 64) == 0 else { throw SystemError.current("bind/listen \(path)") }
    }

    deinit { unlink(path) }

    func accept(timeout: Double = 5) throws -> HostSocket? {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        let raw = Glibc.accept(fd.rawValue, nil, nil)
        guard raw >= 0 else { return nil }
        return try HostSocket(fd: OwnedFileDescriptor(taking: raw))
    }
}
