// skiff-virtio-bench: host-side virtio-blk numbers without a VM.
//
// A driver in host memory feeds the real device (VirtioBlock behind its VirtioPCIDevice
// transport, worker thread, eventfd notifications, MSI-X vectors as eventfds) 4 KiB reads
// and writes at random sectors of a raw image, beside the image file's own pread/pwrite
// rate at the same offsets; then it times one notify → completion round trip (queue
// notify → worker wake-up → request → used ring → vector eventfd readable).
//
//   skiff-virtio-bench [--dir DIR] [--size-mib N] [--seconds S] [--round-trips N]
#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
import Storage
import SystemExtras
import Virtio
import VirtioBlock

struct Options {
    var directory = "/tmp"
    var sizeMiB: UInt64 = 256
    var seconds = 2.0
    var roundTrips = 20_000

    init(_ args: [String]) throws {
        var i = 1
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw BenchError("\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--dir": directory = try value()
            case "--size-mib":
                guard let v = UInt64(try value()), v >= 16, v <= 1 << 20 else { throw BenchError("--size-mib: 16 to 1048576") }
                sizeMiB = v
            case "--seconds":
                guard let v = Double(try value()), v > 0, v <= 600 else { throw BenchError("--seconds: 0 to 600") }
                seconds = v
            case "--round-trips":
                guard let v = Int(try value()), v > 0, v <= 10_000_000 else { throw BenchError("--round-trips: 1 to 10000000") }
                roundTrips = v
            default: throw BenchError("unknown argument \(args[i])")
            }
            i += 1
        }
    }
}

/// xorshift64 for reproducible random sectors.
struct Random {
    var state: UInt64 = 0x9e37_79b9_7f4a_7c15
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

func report(_ name: String, operations: Int, bytes: Int, seconds: Double) {
    let ops = Double(operations) / seconds
    let mib = Double(bytes) / seconds / Double(1 << 20)
    print(pad(name, 34) + pad(String(format1(ops / 1000)) + " k req/s", 16) + pad(format1(mib) + " MiB/s", 14))
}

func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
func format1(_ v: Double) -> String {
    let scaled = (v * 10).rounded() / 10
    return String(scaled)
}

/// pread/pwrite of 4 KiB at random 4 KiB-aligned offsets for `seconds`.
func fileBaseline(path: String, size: UInt64, seconds: Double, write: Bool) throws -> (Int, Double) {
    let fd = unsafe open(path, write ? O_RDWR : O_RDONLY)
    guard fd >= 0 else { throw BenchError("open \(path) failed") }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0x5a, count: 4096)
    var rng = Random()
    let blocks = size / 4096
    var count = 0
    let start = monotonicSeconds()
    var now = start
    while now - start < seconds {
        for _ in 0..<256 {
            let offset = off_t((rng.next() % blocks) * 4096)
            let n = unsafe buffer.withUnsafeMutableBytes { b in unsafe write ? pwrite(fd, b.baseAddress, 4096, offset) : pread(fd, b.baseAddress, 4096, offset) }
            guard n == 4096 else { throw BenchError("short \(write ? "pwrite" : "pread")") }
            count += 1
        }
        now = monotonicSeconds()
    }
    return (count, now - start)
}

/// Batches of `BenchDriver.slots` 4 KiB requests through the device for `seconds`.
func deviceThroughput(driver: BenchDriver, sizeSectors: UInt64, seconds: Double, write: Bool) throws -> (Int, Double) {
    var rng = Random()
    let blocks = sizeSectors / 8
    var count = 0
    let start = monotonicSeconds()
    var now = start
    while now - start < seconds {
        for slot in 0..<BenchDriver.slots {
            try driver.prepare(slot: slot, type: write ? 1 : 0, sector: (rng.next() % blocks) * 8, length: 4096, deviceWrites: !write)
            try driver.enqueue(slot: slot)
        }
        try driver.publishAndNotify()
        guard try driver.waitForCompletions() else { throw BenchError("device stopped completing requests") }
        for slot in 0..<BenchDriver.slots where try driver.status(slot: slot) != 0 {
            throw BenchError("request failed with status \(try driver.status(slot: slot))")
        }
        count += BenchDriver.slots
        now = monotonicSeconds()
    }
    return (count, now - start)
}

