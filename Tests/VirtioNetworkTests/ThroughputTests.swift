import Foundation
import SystemExtras
import Testing
@testable import Virtio
@testable import VirtioNet
@testable import VirtioVsock

/// Rough rates with the mock driver (no guest, no KVM): frames per second through
/// virtio-net and bytes per second through vsock, each direction. Every frame or byte is
/// counted and checked, so the numbers come from complete transfers.
@Suite(.serialized)
struct ThroughputTests {
    static let frames = 20_000

    @Test func virtioNetTransmitRate() throws {
        let h = try NetHarness()
        try h.start()
        let peer = h.backend.peer.rawValue
        let frame = makeFrame(payloadLength: 1514)
        for slot in 0..<32 { try h.memory.write(frame, at: NetHarness.txData + UInt64(slot) * 0x1_0000) }
        let drained = Thread.detachNewThreadAndCount(fd: peer, expected: Self.frames, size: frame.count)
        let start = monotonicSeconds()
        var sent = 0
        var completed = 0
        while completed < Self.frames {
            while sent < Self.frames && sent - completed < 128 {
                try h.tx.add([(NetHarness.txData + UInt64(sent % 32) * 0x1_0000, UInt32(frame.count), false)])
                sent += 1
            }
            h.kick(VirtioNet.txQueue)
            let done = try h.tx.takeUsed().count
            completed += done
            if done == 0 { sleepSeconds(0.0001) }
        }
        let good = drained.wait()
        let elapsed = monotonicSeconds() - start
        #expect(good == Self.frames)
        print("virtio-net tx: \(Self.frames) frames of 1514 bytes in \(String(format: "%.2f", elapsed)) s = \(Int(Double(Self.frames) / elapsed)) frames/s")
    }

    @Test func virtioNetReceiveRate() throws {
        let h = try NetHarness()
        try h.start()
        let peer = h.backend.peer.rawValue
        let frame = makeFrame(payloadLength: 1514)
        for i in 0..<128 { try h.rx.add([(NetHarness.rxData + UInt64(i) * 0x1_0000, 2048, true)]) }
        h.kick(VirtioNet.rxQueue)
        let start = monotonicSeconds()
        Thread.detachNewThreadSending(fd: peer, frame: frame, count: Self.frames)
        var received = 0
        var bytes = 0
        while received < Self.frames {
            let used = try h.rx.takeUsed()
            if used.isEmpty {
                sleepSeconds(0.0001)
                continue
            }
            for u in used {
                received += 1
                bytes += Int(u.length)
                // The same buffer goes back (descriptor ids cycle with the ring).
                try h.rx.add([(NetHarness.rxData + UInt64(u.id % 128) * 0x1_0000, 2048, true)])
            }
            h.kick(VirtioNet.rxQueue)
        }
        let elapsed = monotonicSeconds() - start
        #expect(bytes == Self.frames * frame.count)
        #expect(h.device.counters.rxDroppedTooLarge.load(ordering: .relaxed) == 0)
        print("virtio-net rx: \(Self.frames) frames of 1514 bytes in \(String(format: "%.2f", elapsed)) s = \(Int(Double(Self.frames) / elapsed)) frames/s")
    }

    @Test func vsockRatesBothWays() throws {
        let v = try VsockHarness()
        let service = try HostListener(path: v.path + "_8")
        try v.start()
        try v.postRx(64)
        let bufAlloc: UInt32 = 256 * 1024
        try v.send(v.guestHeader(op: VsockHeader.opRequest, src: 40, dst: 8, bufAlloc: bufAlloc))
        let host = try #require(try service.accept())
        #expect(try v.receive()?.header.op == VsockHeader.opResponse)

        // Host to guest: 16 MiB, the driver recycling buffers and returning credit.
        let total = 16 << 20
        let writer = host.fd.rawValue
        Thread.detachNewThreadSending(fd: writer, frame: [UInt8](repeating: 0x42, count: 64 * 1024), count: total / (64 * 1024))
        var start = monotonicSeconds()
        var got = 0
        var consumed: UInt32 = 0
        while got < total {
            guard let p = try v.receive(timeout: 5) else { break }
            try v.postRx(1)
            guard p.header.op == VsockHeader.opReadWrite else { continue }
            got += p.payload.count
            consumed &+= UInt32(p.payload.count)
            if consumed % (64 * 1024) < UInt32(p.payload.count) {
                try v.send(v.guestHeader(op: VsockHeader.opCreditUpdate, src: 40, dst: 8, bufAlloc: bufAlloc, fwdCnt: consumed))
            }
        }
        var elapsed = monotonicSeconds() - start
        #expect(got == total)
        print("vsock host->guest: \(total >> 20) MiB in \(String(format: "%.2f", elapsed)) s = \(String(format: "%.0f", Double(total) / elapsed / 1e6)) MB/s (4 KiB buffers)")

        // Guest to host: 16 MiB in 4 KiB packets; the host drains.
        let drained = Thread.detachNewThreadAndCount(fd: host.fd.rawValue, expected: total, size: 1)
        start = monotonicSeconds()
        let chunk = [UInt8](repeating: 0x24, count: 4096)
        var sent = 0
        while sent < total {
            try v.send(v.guestHeader(op: VsockHeader.opReadWrite, src: 40, dst: 8, bufAlloc: bufAlloc, fwdCnt: consumed), payload: chunk)
            sent += chunk.count
            // Stay within the device's 64 KiB credit: wait for its fwd_cnt when the pipe is full.
            _ = eventually(5) { v.device.counters.bytesToHost.load(ordering: .relaxed) + 60 * 1024 >= UInt64(sent) }
        }
        let hostGot = drained.wait()
        elapsed = monotonicSeconds() - start
        #expect(hostGot == total)
        #expect(v.device.counters.creditViolations.load(ordering: .relaxed) == 0)
        print("vsock guest->host: \(total >> 20) MiB in \(String(format: "%.2f", elapsed)) s = \(String(format: "%.0f", Double(total) / elapsed / 1e6)) MB/s (4 KiB packets)")
    }
}

/// A background reader that counts messages (size > 1) or bytes (size == 1) on a socket.
final class CountingReader: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var count = 0

    init(fd: Int32, expected: Int, size: Int) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 70000)
            while count < expected {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 10_000) == 1 else { break }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 { continue }
                if n == 0 { break }
                count += size == 1 ? n : (n == size ? 1 : 0)
            }
            done.signal()
        }
    }

    func wait() -> Int {
        done.wait()
        return count
    }
}

extension Thread {
    static func detachNewThreadAndCount(fd: Int32, expected: Int, size: Int) -> CountingReader {
        CountingReader(fd: fd, expected: expected, size: size)
    }

    /// Sends `frame` `count` times on `fd`, waiting for room as needed.
    static func detachNewThreadSending(fd: Int32, frame: [UInt8], count: Int) {
        Thread.detachNewThread {
            var sent = 0
            while sent < count {
                let n = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                if n == frame.count {
                    sent += 1
                } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 1000)
                } else if n > 0 {
                    // A stream socket took part of it: send the rest.
                    var offset = n
                    while offset < frame.count {
                        let m = frame.withUnsafeBytes { b -> Int in
                            guard let base = b.baseAddress else { return -1 }
                            return send(fd, base + offset, b.count - offset, Int32(MSG_NOSIGNAL))
                        }
                        if m <= 0 { return }
                        offset += m
                    }
                    sent += 1
                } else {
                    return
                }
            }
        }
    }
}
