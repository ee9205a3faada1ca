import ControlProtocol
import Foundation
import Testing
@testable import VMM

/// Disk rate limits on a real guest: `virtio-blk.elf mode=seq` writes one 512-byte sector per
/// request (a FLUSH after every 16th) as fast as the device lets it, and the host reads the
/// device's counters over a window.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct RateLimitGuestTests {
    /// Writes a second over `seconds`, read from the `disk0.write-ops` counter.
    static func writeRate(_ vm: VirtualMachine, over seconds: Double) -> Double {
        func writes() -> UInt64 { vm.metrics().first { $0.name == "disk0.write-ops" }?.value ?? 0 }
        let (w0, t0) = (writes(), Date())
        Thread.sleep(forTimeInterval: seconds)
        let (w1, t1) = (writes(), Date())
        return Double(w1 - w0) / t1.timeIntervalSince(t0)
    }

    @Test func aDiskIsHeldToItsLimitsWhichChangeWhileItRuns() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        #expect(FileManager.default.createFile(atPath: dir.file("disk.img"), contents: Data(count: 4 << 20)))
        // 40 operations a second; 1 in 17 of them is a FLUSH.
        let running = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=8000") {
            $0.devices = [.block(path: dir.file("disk.img"), format: .raw, readOnly: false, serial: nil)]
            $0.rateLimits = [DeviceRateLimit(device: "disk0", limits: RateLimits(operations: .rate(40)))]
        }
        defer { running.stop() }
        #expect(running.waitFor("blk seq=16"), "\(running.text)")
        let limited = Self.writeRate(running.vm, over: 2.5)
        let expected = 40.0 * 16 / 17
        #expect(abs(limited - expected) / expected < 0.1, "\(limited) writes/s with 40 IOPS")

        // Now 10 KiB a second of data (20 sectors), operations unlimited; FLUSH carries no data.
        try running.vm.setRateLimit(device: "disk0", limits: RateLimits(bandwidth: .rate(10_240)))
        Thread.sleep(forTimeInterval: 0.3)
        let byBandwidth = Self.writeRate(running.vm, over: 2.5)
        #expect(abs(byBandwidth - 20) / 20 < 0.1, "\(byBandwidth) writes/s with 10 KiB/s")

        // No limit: the guest goes as fast as it can, well above both (how fast depends on the host).
        try running.vm.setRateLimit(device: "disk0", limits: RateLimits())
        Thread.sleep(forTimeInterval: 0.3)
        let free = Self.writeRate(running.vm, over: 1.5)
        #expect(free > 2 * expected, "\(free) writes/s without a limit")

        let throttled = running.vm.metrics().first { $0.name == "disk0.throttled" }?.value ?? 0
        #expect(throttled > 0)
        #expect(!running.text.contains("FAIL"), "\(running.text)")
    }

    /// Bytes written a second over `seconds`, from `disk0.write-bytes`.
    static func byteRate(_ vm: VirtualMachine, over seconds: Double) -> Double {
        func bytes() -> UInt64 { vm.metrics().first { $0.name == "disk0.write-bytes" }?.value ?? 0 }
        let (b0, t0) = (bytes(), Date())
        Thread.sleep(forTimeInterval: seconds)
        let (b1, t1) = (bytes(), Date())
        return Double(b1 - b0) / t1.timeIntervalSince(t0)
    }

    @Test func aDiskLimitedToOneMiBPerSecondWritesOneMiBPerSecond() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let path = dir.file("disk.img")
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        #expect(truncate(path, 1 << 30) == 0)
        // 64 KiB writes back to back.
        let running = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=16000 sectors=128") {
            $0.devices = [.block(path: path, format: .raw, readOnly: false, serial: nil)]
        }
        defer { running.stop() }
        #expect(running.waitFor("blk seq=16"), "\(running.text)")
        let mib = 1_048_576.0
        let free = Self.byteRate(running.vm, over: 1.5)
        // The guest must be able to go faster than the limit, or the limit shows nothing.
        try #require(free > 1.3 * mib, "the guest writes only \(free / mib) MiB/s without a limit")
        // 2^20 is not a multiple of ten: the bucket holds a second's worth and starts full, so
        // the measurement starts once that first MiB has gone.
        try running.vm.setRateLimit(device: "disk0", limits: RateLimits(bandwidth: .rate(1 << 20)))
        Thread.sleep(forTimeInterval: 1.5)
        let limited = Self.byteRate(running.vm, over: 3)
        #expect(abs(limited - mib) / mib < 0.1, "\(limited / mib) MiB/s with a 1 MiB/s limit (\(free / mib) MiB/s without)")
        #expect(!running.text.contains("FAIL"), "\(running.text)")
    }

    @Test func limitsForDevicesTheVMDoesNotHaveAreRefused() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        #expect(FileManager.default.createFile(atPath: dir.file("disk.img"), contents: Data(count: 1 << 20)))
        let running = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=100 wait-key=1") {
            $0.devices = [.block(path: dir.file("disk.img"), format: .raw, readOnly: false, serial: nil)]
        }
        defer { running.stop() }
        #expect(running.waitFor("virtio-blk ready"), "\(running.text)")
        for name in ["disk1", "net0", "disk", "disk-1", "disk00000", "rng0", ""] {
            #expect(throws: VMError.self, "\(name)") { try running.vm.setRateLimit(device: name, limits: RateLimits(operations: .rate(10))) }
        }
        let zeroRefill = RateLimits(operations: TokenBucket(size: 10, refillMilliseconds: 0))
        #expect(throws: VMError.self) { try running.vm.setRateLimit(device: "disk0", limits: zeroRefill) }
        // A configuration naming a missing device does not build.
        var config = VMConfiguration(kernelPath: try GuestKit.path("virtio-blk.elf"))
        config.rateLimits = [DeviceRateLimit(device: "disk0", limits: RateLimits(operations: .rate(10)))]
        #expect(throws: VMError.self) { _ = try VirtualMachine(configuration: config, console: CapturedConsoleOutput()) }
    }
}
