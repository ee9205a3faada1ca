import GuestMemory
import Synchronization

/// A virtio 1.x split virtqueue as the device sees it.
///
/// The driver configures size and ring addresses through the transport; once the queue is
/// enabled, `pop` returns validated descriptor chains and `pushUsed` completes them. Every
/// index and address comes from the guest and is checked; a violation throws and the device
/// should stop using the queue until reset.
public struct SplitQueue: Sendable {
    // Descriptor flags (virtio 1.x §2.7.5).
    public static let flagNext: UInt16 = 1
    public static let flagWrite: UInt16 = 2
    public static let flagIndirect: UInt16 = 4
    /// avail.flags: the driver does not want interrupts.
    public static let availNoInterrupt: UInt16 = 1
    /// used.flags: the device does not want notifications.
    public static let usedNoNotify: UInt16 = 1
    /// Most entries an indirect table may have.
    public static let maxIndirectEntries: UInt32 = 65535

    /// Largest size the device allows (a power of two).
    public let maxSize: UInt16
    /// Size the driver chose (defaults to the maximum).
    public var size: UInt16
    /// Whether the driver enabled the queue (queue_enable / ready).
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var availRing: UInt64 = 0
    public var usedRing: UInt64 = 0
    /// VIRTIO_F_EVENT_IDX negotiated.
    public var eventIndex = false
    /// VIRTIO_F_INDIRECT_DESC negotiated.
    public var indirect = false
    /// MSI-X vector for this queue (0xffff = none).
    public var vector: UInt16 = 0xffff

    /// Next avail ring slot the device will read.
    public private(set) var nextAvail: UInt16 = 0
    /// Next used ring slot the device will write.
    public private(set) var nextUsed: UInt16 = 0
    /// used.idx when the driver was last notified (for EVENT_IDX suppression).
    private var signalledUsed: UInt16 = 0
    private var signalledValid = false

    public init(maxSize: UInt16) {
        precondition(maxSize > 0 && maxSize & (maxSize - 1) == 0, "device maximum must be a power of two")
        self.maxSize = maxSize
        self.size = maxSize
    }

    /// Returns the queue to its reset state (sizes and addresses cleared, not ready).
    public mutating func reset() {
        self = SplitQueue(maxSize: maxSize)
    }

    /// Checks the driver's configuration before the queue is used: size a power of two within
    /// the maximum, rings aligned and wholly inside guest RAM.
    public func validate(memory: GuestMemory) throws(VirtqueueError) {
        guard size > 0, size <= maxSize, size & (size - 1) == 0 else { throw .invalidSize(size) }
        let n = UInt64(size)
        try checkRing(memory, descriptorTable, length: 16 * n, alignment: 16, name: "descriptor table")
        try checkRing(memory, availRing, length: 6 + 2 * n, alignment: 2, name: "available ring")
        try checkRing(memory, usedRing, length: 6 + 8 * n, alignment: 4, name: "used ring")
    }

    private func checkRing(_ memory: GuestMemory, _ address: UInt64, length: UInt64, alignment: UInt64, name: String) throws(VirtqueueError) {
        guard address % alignment == 0 else { throw .invalidRingAddress("\(name) 0x\(String(address, radix: 16)) is not \(alignment)-byte aligned") }
        guard memory.contains(address, length: length) else { throw .invalidRingAddress("\(name) 0x\(String(address, radix: 16)) + \(length) is outside guest RAM") }
    }

    /// Sets the device position (snapshot restore, or a transport that exposes it).
    public mutating func setPosition(nextAvail: UInt16, nextUsed: UInt16) {
        self.nextAvail = nextAvail
        self.nextUsed = nextUsed
        signalledValid = false
    }

    /// used.idx at the last notification, if one was sent.
    var signalledState: UInt16? { signalledValid ? signalledUsed : nil }

    mutating func restoreSignalled(_ value: UInt16?) {
        signalledUsed = value ?? 0
        signalledValid = value != nil
    }

    private func availIndex(_ memory: GuestMemory) throws(VirtqueueError) -> UInt16 {
        do {
            return try memory.loadAcquiring16(at: availRing + 2)
        } catch {
            throw .memory(error.description)
        }
    }

    /// Whether the driver has published requests the device has not taken yet.
    public func hasPending(memory: GuestMemory) throws(VirtqueueError) -> Bool {
        let avail = try availIndex(memory)
        let pending = avail &- nextAvail
        guard pending <= size else { throw .availIndexJump(available: avail, next: nextAvail) }
        return pending > 0
    }

    /// Takes the next available chain, or nil when there is none.
    public mutating func pop(memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain? {
        guard try hasPending(memory: memory) else { return nil }
        let slot = availRing + 4 + 2 * UInt64(nextAvail % size)
        let head: UInt16
        do {
            head = try memory.load(UInt16.self, at: slot)
        } catch {
            throw .memory(error.description)
        }
        let chain = try parseChain(head: head, memory: memory)
        nextAvail &+= 1
        if eventIndex {
            // Ask to be notified when the driver adds the next buffer (avail_event after the used ring).
            try? memory.store(nextAvail, at: usedRing + 4 + 8 * UInt64(size))
            // The store must be visible before the next avail.idx load (x86 lets loads pass
            // stores): otherwise the driver can read the old avail_event, skip the notification,
            // and the device sleeps with a request pending.
            atomicFullFence()
        }
        return chain
    }

    /// Gives the last chain `pop` returned back to the ring (virtio-queue's
    /// `go_to_previous_position`): it is popped again next time. Only for a chain the device
    /// has not used (e.g. a request a rate limiter defers); the driver cannot have reused its
    /// descriptors or avail slot since.
    public mutating func undoPop() {
        nextAvail &-= 1
    }

    private struct Descriptor {
        var address: UInt64
        var length: UInt32
        var flags: UInt16
        var next: UInt16
    }

    private func readDescriptor(table: UInt64, index: UInt32, memory: GuestMemory) throws(VirtqueueError) -> Descriptor {
        let base = table + 16 * UInt64(index)
        do {
            let bytes = try memory.readBytes(at: base, count: 16)
            func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
                var v = T.zero
                for i in 0..<MemoryLayout<T>.size { v |= T(bytes[offset + i]) << (8 * i) }
                return v
            }
            return Descriptor(address: le(0, UInt64.self), length: le(8, UInt32.self), flags: le(12, UInt16.self), next: le(14, UInt16.self))
        } catch {
            throw .memory(error.description)
        }
    }

