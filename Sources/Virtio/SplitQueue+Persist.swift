import DeviceModel
import GuestMemory

extension SplitQueue {
    /// The saved state of one split virtqueue: the driver's configuration and the device's
    /// position in the rings (virtio-queue's `QueueState`). Checked before use: a queue
    /// restored from it is one the transport could have built and the device could have reached.
    public struct State: ValidatedState {
        /// The device's maximum size (must match the restoring device's).
        public var maxSize: UInt16
        public var size: UInt16
        public var ready: Bool
        public var descriptorTable: UInt64
        public var availRing: UInt64
        public var usedRing: UInt64
        public var eventIndex: Bool
        public var indirect: Bool
        public var vector: UInt16
        /// Next avail ring slot the device will read.
        public var nextAvail: UInt16
        /// Next used ring slot the device will write (= used.idx in guest memory).
        public var nextUsed: UInt16
        /// used.idx at the last notification, when one was sent (EVENT_IDX suppression).
        public var signalledUsed: UInt16?

        public func validate() throws(DeviceStateError) {
            let c = "virtqueue"
            try DeviceStateError.require(maxSize > 0 && maxSize & (maxSize - 1) == 0, c, "maximum size \(maxSize) is not a power of two")
            try DeviceStateError.require(size > 0 && size <= maxSize && size & (size - 1) == 0, c, "size \(size) (maximum \(maxSize))")
            // The device cannot have completed more requests than it took, nor hold more than the ring.
            try DeviceStateError.require(nextAvail &- nextUsed <= size, c,
                                         "\(nextAvail &- nextUsed) requests in flight in a queue of \(size) (next avail \(nextAvail), next used \(nextUsed))")
            if ready {
                try DeviceStateError.require(descriptorTable % 16 == 0 && availRing % 2 == 0 && usedRing % 4 == 0, c, "ring addresses are misaligned")
            }
        }

        /// Also checks that the rings of a ready queue lie in `memory`.
        public func validate(memory: GuestMemory) throws(DeviceStateError) {
            try validate()
            guard ready else { return }
            var q = SplitQueue(maxSize: maxSize)
            q.size = size
            q.descriptorTable = descriptorTable
            q.availRing = availRing
            q.usedRing = usedRing
            do {
                try q.validate(memory: memory)
            } catch {
                throw DeviceStateError("virtqueue", error.description)
            }
        }
    }

    /// The queue's state now.
    public var state: State {
        State(maxSize: maxSize, size: size, ready: ready, descriptorTable: descriptorTable, availRing: availRing, usedRing: usedRing,
              eventIndex: eventIndex, indirect: indirect, vector: vector, nextAvail: nextAvail, nextUsed: nextUsed,
              signalledUsed: signalledState)
    }

    /// A queue rebuilt from a saved state, after checking it against `memory` and the
    /// device's maximum size.
    public init(restoring state: State, maxSize: UInt16, memory: GuestMemory) throws(DeviceStateError) {
        try DeviceStateError.require(state.maxSize == maxSize, "virtqueue", "maximum size \(state.maxSize), the device has \(maxSize)")
        try state.validate(memory: memory)
        self.init(maxSize: maxSize)
        size = state.size
        ready = state.ready
        descriptorTable = state.descriptorTable
        availRing = state.availRing
        usedRing = state.usedRing
        eventIndex = state.eventIndex
        indirect = state.indirect
        vector = state.vector
        setPosition(nextAvail: state.nextAvail, nextUsed: state.nextUsed)
        restoreSignalled(state.signalledUsed)
    }

    /// Re-reads the chain whose head the device took before a snapshot (the guest cannot
    /// have changed it: the descriptors stay the device's until it returns them).
    public func chain(head: UInt16, memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain {
        try parseChain(head: head, memory: memory)
    }
}
