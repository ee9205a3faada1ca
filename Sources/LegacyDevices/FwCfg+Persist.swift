import DeviceModel

/// The saved state of an `FwCfg`: which item the guest selected and how far it has read it.
///
/// The items themselves are not saved: the VMM rebuilds them from the VM's configuration when
/// it creates the device to restore into, and `FwCfg.restoreState(_:)` checks the read position
/// against the size the selected item has there.
public struct FwCfgState: ValidatedState {
    /// The selector the guest last wrote (port 0x510), without bit 14 (the old write channel,
    /// which the device masks off). Bit 15 selects the architecture-specific items.
    public var selectedKey: UInt16
    /// How many bytes of the selected item the guest has read: the next data read returns the
    /// byte at this offset. At most the item's size; 0 for a key with no item.
    public var readOffset: UInt64

    public init(selectedKey: UInt16, readOffset: UInt64) {
        self.selectedKey = selectedKey
        self.readOffset = readOffset
    }

    static let component = "fw_cfg"

    public func validate() throws(DeviceStateError) {
        try DeviceStateError.require(
            selectedKey & FwCfg.Key.writeChannel == 0, Self.component,
            "selectedKey \(StateText.hex(selectedKey)) has bit 14 (the write channel) set")
    }
}

extension FwCfg.State {
    /// The size of the item `key` selects, as `readByte` would see it (0 when there is none).
    func itemSize(_ key: UInt16) -> Int {
        if key == FwCfg.Key.fileDirectory && items[key] == nil {
            return 4 + 64 * files.count  // built on first read: a count and one entry per file
        }
        return items[key]?.count ?? 0
    }
}

extension FwCfg: StatePersistable {
    public func saveState() -> FwCfgState {
        state.withLock { FwCfgState(selectedKey: $0.selected, readOffset: UInt64(clamping: $0.offset)) }
    }

    /// Validates `saved`, checks `readOffset` against the size the selected item has in this
    /// device (built from the VM configuration), and takes the selection; on error nothing
    /// changes.
    public func restoreState(_ saved: FwCfgState) throws(DeviceStateError) {
        try saved.validate()
        try state.withLock { (state) throws(DeviceStateError) in
            let size = state.itemSize(saved.selectedKey)
            guard saved.readOffset <= UInt64(size), let offset = Int(exactly: saved.readOffset) else {
                throw DeviceStateError(
                    FwCfgState.component,
                    "readOffset \(saved.readOffset) is past the end of item \(StateText.hex(saved.selectedKey)) (\(size) bytes)")
            }
            state.selected = saved.selectedKey
            state.offset = offset
        }
    }
}