    /// Walks a chain from `head`, reading each descriptor once and checking every rule.
    func parseChain(head: UInt16, memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain {
        guard head < size else { throw .descriptorIndexOutOfRange(head) }
        var readable: [VirtioBuffer] = []
        var writable: [VirtioBuffer] = []
        var total: UInt64 = 0

        func add(_ d: Descriptor) throws(VirtqueueError) {
            let (end, overflow) = d.address.addingReportingOverflow(UInt64(d.length))
            guard !overflow, memory.contains(d.address, length: UInt64(d.length)) else {
                throw .bufferOutOfRange(address: d.address, length: d.length)
            }
            _ = end
            total += UInt64(d.length)
            guard total <= UInt64(UInt32.max) else { throw .chainTooLong }
            let buffer = VirtioBuffer(address: d.address, length: d.length)
            if d.flags & Self.flagWrite != 0 {
                writable.append(buffer)
            } else {
                guard writable.isEmpty else { throw .readableAfterWritable }
                readable.append(buffer)
            }
        }

        var index = UInt32(head)
        var budget = UInt32(size)
        while true {
            guard budget > 0 else { throw .descriptorLoop }
            budget -= 1
            let d = try readDescriptor(table: descriptorTable, index: index, memory: memory)
            if d.flags & Self.flagIndirect != 0 {
                guard indirect else { throw .invalidIndirect("VIRTIO_F_INDIRECT_DESC was not negotiated") }
                guard d.flags & Self.flagNext == 0 else { throw .invalidIndirect("INDIRECT combined with NEXT") }
                guard d.length > 0, d.length % 16 == 0 else { throw .invalidIndirect("table length \(d.length) is not a non-zero multiple of 16") }
                let count = d.length / 16
                guard count <= Self.maxIndirectEntries else { throw .invalidIndirect("table has \(count) entries") }
                guard memory.contains(d.address, length: UInt64(d.length)) else { throw .bufferOutOfRange(address: d.address, length: d.length) }
                // An indirect descriptor ends the main chain: walk its table.
                var i: UInt32 = 0
                var left = count
                while true {
                    guard left > 0 else { throw .descriptorLoop }
                    left -= 1
                    let e = try readDescriptor(table: d.address, index: i, memory: memory)
                    guard e.flags & Self.flagIndirect == 0 else { throw .invalidIndirect("nested indirect table") }
                    try add(e)
                    guard e.flags & Self.flagNext != 0 else { break }
                    guard UInt32(e.next) < count else { throw .descriptorIndexOutOfRange(e.next) }
                    i = UInt32(e.next)
                }
                break
            }
            try add(d)
            guard d.flags & Self.flagNext != 0 else { break }
            guard d.next < size else { throw .descriptorIndexOutOfRange(d.next) }
            index = UInt32(d.next)
        }
        return DescriptorChain(head: head, readable: readable, writable: writable)
    }

    /// Returns chain `head` to the driver with `length` bytes written.
    public mutating func pushUsed(head: UInt16, length: UInt32, memory: GuestMemory) throws(VirtqueueError) {
        let slot = usedRing + 4 + 8 * UInt64(nextUsed % size)
        do {
            try memory.store(UInt32(head), at: slot)
            try memory.store(length, at: slot + 4)
            nextUsed &+= 1
            try memory.storeReleasing16(nextUsed, at: usedRing + 2)
        } catch {
            throw .memory(error.description)
        }
    }

    /// Whether the driver wants an interrupt for the buffers used since the last notification.
    public mutating func needsNotification(memory: GuestMemory) -> Bool {
        atomicFullFence()
        if eventIndex {
            let old = signalledUsed
            let new = nextUsed
            let wasValid = signalledValid
            signalledUsed = new
            signalledValid = true
            guard wasValid else { return true }
            guard let usedEvent = try? memory.load(UInt16.self, at: availRing + 4 + 2 * UInt64(size)) else { return true }
            // vring_need_event: notify if used_event lies in (old, new].
            return new &- usedEvent &- 1 < new &- old
        }
        guard let flags = try? memory.load(UInt16.self, at: availRing) else { return true }
        return flags & Self.availNoInterrupt == 0
    }

    /// Turns driver notifications on or off (used.flags, or avail_event with EVENT_IDX).
    public func setNotifications(_ enabled: Bool, memory: GuestMemory) {
        if eventIndex {
            if enabled { try? memory.store(nextAvail, at: usedRing + 4 + 8 * UInt64(size)) }
        } else {
            try? memory.store(enabled ? UInt16(0) : Self.usedNoNotify, at: usedRing)
        }
        // Callers re-check for pending buffers after enabling: order that load after this store.
        atomicFullFence()
    }
}

@inline(__always) func atomicFullFence() {
    atomicMemoryFence(ordering: .sequentiallyConsistent)
}
