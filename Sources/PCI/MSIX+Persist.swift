import DeviceModel

/// One MSI-X table entry as the guest programmed it.
public struct MSIXTableEntry: Codable, Sendable, Equatable {
    /// Message Address (dword 0).
    public var messageAddressLow: UInt32
    /// Message Upper Address (dword 1).
    public var messageAddressHigh: UInt32
    /// Message Data (dword 2).
    public var messageData: UInt32
    /// Vector Control (dword 3): bit 0 masks the vector; the other bits are reserved and 0.
    public var vectorControl: UInt32

    public init(messageAddressLow: UInt32, messageAddressHigh: UInt32, messageData: UInt32, vectorControl: UInt32) {
        self.messageAddressLow = messageAddressLow
        self.messageAddressHigh = messageAddressHigh
        self.messageData = messageData
        self.vectorControl = vectorControl
    }
}

/// The saved state of an `MSIXState`: the message-control bits, the vector table and the
/// pending bits. (`MSIXState` is the live value a device embeds; this is its record.)
///
/// The vector count is the table's length. It is fixed by the device model, so a restore
/// checks it against the count of the `MSIXState` it restores into, and the pending-bit array
/// must have exactly the size that count gives.
public struct MSIXSavedState: ValidatedState {
    /// Message Control bit 15: MSI-X Enable.
    public var enabled: Bool
    /// Message Control bit 14: Function Mask.
    public var functionMasked: Bool
    /// The vector table, one entry per vector (1–2048 entries).
    public var table: [MSIXTableEntry]
    /// The Pending Bit Array as the guest reads it: bit n of word w is vector 64w + n. Exactly
    /// ⌈vector count / 64⌉ words; bits past the last vector are 0.
    public var pendingBits: [UInt64]

    public init(enabled: Bool, functionMasked: Bool, table: [MSIXTableEntry], pendingBits: [UInt64]) {
        self.enabled = enabled
        self.functionMasked = functionMasked
        self.table = table
        self.pendingBits = pendingBits
    }

    static let component = "msix"
    static let maximumVectors = 2048

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        try DeviceStateError.require(
            (1...Self.maximumVectors).contains(table.count), c, "table has \(table.count) entries, not 1–\(Self.maximumVectors)")
        for (vector, entry) in table.enumerated() {
            try DeviceStateError.require(
                entry.vectorControl & ~1 == 0, c,
                "table[\(vector)].vectorControl \(StateText.hex(entry.vectorControl)) has reserved bits set")
        }
        let words = (table.count + 63) / 64
        try DeviceStateError.require(
            pendingBits.count == words, c,
            "pendingBits has \(pendingBits.count) words, \(table.count) vectors need \(words)")
        let usedInLast = table.count - (words - 1) * 64  // 1...64
        let lastMask: UInt64 = usedInLast == 64 ? .max : (1 << UInt64(usedInLast)) - 1
        if let last = pendingBits.last {
            try DeviceStateError.require(
                last & ~lastMask == 0, c,
                "pendingBits[\(words - 1)] \(StateText.hex(last)) has bits for vectors past \(table.count - 1)")
        }
    }
}

extension MSIXState {
    /// The state to save.
    public var savedState: MSIXSavedState {
        var words = [UInt64](repeating: 0, count: (vectorCount + 63) / 64)
        for (vector, isPending) in pending.enumerated() where isPending {
            words[vector / 64] |= 1 << UInt64(vector % 64)
        }
        let entries = (0..<vectorCount).map { v in
            MSIXTableEntry(messageAddressLow: table[4 * v], messageAddressHigh: table[4 * v + 1],
                           messageData: table[4 * v + 2], vectorControl: table[4 * v + 3])
        }
        return MSIXSavedState(enabled: enabled, functionMasked: functionMasked, table: entries, pendingBits: words)
    }

    /// The MSI-X state `state` describes, for a device model with `vectorCount` vectors; throws
    /// if `state` is invalid or has another number of vectors.
    ///
    /// The owner then routes every vector again (`MSIVectorSink.route(vector:message:)` with
    /// `deliverableMessage(_:)`): interrupt routes are not part of any saved state.
    public init(restoring state: MSIXSavedState, vectorCount: Int) throws(DeviceStateError) {
        try state.validate()
        try DeviceStateError.require(
            state.table.count == vectorCount, MSIXSavedState.component,
            "table has \(state.table.count) entries, the device has \(vectorCount) vectors")
        self.init(vectorCount: vectorCount)
        for (v, entry) in state.table.enumerated() {
            table[4 * v] = entry.messageAddressLow
            table[4 * v + 1] = entry.messageAddressHigh
            table[4 * v + 2] = entry.messageData
            table[4 * v + 3] = entry.vectorControl
        }
        for vector in 0..<vectorCount {
            pending[vector] = state.pendingBits[vector / 64] & (1 << UInt64(vector % 64)) != 0
        }
        enabled = state.enabled
        functionMasked = state.functionMasked
    }

    /// Replaces the table, pending bits and control bits with `state`'s after the checks of
    /// `init(restoring:vectorCount:)` against this state's vector count; on error nothing changes.
    public mutating func restore(_ state: MSIXSavedState) throws(DeviceStateError) {
        self = try MSIXState(restoring: state, vectorCount: vectorCount)
    }

    /// Checks that the MSI-X capability's Message Control word, as restored in the owner's
    /// configuration space, has the Enable and Function Mask bits this state has (the owner
    /// keeps the two in step on every guest write).
    public func checkMessageControl(_ control: UInt16) throws(DeviceStateError) {
        let enable = control & Self.controlEnable != 0
        let mask = control & Self.controlFunctionMask != 0
        try DeviceStateError.require(
            enable == enabled && mask == functionMasked, MSIXSavedState.component,
            "enabled \(enabled) and functionMasked \(functionMasked) differ from the capability's message control \(StateText.hex(control))")
    }
}
