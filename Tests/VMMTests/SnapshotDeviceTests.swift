import ControlProtocol
import Foundation
import Testing
@testable import VMM

/// virtio devices across a snapshot: requests in flight complete, writes after a restore land
/// in the disk file, the other devices work again.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct SnapshotDeviceTests {
    /// The bytes `virtio-blk.elf mode=seq` writes to sector k.
    static func sectorPattern(_ k: UInt64) -> [UInt8] {
        withUnsafeBytes(of: k.littleEndian, Array.init) + (8..<512).map { UInt8(truncatingIfNeeded: k &* 251 &+ UInt64($0) &* 17 &+ 0x5a) }
    }

    func makeDisk(_ path: String, megabytes: Int = 1) throws {
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: megabytes << 20)))
    }

    @Test func aSnapshotUnderDiskLoadLosesNoCompletedWrite() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        try makeDisk(dir.file("disk.img"))
        let count = 160
        let source = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=\(count)") {
            $0.devices = [.block(path: dir.file("disk.img"), format: .raw, readOnly: false, serial: nil)]
        }
        #expect(source.waitFor("blk seq=48"), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        #expect(!source.text.contains("blk done"), "the snapshot was taken while the guest was writing")
        let restored = try RunningVM.restore(dir.file("s"))
        #expect(restored.finish(timeout: 120) == GuestKit.passStatus, "\(restored.text)")
        #expect(restored.text.contains("blk done count=\(count)"))
        let disk = try Data(contentsOf: URL(fileURLWithPath: dir.file("disk.img")))
        for k in 1...count {
            let sector = Array(disk[(k * 512)..<((k + 1) * 512)])
            #expect(sector == Self.sectorPattern(UInt64(k)), "sector \(k)")
            if sector != Self.sectorPattern(UInt64(k)) { break }
        }
    }

    @Test func aRestoredVMWritesToTheDiskItIsGiven() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        try makeDisk(dir.file("a.img"))
        let source = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=32 wait-key=1") {
            $0.devices = [.block(path: dir.file("a.img"), format: .raw, readOnly: false, serial: nil)]
        }
        #expect(source.waitFor("virtio-blk ready"), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        try FileManager.default.copyItem(atPath: dir.file("a.img"), toPath: dir.file("b.img"))
        var options = RestoreOptions()
        options.deviceOverrides = [.block(path: dir.file("b.img"), format: .raw, readOnly: false, serial: nil)]
        let restored = try RunningVM.restore(dir.file("s"), options: options)
        _ = Array("k".utf8).withUnsafeBytes { restored.vm.sendConsoleInput($0) }
        #expect(restored.finish(timeout: 120) == GuestKit.passStatus, "\(restored.text)")
        let b = try Data(contentsOf: URL(fileURLWithPath: dir.file("b.img")))
        let a = try Data(contentsOf: URL(fileURLWithPath: dir.file("a.img")))
        #expect(Array(b[(32 * 512)..<(33 * 512)]) == Self.sectorPattern(32))
        #expect(a == Data(count: 1 << 20), "the original disk is untouched")
        // A disk of another size is refused: the guest knows the capacity.
        try makeDisk(dir.file("c.img"), megabytes: 2)
        options.deviceOverrides = [.block(path: dir.file("c.img"), format: .raw, readOnly: false, serial: nil)]
        #expect(throws: VMError.self) { try VirtualMachine.restore(from: dir.file("s"), options: options, console: CapturedConsoleOutput()) }
    }

    @Test func rngAndVsockWorkAfterARestore() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let rng = try RunningVM.boot("virtio-rng.elf", cmdline: "wait-key=1") { $0.devices = [.rng] }
        #expect(rng.waitFor("virtio-rng ready"), "\(rng.text)")
        _ = try rng.vm.createSnapshot(SnapshotRequest(directory: dir.file("rng"), stopAfter: true))
        rng.finish()
        let rngBack = try RunningVM.restore(dir.file("rng"))
        _ = Array("k".utf8).withUnsafeBytes { rngBack.vm.sendConsoleInput($0) }
        #expect(rngBack.finish() == GuestKit.passStatus, "\(rngBack.text)")

        let path = dir.file("v.sock")
        let vsock = try RunningVM.boot("virtio-vsock.elf", cmdline: "port=5000 listen=1234 wait-key=1") {
            $0.devices = [.vsock(cid: 7, socket: path)]
        }
        #expect(vsock.waitFor("virtio-vsock ready"), "\(vsock.text)")
        _ = try vsock.vm.createSnapshot(SnapshotRequest(directory: dir.file("vsock"), stopAfter: true))
        vsock.finish()
        #expect(!FileManager.default.fileExists(atPath: path))
        let service = try UnixStream.listen(path + "_5000")
        let back = try RunningVM.restore(dir.file("vsock"))
        _ = Array("k".utf8).withUnsafeBytes { back.vm.sendConsoleInput($0) }
        let guest = try #require(service.accept(timeout: 30), "\(back.text)")
        #expect(guest.readString(timeout: 10) { $0.contains("hello from guest 7") }.contains("hello from guest 7"))
        guest.write("hello from host")
        #expect(guest.waitForEOF(timeout: 10))
        // Host-initiated connections reach the restored guest through the re-created socket.
        var answered = false
        let deadline = Date().addingTimeInterval(30)
        while !answered && Date() < deadline {
            if let host = UnixStream.connect(path) {
                host.write("CONNECT 1234\n")
                if host.readString(timeout: 10, until: { $0.contains("\n") }).hasPrefix("OK ") {
                    host.write("ping from host")
                    answered = host.readString(timeout: 10) { $0.contains("echo:ping from host") }.contains("echo:ping from host")
                }
            }
            if !answered { usleep(50_000) }
        }
        #expect(answered, "\(back.text)")
        // A port the guest does not listen on is refused, so the guest passes.
        if let refused = UnixStream.connect(path) {
            refused.write("CONNECT 9999\n")
            _ = refused.waitForEOF(timeout: 5)
        }
        #expect(back.finish(timeout: 60) == GuestKit.passStatus, "\(back.text)")
    }

    @Test func balloonedPagesOfARestoredVMReadAsZero() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let source = try RunningVM.boot("virtio-balloon.elf", cmdline: "mib=32") {
            $0.devices = [.balloon(BalloonSpec(statistics: true, freePageReporting: true, deflateOnOOM: false))]
        }
        #expect(source.waitFor("touched 8192 pages"), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        // The touched pages are in the memory file; the restored VM maps it MAP_PRIVATE.
        let restored = try RunningVM.restore(dir.file("s"))
        defer { restored.stop() }
        try restored.vm.setBalloonTarget(pages: 8192)
        #expect(restored.waitFor("inflated 8192\n"), "\(restored.text)")
        try restored.vm.setBalloonTarget(pages: 0)
        // Dropping a private copy would bring back the snapshot's bytes; the guest checks its markers are gone.
        #expect(restored.waitFor("deflated 8192 zeroed 8192"), "\(restored.text)")
        #expect(restored.waitFor("reported "), "\(restored.text)")
        _ = restored.vm.balloonStatistics(freshWithin: 1)
        #expect(restored.finish(timeout: 60) == GuestKit.passStatus, "\(restored.text)")
        #expect(restored.text.contains("report zeroed"), "\(restored.text)")
    }
}
