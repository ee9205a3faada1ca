import ControlProtocol
import DeviceModel
import GuestMemory
import SystemExtras

/// The snapshot a VM last wrote or came from: what a diff snapshot builds on.
struct SnapshotLineage: Codable, Sendable, Equatable {
    /// Absolute path of the snapshot directory.
    var directory: String
    /// The snapshot's random identity (32 hex digits).
    var snapshotID: String
    /// Digest of its memory image.
    var memoryDigest: UInt64
}

extension VirtualMachine {
    /// How long a pause waits for every vCPU to park.
    static let pauseTimeout = 10.0

    /// Stops every vCPU at an instruction boundary (pending I/O completed) and quiesces every
    /// device (requests taken are completed and published; nothing new is taken). The VM
    /// keeps its state until `resume()`.
    public func pause() throws(VMError) {
        try operation.withLock { _ throws(VMError) in try pauseLocked() }
    }

    /// Continues a paused VM where it stopped.
    public func resume() throws(VMError) {
        try operation.withLock { _ throws(VMError) in try resumeLocked() }
    }

    /// Whether the VM is paused.
    public var isPaused: Bool { lifecycle.withLock { $0.paused } }

    func pauseLocked() throws(VMError) {
        guard !lifecycle.withLock({ $0.paused }) else { throw VMError("the VM is already paused", kind: .invalidState) }
        let (machine, devices) = current.withLock { ($0.machine, $0.devices) }
        guard let machine, let devices, machine.outcome == nil else { throw VMError("the VM is not running", kind: .invalidState) }
        try machine.pauseVCPUs(timeout: Self.pauseTimeout)
        devices.virtio.pauseAll()
        lifecycle.withLock { $0.paused = true }
    }

    func resumeLocked() throws(VMError) {
        guard lifecycle.withLock({ $0.paused }) else { throw VMError("the VM is not paused", kind: .invalidState) }
        let (machine, devices) = current.withLock { ($0.machine, $0.devices) }
        guard let machine, let devices else { throw VMError("the VM is not running", kind: .invalidState) }
        devices.virtio.resumeAll()
        machine.resumeVCPUs()
        lifecycle.withLock { $0.paused = false }
    }

    /// The VM's state and identity.
    public func status() -> VMStatus {
        let (machine, stopped) = current.withLock { ($0.machine, $0.stopped) }
        return lifecycle.withLock { l in
            let state: VMRunState
            if machine == nil || stopped || machine?.outcome != nil { state = .stopped }
            else if l.migrating && l.paused { state = .migrating }
            else if l.paused { state = .paused }
            else { state = .running }
            return VMStatus(state: state, vcpus: configuration.vcpuCount, memoryBytes: configuration.memorySize,
                            uptimeSeconds: monotonicSeconds() - l.startedAt, restoredFrom: l.restoredFrom,
                            generationID: l.generation.hex, migrating: l.migrating)
        }
    }

    /// Gives the guest a new generation ID and announces it (restore and fork).
    func renewGenerationID(memory: GuestMemory, eventLine: any InterruptLine) throws(VMError) {
        let fresh = GenerationID.random()
        try fresh.install(in: memory)
        lifecycle.withLock { $0.generation = fresh }
        GenerationID.announce(on: eventLine)
    }
}

extension VirtualMachine {
    /// Presses the ACPI power button (a Generic Event Device interrupt that notifies the
    /// power button device): a guest that honours it shuts down and powers off.
    public func pressPowerButton() throws(VMError) {
        guard let devices = current.withLock({ $0.devices }), !lifecycle.withLock({ $0.paused }) else {
            throw VMError("the VM is not running", kind: .invalidState)
        }
        devices.powerButtonEvent.pulse()
    }
}

extension VirtualMachine {
    /// Changes the rate limiter of `device` ("disk0", "net1", … counted per kind in slot order).
    /// The new buckets start full; the device's next request is measured against them.
    public func setRateLimit(device: String, limits: RateLimits) throws(VMError) {
        try rateLimiters.set(device: device, limits: limits)
    }
}
