#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
import PCI
import SystemExtras
import Virtio

/// MSI-X vectors as KVM would deliver them: one eventfd per vector (an irqfd in a VM).
final class EventFDVectors: MSIVectorSink, Sendable {
    let events: [EventFD]
    init(count: Int) throws {
        events = try (0..<count).map { _ in try EventFD() }
    }
    func route(vector: Int, message: MSIMessage?) {}
    func trigger(vector: Int) {
        guard vector >= 0, vector < events.count else { return }
        events[vector].signal()
    }

    /// Blocks until `vector` fires (or `milliseconds` pass); returns whether it fired.
    func wait(vector: Int, milliseconds: Int32 = 5000) -> Bool {
        var p = pollfd(fd: events[vector].rawValue, events: Int16(POLLIN), revents: 0)
        let n = unsafe poll(&p, 1, milliseconds)
        if n == 1 { events[vector].consume() }
        return n == 1
    }
}

/// A driver in host memory: programs a `VirtioPCIDevice` through BAR 0 and lays out one
/// split queue with 3-descriptor requests (header, data, status) in fixed slots.
final class BenchDriver {
    static let queueSize: UInt16 = 256
    static let descTable: UInt64 = 0x1_0000
    static let availRing: UInt64 = 0x2_0000
    static let usedRing: UInt64 = 0x3_0000
    static let headers: UInt64 = 0x4_0000
    static let statuses: UInt64 = 0x5_0000
    static let data: UInt64 = 0x10_0000
    /// Request slots: 3 descriptors each.
    static let slots = Int(queueSize) / 3

    let memory: GuestMemory
    let transport: VirtioPCIDevice
    let vectors: EventFDVectors
    private var availIndex: UInt16 = 0
    private(set) var usedSeen: UInt16 = 0

    init(device: any VirtioDevice, memory: GuestMemory) throws {
        self.memory = memory
        vectors = try EventFDVectors(count: device.queueMaxSizes.count + 1)
        transport = try VirtioPCIDevice(device: device, memory: memory, barAddress: 0xc000_0000, vectors: vectors, intx: nil)
    }

    func write(_ offset: UInt64, _ value: UInt64, size: Int) {
        var v = value
        unsafe withUnsafeBytes(of: &v) { unsafe transport.barWrite(index: 0, offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
    }

    func read(_ offset: UInt64, size: Int) -> UInt64 {
        var v: UInt64 = 0
        unsafe withUnsafeMutableBytes(of: &v) { unsafe transport.barRead(index: 0, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
        return v
    }

    /// Negotiates `features`, sets queue 0 up on MSI-X vector 1 and sets DRIVER_OK.
    func start(features: UInt64) throws {
        transport.configWrite(offset: 0x42, size: 2, value: 0x8000)
        for v in 0..<2 {
            write(0x8000 + UInt64(16 * v), 0xfee0_0000, size: 4)
            write(0x8000 + UInt64(16 * v) + 8, UInt64(0x30 + v), size: 4)
            write(0x8000 + UInt64(16 * v) + 12, 0, size: 4)
        }
        write(0x14, 0, size: 1)
        write(0x14, 1, size: 1)
        write(0x14, 3, size: 1)
        write(0x08, 0, size: 4)
        write(0x0c, features & 0xffff_ffff, size: 4)
        write(0x08, 1, size: 4)
        write(0x0c, features >> 32, size: 4)
        write(0x14, 11, size: 1)
        guard read(0x14, size: 1) & 8 != 0 else { throw BenchError("FEATURES_OK refused") }
        write(0x16, 0, size: 2)
        write(0x18, UInt64(Self.queueSize), size: 2)
        write(0x1a, 1, size: 2)
        write(0x20, Self.descTable, size: 8)
        write(0x28, Self.availRing, size: 8)
        write(0x30, Self.usedRing, size: 8)
        write(0x1c, 1, size: 2)
        write(0x14, 15, size: 1)
        guard read(0x14, size: 1) == 15 else { throw BenchError("device did not reach DRIVER_OK") }
    }

    /// Lays out request slot `slot`: header (type, sector), `length` data bytes, status.
    func prepare(slot: Int, type: UInt32, sector: UInt64, length: UInt32, deviceWrites: Bool) throws {
        let header = Self.headers + 16 * UInt64(slot)
        try memory.store(type, at: header)
        try memory.store(UInt32(0), at: header + 4)
        try memory.store(sector, at: header + 8)
        let d = UInt16(3 * slot)
        let status = Self.statuses + UInt64(slot)
        if length > 0 {
            try descriptor(d, address: header, length: 16, flags: 1, next: d + 1)
            try descriptor(d + 1, address: Self.data + 65536 * UInt64(slot), length: length, flags: 1 | (deviceWrites ? 2 : 0), next: d + 2)
            try descriptor(d + 2, address: status, length: 1, flags: 2, next: 0)
        } else {
            try descriptor(d, address: header, length: 16, flags: 1, next: d + 1)
            try descriptor(d + 1, address: status, length: 1, flags: 2, next: 0)
        }
    }

    private func descriptor(_ i: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let base = Self.descTable + 16 * UInt64(i)
        try memory.store(address, at: base)
        try memory.store(length, at: base + 8)
        try memory.store(flags, at: base + 12)
        try memory.store(next, at: base + 14)
    }

    /// Puts slot `slot` on the avail ring (not yet visible to the device: see `publish`).
    func enqueue(slot: Int) throws {
        try memory.store(UInt16(3 * slot), at: Self.availRing + 4 + 2 * UInt64(availIndex % Self.queueSize))
        availIndex &+= 1
    }

    /// Makes the enqueued requests visible (avail.idx) and notifies queue 0, as the
    /// vCPU's MMIO write does through the ioeventfd.
    func publishAndNotify() throws {
        try memory.storeReleasing16(availIndex, at: Self.availRing + 2)
        write(0x3000, 0, size: 2)
    }

    func usedIndex() throws -> UInt16 { try memory.loadAcquiring16(at: Self.usedRing + 2) }

    /// Waits until the device used everything published; returns false on a timeout.
    func waitForCompletions() throws -> Bool {
        while try usedIndex() != availIndex {
            guard vectors.wait(vector: 1) else { return false }
        }
        usedSeen = availIndex
        return true
    }

    func status(slot: Int) throws -> UInt8 { try memory.load(UInt8.self, at: Self.statuses + UInt64(slot)) }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
