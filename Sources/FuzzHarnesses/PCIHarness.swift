import DeviceModel
import GuestMemory
import PCI
import SystemExtras
import Virtio

/// A virtio device with two queues that does nothing when activated: the PCI harness fuzzes the
/// transport, not a device.
final class IdleVirtioDevice: VirtioDevice, @unchecked Sendable {
    // @unchecked: a harness runs on one thread; the protocol asks for Sendable.
    let deviceType = VirtioDeviceType.entropy
    let deviceFeatures: UInt64 = 1 << 0
    let queueMaxSizes: [UInt16] = [64, 16]
    var config = [UInt8](repeating: 0x11, count: 24)
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let (at, overflow) = offset.addingReportingOverflow(i)
            unsafe data[i] = !overflow && at >= 0 && at < config.count ? config[at] : 0
        }
    }
    func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}
    func activate(_ activation: VirtioActivation) throws(VirtioDeviceError) {}
    func reset() {}
    func pause() {}
    func resume() {}
    func pausedQueues() -> [SplitQueue]? { nil }
}

/// MSI routes and triggers the transport asks for.
final class CountingVectors: MSIVectorSink, @unchecked Sendable {
    // @unchecked: a harness runs on one thread; the protocol asks for Sendable.
    var routes = 0
    var triggers = 0
    func route(vector: Int, message: MSIMessage?) { routes += 1 }
    func trigger(vector: Int) { triggers += 1 }
}

/// PCI configuration space and MSI-X: configuration mechanism #1 (0xCF8/0xCFC) and ECAM accesses
/// of every width to any bus, slot, function and register (BAR sizing and relocation included),
/// accesses to a virtio-pci function's BAR (common configuration, notify, ISR, device
/// configuration, MSI-X table and PBA), and an `MSIXState` checked against a model of the table.
///
/// Checks: MSI-X table reads return what aligned writes stored (only the mask bit of vector
/// control is writable); a vector is deliverable exactly when MSI-X is on, the function and the
/// vector are unmasked.
public enum PCIHarness {
    static let barBase: UInt64 = 0xc000_0000
    static let ecamBase: UInt64 = 0xe000_0000
    nonisolated(unsafe) static var ram: FuzzGuestRAM?

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        var input = FuzzInput(data)
        let pio = Bus()
        let mmio = Bus()
        let root = PCIRoot(mmioBus: mmio, pioBus: pio, mmio32Window: (barBase, 0x2000_0000), mmio64Start: 0x100_0000_0000)
        let io = root.configIODevices(narrowAccesses: nil)
        do {
            try pio.insert(io.address, base: 0xcf8, length: 4)
            try pio.insert(io.data, base: 0xcfc, length: 4)
            try mmio.insert(root.ecamDevice(), base: ecamBase, length: 0x1000_0000)
        } catch {
            throw FuzzInvariantViolation("bus setup: \(error)")
        }
        let vectors = CountingVectors()
        let transport: VirtioPCIDevice
        do {
            let bar = try root.allocateBAR(size: 0x10000)
            transport = try VirtioPCIDevice(device: IdleVirtioDevice(), memory: ram.memory, barAddress: bar, vectors: vectors, intx: nil)
            try root.add(transport)
        } catch {
            throw FuzzInvariantViolation("device setup: \(error)")
        }
        var msix = MSIXState(vectorCount: 1 + input.below(70))
        var model = MSIXModel(vectorCount: msix.vectorCount)

