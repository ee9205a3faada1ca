import Foundation
import Testing
@testable import Storage

/// Power loss, not process death: SIGKILL keeps the page cache, so only a replay of the writes
/// the disk may really have can catch a missing or misordered fdatasync.
///
/// A seeded guest workload (writes, write-zeroes, flushes) runs on a qcow2 image whose file
/// operations are recorded (`WriteLog`, like dm-log-writes). For every flush the file saw, the
/// test builds the disk as it may be after a power cut before the next flush: everything up to
/// that flush, plus the unflushed writes after it dropped, a subset of them in order, a subset
/// reordered, or torn at 512-byte sectors. Each replay must pass `qemu-img check` (no corruption;
/// leaked clusters are allowed, as qcow2's allocation order permits) and Skiff's own check, and
/// must read back every byte the guest wrote before the last flush it saw complete.
@Suite(.enabled(if: QEMU.shouldRun)) struct PowerLossTests {
    static let diskSize: UInt64 = 1 << 20

    /// One configuration of the image under test.
    struct Setup: CustomTestStringConvertible, Sendable {
        let name: String
        let clusterSize: UInt64
        let version: UInt32
        let backing: Bool
        let lazyRefcounts: Bool
        var testDescription: String { name }
    }

    static let setups = [
        Setup(name: "v3 4K clusters", clusterSize: 4096, version: 3, backing: false, lazyRefcounts: false),
        Setup(name: "v3 64K clusters over a raw backing file", clusterSize: 65536, version: 3, backing: true, lazyRefcounts: false),
        Setup(name: "v2 512-byte clusters", clusterSize: 512, version: 2, backing: false, lazyRefcounts: false),
        Setup(name: "v3 4K clusters, lazy refcounts", clusterSize: 4096, version: 3, backing: false, lazyRefcounts: true),
    ]

    /// What the guest did, with where each completed guest flush ended in the file log.
    struct Workload {
        enum Operation {
            case write(offset: Int, bytes: [UInt8])
            case zero(offset: Int, length: Int)
        }
        var operations: [Operation] = []
        /// (operations acknowledged, file-log entries when the flush returned), in order.
        var flushes: [(operations: Int, logCount: Int)] = []
    }

    static func backingPattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 13 ^ i >> 9) }

    /// Runs the seeded workload on `device`, recording guest flush completions against `log`.
    static func runWorkload(_ device: QCOW2Image, log: WriteLog, seed: UInt64) throws -> Workload {
        var random = TestRandom(seed: seed)
        var workload = Workload()
        for step in 0..<36 {
            if step % 5 == 4 {
                try device.flush()
                workload.flushes.append((workload.operations.count, log.count))
                continue
            }
            let length = 1 + Int(random.below(random.below(4) == 0 ? 40_000 : 5_000))
            let offset = Int(random.below(diskSize - UInt64(length)))
            if random.below(6) == 0 {
                try device.writeZeroes(at: UInt64(offset), length: UInt64(length), unmap: random.below(2) == 0)
                workload.operations.append(.zero(offset: offset, length: length))
            } else {
                let bytes = random.bytes(length)
                try device.writeBytes(bytes, at: UInt64(offset))
                workload.operations.append(.write(offset: offset, bytes: bytes))
            }
        }
        try device.flush()
        workload.flushes.append((workload.operations.count, log.count))
        return workload
    }

    /// The disk the guest must see after the first `acknowledged` operations, and which bytes
    /// later operations may have changed.
    static func expected(_ workload: Workload, acknowledged: Int, backing: Bool) -> (bytes: [UInt8], uncertain: [Bool]) {
        var bytes = (0..<Int(diskSize)).map { backing ? backingPattern($0) : 0 }
        var uncertain = [Bool](repeating: false, count: Int(diskSize))
        for (i, op) in workload.operations.enumerated() {
            switch op {
            case .write(let offset, let data):
                if i < acknowledged { bytes.replaceSubrange(offset..<(offset + data.count), with: data) }
                else { for k in offset..<(offset + data.count) { uncertain[k] = true } }
            case .zero(let offset, let length):
                if i < acknowledged { for k in offset..<(offset + length) { bytes[k] = 0 } }
                else { for k in offset..<(offset + length) { uncertain[k] = true } }
            }
        }
        return (bytes, uncertain)
    }

    /// Applies one logged operation to a file image, or only the sectors `keep` selects of a write.
    static func apply(_ entry: WriteLog.Entry, to file: inout [UInt8], sectors keep: ((Int) -> Bool)? = nil) {
        switch entry {
        case .write(let offset, let bytes):
            let start = Int(offset), end = start + bytes.count
            if file.count < end { file += [UInt8](repeating: 0, count: end - file.count) }
            var position = start
            while position < end {
                let sectorEnd = min(end, (position / 512 + 1) * 512)
                if keep?(position / 512) ?? true {
                    file.replaceSubrange(position..<sectorEnd, with: bytes[(position - start)..<(sectorEnd - start)])
                }
                position = sectorEnd
            }
        case .truncate(let length):
            let n = Int(length)
            if file.count > n { file.removeSubrange(n...) } else { file += [UInt8](repeating: 0, count: n - file.count) }
        case .zero(let offset, let length, let extendsFile):
            let start = Int(offset), end = start + Int(length)
            if extendsFile && file.count < end { file += [UInt8](repeating: 0, count: end - file.count) }
            for k in start..<min(end, file.count) { file[k] = 0 }
        case .flush:
            break
        }
    }

    /// How a replay treats the writes after the last flush.
    enum Variant: String, CaseIterable {
        case dropped, subsetInOrder, subsetReordered, torn
    }

    @Test(arguments: setups)
    func everyFlushBoundedPrefixSurvivesPowerLoss(_ setup: Setup) throws {
        let dir = TempDir()
        let image = dir.file("disk.qcow2")
        var options = QCOW2CreateOptions(size: Self.diskSize)
        options.clusterSize = setup.clusterSize
        options.version = setup.version
        options.lazyRefcounts = setup.lazyRefcounts
        if setup.backing {
            try Data((0..<Int(Self.diskSize)).map(Self.backingPattern)).write(to: URL(fileURLWithPath: dir.file("base.raw")))
            options.backingFile = dir.file("base.raw")
            options.backingFormat = .raw
        }
        try QCOW2Image.create(path: image, options: options)
        let base = try fileBytes(image)

        let log = WriteLog.record(path: image)
        defer { log.stop() }
        let device = try DiskImage.openQCOW2(path: image, readOnly: false)
        let workload = try Self.runWorkload(device, log: log, seed: 0x9A11 ^ setup.clusterSize)
        try device.close()
        log.stop()
        let entries = log.entries
        let flushPositions = entries.indices.filter { entries[$0] == .flush }
        try #require(flushPositions.count >= 8, "the workload flushed the file only \(flushPositions.count) times")

        var random = TestRandom(seed: 0x5EED ^ UInt64(setup.version) ^ setup.clusterSize)
        var replays = 0, leaked = 0
        var durable = base
        var applied = 0
        var expectations: [Int: (bytes: [UInt8], uncertain: [Bool])] = [:]
        // Crash points: before the first flush, then after each one (the last: after close).
        for (k, durableEnd) in ([0] + flushPositions.map { $0 + 1 }).enumerated() {
            let nextFlush = k < flushPositions.count ? flushPositions[k] : entries.count
            let unflushed = Array(entries[durableEnd..<nextFlush])
            for entry in entries[applied..<durableEnd] { Self.apply(entry, to: &durable) }
            applied = durableEnd
            // The guest's view: operations acknowledged by guest flushes whose last sync is durable.
            let acknowledged = workload.flushes.last { $0.logCount <= durableEnd }?.operations ?? 0
            if expectations[acknowledged] == nil {
                expectations[acknowledged] = Self.expected(workload, acknowledged: acknowledged, backing: setup.backing)
            }
            let (expected, uncertain) = expectations[acknowledged] ?? ([], [])
            for variant in (unflushed.isEmpty ? [.dropped] : Variant.allCases) {
                var file = durable
                switch variant {
                case .dropped:
                    break
                case .subsetInOrder:
                    for entry in unflushed where random.below(2) == 0 { Self.apply(entry, to: &file) }
                case .subsetReordered:
                    var order = unflushed.filter { _ in random.below(3) != 0 }
                    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.below(UInt64(i + 1)))) }
                    for entry in order { Self.apply(entry, to: &file) }
                case .torn:
                    var order = unflushed
                    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.below(UInt64(i + 1)))) }
                    for entry in order {
                        var keep: [Int: Bool] = [:]
                        Self.apply(entry, to: &file) { sector in
                            if let k = keep[sector] { return k }
                            let k = random.below(2) == 0
                            keep[sector] = k
                            return k
                        }
                    }
                }
                let context = "\(setup.name), crash after flush \(k) of \(flushPositions.count), \(variant.rawValue) (\(unflushed.count) unflushed)"
                let leaks = try Self.verify(file, dir: dir, expected: expected, uncertain: uncertain, lazy: setup.lazyRefcounts, context: context)
                if leaks { leaked += 1 }
                // Closed cleanly: not even a leak.
                if durableEnd == entries.count { #expect(!leaks, "\(context): leaks after close") }
                replays += 1
            }
        }
        print("PowerLossTests \(setup.name): \(replays) replays of \(entries.count) logged operations (\(flushPositions.count) flushes), \(leaked) with leaked clusters only")
        #expect(replays >= 3 * flushPositions.count)
    }

    /// Writes a replayed file and checks it; returns whether qemu-img reported leaks (exit 3).
    static func verify(_ file: [UInt8], dir: TempDir, expected: [UInt8], uncertain: [Bool], lazy: Bool, context: String) throws -> Bool {
        let path = dir.file("replay.qcow2")
        try Data(file).write(to: URL(fileURLWithPath: path))
        if lazy {
            // A lazy-refcount image is dirty after a crash: a writable open repairs it, as QEMU's does.
            let repaired = try DiskImage.openQCOW2(path: path, readOnly: false)
            try repaired.close()
        }
        let check = try QEMU.imgRun(["check", path])
        #expect(check.status == 0 || check.status == 3, "\(context): qemu-img check \(check.status): \(check.stdout)\(check.stderr)")
        let device = try DiskImage.openQCOW2(path: path, readOnly: true)
        defer { try? device.close() }
        let own = try device.check(repairing: false)
        #expect(own.corruptions == 0 && own.checkErrors == 0, "\(context): Skiff's check: \(own.messages.prefix(3))")
        let actual = try device.readBytes(at: 0, count: expected.count)
        if let bad = actual.indices.first(where: { !uncertain[$0] && actual[$0] != expected[$0] }) {
            Issue.record("\(context): byte \(bad) is 0x\(String(actual[bad], radix: 16)), the guest wrote 0x\(String(expected[bad], radix: 16)) before a completed flush")
        }
        return check.status == 3
    }
}
