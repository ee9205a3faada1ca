import GuestMemory
import PCI
import Synchronization
import SystemExtras
@testable import Virtio

/// Records MSI-X routes and triggers.
final class RecordingVectors: MSIVectorSink, @unchecked Sendable {
    let routes = Mutex<[Int: MSIMessage?]>([:])
    let triggers = Mutex<[Int]>([])
    func route(vector: Int, message: MSIMessage?) { routes.withLock { $0[vector] = message } }
    func trigger(vector: Int) { triggers.withLock { $0.append(vector) } }
    var triggerCount: Int { triggers.withLock { $0.count } }
}

/// Drives a `VirtioPCIDevice` through BAR 0 registers the way a guest driver does.
struct TransportHarness {
    let transport: VirtioPCIDevice
    let vectors = RecordingVectors()
    let memory: GuestMemory

    init(device: any VirtioDevice, memory: GuestMemory) throws {
        self.memory = memory
        transport = try VirtioPCIDevice(device: device, memory: memory, barAddress: 0xc000_0000, vectors: vectors, intx: nil)
    }

    func write(_ offset: UInt64, _ value: UInt64, size: Int) {
        var v = value
        withUnsafeBytes(of: &v) { transport.barWrite(index: 0, offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
    }

    func read(_ offset: UInt64, size: Int) -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { transport.barRead(index: 0, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
        return v
    }

    var status: UInt8 { UInt8(read(0x14, size: 1)) }
    func setStatus(_ s: UInt8) { write(0x14, UInt64(s), size: 1) }

    /// Enables MSI-X in config space and programs vector `v` with a message.
    func enableMSIX(vectors count: Int) {
        transport.configWrite(offset: 0x42, size: 2, value: 0x8000)
        for v in 0..<count {
            write(0x8000 + UInt64(16 * v), 0xfee0_0000, size: 4)
            write(0x8000 + UInt64(16 * v) + 8, UInt64(0x30 + v), size: 4)
            write(0x8000 + UInt64(16 * v) + 12, 0, size: 4)
        }
    }

    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck.
    func negotiate(features: UInt64) -> Bool {
        setStatus(0)
        setStatus(1)
        setStatus(1 | 2)
        write(0x08, 0, size: 4)
        write(0x0c, features & 0xffff_ffff, size: 4)
        write(0x08, 1, size: 4)
        write(0x0c, features >> 32, size: 4)
        setStatus(1 | 2 | 8)
        return status & 8 != 0
    }

    func offeredFeatures() -> UInt64 {
        write(0x00, 0, size: 4)
        let lo = read(0x04, size: 4)
        write(0x00, 1, size: 4)
        return lo | (read(0x04, size: 4) << 32)
    }

    /// Programs queue `q` with the rings of `driver` and enables it.
    func setUpQueue(_ q: UInt16, driver: MockDriver, vector: UInt16) {
        write(0x16, UInt64(q), size: 2)
        write(0x18, UInt64(driver.size), size: 2)
        write(0x1a, UInt64(vector), size: 2)
        write(0x20, driver.desc, size: 8)
        write(0x28, driver.avail, size: 8)
        write(0x30, driver.used, size: 8)
        write(0x1c, 1, size: 2)
    }

    func notify(_ q: UInt16) { write(0x3000 + 4 * UInt64(q), UInt64(q), size: 2) }
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if try condition() { return true }
        usleepSeconds(0.002)
    }
    return try condition()
}

func usleepSeconds(_ s: Double) {
    var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
    nanosleep(&ts, nil)
}

#if canImport(Glibc)
import Glibc
#endif
