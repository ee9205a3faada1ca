import DeviceModel
import Synchronization

/// PCI segment 0, bus 0: up to 32 single-function devices, reached through configuration
/// mechanism #1 (ports 0xCF8/0xCFC) and ECAM, with their BARs mapped on the VM's buses.
public final class PCIRoot: Sendable {
    /// Devices by slot; slot 0 is the host bridge.
    private let slots = Mutex<[(any PCIDevice)?]>(Array(repeating: nil, count: 32))
    /// What is mapped where, per slot and BAR index.
    private let mapped = Mutex<[Int: [Int: (address: UInt64, size: UInt64, io: Bool)]]>([:])
    private let mmioBus: Bus
    private let pioBus: Bus
    /// Next free address in the 32-bit MMIO window.
    private let allocator: Mutex<(next32: UInt64, end32: UInt64, next64: UInt64)>
    /// First GSI used for INTx (pins A–D of all slots share 8 GSIs).
    public let intxBaseGSI: UInt32
    /// The host bridge in slot 0.
    let hostBridge = PCIHostBridge()
    /// Configuration mechanism #1's address register (0xCF8), shared by every set of
    /// `configIODevices`.
    let configAddress = Mutex<UInt32>(0)

    public enum Error: Swift.Error, CustomStringConvertible {
        case slotsFull
        case outOfMMIOSpace(UInt64)
        public var description: String {
            switch self {
            case .slotsFull: return "no free PCI slot (31 devices at most)"
            case .outOfMMIOSpace(let s): return "no room for a \(s)-byte BAR in the PCI MMIO window"
            }
        }
    }

    public init(mmioBus: Bus, pioBus: Bus, mmio32Window: (start: UInt64, size: UInt64), mmio64Start: UInt64, intxBaseGSI: UInt32 = 16) {
        self.mmioBus = mmioBus
        self.pioBus = pioBus
        self.intxBaseGSI = intxBaseGSI
        allocator = Mutex((mmio32Window.start, mmio32Window.start + mmio32Window.size, mmio64Start))
        let bridge = hostBridge
        slots.withLock { $0[0] = bridge }
    }

    /// The GSI of INTx pin `pin` (1 = INTA … 4 = INTD) of `slot`, with the usual swizzle.
    public func intxGSI(slot: Int, pin: Int) -> UInt32 {
        intxBaseGSI + UInt32((slot + max(pin, 1) - 1) % 8)
    }

    /// Reserves `size` bytes (power of two) of BAR space, naturally aligned.
    public func allocateBAR(size: UInt64, above4G: Bool = false) throws(Error) -> UInt64 {
        let result: UInt64? = allocator.withLock { a in
            if above4G {
                let base = (a.next64 + size - 1) & ~(size - 1)
                a.next64 = base + size
                return base
            }
            let base = (a.next32 + size - 1) & ~(size - 1)
            guard base + size <= a.end32 else { return nil }
            a.next32 = base + size
            return base
        }
        guard let result else { throw .outOfMMIOSpace(size) }
        return result
    }

    /// The slot the next `add` will use, if any is free.
    public func nextFreeSlot() -> Int? {
        slots.withLock { s in (1..<32).first { s[$0] == nil } }
    }

    /// Plugs `device` into the first free slot and maps its BARs; returns the slot.
    @discardableResult
    public func add(_ device: any PCIDevice) throws(Error) -> Int {
        let slot: Int? = slots.withLock { s in
            guard let i = (1..<32).first(where: { s[$0] == nil }) else { return nil }
            s[i] = device
            return i
        }
        guard let slot else { throw .slotsFull }
        refreshMappings(slot: slot)
        return slot
    }

    /// All devices with their slots.
    public var devices: [(slot: Int, device: any PCIDevice)] {
        slots.withLock { s in s.enumerated().compactMap { i, d in d.map { (i, $0) } } }
    }

    private func device(bus: Int, slot: Int, function: Int) -> (any PCIDevice)? {
        guard bus == 0, function == 0, slot >= 0, slot < 32 else { return nil }
        return slots.withLock { $0[slot] }
    }

    /// Configuration read; absent functions read all ones.
    public func configRead(bus: Int, slot: Int, function: Int, offset: Int, size: Int) -> UInt32 {
        guard let d = device(bus: bus, slot: slot, function: function) else { return size == 4 ? 0xffff_ffff : (1 << (8 * UInt32(size))) - 1 }
        guard offset < PCIConfiguration.size else { return 0 }  // no extended configuration space
        return d.configRead(offset: offset, size: size)
    }

