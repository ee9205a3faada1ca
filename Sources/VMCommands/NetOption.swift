import ArgumentParser
import ControlProtocol
import VMM
import VirtioNet

/// `--net tap=NAME[,mac=MAC][,rx-bw=SIZE][,tx-bw=SIZE][,rx-pps=N][,tx-pps=N]`: one virtio-net
/// device on a TAP interface, optionally rate-limited per direction (rx is what the guest
/// receives; bytes a second with K/M/G suffixes, frames a second).
enum NetOption {
    static let usage = "tap=NAME[,mac=MAC][,rx-bw=SIZE][,tx-bw=SIZE][,rx-pps=N][,tx-pps=N][,rx-bw-burst=SIZE][,tx-bw-burst=SIZE]"

    /// The device and its rate limits per direction.
    struct Parsed {
        var spec: VirtioDeviceSpec
        var receive: RateLimits?
        var transmit: RateLimits?
    }

    /// Parses one `--net` value; a missing MAC becomes a random locally administered one here,
    /// so the guest sees the same address after a reboot.
    static func parse(_ text: String) throws(ValidationError) -> Parsed {
        var rates = RateOptions(option: "--net", text: text)
        var tap: String?
        var mac: MACAddress?
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw ValidationError("--net '\(text)': '\(field)' is not key=value (expected \(usage))") }
            let value = String(parts[1])
            switch parts[0] {
            case "tap":
                guard tap == nil else { throw ValidationError("--net '\(text)': 'tap' given twice") }
                do {
                    try TapDevice.validateName(value)
                } catch {
                    throw ValidationError("--net '\(text)': TAP name must be 1-15 printable characters without '/', ':' or spaces")
                }
                tap = value
            case "mac":
                guard mac == nil else { throw ValidationError("--net '\(text)': 'mac' given twice") }
                do {
                    mac = try MACAddress(parsing: value)
                } catch {
                    throw ValidationError("--net '\(text)': \(error.description)")
                }
            case let key where RateOptions.netKeys.contains(String(key)):
                try rates.set(String(key), value)
            default:
                throw ValidationError("--net '\(text)': unknown option '\(parts[0])' (expected \(usage))")
            }
        }
        guard let tap else { throw ValidationError("--net '\(text)': missing tap=NAME (expected \(usage))") }
        return Parsed(spec: .net(tap: tap, mac: mac ?? MACAddress.random()),
                      receive: try rates.limits(bandwidth: "rx-bw", operations: "rx-pps", bandwidthBurst: "rx-bw-burst", direction: .receive),
                      transmit: try rates.limits(bandwidth: "tx-bw", operations: "tx-pps", bandwidthBurst: "tx-bw-burst", direction: .transmit))
    }
}

/// `--vsock cid=N,socket=PATH`: the virtio-vsock device.
enum VsockOption {
    static let usage = "cid=N,socket=PATH"

    static func parse(_ text: String) throws(ValidationError) -> VirtioDeviceSpec {
        var cid: UInt32?
        var socket: String?
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw ValidationError("--vsock '\(text)': '\(field)' is not key=value (expected \(usage))") }
            let value = String(parts[1])
            switch parts[0] {
            case "cid":
                guard cid == nil else { throw ValidationError("--vsock '\(text)': 'cid' given twice") }
                guard value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt32(value), n >= 3, n != UInt32.max else {
                    throw ValidationError("--vsock '\(text)': cid must be a number from 3 to 4294967294")
                }
                cid = n
            case "socket":
                guard socket == nil else { throw ValidationError("--vsock '\(text)': 'socket' given twice") }
                guard !value.isEmpty else { throw ValidationError("--vsock '\(text)': socket path is empty") }
                socket = value
            default:
                throw ValidationError("--vsock '\(text)': unknown option '\(parts[0])' (expected \(usage))")
            }
        }
        guard let cid, let socket else { throw ValidationError("--vsock '\(text)': both cid= and socket= are needed (expected \(usage))") }
        return .vsock(cid: cid, socket: socket)
    }
}