        var steps = 0
        while !input.isAtEnd && steps < 256 {
            steps += 1
            let sizes = [1, 2, 4, 8, 3, 0, 16]
            let size = input.u8() & 0x80 == 0 ? [1, 2, 4][input.below(3)] : sizes[input.below(sizes.count)]
            var value = input.u64()
            switch input.u8() % 10 {
            case 0:
                // The address register: mostly enabled, bus 0, a slot with a device.
                var address = UInt32(0x8000_0000) | UInt32(input.below(3)) << 11 | UInt32(input.u8() & 0xfc)
                if input.u8() & 7 == 0 { address = input.u32() }
                unsafe withUnsafeBytes(of: &address) { _ = unsafe pio.write(address: 0xcf8, from: UnsafeRawBufferPointer(rebasing: $0[0..<4])) }
            case 1, 2:
                let port = 0xcf8 + UInt64(input.below(8))
                let width = min(size, 4)
                if input.bool() {
                    unsafe withUnsafeBytes(of: &value) { _ = unsafe pio.write(address: port, from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
                } else {
                    var out = [UInt8](repeating: 0, count: width)
                    unsafe out.withUnsafeMutableBytes { _ = unsafe pio.read(address: port, into: $0) }
                }
            case 3, 4:
                // ECAM: mostly bus 0, slots 0-2, any register.
                let offset = input.u8() & 7 == 0 ? UInt64(input.u32()) & 0x0fff_ffff : UInt64(input.below(3)) << 15 | UInt64(input.u16() & 0xfff)
                let width = min(size, 8)
                if input.bool() {
                    unsafe withUnsafeBytes(of: &value) { _ = unsafe mmio.write(address: ecamBase + offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
                } else {
                    var out = [UInt8](repeating: 0, count: width)
                    unsafe out.withUnsafeMutableBytes { _ = unsafe mmio.read(address: ecamBase + offset, into: $0) }
                }
            case 5, 6:
                // The BAR wherever the guest put it (or the default window): registers, notify, MSI-X.
                let regions: [UInt64] = [0, 0x1000, 0x2000, 0x3000, 0x8000, 0xc000]
                let offset = regions[input.below(regions.count)] + UInt64(input.u8())
                let base = input.u8() & 7 == 0 ? FuzzGuestRAM.address(&input) : barBase
                let width = min(size, 8)
                if input.bool() {
                    unsafe withUnsafeBytes(of: &value) { _ = unsafe mmio.write(address: base &+ offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
                } else {
                    var out = [UInt8](repeating: 0, count: width)
                    unsafe out.withUnsafeMutableBytes { _ = unsafe mmio.read(address: base &+ offset, into: $0) }
                }
            case 7:
                // MSI-X table writes checked against the model.
                let offset = UInt64(input.below(msix.tableSize + 32))
                let width = [4, 8, 2, 1][input.below(4)]
                let changed = unsafe withUnsafeBytes(of: &value) { unsafe msix.writeTable(offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
                model.write(offset: offset, width: width, value: value)
                for v in changed { try require(v >= 0 && v < msix.vectorCount, "changed vector \(v) of \(msix.vectorCount)") }
            case 8:
                let control = input.u16()
                _ = msix.setControl(control)
                model.setControl(control)
                msix.setPending(input.below(msix.vectorCount + 4) - 2, input.bool())
                var pba = [UInt8](repeating: 0, count: 8)
                unsafe pba.withUnsafeMutableBytes { unsafe msix.readPBA(offset: UInt64(input.below(msix.pbaSize + 8)), into: $0) }
            default:
                let offset = UInt64(input.below(msix.tableSize + 32))
                let width = [4, 8, 2][input.below(3)]
                var out: UInt64 = 0
                unsafe withUnsafeMutableBytes(of: &out) { unsafe msix.readTable(offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<width])) }
                let expected = model.read(offset: offset, width: width)
                try require(out == expected, "MSI-X table read at \(offset) width \(width): 0x\(String(out, radix: 16)), model 0x\(String(expected, radix: 16))")
            }
        }
        for v in 0..<msix.vectorCount {
            try require(msix.deliverableMessage(v) == model.deliverable(v), "vector \(v): \(String(describing: msix.deliverableMessage(v))) vs model")
        }
    }
}

/// The MSI-X table as PCI 3.0 §6.8.2 describes it: 16 bytes per vector, dword or qword aligned
/// accesses, only bit 0 of vector control writable, every vector masked at reset.
struct MSIXModel {
    let vectorCount: Int
    var dwords: [UInt32]
    var enabled = false
    var functionMasked = false

    init(vectorCount: Int) {
        self.vectorCount = vectorCount
        dwords = (0..<(vectorCount * 4)).map { $0 % 4 == 3 ? 1 : 0 }
    }

    mutating func write(offset: UInt64, width: Int, value: UInt64) {
        guard width == 4 || width == 8, offset % UInt64(width) == 0 else { return }
        for d in 0..<(width / 4) {
            let index = Int(offset / 4) + d
            guard index < dwords.count else { return }
            var v = UInt32(truncatingIfNeeded: value >> (32 * UInt64(d)))
            if index % 4 == 3 { v &= 1 }
            dwords[index] = v
        }
    }

    func read(offset: UInt64, width: Int) -> UInt64 {
        guard width == 4 || width == 8, offset % UInt64(width) == 0 else { return 0 }
        var v: UInt64 = 0
        for d in 0..<(width / 4) {
            let index = Int(offset / 4) + d
            guard index < dwords.count else { break }
            v |= UInt64(dwords[index]) << (32 * UInt64(d))
        }
        return v
    }

    mutating func setControl(_ control: UInt16) {
        enabled = control & 0x8000 != 0
        functionMasked = control & 0x4000 != 0
    }

    func deliverable(_ v: Int) -> MSIMessage? {
        guard enabled, !functionMasked, dwords[v * 4 + 3] & 1 == 0 else { return nil }
        return MSIMessage(addressLow: dwords[v * 4], addressHigh: dwords[v * 4 + 1], data: dwords[v * 4 + 2])
    }
}
