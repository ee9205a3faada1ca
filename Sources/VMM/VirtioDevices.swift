import ArchX86
import DeviceModel
import KVM
import PCI
import Storage
import SystemExtras
import Virtio
import VirtioBlock
import VirtioNet
import VirtioVsock
import Synchronization

/// Puts the PCI root on a machine (0xCF8/0xCFC, ECAM) and plugs in the configured virtio
/// devices, each with its BAR, MSI-X vectors on irqfds, an INTx line and ioeventfd notifications.
final class VirtioDevices: Sendable {
    let root: PCIRoot
    private struct Plugged {
        var transports: [VirtioPCIDevice] = []
        var specs: [VirtioDeviceSpec] = []
        var balloon: VirtioBalloon?
        var console: VirtioConsole?
    }
    private let plugged = Mutex(Plugged())
    var transports: [VirtioPCIDevice] { plugged.withLock { $0.transports } }
    /// The spec each transport was built from, in slot order.
    var specs: [VirtioDeviceSpec] { plugged.withLock { $0.specs } }
    /// The balloon, if configured.
    var balloon: VirtioBalloon? { plugged.withLock { $0.balloon } }
    /// The virtio console, if configured.
    var console: VirtioConsole? { plugged.withLock { $0.console } }

    init(machine: Machine, narrowConfigAccesses: (any BusDevice)?) throws(VMError) {
        root = PCIRoot(mmioBus: machine.mmio, pioBus: machine.pio,
                       mmio32Window: (Layout.pciMMIO32Start, Layout.pciMMIO32Size),
                       mmio64Start: PlatformTables.pciMMIO64Start(memoryMap: machine.memoryMap))
        let io = root.configIODevices(narrowAccesses: narrowConfigAccesses)
        do {
            try machine.pio.insert(io.address, base: 0xcf8, length: 4)
            try machine.pio.insert(io.data, base: 0xcfc, length: 4)
            try machine.mmio.insert(root.ecamDevice(), base: Layout.pciMMCONFIGStart, length: Layout.pciMMCONFIGSize)
        } catch {
            throw VMError("cannot place the PCI host bridge: \(error)")
        }
    }

    /// Creates the device for `spec` and plugs it into the next slot; console devices write to `output`.
    func add(_ spec: VirtioDeviceSpec, machine: Machine, output: any ConsoleOutput, rateLimiters: DeviceRateLimiters) throws(VMError) {
        let device: any VirtioDevice
        let disk = specs.filter { if case .block = $0 { return true } else { return false } }.count
        let net = specs.filter { if case .net = $0 { return true } else { return false } }.count
        switch spec {
        case .rng: device = VirtioRNG()
        case .balloon(let b):
            guard balloon == nil else { throw VMError("only one virtio-balloon device is supported") }
            let options = VirtioBalloon.Options(statistics: b.statistics, freePageReporting: b.freePageReporting, deflateOnOOM: b.deflateOnOOM)
            let d = VirtioBalloon(guestMemorySize: machine.memory.totalSize, options: options)
            plugged.withLock { $0.balloon = d }
            device = d
        case .console:
            guard console == nil else { throw VMError("only one virtio-console device is supported") }
            let d = VirtioConsole(output: output)
            plugged.withLock { $0.console = d }
            device = d
        case .block(let path, let format, let readOnly, let serial):
            guard disk < rateLimiters.disks.count else { throw VMError("disk \(disk) has no rate limiter") }
            device = try Self.openDisk(path: path, format: format, readOnly: readOnly, serial: serial, limiter: rateLimiters.disks[disk])
        case .net(let tap, let mac):
            guard net < rateLimiters.networkReceive.count else { throw VMError("network device \(net) has no rate limiter") }
            do {
                device = VirtioNet(backend: try TapDevice(name: tap), mac: mac, receiveLimiter: rateLimiters.networkReceive[net],
                                   transmitLimiter: rateLimiters.networkTransmit[net])
            } catch {
                throw VMError("cannot open TAP \(tap): \(error.message)")
            }
        case .vsock(let cid, let socket):
            do {
                device = try VirtioVsock(guestCID: cid, socketPath: socket)
            } catch {
                throw VMError("cannot create the vsock socket: \(error)")
            }
        }
        guard let slot = root.nextFreeSlot() else { throw VMError("no free PCI slot for \(spec)") }
        let vm = machine.vm
        do {
            let bar = try root.allocateBAR(size: 0x10000)
            let vectors = try machine.interrupts.vectors(count: device.queueMaxSizes.count + 1)
            let gsi = root.intxGSI(slot: slot, pin: 1)
            let transport = try VirtioPCIDevice(
                device: device, memory: machine.memory, barAddress: bar, vectors: vectors,
                intx: machine.interruptLine(gsi: gsi), intxPin: 1, intxLine: UInt8(truncatingIfNeeded: gsi),
                notifyRegistrar: { eventFD, address, register in
                    try? vm.registerIOEventFD(eventFD.rawValue, space: .mmio, address: address, length: 2, deassign: !register)
                })
            try root.add(transport)
            plugged.withLock {
                $0.transports.append(transport)
                $0.specs.append(spec)
            }
        } catch let e as VMError {
            throw e
        } catch {
            throw VMError("cannot add \(spec): \(error)")
        }
    }

