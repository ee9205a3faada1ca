import DeviceModel
import GuestMemory
import PCI
import Synchronization
import SystemExtras

/// The virtio 1.x modern PCI transport (virtio 1.x §4.1) for one `VirtioDevice`.
///
/// BAR 0 (64 KiB, 32-bit memory) holds the common configuration at 0x0000, the ISR at
/// 0x1000, the device configuration at 0x2000, the notification area at 0x3000 (4 bytes per
/// queue), the MSI-X table at 0x8000 and its pending bits at 0xC000. Every register access
/// is checked: unknown offsets read as zero, queue registers are writable only between
/// FEATURES_OK and DRIVER_OK, and out-of-range selectors or vectors are ignored.
public final class VirtioPCIDevice: PCIDevice, VirtioInterrupt, Sendable {
    // Status bits (§2.1).
    public static let statusAcknowledge: UInt8 = 1
    public static let statusDriver: UInt8 = 2
    public static let statusDriverOK: UInt8 = 4
    public static let statusFeaturesOK: UInt8 = 8
    public static let statusNeedsReset: UInt8 = 0x40
    public static let statusFailed: UInt8 = 0x80
    public static let noVector: UInt16 = 0xffff

    static let barSize: UInt64 = 0x10000
    static let commonOffset: UInt64 = 0x0000
    static let isrOffset: UInt64 = 0x1000
    static let deviceConfigOffset: UInt64 = 0x2000
    static let notifyOffset: UInt64 = 0x3000
    static let notifyMultiplier: UInt32 = 4
    static let msixTableOffset: UInt64 = 0x8000
    static let msixPBAOffset: UInt64 = 0xc000
    static let regionSize: UInt64 = 0x1000

    /// Registers ioeventfds with KVM so notifications skip the vCPU exit; nil in tests.
    public typealias NotifyRegistrar = @Sendable (_ eventFD: EventFD, _ address: UInt64, _ register: Bool) -> Void

    public let device: any VirtioDevice
    let memory: GuestMemory
    private let vectors: any MSIVectorSink
    let intx: (any InterruptLine)?
    private let notifyRegistrar: NotifyRegistrar?
    let notifiers: [EventFD]

    struct State {
        var config: PCIConfiguration
        var msix: MSIXState
        var deviceFeatureSelect: UInt32 = 0
        var driverFeatureSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var status: UInt8 = 0
        var configGeneration: UInt8 = 0
        var configVector: UInt16 = VirtioPCIDevice.noVector
        var queueSelect: UInt16 = 0
        var queues: [SplitQueue]
        var isr: UInt8 = 0
        var active = false
        var notifyBase: UInt64?
    }

    let state: Mutex<State>

    /// Offered features: the device's plus the transport's.
    public let offeredFeatures: UInt64

