import DeviceModel

/// The saved state of a `PCIRoot`: configuration mechanism #1's address register and the host
/// bridge's configuration space.
///
/// Not in it: which device sits in which slot, the BAR allocator and the devices' own
/// configuration spaces. The slots and the allocator are rebuilt from the VM configuration;
/// each device saves its own configuration (a `PCIConfigurationState`, inside the device's
/// state) and after all of them are restored, `PCIRoot.remapAllBARs()` puts the BARs on the
/// buses where the restored configurations say.
public struct PCIRootState: ValidatedState {
    /// The configuration address register (port 0xCF8) as last written with a 32-bit access:
    /// enable (bit 31), bus (23–16), device (15–11), function (10–8) and register (7–2).
    /// Bits 30–24 and 1–0 are always 0.
    public var configAddress: UInt32
    /// The host bridge's (00:00.0) configuration space. It has no guest-writable bits, so a
    /// restore only checks that it is the host bridge this root builds.
    public var hostBridge: PCIConfigurationState

    public init(configAddress: UInt32, hostBridge: PCIConfigurationState) {
        self.configAddress = configAddress
        self.hostBridge = hostBridge
    }

    static let component = "pci-root"
    /// The bits of 0xCF8 that hold a value.
    static let configAddressMask: UInt32 = 0x80ff_fffc

    public func validate() throws(DeviceStateError) {
        try DeviceStateError.require(
            configAddress & ~Self.configAddressMask == 0, Self.component,
            "configAddress \(StateText.hex(configAddress)) has reserved bits (30–24 or 1–0) set")
        do {
            try hostBridge.validate()
        } catch {
            throw error.within(Self.hostBridgeComponent)
        }
    }

    /// How errors in the host bridge's configuration are named.
    static let hostBridgeComponent = "pci-root 00:00.0"
}

extension PCIHostBridge: StatePersistable {
    public func saveState() -> PCIConfigurationState {
        config.withLock { $0.savedState }
    }

    /// Checks `state` against the host bridge's own configuration; on error nothing changes.
    /// The bridge ignores configuration writes, so the space must be exactly the one it builds.
    public func restoreState(_ state: PCIConfigurationState) throws(DeviceStateError) {
        try config.withLock { (config) throws(DeviceStateError) in
            let restored = try PCIConfiguration(restoring: state, layout: config)
            try Self.requireUnwritten(state, config)
            config = restored
        }
    }

    /// Throws unless `state.space` is byte for byte `config`'s (validated: 256 bytes).
    static func requireUnwritten(_ state: PCIConfigurationState, _ config: PCIConfiguration) throws(DeviceStateError) {
        for offset in 0..<PCIConfiguration.size where state.space[offset] != config.bytes[offset] {
            throw DeviceStateError(
                PCIConfigurationState.component,
                "space[\(StateText.hex(offset))] (\(config.describe(offset))) is \(StateText.hex(state.space[offset])), "
                    + "the host bridge ignores writes and has \(StateText.hex(config.bytes[offset]))")
        }
    }
}

extension PCIRoot: StatePersistable {
    public func saveState() -> PCIRootState {
        PCIRootState(configAddress: configAddress.withLock { $0 }, hostBridge: hostBridge.saveState())
    }

    /// Validates `state`, checks the host bridge's configuration against this root's, and takes
    /// the configuration address register; on error nothing changes. BAR mappings are not
    /// touched here: call `remapAllBARs()` once every device's configuration is restored.
    public func restoreState(_ state: PCIRootState) throws(DeviceStateError) {
        try state.validate()
        let bridge = hostBridge.config.withLock { $0 }
        let restoredBridge: PCIConfiguration
        do {
            restoredBridge = try PCIConfiguration(restoring: state.hostBridge, layout: bridge)
            try PCIHostBridge.requireUnwritten(state.hostBridge, bridge)
        } catch {
            throw error.within(PCIRootState.hostBridgeComponent)
        }
        hostBridge.config.withLock { $0 = restoredBridge }
        configAddress.withLock { $0 = state.configAddress }
    }
}