    /// Opens a disk image for virtio-blk; any failure (missing, locked, corrupt) is one line.
    private static func openDisk(path: String, format: DiskFormat, readOnly: Bool, serial: String?, limiter: RateLimiter) throws(VMError) -> VirtioBlock {
        let backend: any BlockDevice
        do {
            backend = try DiskImage.open(path: path, format: format, readOnly: readOnly)
        } catch {
            throw VMError("cannot open disk \(path) (\(format.rawValue)\(readOnly ? ", read-only" : "")): \(error)")
        }
        return VirtioBlock(backend: backend, serial: serial ?? VirtioBlock.defaultSerial(forPath: path), limiter: limiter)
    }

    /// The devices as a snapshot records them, with what was chosen at creation (a random
    /// MAC, the default disk serial) made explicit so a restore presents the same hardware.
    func savedSpecs() -> [SavedDeviceSpec] {
        zip(specs, transports).map { spec, transport in
            switch spec {
            case .rng: return .rng
            case .console: return .console
            case .balloon(let b): return .balloon(statistics: b.statistics, freePageReporting: b.freePageReporting, deflateOnOOM: b.deflateOnOOM)
            case .block(let path, let format, let readOnly, let serial):
                return .block(path: path, format: format.rawValue, readOnly: readOnly, serial: serial ?? VirtioBlock.defaultSerial(forPath: path))
            case .net(let tap, let mac):
                return .net(tap: tap, mac: (transport.device as? VirtioNet)?.mac.bytes ?? mac?.bytes ?? [])
            case .vsock(let cid, let socket): return .vsock(cid: cid, socket: socket)
            }
        }
    }

    /// Flushes and closes every disk so another process can lock them (VM paused, migration
    /// switch-over with shared storage). On failure the disks closed so far are reopened.
    func releaseDisks() throws(VMError) {
        var released: [Int] = []
        for (i, t) in transports.enumerated() {
            guard let disk = t.device as? VirtioBlock else { continue }
            do {
                try disk.releaseBackend()
                released.append(i)
            } catch {
                try? reacquireDisks(only: released)
                throw VMError("cannot hand over disk \(specs[i]): \(error)")
            }
        }
    }

    /// Reopens (and relocks) disks released by `releaseDisks()`: the migration failed.
    func reacquireDisks(only indices: [Int]? = nil) throws(VMError) {
        for (i, t) in transports.enumerated() {
            guard let disk = t.device as? VirtioBlock, indices?.contains(i) ?? true,
                  case .block(let path, let format, let readOnly, _) = specs[i] else { continue }
            do {
                try disk.adopt(try DiskImage.open(path: path, format: format, readOnly: readOnly))
            } catch {
                throw VMError("cannot reopen disk \(path) after a failed migration: \(error)")
            }
        }
    }

    /// Quiesces every device (VM pause): requests taken are completed, workers stop.
    func pauseAll() {
        for t in transports { t.device.pause() }
    }

    /// Starts every active device's worker again.
    func resumeAll() {
        for t in transports { t.device.resume() }
    }

    /// Stops every device's worker and closes disks (machine teardown).
    func shutdown() {
        for t in transports {
            t.device.reset()
            if let disk = t.device as? VirtioBlock { try? disk.close() }
            // A TAP this VM created disappears; the vsock socket path is removed.
            if let net = t.device as? VirtioNet { net.close() }
            if let vsock = t.device as? VirtioVsock { vsock.close() }
        }
    }
}

/// Shifts accesses by a fixed offset (0xCF9 reset control behind the 0xCF8 address port).
final class OffsetDevice: BusDevice, Sendable {
    let device: any BusDevice
    let offset: UInt64
    init(_ device: any BusDevice, offset: UInt64) {
        self.device = device
        self.offset = offset
    }
    func read(offset o: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard o >= offset else { return }
        unsafe device.read(offset: o - offset, into: data)
    }
    func write(offset o: UInt64, from data: UnsafeRawBufferPointer) {
        guard o >= offset else { return }
        unsafe device.write(offset: o - offset, from: data)
    }
}
