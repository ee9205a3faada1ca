import DeviceModel

/// The saved state of a `PostCodePort` (port 0x80): the last code, which reads back.
///
/// `writeCount` is not saved: it is a statistic of this VMM process, not something the guest
/// can see, and starts again from 0 in the restored VM.
public struct PostCodePortState: ValidatedState {
    /// The last byte the guest wrote to the port, or nil if it never wrote one (reads then
    /// return the bus's all ones). Every byte value is valid.
    public var lastCode: UInt8?

    public init(lastCode: UInt8?) {
        self.lastCode = lastCode
    }

    public func validate() throws(DeviceStateError) {}
}

extension PostCodePort: StatePersistable {
    public func saveState() -> PostCodePortState {
        PostCodePortState(lastCode: lastCode)
    }

    /// Takes the saved code (any value is valid); `onCode` is not called for it.
    public func restoreState(_ saved: PostCodePortState) throws(DeviceStateError) {
        try saved.validate()
        state.withLock { $0.lastCode = saved.lastCode }
    }
}
