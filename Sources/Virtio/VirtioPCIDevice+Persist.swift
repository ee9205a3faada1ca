import DeviceModel
import PCI

/// The saved state of one virtio-pci transport: its PCI configuration space and BARs, MSI-X
/// table and pending bits, the common-configuration registers (feature selects, negotiated
/// features, status, configuration generation and vector, queue select, ISR) and every
/// queue's configuration and position. The device-specific half is saved by the device.
public struct VirtioTransportState: ValidatedState {
    static let component = "virtio transport"

    public var deviceType: UInt16
    public var configuration: PCIConfigurationState
    public var msix: MSIXSavedState
    public var deviceFeatureSelect: UInt32
    public var driverFeatureSelect: UInt32
    public var driverFeatures: UInt64
    public var status: UInt8
    public var configGeneration: UInt8
    public var configVector: UInt16
    public var queueSelect: UInt16
    public var queues: [SplitQueue.State]
    public var isr: UInt8
    /// The device took over its queues (DRIVER_OK accepted).
    public var active: Bool

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        try configuration.validate()
        try msix.validate()
        try DeviceStateError.require(queues.count <= 64, c, "\(queues.count) queues")
        try DeviceStateError.require(isr & ~3 == 0, c, "ISR \(isr)")
        try DeviceStateError.require(status & 0x30 == 0, c, "status \(status) has reserved bits")
        try DeviceStateError.require(!active || status & VirtioPCIDevice.statusDriverOK != 0, c, "active without DRIVER_OK")
        try DeviceStateError.require(!active || status & VirtioPCIDevice.statusFeaturesOK != 0, c, "active without FEATURES_OK")
        try DeviceStateError.require(configVector == VirtioPCIDevice.noVector || Int(configVector) < msix.table.count, c,
                                     "configuration vector \(configVector) of \(msix.table.count)")
        for (i, q) in queues.enumerated() {
            do {
                try q.validate()
            } catch {
                throw error.within("\(c) queue \(i)")
            }
            try DeviceStateError.require(q.vector == VirtioPCIDevice.noVector || Int(q.vector) < msix.table.count, c,
                                         "queue \(i) vector \(q.vector) of \(msix.table.count)")
            try DeviceStateError.require(!active || !q.ready || (q.eventIndex == (driverFeatures & VirtioFeature.eventIndex != 0)
                                                                  && q.indirect == (driverFeatures & VirtioFeature.indirectDescriptors != 0)),
                                         c, "queue \(i) features differ from the negotiated ones")
        }
    }
}

extension VirtioPCIDevice {
    /// The transport's state (VM paused: the device's queues are read from the device).
    public func saveState() -> VirtioTransportState {
        let deviceQueues = device.pausedQueues()
        return state.withLock { s in
            let queues = (s.active ? deviceQueues : nil) ?? s.queues
            return VirtioTransportState(
                deviceType: device.deviceType.rawValue, configuration: s.config.savedState, msix: s.msix.savedState,
                deviceFeatureSelect: s.deviceFeatureSelect, driverFeatureSelect: s.driverFeatureSelect, driverFeatures: s.driverFeatures,
                status: s.status, configGeneration: s.configGeneration, configVector: s.configVector, queueSelect: s.queueSelect,
                queues: queues.map(\.state), isr: s.isr, active: s.active)
        }
    }

    /// Restores a fresh transport (its device not activated yet) from `saved`, checked
    /// against this device model: device type, offered features, queue count and maximum
    /// sizes, configuration-space layout, vector count, rings inside guest RAM. An active
    /// device takes its queues over paused (`resume()` starts it); MSI-X routes and the INTx
    /// level are set again. On error nothing changes.
    public func restoreState(_ saved: VirtioTransportState) throws(DeviceStateError) {
        let c = VirtioTransportState.component
        try saved.validate()
        try DeviceStateError.require(saved.deviceType == device.deviceType.rawValue, c,
                                     "a device of type \(saved.deviceType) cannot be restored into a \(device.deviceType) device")
        try DeviceStateError.require(saved.driverFeatures & ~offeredFeatures == 0, c,
                                     "negotiated features 0x\(String(saved.driverFeatures, radix: 16)) exceed the offered 0x\(String(offeredFeatures, radix: 16))")
        try DeviceStateError.require(saved.queues.count == device.queueMaxSizes.count, c,
                                     "\(saved.queues.count) queues, the device has \(device.queueMaxSizes.count)")
        var queues: [SplitQueue] = []
        for (i, q) in saved.queues.enumerated() {
            do {
                queues.append(try SplitQueue(restoring: q, maxSize: device.queueMaxSizes[i], memory: memory))
            } catch {
                throw error.within("\(c) queue \(i)")
            }
        }
        let (config, msix) = try state.withLock { s throws(DeviceStateError) -> (PCIConfiguration, MSIXState) in
            let config = try PCIConfiguration(restoring: saved.configuration, layout: s.config)
            let msix = try MSIXState(restoring: saved.msix, vectorCount: s.msix.vectorCount)
            try msix.checkMessageControl(config.get16(0x42))
            return (config, msix)
        }
        state.withLock { s in
            s.config = config
            s.msix = msix
            s.deviceFeatureSelect = saved.deviceFeatureSelect
            s.driverFeatureSelect = saved.driverFeatureSelect
            s.driverFeatures = saved.driverFeatures
            s.status = saved.status
            s.configGeneration = saved.configGeneration
            s.configVector = saved.configVector
            s.queueSelect = saved.queueSelect
            s.queues = queues
            s.isr = saved.isr
            s.active = false
        }
        if saved.active {
            do {
                try device.activate(VirtioActivation(memory: memory, features: saved.driverFeatures, queues: queues, notifiers: notifiers,
                                                     interrupt: self, startPaused: true))
                state.withLock { $0.active = true }
            } catch {
                throw DeviceStateError(c, "the device cannot take its queues back: \(error)")
            }
        }
        for v in 0..<msix.vectorCount { updateRoute(v) }
        if saved.isr != 0 && !msix.enabled { intx?.setLevel(true) }
    }
}
