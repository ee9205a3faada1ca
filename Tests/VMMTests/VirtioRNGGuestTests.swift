import Foundation
import Testing
@testable import VMM

/// The guest kit's virtio library against Skiff's virtio-rng on real KVM.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct VirtioRNGGuestTests {
    @Test func guestDriverReadsRandomBytesAndTakesMSIXInterrupts() throws {
        let run = try GuestKit.boot("virtio-rng.elf") { $0.devices = [.rng] }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        // Slot 1, VERSION_1 | EVENT_IDX negotiated.
        #expect(run.output.contains("virtio-rng 00:01.0 features 0x120000000"), "\(run.output)")
        let bytes = run.output.split(separator: "\n").first { $0.hasPrefix("rng bytes ") }.map { $0.dropFirst("rng bytes ".count) }
        let hex = try #require(bytes, "\(run.output)")
        #expect(hex.count == 32 && hex.allSatisfy(\.isHexDigit) && hex != String(repeating: "0", count: 32))
        // One interrupt per request, but two MSIs of one vector raised while the first is still
        // pending in the LAPIC's IRR coalesce (as on hardware), so a loaded host may show one.
        let line = run.output.split(separator: "\n").first { $0.hasPrefix("rng msix interrupts ") }
        let interrupts = line.flatMap { Int($0.dropFirst("rng msix interrupts ".count)) }
        #expect(interrupts == 1 || interrupts == 2, "\(run.output)")
    }

    @Test func guestWithoutTheDeviceFailsCleanly() throws {
        let run = try GuestKit.boot("virtio-rng.elf")
        #expect(run.outcome == .debugExit(status: 35))
        #expect(run.output.contains("SKIFF-TEST FAIL virtio-rng: virtio-rng: no such device on bus 0"), "\(run.output)")
    }
}