    /// - Parameters:
    ///   - barAddress: where BAR 0 starts (allocated by the PCI root).
    ///   - vectors: MSI-X delivery.
    ///   - intx: the INTx line used when MSI-X is off.
    public init(device: any VirtioDevice, memory: GuestMemory, barAddress: UInt64, vectors: any MSIVectorSink,
                intx: (any InterruptLine)?, intxPin: UInt8 = 1, intxLine: UInt8 = 0, notifyRegistrar: NotifyRegistrar? = nil) throws(SystemError) {
        self.device = device
        self.memory = memory
        self.vectors = vectors
        self.intx = intx
        self.notifyRegistrar = notifyRegistrar
        offeredFeatures = device.deviceFeatures | VirtioFeature.version1 | VirtioFeature.indirectDescriptors | VirtioFeature.eventIndex
        var notifiers: [EventFD] = []
        for _ in device.queueMaxSizes { notifiers.append(try EventFD()) }
        self.notifiers = notifiers
        let queueCount = device.queueMaxSizes.count
        let msix = MSIXState(vectorCount: queueCount + 1)
        var config = PCIConfiguration(
            vendor: 0x1af4, device: 0x1040 + device.deviceType.rawValue, classCode: Self.classCode(device.deviceType),
            revision: 1, subsystemVendor: 0x1af4, subsystem: 0x40, interruptPin: intxPin)
        config.write(offset: PCIConfiguration.interruptLine, size: 1, value: UInt32(intxLine))
        config.addBAR(index: 0, size: Self.barSize, kind: .memory32, address: barAddress)
        // MSI-X capability first, then the virtio structures (§4.1.4).
        let cap = MSIXState.capabilityBody(vectorCount: msix.vectorCount, tableBAR: 0, tableOffset: UInt32(Self.msixTableOffset),
                                          pbaBAR: 0, pbaOffset: UInt32(Self.msixPBAOffset))
        config.addCapability(id: MSIXState.capabilityID, body: cap.body, writableMask: cap.writable)
        func virtioCap(_ type: UInt8, offset: UInt64, length: UInt64, extra: [UInt8] = []) -> [UInt8] {
            let len = UInt8(16 + extra.count)
            return [len, type, 0, 0, 0, 0] + le32(UInt32(offset)) + le32(UInt32(length)) + extra
        }
        config.addCapability(id: 0x09, body: virtioCap(1, offset: Self.commonOffset, length: 0x38))
        config.addCapability(id: 0x09, body: virtioCap(2, offset: Self.notifyOffset, length: UInt64(max(queueCount, 1)) * UInt64(Self.notifyMultiplier),
                                                       extra: le32(Self.notifyMultiplier)))
        config.addCapability(id: 0x09, body: virtioCap(3, offset: Self.isrOffset, length: 1))
        config.addCapability(id: 0x09, body: virtioCap(4, offset: Self.deviceConfigOffset, length: Self.regionSize))
        state = Mutex(State(config: config, msix: msix, queues: device.queueMaxSizes.map { SplitQueue(maxSize: $0) }))
    }

    static func classCode(_ type: VirtioDeviceType) -> UInt32 {
        switch type {
        case .net: return 0x02_00_00
        case .block: return 0x01_80_00
        case .console: return 0x07_80_00
        case .balloon: return 0x05_00_00
        case .entropy, .vsock: return 0xff_00_00
        }
    }

    // MARK: PCIDevice

    public func configRead(offset: Int, size: Int) -> UInt32 {
        state.withLock { $0.config.read(offset: offset, size: size) }
    }

    public func configWrite(offset: Int, size: Int, value: UInt32) {
        let changed: [Int] = state.withLock { s in
            s.config.write(offset: offset, size: size, value: value)
            // Mirror MSI-X message control (capability at 0x40, control at 0x42).
            guard offset <= 0x43, offset + size > 0x42 else { return [] }
            return s.msix.setControl(s.config.get16(0x42))
        }
        for v in changed { updateRoute(v) }
    }

