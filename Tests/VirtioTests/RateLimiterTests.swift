import Testing
@testable import Virtio

/// The token buckets on a clock the test moves (nanoseconds).
struct RateLimiterTests {
    static let ms: UInt64 = 1_000_000

    @Test func anUnlimitedLimiterLetsEverythingThrough() {
        let l = RateLimiter(bytes: nil, operations: nil, at: 0)
        #expect(!l.isLimiting)
        for _ in 0..<1000 { #expect(l.consume(bytes: 1 << 30, operations: 1, at: 0) == nil) }
        // A zero-sized bucket is no limit either.
        let zero = RateLimiter(bytes: .init(size: 0, refillNanoseconds: 100 * Self.ms), operations: nil, at: 0)
        #expect(!zero.isLimiting)
    }

    @Test func aFullBucketGivesItsSizeThenMakesTheCallerWaitForTheRefill() throws {
        // 10 operations per 100 ms.
        let l = RateLimiter(bytes: nil, operations: .init(size: 10, refillNanoseconds: 100 * Self.ms), at: 0)
        for _ in 0..<10 { #expect(l.consume(bytes: 0, operations: 1, at: 0) == nil) }
        let wait = try #require(l.consume(bytes: 0, operations: 1, at: 0))
        // One token takes 10 ms to come back.
        #expect(wait == 10 * Self.ms)
        #expect(l.consume(bytes: 0, operations: 1, at: 9 * Self.ms) != nil)
        #expect(l.consume(bytes: 0, operations: 1, at: 10 * Self.ms) == nil)
        #expect(l.consume(bytes: 0, operations: 1, at: 10 * Self.ms) != nil)
    }

    @Test func overALongRunTheRateIsTheBucketsRate() {
        // 1 MB/s in 100 ms buckets, requests of 4 KiB arriving as fast as they are let through.
        let l = RateLimiter(bytes: .rate(1_000_000), operations: nil, at: 0)
        var now: UInt64 = 0
        var passed: UInt64 = 0
        while now < 10_000 * Self.ms {
            if let wait = l.consume(bytes: 4096, operations: 1, at: now) {
                now += wait
            } else {
                passed += 4096
            }
        }
        // 10 s at 1 MB/s, plus the bucket that was full at the start (100 KB).
        let expected = 10_000_000.0 + 100_000.0
        #expect(abs(Double(passed) - expected) / expected < 0.01, "passed \(passed)")
    }

    @Test func aRequestTakesFromBothBucketsOrFromNeither() throws {
        let l = RateLimiter(bytes: .init(size: 1000, refillNanoseconds: 1000 * Self.ms),
                            operations: .init(size: 2, refillNanoseconds: 1000 * Self.ms), at: 0)
        #expect(l.consume(bytes: 100, operations: 1, at: 0) == nil)
        #expect(l.consume(bytes: 100, operations: 1, at: 0) == nil)
        // Out of operations: the bytes bucket (800 left) must not be charged.
        #expect(l.consume(bytes: 800, operations: 1, at: 0) != nil)
        // Half a second later one operation is back and the bytes bucket is full (800 kept + 500
        // refilled, capped at 1000): had the refused request been charged, 800 would not fit now.
        #expect(l.consume(bytes: 800, operations: 1, at: 500 * Self.ms) == nil)
        #expect(l.consume(bytes: 200, operations: 0, at: 500 * Self.ms) == nil)
        #expect(l.consume(bytes: 1, operations: 0, at: 500 * Self.ms) != nil)
    }

    @Test func theOneTimeBurstIsSpentFirstAndNeverComesBack() {
        let l = RateLimiter(bytes: .init(size: 100, oneTimeBurst: 1000, refillNanoseconds: 1000 * Self.ms), operations: nil, at: 0)
        // 1000 from the burst, then 100 from the bucket.
        #expect(l.consume(bytes: 600, operations: 1, at: 0) == nil)
        #expect(l.consume(bytes: 400, operations: 1, at: 0) == nil)
        #expect(l.consume(bytes: 100, operations: 1, at: 0) == nil)
        #expect(l.consume(bytes: 1, operations: 1, at: 0) != nil)
        // After a long idle time only the bucket refills.
        #expect(l.consume(bytes: 100, operations: 1, at: 60_000 * Self.ms) == nil)
        #expect(l.consume(bytes: 1, operations: 1, at: 60_000 * Self.ms) != nil)
    }

    @Test func aRequestBiggerThanTheBucketPassesWhenFullAndLeavesItInDebt() throws {
        let l = RateLimiter(bytes: .init(size: 1000, refillNanoseconds: 1000 * Self.ms), operations: nil, at: 0)
        #expect(l.consume(bytes: 3000, operations: 1, at: 0) == nil)
        // 2000 in debt: even a small request waits until the bucket is back above zero.
        let wait = try #require(l.consume(bytes: 1, operations: 1, at: 0))
        #expect(wait >= 1000 * Self.ms)
        #expect(l.consume(bytes: 1, operations: 1, at: 1999 * Self.ms) != nil)
        #expect(l.consume(bytes: 1, operations: 1, at: 2002 * Self.ms) == nil)
    }

    @Test func hugeValuesNeitherTrapNorWrap() {
        let l = RateLimiter(bytes: .init(size: .max, oneTimeBurst: .max, refillNanoseconds: .max),
                            operations: .init(size: 1, refillNanoseconds: 1), at: 0)
        #expect(l.consume(bytes: .max, operations: 1, at: 0) == nil)
        // Only must not trap: the clock jumping to the end and an absurd request.
        _ = l.consume(bytes: .max, operations: .max, at: .max)
        let tiny = RateLimiter(bytes: .init(size: 1, refillNanoseconds: .max), operations: nil, at: 0)
        #expect(tiny.consume(bytes: 1, operations: 0, at: 0) == nil)
        let wait = tiny.consume(bytes: .max, operations: 0, at: .max)
        #expect(wait == nil)  // oversized, bucket full after the long wait
    }

    @Test func updatingReplacesTheBucketsFull() {
        let l = RateLimiter(bytes: nil, operations: .init(size: 1, refillNanoseconds: 1000 * Self.ms), at: 0)
        #expect(l.consume(bytes: 0, operations: 1, at: 0) == nil)
        #expect(l.consume(bytes: 0, operations: 1, at: 0) != nil)
        l.update(bytes: nil, operations: .init(size: 5, refillNanoseconds: 1000 * Self.ms))
        #expect(l.isLimiting)
        for _ in 0..<5 { #expect(l.consume(bytes: 0, operations: 1) == nil) }
        #expect(l.consume(bytes: 0, operations: 1) != nil)
        l.update(bytes: nil, operations: nil)
        #expect(!l.isLimiting)
        #expect(l.consume(bytes: 0, operations: 1) == nil)
    }

    @Test func ratesThatAreNotMultiplesOfTenKeepTheirValue() {
        #expect(RateLimiter.Bucket.rate(5) == .init(size: 5, refillNanoseconds: 1_000_000_000))
        #expect(RateLimiter.Bucket.rate(15) == .init(size: 15, refillNanoseconds: 1_000_000_000))
        #expect(RateLimiter.Bucket.rate(1000) == .init(size: 100, refillNanoseconds: 100_000_000))
    }
}
