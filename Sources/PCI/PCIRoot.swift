import DeviceModel
import Synchronization

/// PCI segment 0, bus 0: up to 32 single-function devices, reached through configuration
/// mechanism #1 (ports 0xCF8/0xCFC) and ECAM, with their BARs mapped on the VM's buses.
public final class PCIRoot: @unchecked Sendable {
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
        slots.withLock { $0[0] = PCIHostBridge() }
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
        guard let d = device(bus: 0, slot: slot, function: 0) else { return }
        let state = d.barMappings
        var changes: [(Int, UInt64?)] = []
        mapped.withLock { all in
            var current = all[slot] ?? [:]
            for bar in state.bars {
                let isIO: Bool
                if case .io = bar.kind { isIO = true } else { isIO = false }
                let enabled = isIO ? state.ioEnabled : state.memoryEnabled
                let wanted: UInt64? = enabled && bar.address != 0 ? bar.address : nil
                let existing = current[bar.index]
                if existing?.address == wanted { continue }
                let bus = isIO ? pioBus : mmioBus
                if let existing {
                    bus.remove(base: existing.address)
                    current[bar.index] = nil
                }
                if let wanted {
                    do {
                        try bus.insert(BARWindow(device: d, index: bar.index), base: wanted, length: bar.size)
                        current[bar.index] = (wanted, bar.size, isIO)
                        changes.append((bar.index, wanted))
                    } catch {
                        changes.append((bar.index, nil))  // overlaps something: leave it unmapped
                    }
                } else if existing != nil {
                    changes.append((bar.index, nil))
                }
            }
            all[slot] = current
        }
        for (index, address) in changes { d.barMapped(index: index, at: address) }
    }

    /// The configuration-mechanism-#1 devices: the address register at 0xCF8 (4 ports) and
    /// the data window at 0xCFC (4 ports). Accesses to 0xCF8–0xCFB that are not 32 bits wide
    /// are not the address register (as on a PC): they go to `narrowAccesses` (e.g. the 0xCF9
    /// reset control), which sees offsets relative to 0xCF8.
    public func configIODevices(narrowAccesses: (any BusDevice)? = nil) -> (address: any BusDevice, data: any BusDevice) {
        let io = PCIConfigIO(root: self, narrow: narrowAccesses)
        return (PCIConfigAddressPort(io: io), PCIConfigDataPort(io: io))
    }

    /// The ECAM window device (MMCONFIG, 256 MiB for buses 0–255).
    public func ecamDevice() -> any BusDevice { PCIConfigECAM(root: self) }
}

/// Forwards accesses in one BAR to its device.
final class BARWindow: BusDevice, @unchecked Sendable {
    let device: any PCIDevice
    let index: Int
    init(device: any PCIDevice, index: Int) {
        self.device = device
        self.index = index
    }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { device.barRead(index: index, offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { device.barWrite(index: index, offset: offset, from: data) }
}

/// Configuration mechanism #1: the shared address register and the data accesses it selects.
///
/// It holds the root weakly: the root holds the buses that hold this device, and a strong
/// reference would keep root, buses and every device on them alive after the machine is gone.
final class PCIConfigIO: @unchecked Sendable {
    private weak var root: PCIRoot?
    private let narrow: (any BusDevice)?
    private let address = Mutex<UInt32>(0)

    init(root: PCIRoot, narrow: (any BusDevice)?) {
        self.root = root
        self.narrow = narrow
    }

    func readAddress(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard offset == 0, data.count == 4 else {
            narrow?.read(offset: offset, into: data)
            return
        }
        data.storeBytes(of: address.withLock { $0 }.littleEndian, as: UInt32.self)
    }

    func writeAddress(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count == 4 else {
            narrow?.write(offset: offset, from: data)
            return
        }
        address.withLock { $0 = data.loadUnaligned(as: UInt32.self) & 0x80ff_fffc }
    }

    func readData(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard let root, let (bus, slot, fn, reg) = target(byteOffset: Int(offset)) else { return }
        let v = root.configRead(bus: bus, slot: slot, function: fn, offset: reg, size: data.count)
        for i in 0..<data.count { data[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    func writeData(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let root, let (bus, slot, fn, reg) = target(byteOffset: Int(offset)) else { return }
        var v: UInt32 = 0
        for i in 0..<data.count { v |= UInt32(data[i]) << (8 * UInt32(i)) }
        root.configWrite(bus: bus, slot: slot, function: fn, offset: reg, size: data.count, value: v)
    }

    private func target(byteOffset: Int) -> (Int, Int, Int, Int)? {
        let a = address.withLock { $0 }
        guard a & 0x8000_0000 != 0 else { return nil }
        return (Int((a >> 16) & 0xff), Int((a >> 11) & 0x1f), Int((a >> 8) & 0x7), Int(a & 0xfc) + byteOffset)
    }
}

/// Ports 0xCF8–0xCFB.
final class PCIConfigAddressPort: BusDevice, @unchecked Sendable {
    let io: PCIConfigIO
    init(io: PCIConfigIO) { self.io = io }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { io.readAddress(offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { io.writeAddress(offset: offset, from: data) }
}

/// Ports 0xCFC–0xCFF.
final class PCIConfigDataPort: BusDevice, @unchecked Sendable {
    let io: PCIConfigIO
    init(io: PCIConfigIO) { self.io = io }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) { io.readData(offset: offset, into: data) }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { io.writeData(offset: offset, from: data) }
}

/// ECAM (MMCONFIG): bus << 20 | device << 15 | function << 12 | register. Holds the root weakly,
/// like `PCIConfigIO`.
final class PCIConfigECAM: BusDevice, @unchecked Sendable {
    private weak var root: PCIRoot?
    init(root: PCIRoot) { self.root = root }

    private func decode(_ offset: UInt64) -> (Int, Int, Int, Int) {
        (Int((offset >> 20) & 0xff), Int((offset >> 15) & 0x1f), Int((offset >> 12) & 0x7), Int(offset & 0xfff))
    }

    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard data.count <= 4, let root else { return }
        let (bus, slot, fn, reg) = decode(offset)
        let v = root.configRead(bus: bus, slot: slot, function: fn, offset: reg, size: data.count)
        for i in 0..<data.count { data[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard data.count <= 4, let root else { return }
        let (bus, slot, fn, reg) = decode(offset)
        var v: UInt32 = 0
        for i in 0..<data.count { v |= UInt32(data[i]) << (8 * UInt32(i)) }
        root.configWrite(bus: bus, slot: slot, function: fn, offset: reg, size: data.count, value: v)
    }
}