    /// Configuration write; BAR or command changes remap the device.
    public func configWrite(bus: Int, slot: Int, function: Int, offset: Int, size: Int, value: UInt32) {
        guard let d = device(bus: bus, slot: slot, function: function), offset < PCIConfiguration.size else { return }
        d.configWrite(offset: offset, size: size, value: value)
        if offset < 0x28 && offset + size > PCIConfiguration.command {
            refreshMappings(slot: slot)
        }
    }

    /// Brings the bus mappings of `slot` in line with its BARs and command register.
    private func refreshMappings(slot: Int) {
        refreshMappings(slots: [slot])
    }

    /// Brings the bus mappings of `slots` in line with their devices' BARs and command
    /// registers: first every mapping that moves or goes is taken off its bus, then every BAR
    /// that should be mapped and is not is placed, so BARs that trade places both land. A BAR
    /// that would overlap another mapping is left unmapped (and its device told so).
    private func refreshMappings(slots wanted: some Sequence<Int>) {
        let targets = wanted.compactMap { slot in device(bus: 0, slot: slot, function: 0).map { (slot, $0, $0.barMappings) } }
        var changes: [(any PCIDevice, Int, UInt64?)] = []
        mapped.withLock { all in
            var removed = Set<[Int]>()
            for (slot, _, state) in targets {
                var current = all[slot] ?? [:]
                for bar in state.bars {
                    guard let existing = current[bar.index], existing.address != Self.wantedAddress(bar, state) else { continue }
                    (existing.io ? pioBus : mmioBus).remove(base: existing.address)
                    current[bar.index] = nil
                    removed.insert([slot, bar.index])
                }
                all[slot] = current
            }
            for (slot, d, state) in targets {
                var current = all[slot] ?? [:]
                for bar in state.bars where current[bar.index] == nil {
                    guard let address = Self.wantedAddress(bar, state) else {
                        if removed.contains([slot, bar.index]) { changes.append((d, bar.index, nil)) }
                        continue
                    }
                    let isIO = bar.kind == .io
                    do {
                        try (isIO ? pioBus : mmioBus).insert(BARWindow(device: d, index: bar.index), base: address, length: bar.size)
                        current[bar.index] = (address, bar.size, isIO)
                        changes.append((d, bar.index, address))
                    } catch {
                        changes.append((d, bar.index, nil))  // overlaps something: leave it unmapped
                    }
                }
                all[slot] = current
            }
        }
        for (d, index, address) in changes { d.barMapped(index: index, at: address) }
    }

    /// Where `bar` should be mapped: its address while its space is decoded, nil otherwise
    /// (or while it is at 0, unprogrammed).
    private static func wantedAddress(_ bar: PCIConfiguration.BAR, _ state: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool)) -> UInt64? {
        let enabled = bar.kind == .io ? state.ioEnabled : state.memoryEnabled
        return enabled && bar.address != 0 ? bar.address : nil
    }

    /// Maps every device's BARs where its configuration space says, as a guest write to the
    /// BARs or command register would, and tells each device whose BAR moved
    /// (`PCIDevice.barMapped`, which moves the virtio transport's ioeventfds). Call it after
    /// restoring every device's configuration space (and `restoreState(_:)`).
    ///
    /// One difference from the history the guest made: if two enabled BARs overlap, the one
    /// mapped first wins on the live machine, here the one in the lower slot.
    public func remapAllBARs() {
        refreshMappings(slots: 0..<32)
    }

    /// The configuration-mechanism-#1 devices: the address register at 0xCF8 (4 ports) and
    /// the data window at 0xCFC (4 ports). Accesses to 0xCF8–0xCFB that are not 32 bits wide
    /// are not the address register (as on a PC): they go to `narrowAccesses` (e.g. the 0xCF9
    /// reset control), which sees offsets relative to 0xCF8. The address register is the
    /// root's own (it is part of the root's saved state), whichever pair of devices sets it.
    public func configIODevices(narrowAccesses: (any BusDevice)? = nil) -> (address: any BusDevice, data: any BusDevice) {
        let io = PCIConfigIO(root: self, narrow: narrowAccesses)
        return (PCIConfigAddressPort(io: io), PCIConfigDataPort(io: io))
    }

    /// The ECAM window device (MMCONFIG, 256 MiB for buses 0–255).
    public func ecamDevice() -> any BusDevice { PCIConfigECAM(root: self) }
}

