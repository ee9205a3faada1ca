import ControlProtocol
import Virtio

/// A rate limit given with the VM's configuration, as `setRateLimit` would apply it.
public struct DeviceRateLimit: Sendable, Equatable {
    /// "disk0", "net1", … (counted per kind in the order the devices are given).
    public var device: String
    public var limits: RateLimits

    public init(device: String, limits: RateLimits) {
        self.device = device
        self.limits = limits
    }
}

/// The rate limiters of a VM's disks and network devices. They outlive the devices (a reboot
/// builds new ones around the same limiters) and change while the VM runs.
final class DeviceRateLimiters: Sendable {
    /// Refill periods above this are refused (a typo, not a policy).
    static let maximumRefillMilliseconds: UInt64 = 3_600_000

    let disks: [RateLimiter]
    let networkReceive: [RateLimiter]
    let networkTransmit: [RateLimiter]

    /// One unlimited limiter per disk and per network direction of `devices`, then `limits` applied in order.
    init(devices: [VirtioDeviceSpec], limits: [DeviceRateLimit]) throws(VMError) {
        var disks = 0
        var nets = 0
        for d in devices {
            switch d {
            case .block: disks += 1
            case .net: nets += 1
            default: break
            }
        }
        self.disks = (0..<disks).map { _ in RateLimiter() }
        networkReceive = (0..<nets).map { _ in RateLimiter() }
        networkTransmit = (0..<nets).map { _ in RateLimiter() }
        for l in limits { try set(device: l.device, limits: l.limits) }
    }

    /// Applies `limits` to `device` (buckets start full); for a network device `direction` picks which side.
    func set(device: String, limits: RateLimits) throws(VMError) {
        let bytes = try Self.bucket(limits.bandwidth, device: device, what: "bandwidth")
        let operations = try Self.bucket(limits.operations, device: device, what: "operations")
        if let i = Self.index(device, prefix: "disk"), i < disks.count {
            disks[i].update(bytes: bytes, operations: operations)
        } else if let i = Self.index(device, prefix: "net"), i < networkReceive.count {
            if limits.direction != .transmit { networkReceive[i].update(bytes: bytes, operations: operations) }
            if limits.direction != .receive { networkTransmit[i].update(bytes: bytes, operations: operations) }
        } else {
            throw VMError("no device '\(device.prefix(32))' to rate-limit (disks: \(disks.count), network devices: \(networkReceive.count))",
                          kind: .invalidRequest)
        }
    }

    private static func index(_ name: String, prefix: String) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        let digits = name.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(digits)
    }

    private static func bucket(_ b: TokenBucket?, device: String, what: String) throws(VMError) -> RateLimiter.Bucket? {
        guard let b, b.size > 0 else { return nil }
        guard b.refillMilliseconds > 0, b.refillMilliseconds <= maximumRefillMilliseconds else {
            throw VMError("\(device.prefix(32)) \(what): the refill time must be 1 to \(maximumRefillMilliseconds) ms", kind: .invalidRequest)
        }
        return RateLimiter.Bucket(size: b.size, oneTimeBurst: b.oneTimeBurst, refillNanoseconds: b.refillMilliseconds * 1_000_000)
    }
}
