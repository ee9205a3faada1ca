import ArgumentParser
import Units
import ControlProtocol

/// The rate-limit keys of `--disk` and `--net`: bytes a second (K/M/G suffixes, no default
/// unit) and operations or frames a second, each refilled continuously, plus one-time bursts.
struct RateOptions {
    static let diskKeys: Set<String> = ["bw", "iops", "bw-burst", "iops-burst"]
    static let netKeys: Set<String> = ["rx-bw", "tx-bw", "rx-pps", "tx-pps", "rx-bw-burst", "tx-bw-burst"]
    /// Beyond this a value is a typo (1 TiB/s, 1 G operations/s).
    static let maximumBytes: UInt64 = 1 << 40
    static let maximumOperations: UInt64 = 1 << 30

    let option: String
    let text: String
    private var values: [String: UInt64] = [:]

    init(option: String, text: String) {
        self.option = option
        self.text = text
    }

    mutating func set(_ key: String, _ value: String) throws(ValidationError) {
        guard values[key] == nil else { throw ValidationError("\(option) '\(text)': '\(key)' given twice") }
        let isBytes = key.contains("bw")
        let n: UInt64
        if isBytes {
            do {
                n = try ByteSize.parse(value, defaultUnitShift: 0)
            } catch {
                throw ValidationError("\(option) '\(text)': \(key): \(error.description)")
            }
        } else {
            guard !value.isEmpty, value.utf8.count <= 12, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(value) else {
                throw ValidationError("\(option) '\(text)': \(key) must be a whole number")
            }
            n = v
        }
        let limit = isBytes ? Self.maximumBytes : Self.maximumOperations
        guard n > 0, n <= limit else {
            throw ValidationError("\(option) '\(text)': \(key) must be from 1 to \(limit)")
        }
        values[key] = n
    }

    /// The limits named by these keys, or nil when none of them was given.
    func limits(bandwidth: String, operations: String, bandwidthBurst: String, operationsBurst: String? = nil,
                direction: RateLimits.Direction = .both) throws(ValidationError) -> RateLimits? {
        let bw = values[bandwidth]
        let ops = values[operations]
        if bw == nil, values[bandwidthBurst] != nil {
            throw ValidationError("\(option) '\(text)': \(bandwidthBurst) needs \(bandwidth)")
        }
        if let operationsBurst, ops == nil, values[operationsBurst] != nil {
            throw ValidationError("\(option) '\(text)': \(operationsBurst) needs \(operations)")
        }
        guard bw != nil || ops != nil else { return nil }
        return RateLimits(bandwidth: bw.map { TokenBucket.rate($0, burst: values[bandwidthBurst] ?? 0) },
                          operations: ops.map { TokenBucket.rate($0, burst: operationsBurst.flatMap { values[$0] } ?? 0) },
                          direction: direction)
    }
}