/// One request at a time: microseconds from the notify to the vector's eventfd.
func roundTrips(driver: BenchDriver, count: Int, type: UInt32, length: UInt32) throws -> [Double] {
    var samples: [Double] = []
    samples.reserveCapacity(count)
    try driver.prepare(slot: 0, type: type, sector: 8, length: length, deviceWrites: true)
    for _ in 0..<count {
        try driver.enqueue(slot: 0)
        let t0 = monotonicSeconds()
        try driver.publishAndNotify()
        guard try driver.waitForCompletions() else { throw BenchError("round trip timed out") }
        samples.append((monotonicSeconds() - t0) * 1e6)
    }
    return samples.sorted()
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let i = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[i]
}

func main() throws {
    let options = try Options(CommandLine.arguments)
    let path = options.directory + "/skiff-virtio-bench-\(getpid()).raw"
    let size = options.sizeMiB << 20
    defer { unsafe unlink(path) }
    try RawImage.create(path: path, size: size, overwrite: true)
    do {
        let file = try RawImage(path: path, readOnly: false)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<chunk.count { chunk[i] = UInt8(truncatingIfNeeded: i &* 31) }
        for m in 0..<options.sizeMiB { unsafe try chunk.withUnsafeBytes { unsafe try file.write(at: m << 20, from: $0) } }
        try file.close()
    }
    print("virtio-blk host-side benchmark: \(options.sizeMiB) MiB raw image in \(options.directory) (page cache), 4 KiB random I/O, \(options.seconds) s each")
    print(pad("", 34) + pad("requests", 16) + "bytes")

    let memory = try GuestMemory(ranges: [(0, 16 << 20)])
    let disk = try DiskImage.open(path: path, format: .raw, readOnly: false)
    let device = VirtioBlock(backend: disk, serial: "bench")
    let driver = try BenchDriver(device: device, memory: memory)
    try driver.start(features: VirtioFeature.version1 | VirtioBlockFeature.flush)
    // Each device run right after its file baseline, so both see the same page-cache state.
    for write in [false, true] {
        let (n, t) = try fileBaseline(path: path, size: size, seconds: options.seconds, write: write)
        report(write ? "pwrite 4 KiB (file, 1 thread)" : "pread 4 KiB (file, 1 thread)", operations: n, bytes: n * 4096, seconds: t)
        let (m, u) = try deviceThroughput(driver: driver, sizeSectors: size / 512, seconds: options.seconds, write: write)
        report("virtio-blk \(write ? "OUT" : "IN") 4 KiB (\(BenchDriver.slots)/batch)", operations: m, bytes: m * 4096, seconds: u)
    }

    print("")
    print("notify -> completion round trip (one request in flight, \(options.roundTrips) samples, µs):")
    print(pad("", 34) + pad("median", 10) + pad("p90", 10) + pad("p99", 10))
    for (name, type, length) in [("GET_ID (no disk I/O)", UInt32(8), UInt32(20)), ("IN 4 KiB", 0, 4096)] {
        let s = try roundTrips(driver: driver, count: options.roundTrips, type: type, length: length)
        print(pad(name, 34) + pad(format1(percentile(s, 0.5)), 10) + pad(format1(percentile(s, 0.9)), 10) + pad(format1(percentile(s, 0.99)), 10))
    }
    let c = device.statistics.counts
    print("")
    print("device counters: \(c.requests) requests, \(c.ioErrors) IOERR, \(c.unsupported) UNSUPP, \(c.bytesRead >> 20) MiB read, \(c.bytesWritten >> 20) MiB written")
    try device.close()
}

do {
    try main()
} catch {
    let line = Array("skiff-virtio-bench: error: \(error)\n".utf8)
    _ = unsafe line.withUnsafeBytes { unsafe Glibc.write(2, $0.baseAddress, $0.count) }
    exit(1)
}