/// Forwards accesses in one BAR to its device.
final class BARWindow: BusDevice, Sendable {
    let device: any PCIDevice
    let index: Int
    init(device: any PCIDevice, index: Int) {
        self.device = device
        self.index = index
    }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { unsafe device.barRead(index: index, offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { unsafe device.barWrite(index: index, offset: offset, from: data) }
}

/// Configuration mechanism #1: the shared address register and the data accesses it selects.
///
/// It holds the root weakly: the root holds the buses that hold this device, and a strong
/// reference would keep root, buses and every device on them alive after the machine is gone.
final class PCIConfigIO: Sendable {
    private weak let root: PCIRoot?
    private let narrow: (any BusDevice)?

    init(root: PCIRoot, narrow: (any BusDevice)?) {
        self.root = root
        self.narrow = narrow
    }

    func readAddress(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard offset == 0, data.count == 4 else {
            unsafe narrow?.read(offset: offset, into: data)
            return
        }
        unsafe data.storeBytes(of: (root?.configAddress.withLock { $0 } ?? 0xffff_ffff).littleEndian, as: UInt32.self)
    }

    func writeAddress(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count == 4 else {
            unsafe narrow?.write(offset: offset, from: data)
            return
        }
        root?.configAddress.withLock { $0 = unsafe data.loadUnaligned(as: UInt32.self) & 0x80ff_fffc }
    }

    func readData(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard let root, let (bus, slot, fn, reg) = target(root, byteOffset: Int(offset)) else { return }
        let v = root.configRead(bus: bus, slot: slot, function: fn, offset: reg, size: data.count)
        for i in 0..<data.count { unsafe data[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    func writeData(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let root, let (bus, slot, fn, reg) = target(root, byteOffset: Int(offset)) else { return }
        var v: UInt32 = 0
        for i in 0..<data.count { unsafe v |= UInt32(data[i]) << (8 * UInt32(i)) }
        root.configWrite(bus: bus, slot: slot, function: fn, offset: reg, size: data.count, value: v)
    }

    private func target(_ root: PCIRoot, byteOffset: Int) -> (Int, Int, Int, Int)? {
        let a = root.configAddress.withLock { $0 }
        guard a & 0x8000_0000 != 0 else { return nil }
        return (Int((a >> 16) & 0xff), Int((a >> 11) & 0x1f), Int((a >> 8) & 0x7), Int(a & 0xfc) + byteOffset)
    }
}

/// Ports 0xCF8–0xCFB.
final class PCIConfigAddressPort: BusDevice, Sendable {
    let io: PCIConfigIO
    init(io: PCIConfigIO) { self.io = io }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { unsafe io.readAddress(offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { unsafe io.writeAddress(offset: offset, from: data) }
}

/// Ports 0xCFC–0xCFF.
final class PCIConfigDataPort: BusDevice, Sendable {
    let io: PCIConfigIO
    init(io: PCIConfigIO) { self.io = io }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { unsafe io.readData(offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { unsafe io.writeData(offset: offset, from: data) }
}

/// ECAM (MMCONFIG): bus << 20 | device << 15 | function << 12 | register. Holds the root weakly,
/// like `PCIConfigIO`.
final class PCIConfigECAM: BusDevice, Sendable {
    private weak let root: PCIRoot?
    init(root: PCIRoot) { self.root = root }

    private func decode(_ offset: UInt64) -> (Int, Int, Int, Int) {
        (Int((offset >> 20) & 0xff), Int((offset >> 15) & 0x1f), Int((offset >> 12) & 0x7), Int(offset & 0xfff))
    }

    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard data.count <= 4, let root else { return }
        let (bus, slot, fn, reg) = decode(offset)
        let v = root.configRead(bus: bus, slot: slot, function: fn, offset: reg, size: data.count)
        for i in 0..<data.count { unsafe data[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard data.count <= 4, let root else { return }
        let (bus, slot, fn, reg) = decode(offset)
        var v: UInt32 = 0
        for i in 0..<data.count { unsafe v |= UInt32(data[i]) << (8 * UInt32(i)) }
        root.configWrite(bus: bus, slot: slot, function: fn, offset: reg, size: data.count, value: v)
    }
}