    public var barMappings: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool) {
        state.withLock { ($0.config.bars, $0.config.memoryDecodingEnabled, false) }
    }

    public func barMapped(index: Int, at address: UInt64?) {
        guard index == 0 else { return }
        let old: UInt64? = state.withLock { s in
            let o = s.notifyBase
            s.notifyBase = address.map { $0 + Self.notifyOffset }
            return o
        }
        guard let notifyRegistrar else { return }
        for (i, fd) in notifiers.enumerated() {
            if let old { notifyRegistrar(fd, old + UInt64(i) * UInt64(Self.notifyMultiplier), false) }
            if let address { notifyRegistrar(fd, address + Self.notifyOffset + UInt64(i) * UInt64(Self.notifyMultiplier), true) }
        }
    }

    public func barRead(index: Int, offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { unsafe data[i] = 0 }
        guard index == 0 else { return }
        switch offset {
        case Self.commonOffset..<(Self.commonOffset + Self.regionSize):
            let v = readCommon(offset: Int(offset - Self.commonOffset), size: data.count)
            unsafe store(v, into: data)
        case Self.isrOffset..<(Self.isrOffset + Self.regionSize):
            guard offset == Self.isrOffset else { return }
            // Reading the ISR clears it and lowers INTx (§4.1.4.5).
            let v = state.withLock { s -> UInt8 in
                let v = s.isr
                s.isr = 0
                return v
            }
            if v != 0 { intx?.setLevel(false) }
            unsafe data[0] = v
        case Self.deviceConfigOffset..<(Self.deviceConfigOffset + Self.regionSize):
            unsafe device.readConfig(offset: Int(offset - Self.deviceConfigOffset), into: data)
        case Self.msixTableOffset..<Self.msixPBAOffset:
            state.withLock { unsafe $0.msix.readTable(offset: offset - Self.msixTableOffset, into: data) }
        case Self.msixPBAOffset..<Self.barSize:
            state.withLock { unsafe $0.msix.readPBA(offset: offset - Self.msixPBAOffset, into: data) }
        default:
            return
        }
    }

    public func barWrite(index: Int, offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard index == 0 else { return }
        switch offset {
        case Self.commonOffset..<(Self.commonOffset + Self.regionSize):
            unsafe writeCommon(offset: Int(offset - Self.commonOffset), size: data.count, value: load(data))
        case Self.deviceConfigOffset..<(Self.deviceConfigOffset + Self.regionSize):
            unsafe device.writeConfig(offset: Int(offset - Self.deviceConfigOffset), from: data)
        case Self.notifyOffset..<(Self.notifyOffset + Self.regionSize):
            // Reached only when no ioeventfd took the write (or in tests): signal the queue's eventfd.
            let queue = Int((offset - Self.notifyOffset) / UInt64(Self.notifyMultiplier))
            if queue < notifiers.count { notifiers[queue].signal() }
        case Self.msixTableOffset..<Self.msixPBAOffset:
            let changed = state.withLock { unsafe $0.msix.writeTable(offset: offset - Self.msixTableOffset, from: data) }
            for v in changed { updateRoute(v) }
        default:
            return
        }
    }

    private func store(_ v: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<min(data.count, 8) { unsafe data[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    private func load(_ data: UnsafeRawBufferPointer) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<min(data.count, 8) { unsafe v |= UInt64(data[i]) << (8 * UInt64(i)) }
        return v
    }

    // MARK: Common configuration (§4.1.4.3)

    private func readCommon(offset: Int, size: Int) -> UInt64 {
        state.withLock { s -> UInt64 in
            let q = Int(s.queueSelect) < s.queues.count ? s.queues[Int(s.queueSelect)] : nil
            switch (offset, size) {
            case (0x00, 4): return UInt64(s.deviceFeatureSelect)
            case (0x04, 4):
                switch s.deviceFeatureSelect {
                case 0: return offeredFeatures & 0xffff_ffff
                case 1: return offeredFeatures >> 32
                default: return 0
                }
            case (0x08, 4): return UInt64(s.driverFeatureSelect)
            case (0x0c, 4):
                switch s.driverFeatureSelect {
                case 0: return s.driverFeatures & 0xffff_ffff
                case 1: return s.driverFeatures >> 32
                default: return 0
                }
            case (0x10, 2): return UInt64(s.configVector)
            case (0x12, 2): return UInt64(s.queues.count)
            case (0x14, 1): return UInt64(s.status)
            case (0x15, 1): return UInt64(s.configGeneration)
            case (0x16, 2): return UInt64(s.queueSelect)
            case (0x18, 2): return UInt64(q?.size ?? 0)
            case (0x1a, 2): return UInt64(q?.vector ?? Self.noVector)
            case (0x1c, 2): return (q?.ready ?? false) ? 1 : 0
            case (0x1e, 2): return q == nil ? 0 : UInt64(s.queueSelect)
            case (0x20, 4): return (q?.descriptorTable ?? 0) & 0xffff_ffff
            case (0x24, 4): return (q?.descriptorTable ?? 0) >> 32
            case (0x20, 8): return q?.descriptorTable ?? 0
            case (0x28, 4): return (q?.availRing ?? 0) & 0xffff_ffff
            case (0x2c, 4): return (q?.availRing ?? 0) >> 32
            case (0x28, 8): return q?.availRing ?? 0
            case (0x30, 4): return (q?.usedRing ?? 0) & 0xffff_ffff
            case (0x34, 4): return (q?.usedRing ?? 0) >> 32
            case (0x30, 8): return q?.usedRing ?? 0
            default: return 0
            }
        }
    }

    private enum Action {
        case none
        case activate
        case reset
        case route(Int)
    }

    private func writeCommon(offset: Int, size: Int, value: UInt64) {
        let action: Action = state.withLock { s -> Action in
            let queueWritable = s.status & Self.statusFeaturesOK != 0 && s.status & Self.statusDriverOK == 0
            let qi = Int(s.queueSelect)
            let hasQueue = qi < s.queues.count
            func setAddress(_ keyPath: WritableKeyPath<SplitQueue, UInt64>, high: Bool, full: Bool) {
                guard queueWritable, hasQueue else { return }
                var q = s.queues[qi]
                guard !q.ready else { return }
                if full { q[keyPath: keyPath] = value }
                else if high { q[keyPath: keyPath] = (q[keyPath: keyPath] & 0xffff_ffff) | (value << 32) }
                else { q[keyPath: keyPath] = (q[keyPath: keyPath] & 0xffff_ffff_0000_0000) | (value & 0xffff_ffff) }
                s.queues[qi] = q
            }
            switch (offset, size) {
            case (0x00, 4): s.deviceFeatureSelect = UInt32(truncatingIfNeeded: value)
            case (0x08, 4): s.driverFeatureSelect = UInt32(truncatingIfNeeded: value)
            case (0x0c, 4):
                // Features may change only after DRIVER and before FEATURES_OK.
                guard s.status & Self.statusDriver != 0, s.status & Self.statusFeaturesOK == 0 else { return .none }
                let v = value & 0xffff_ffff
                switch s.driverFeatureSelect {
                case 0: s.driverFeatures = (s.driverFeatures & 0xffff_ffff_0000_0000) | v
                case 1: s.driverFeatures = (s.driverFeatures & 0xffff_ffff) | (v << 32)
                default: break
                }
            case (0x10, 2):
                let vec = UInt16(truncatingIfNeeded: value)
                s.configVector = vec == Self.noVector || Int(vec) < s.msix.vectorCount ? vec : Self.noVector
            case (0x14, 1):
                return writeStatus(&s, UInt8(truncatingIfNeeded: value))
            case (0x16, 2): s.queueSelect = UInt16(truncatingIfNeeded: value)
            case (0x18, 2):
                guard queueWritable, hasQueue, !s.queues[qi].ready else { return .none }
                s.queues[qi].size = UInt16(truncatingIfNeeded: value)
            case (0x1a, 2):
                guard hasQueue else { return .none }
                let vec = UInt16(truncatingIfNeeded: value)
                // An out-of-range vector reads back as NO_VECTOR (§4.1.5.1.2).
                s.queues[qi].vector = vec == Self.noVector || Int(vec) < s.msix.vectorCount ? vec : Self.noVector
            case (0x1c, 2):
                guard queueWritable, hasQueue, value == 1, !s.queues[qi].ready else { return .none }
                do {
                    try s.queues[qi].validate(memory: memory)
                    s.queues[qi].ready = true
                } catch {
                    s.status |= Self.statusNeedsReset
                }
            case (0x20, 4): setAddress(\.descriptorTable, high: false, full: false)
            case (0x24, 4): setAddress(\.descriptorTable, high: true, full: false)
            case (0x20, 8): setAddress(\.descriptorTable, high: false, full: true)
            case (0x28, 4): setAddress(\.availRing, high: false, full: false)
            case (0x2c, 4): setAddress(\.availRing, high: true, full: false)
            case (0x28, 8): setAddress(\.availRing, high: false, full: true)
            case (0x30, 4): setAddress(\.usedRing, high: false, full: false)
            case (0x34, 4): setAddress(\.usedRing, high: true, full: false)
            case (0x30, 8): setAddress(\.usedRing, high: false, full: true)
            default: break
            }
            return .none
        }
        switch action {
        case .none, .route: break
        case .reset: resetDevice()
        case .activate: activate()
        }
    }

    private func writeStatus(_ s: inout State, _ new: UInt8) -> Action {
        if new == 0 { return .reset }
        let old = s.status
        // Bits are only ever added (§2.1.2); FAILED may be set at any time.
        var status = old | new
        if new & Self.statusFeaturesOK != 0 && old & Self.statusFeaturesOK == 0 {
            let acceptable = s.driverFeatures & ~offeredFeatures == 0 && s.driverFeatures & VirtioFeature.version1 != 0
            if !acceptable { status &= ~Self.statusFeaturesOK }
        }
        if new & Self.statusDriverOK != 0 && old & Self.statusDriverOK == 0 {
            guard status & Self.statusFeaturesOK != 0 else {
                s.status = old | Self.statusNeedsReset
                return .none
            }
            s.status = status
            return .activate
        }
        s.status = status
        return .none
    }

    private func activate() {
        let snapshot: (features: UInt64, queues: [SplitQueue])? = state.withLock { s in
            guard !s.active else { return nil }
            s.active = true
            var queues = s.queues
            let eventIdx = s.driverFeatures & VirtioFeature.eventIndex != 0
            let indirect = s.driverFeatures & VirtioFeature.indirectDescriptors != 0
            for i in queues.indices {
                queues[i].eventIndex = eventIdx
                queues[i].indirect = indirect
            }
            s.queues = queues
            return (s.driverFeatures, queues)
        }
        guard let snapshot else { return }
        for n in notifiers { n.consume() }
        do {
            try device.activate(VirtioActivation(memory: memory, features: snapshot.features, queues: snapshot.queues, notifiers: notifiers, interrupt: self))
        } catch {
            state.withLock { $0.status |= Self.statusNeedsReset }
            signalConfigChange()
        }
        // Queues the driver notified before DRIVER_OK may already hold requests.
        for n in notifiers { n.signal() }
    }

    private func resetDevice() {
        device.reset()
        let vectorsToClear = state.withLock { s -> Int in
            s.active = false
            s.status = 0
            s.driverFeatures = 0
            s.deviceFeatureSelect = 0
            s.driverFeatureSelect = 0
            s.queueSelect = 0
            s.configVector = Self.noVector
            s.isr = 0
            for i in s.queues.indices { s.queues[i].reset() }
            return s.msix.vectorCount
        }
        intx?.setLevel(false)
        for n in notifiers { n.consume() }
        _ = vectorsToClear
    }

    // MARK: Interrupts

    func updateRoute(_ vector: Int) {
        let (message, pending) = state.withLock { s in (s.msix.deliverableMessage(vector), s.msix.isPending(vector)) }
        vectors.route(vector: vector, message: message)
        if message != nil && pending {
            state.withLock { $0.msix.setPending(vector, false) }
            vectors.trigger(vector: vector)
        }
    }

    private func raise(vector: UInt16, isrBit: UInt8) {
        enum Delivery { case msix(Int), pending, intx, none }
        let d: Delivery = state.withLock { s in
            if s.msix.enabled {
                guard vector != Self.noVector, Int(vector) < s.msix.vectorCount else { return .none }
                if s.msix.deliverableMessage(Int(vector)) != nil { return .msix(Int(vector)) }
                s.msix.setPending(Int(vector), true)
                return .pending
            }
            s.isr |= isrBit
            return .intx
        }
        switch d {
        case .msix(let v): vectors.trigger(vector: v)
        case .intx: intx?.setLevel(true)
        case .pending, .none: break
        }
    }

    public func signalQueue(_ index: Int) {
        let vector = state.withLock { s in index < s.queues.count ? s.queues[index].vector : Self.noVector }
        raise(vector: vector, isrBit: 1)
    }

    public func signalConfigChange() {
        let vector = state.withLock { s in
            s.configGeneration &+= 1
            return s.configVector
        }
        raise(vector: vector, isrBit: 2)
    }

    public func deviceBroken() {
        let already = state.withLock { s -> Bool in
            let was = s.status & Self.statusNeedsReset != 0
            s.status |= Self.statusNeedsReset
            return was
        }
        if !already { signalConfigChange() }
    }

    /// The device status byte (for tests and diagnostics).
    public var status: UInt8 { state.withLock { $0.status } }
}

private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
