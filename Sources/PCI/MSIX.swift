/// One MSI message: where the device writes and what.
public struct MSIMessage: Equatable, Sendable {
    public var addressLow: UInt32
    public var addressHigh: UInt32
    public var data: UInt32
    public init(addressLow: UInt32, addressHigh: UInt32, data: UInt32) {
        self.addressLow = addressLow
        self.addressHigh = addressHigh
        self.data = data
    }
}

/// Delivers MSI-X vectors for one device (the VMM backs each vector with a KVM GSI route and an irqfd).
public protocol MSIVectorSink: AnyObject, Sendable {
    /// The message for `vector` changed, or the vector was masked/disabled (nil).
    func route(vector: Int, message: MSIMessage?)
    /// Raises `vector` (its route is current).
    func trigger(vector: Int)
}

/// MSI-X state of one function: the capability's control bits, the vector table and the
/// pending-bit array, following PCI Local Bus 3.0 §6.8.2.
public struct MSIXState: Sendable {
    public static let capabilityID: UInt8 = 0x11
    public static let entrySize = 16
    static let controlEnable: UInt16 = 1 << 15
    static let controlFunctionMask: UInt16 = 1 << 14

    /// Vectors in the table.
    public let vectorCount: Int
    // table, pending and the control bits are internal rather than private for MSIX+Persist.swift.
    var table: [UInt32]  // 4 dwords per entry
    var pending: [Bool]
    public internal(set) var enabled = false
    public internal(set) var functionMasked = false

    public init(vectorCount: Int) {
        precondition(vectorCount >= 1 && vectorCount <= 2048)
        self.vectorCount = vectorCount
        table = Array(repeating: 0, count: vectorCount * 4)
        for v in 0..<vectorCount { table[v * 4 + 3] = 1 }  // every vector starts masked
        pending = Array(repeating: false, count: vectorCount)
    }

    /// Bytes of the vector table (in a BAR).
    public var tableSize: Int { vectorCount * Self.entrySize }
    /// Bytes of the pending-bit array (in a BAR, 8-byte granular).
    public var pbaSize: Int { ((vectorCount + 63) / 64) * 8 }

    /// The capability body after ID/next: message control, table offset/BIR, PBA offset/BIR,
    /// and the writable mask for it.
    public static func capabilityBody(vectorCount: Int, tableBAR: Int, tableOffset: UInt32, pbaBAR: Int, pbaOffset: UInt32) -> (body: [UInt8], writable: [UInt8]) {
        let control = UInt16(vectorCount - 1)
        let t = tableOffset | UInt32(tableBAR)
        let p = pbaOffset | UInt32(pbaBAR)
        let body: [UInt8] = [UInt8(control & 0xff), UInt8(control >> 8)] + le32(t) + le32(p)
        let writable: [UInt8] = [0, 0xc0] + [UInt8](repeating: 0, count: 8)
        return (body, writable)
    }

    /// The message of `vector` if it may fire (MSI-X on, function and vector unmasked).
    public func deliverableMessage(_ vector: Int) -> MSIMessage? {
        guard enabled, !functionMasked, vector >= 0, vector < vectorCount, table[vector * 4 + 3] & 1 == 0 else { return nil }
        return MSIMessage(addressLow: table[vector * 4], addressHigh: table[vector * 4 + 1], data: table[vector * 4 + 2])
    }

    /// Applies a new message-control value; returns the vectors whose deliverability changed.
    public mutating func setControl(_ control: UInt16) -> [Int] {
        let before = (0..<vectorCount).map { deliverableMessage($0) }
        enabled = control & Self.controlEnable != 0
        functionMasked = control & Self.controlFunctionMask != 0
        return (0..<vectorCount).filter { deliverableMessage($0) != before[$0] }
    }

    /// Reads the vector table at `offset` (4- or 8-byte accesses; others read as zero).
    public func readTable(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { unsafe data[i] = 0 }
        guard (data.count == 4 || data.count == 8), offset % UInt64(data.count) == 0 else { return }
        for d in 0..<(data.count / 4) {
            let index = Int(offset / 4) + d
            guard index < table.count else { return }
            unsafe data.storeBytes(of: table[index].littleEndian, toByteOffset: d * 4, as: UInt32.self)
        }
    }

    /// Writes the vector table; returns vectors whose message or mask changed.
    public mutating func writeTable(offset: UInt64, from data: UnsafeRawBufferPointer) -> [Int] {
        guard (data.count == 4 || data.count == 8), offset % UInt64(data.count) == 0 else { return [] }
        var changed: [Int] = []
        for d in 0..<(data.count / 4) {
            let index = Int(offset / 4) + d
            guard index < table.count else { break }
            let vector = index / 4
            let before = deliverableMessage(vector)
            var value = unsafe data.loadUnaligned(fromByteOffset: d * 4, as: UInt32.self)
            if index % 4 == 3 { value &= 1 }  // only the mask bit of vector control is writable
            table[index] = value
            if deliverableMessage(vector) != before, !changed.contains(vector) { changed.append(vector) }
        }
        return changed
    }

    /// Reads the pending-bit array.
    public func readPBA(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            var byte: UInt8 = 0
            for bit in 0..<8 {
                let v = Int(offset) * 8 + i * 8 + bit
                if v < vectorCount, pending[v] { byte |= 1 << UInt8(bit) }
            }
            unsafe data[i] = byte
        }
    }

    /// Records that `vector` fired while it could not be delivered.
    public mutating func setPending(_ vector: Int, _ on: Bool) {
        guard vector >= 0, vector < vectorCount else { return }
        pending[vector] = on
    }

    public func isPending(_ vector: Int) -> Bool { vector >= 0 && vector < vectorCount && pending[vector] }
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
