import ArgumentParser
import ControlProtocol
import Testing
@testable import VMCommands
@testable import VMM

/// The rate-limit keys of `--disk` and `--net`.
struct RateOptionParsingTests {
    @Test func diskLimitsBecomeTokenBuckets() throws {
        let p = try DiskOption.parse("/d.img,format=qcow2,bw=10M,iops=200,bw-burst=64M,iops-burst=1000")
        #expect(p.spec == .block(path: "/d.img", format: .qcow2, readOnly: false, serial: nil))
        let l = try #require(p.limits)
        #expect(l.bandwidth == TokenBucket(size: 1_048_576, oneTimeBurst: 64 << 20, refillMilliseconds: 100))
        #expect(l.operations == TokenBucket(size: 20, oneTimeBurst: 1000, refillMilliseconds: 100))
        #expect(try DiskOption.parse("/d.img").limits == nil)
        // A rate that is not a multiple of ten keeps its value (a one-second bucket).
        #expect(try DiskOption.parse("/d.img,iops=15").limits?.operations == TokenBucket(size: 15, refillMilliseconds: 1000))
        #expect(try DiskOption.parse("/d.img,bw=1000").limits?.bandwidth == TokenBucket(size: 100, refillMilliseconds: 100))
    }

    @Test func networkLimitsArePerDirection() throws {
        let p = try NetOption.parse("tap=t0,rx-bw=1M,tx-pps=1000,tx-bw=2M,tx-bw-burst=8M")
        #expect(p.receive == RateLimits(bandwidth: .rate(1 << 20), direction: .receive))
        #expect(p.transmit == RateLimits(bandwidth: .rate(2 << 20, burst: 8 << 20), operations: .rate(1000), direction: .transmit))
        let none = try NetOption.parse("tap=t0")
        #expect(none.receive == nil && none.transmit == nil)
    }

    @Test func badValuesAreRefusedWithTheirKey() {
        let cases: [(String, String)] = [
            ("/d.img,bw=0", "bw must be from 1"),
            ("/d.img,iops=0", "iops must be from 1"),
            ("/d.img,iops=ten", "iops must be a whole number"),
            ("/d.img,iops=-5", "iops must be a whole number"),
            ("/d.img,iops=99999999999999999999", "iops must be a whole number"),
            ("/d.img,iops=2000000000", "iops must be from 1"),
            ("/d.img,bw=2T", "bw must be from 1"),
            ("/d.img,bw=fast", "bw: invalid size"),
            ("/d.img,bw=1M,bw=2M", "'bw' given twice"),
            ("/d.img,bw-burst=1M", "bw-burst needs bw"),
            ("/d.img,iops-burst=10", "iops-burst needs iops"),
            ("/d.img,rx-bw=1M", "unknown option 'rx-bw=1M'"),
        ]
        for (text, expected) in cases {
            do {
                _ = try DiskOption.parse(text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
            }
        }
        for (text, expected) in [("tap=t0,rx-pps=x", "rx-pps must be a whole number"), ("tap=t0,bw=1M", "unknown option 'bw'"),
                                 ("tap=t0,rx-bw-burst=1M", "rx-bw-burst needs rx-bw")] {
            do {
                _ = try NetOption.parse(text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
            }
        }
    }

    @Test func theRunCommandNamesLimitsAfterTheDevicesItCreates() throws {
        let command = try RunCommand.parse(["--kernel", "/k", "--disk", "/a.img", "--disk", "/b.img,iops=100",
                                            "--net", "tap=t0,rx-pps=50", "--net", "tap=t1,tx-bw=1M"])
        let config = try command.options.makeConfiguration()
        #expect(config.rateLimits == [
            DeviceRateLimit(device: "disk1", limits: RateLimits(operations: .rate(100))),
            DeviceRateLimit(device: "net0", limits: RateLimits(operations: .rate(50), direction: .receive)),
            DeviceRateLimit(device: "net1", limits: RateLimits(bandwidth: .rate(1 << 20), direction: .transmit)),
        ])
    }
}
