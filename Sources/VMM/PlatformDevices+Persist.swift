import DeviceModel
import GuestMemory
import LegacyDevices
import PCI
import Virtio
import VirtioBlock
import VirtioNet
import VirtioVsock

/// Every device's saved state: the legacy PC devices, the PCI root and each virtio-pci
/// device (transport and device-specific part), in slot order.
struct PlatformDevicesState: Codable, Sendable, Equatable {
    var serial: Serial16550State
    var i8042: I8042State
    var rtc: CMOSRTCState
    var fwCfg: FwCfgState
    var postCode: PostCodePortState
    var resetControl: PCIResetControlState
    var pciRoot: PCIRootState
    var virtio: [VirtioDeviceState]

    func validate() throws(DeviceStateError) {
        try serial.validate()
        try i8042.validate()
        try rtc.validate()
        try fwCfg.validate()
        try postCode.validate()
        try resetControl.validate()
        try pciRoot.validate()
        try DeviceStateError.require(virtio.count <= 31, "virtio", "\(virtio.count) devices")
        for (i, d) in virtio.enumerated() {
            do {
                try d.transport.validate()
                try d.specific.validate()
            } catch {
                throw error.within("PCI slot \(i + 1)")
            }
        }
    }
}

/// One virtio-pci device's state.
struct VirtioDeviceState: Codable, Sendable, Equatable {
    var transport: VirtioTransportState
    var specific: VirtioSpecificState
}

/// What a virtio device holds beyond its queues while paused.
enum VirtioSpecificState: Codable, Sendable, Equatable {
    /// rng: nothing.
    case none
    /// blk: the capacity the guest knows (a disk given at restore must have it).
    case block(capacitySectors: UInt64)
    /// net: receive chains taken from the ring and not filled.
    case net(heldReceiveChains: [UInt16])
    /// vsock: the receive chain taken and not filled (host connections do not survive).
    case vsock(heldReceiveChain: UInt16?)
    /// balloon: its size and the statistics buffer it holds.
    case balloon(VirtioBalloon.SavedState)
    /// console: host input the guest has not taken yet.
    case console(pendingInput: [UInt8])

    func validate() throws(DeviceStateError) {
        switch self {
        case .none, .block, .vsock: return
        case .net(let heads):
            try DeviceStateError.require(heads.count <= Int(VirtioNet.queueSize), "virtio-net", "\(heads.count) held receive chains")
        case .balloon(let b):
            try b.validate()
        case .console(let input):
            try DeviceStateError.require(input.count <= 1 << 20, "virtio-console", "\(input.count) bytes of pending input")
        }
    }
}

extension PlatformDevices {
    /// Every device's state (VM paused).
    func saveState() throws(VMError) -> PlatformDevicesState {
        var devices: [VirtioDeviceState] = []
        for t in virtio.transports {
            let specific: VirtioSpecificState
            switch t.device {
            case let d as VirtioBlock: specific = .block(capacitySectors: d.capacity)
            case let d as VirtioNet: specific = .net(heldReceiveChains: d.heldReceiveChains)
            case let d as VirtioVsock: specific = .vsock(heldReceiveChain: d.heldReceiveChain)
            case let d as VirtioBalloon: specific = .balloon(d.savedState)
            case let d as VirtioConsole: specific = .console(pendingInput: d.savedPendingInput)
            default: specific = .none
            }
            devices.append(VirtioDeviceState(transport: t.saveState(), specific: specific))
        }
        return PlatformDevicesState(serial: serial.saveState(), i8042: i8042.saveState(), rtc: rtc.saveState(), fwCfg: fwCfg.saveState(),
                                    postCode: postCode.saveState(), resetControl: resetControl.saveState(),
                                    pciRoot: virtio.root.saveState(), virtio: devices)
    }

    /// Restores freshly built devices (same configuration) from `saved`; virtio devices come
    /// back paused and start with the VM.
    func restoreState(_ saved: PlatformDevicesState, memory: GuestMemory) throws(VMError) {
        do throws(DeviceStateError) {
            try saved.validate()
            try DeviceStateError.require(saved.virtio.count == virtio.transports.count, "virtio",
                                         "the snapshot has \(saved.virtio.count) virtio devices, the VM \(virtio.transports.count)")
            try serial.restoreState(saved.serial)
            try i8042.restoreState(saved.i8042)
            try rtc.restoreState(saved.rtc)
            try fwCfg.restoreState(saved.fwCfg)
            try postCode.restoreState(saved.postCode)
            try resetControl.restoreState(saved.resetControl)
            try virtio.root.restoreState(saved.pciRoot)
            for (i, (t, d)) in zip(virtio.transports, saved.virtio).enumerated() {
                do {
                    try restoreSpecificBeforeActivation(t.device, d.specific)
                    try t.restoreState(d.transport)
                    try restoreSpecificAfterActivation(t.device, d.specific)
                } catch {
                    throw error.within("PCI slot \(i + 1)")
                }
            }
            virtio.root.remapAllBARs()
        } catch {
            throw VMError("the saved device state cannot be restored: \(error)")
        }
    }

    private func restoreSpecificBeforeActivation(_ device: any VirtioDevice, _ specific: VirtioSpecificState) throws(DeviceStateError) {
        switch (device, specific) {
        case (let d as VirtioBlock, .block(let capacity)):
            try DeviceStateError.require(d.capacity == capacity, "virtio-blk",
                                         "the disk has \(d.capacity) sectors, the guest knows \(capacity)")
        case (is VirtioNet, .net), (is VirtioVsock, .vsock), (is VirtioRNG, .none):
            return
        case (let d as VirtioBalloon, .balloon(let b)):
            try d.restore(b)
        case (let d as VirtioConsole, .console(let input)):
            try d.restorePendingInput(input)
        default:
            throw DeviceStateError("virtio", "the saved device-specific state belongs to another kind of device")
        }
    }

    private func restoreSpecificAfterActivation(_ device: any VirtioDevice, _ specific: VirtioSpecificState) throws(DeviceStateError) {
        do throws(VirtioDeviceError) {
            switch (device, specific) {
            case (let d as VirtioNet, .net(let heads)):
                if !heads.isEmpty { try d.restoreHeldReceiveChains(heads) }
            case (let d as VirtioVsock, .vsock(let head)):
                if d.isActive { try d.restoreAfterSnapshot(heldReceiveChain: head) }
            default:
                break
            }
        } catch {
            throw DeviceStateError("virtio", error.message)
        }
        if case (let d as VirtioBalloon, .balloon(let b)) = (device, specific) { try d.restoreHeldStatistics(b) }
    }
}
