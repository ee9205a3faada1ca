import SystemExtras
import Testing
@testable import Virtio
@testable import VirtioNet

/// virtio-net rate limits with the device's real worker thread and timer: frames pass at the
/// limiter's rate, held ones wait in the ring (transmit) or in the device (receive), and the
/// worker sleeps in between instead of spinning.
struct NetRateLimitTests {
    @Test func transmitFramesPerSecondAreHeldToTheLimit() throws {
        // 20 frames a second (2 per 100 ms bucket); 30 frames queued at once.
        let h = try NetHarness(transmitLimiter: RateLimiter(bytes: nil, operations: .rate(20)))
        try h.start()
        let frame = makeFrame(payloadLength: 100)
        for i in 0..<30 { try h.transmit(frame, slot: i, kick: false) }
        let start = monotonicSeconds()
        h.kick(VirtioNet.txQueue)
        var arrivals: [Double] = []
        while arrivals.count < 30, monotonicSeconds() - start < 10 {
            if h.backend.receive(timeout: 1) != nil { arrivals.append(monotonicSeconds() - start) }
        }
        #expect(arrivals.count == 30)
        let wakeups = h.device.counters.wakeups.load(ordering: .relaxed)
        // The full bucket lets 2 go at once; the other 28 come at 20 a second: 1.4 s.
        let last = try #require(arrivals.last)
        #expect(last > 1.2 && last < 2.5, "last frame after \(last) s")
        // The steady rate between frame 5 and frame 30.
        let rate = 25 / (arrivals[29] - arrivals[4])
        #expect(abs(rate - 20) / 20 < 0.15, "\(rate) frames/s")
        #expect(h.device.counters.txThrottled.load(ordering: .relaxed) > 0)
        // A wakeup per bucket refill or so, not a busy loop.
        #expect(wakeups < 100, "\(wakeups) wakeups")
        #expect(try h.tx.usedIndex() == 30)
    }

    @Test func receiveBytesPerSecondAreHeldToTheLimitWithoutLosingFrames() throws {
        // 10,000 bytes a second (1,000 per 100 ms): ten 1,000-byte frames a second.
        let h = try NetHarness(receiveLimiter: RateLimiter(bytes: .rate(10_000), operations: nil))
        try h.start()
        try h.postRxBuffers(64, length: 2048)
        for i in 0..<20 { #expect(h.backend.inject(makeFrame(payloadLength: 1000, seed: UInt8(i)))) }
        let start = monotonicSeconds()
        let counter = { h.device.counters.rxFrames.load(ordering: .relaxed) }
        sleepSeconds(1.0)
        let afterOne = counter()
        // 1 from the full bucket plus about 10 in the second.
        #expect(afterOne >= 9 && afterOne <= 13, "\(afterOne) frames after 1 s")
        #expect(eventually(5) { counter() == 20 })
        let elapsed = monotonicSeconds() - start
        #expect(elapsed > 1.6 && elapsed < 3.5, "20 frames took \(elapsed) s")
        #expect(h.device.counters.rxThrottled.load(ordering: .relaxed) > 0)
        // In order and whole: the guest sees frame i in buffer i.
        for i in 0..<20 {
            let got = try h.rxBuffer(i, length: 12 + 1000)
            #expect(Array(got[12...]) == Array(makeFrame(payloadLength: 1000, seed: UInt8(i))[12...]), "frame \(i)")
        }
    }

    @Test func aLimitChangedWhileThrottledAppliesAtOnce() throws {
        let limiter = RateLimiter(bytes: nil, operations: .rate(2))
        let h = try NetHarness(transmitLimiter: limiter)
        try h.start()
        let frame = makeFrame(payloadLength: 64)
        for i in 0..<20 { try h.transmit(frame, slot: i, kick: false) }
        h.kick(VirtioNet.txQueue)
        sleepSeconds(0.3)
        // 2 a second with a bucket of 2: only the first two are out.
        #expect(try h.tx.usedIndex() == 2)
        limiter.update(bytes: nil, operations: nil)
        // The device is asleep until its timer (up to 0.5 s); then the rest goes without a limit.
        #expect(try eventually(3) { try h.tx.usedIndex() == 20 })
    }
}
