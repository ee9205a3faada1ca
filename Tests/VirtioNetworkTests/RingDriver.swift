import Foundation
import GuestMemory
import Synchronization
import SystemExtras
@testable import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// A test driver for one split queue: lays out the rings in guest memory, hands out
/// descriptors round-robin, publishes chains and collects used entries, as a guest driver does.
struct RingDriver {
    let memory: GuestMemory
    let size: UInt16
    let desc: UInt64
    let avail: UInt64
    let used: UInt64
    private(set) var availIdx: UInt16 = 0
    private(set) var lastUsed: UInt16 = 0
    private var nextDescriptor: UInt16 = 0

    /// Rings at `base` (needs 0x3000 bytes for 256 entries).
    init(memory: GuestMemory, base: UInt64, size: UInt16 = 256) {
        self.memory = memory
        self.size = size
        desc = base
        avail = base + 16 * 256
        used = base + 16 * 256 + 0x1000
    }

    func queue(eventIndex: Bool = false) -> SplitQueue {
        var q = SplitQueue(maxSize: 256)
        q.size = size
        q.descriptorTable = desc
        q.availRing = avail
        q.usedRing = used
        q.eventIndex = eventIndex
        q.indirect = true
        q.ready = true
        return q
    }

    /// Publishes a chain of buffers (device-readable ones first); returns its head.
    @discardableResult
    mutating func add(_ buffers: [(address: UInt64, length: UInt32, writable: Bool)]) throws -> UInt16 {
        let head = nextDescriptor
        for (i, b) in buffers.enumerated() {
            let index = nextDescriptor
            nextDescriptor = (nextDescriptor + 1) % size
            let last = i == buffers.count - 1
            let flags = (b.writable ? SplitQueue.flagWrite : 0) | (last ? 0 : SplitQueue.flagNext)
            try writeDescriptor(index, address: b.address, length: b.length, flags: flags, next: last ? 0 : nextDescriptor)
        }
        try publish(head)
        return head
    }

    func writeDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let base = desc + 16 * UInt64(index)
        try memory.store(address, at: base)
        try memory.store(length, at: base + 8)
        try memory.store(flags, at: base + 12)
        try memory.store(next, at: base + 14)
    }

    mutating func publish(_ head: UInt16) throws {
        try memory.store(head, at: avail + 4 + 2 * UInt64(availIdx % size))
        availIdx &+= 1
        try memory.store(availIdx, at: avail + 2)
    }

    func setAvailIndex(_ v: UInt16) throws { try memory.store(v, at: avail + 2) }

    func usedIndex() throws -> UInt16 { try memory.load(UInt16.self, at: used + 2) }

    /// Used entries the device added since the last call.
    mutating func takeUsed() throws -> [(id: UInt32, length: UInt32)] {
        let end = try usedIndex()
        var out: [(UInt32, UInt32)] = []
        while lastUsed != end {
            let slot = used + 4 + 8 * UInt64(lastUsed % size)
            out.append((try memory.load(UInt32.self, at: slot), try memory.load(UInt32.self, at: slot + 4)))
            lastUsed &+= 1
        }
        return out
    }
}

/// Records what the device signals.
final class RecordingInterrupt: VirtioInterrupt, @unchecked Sendable {
    let queueSignals = Mutex<[Int: Int]>([:])
    let brokenCount = Atomic<Int>(0)
    func signalQueue(_ index: Int) { queueSignals.withLock { $0[index, default: 0] += 1 } }
    func signalConfigChange() {}
    func deviceBroken() { brokenCount.add(1, ordering: .relaxed) }
    func signals(_ q: Int) -> Int { queueSignals.withLock { $0[q, default: 0] } }
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if try condition() { return true }
        sleepSeconds(0.001)
    }
    return try condition()
}

func sleepSeconds(_ s: Double) {
    var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
    nanosleep(&ts, nil)
}

