import ArchX86
import ControlProtocol
import Foundation
import Testing
@testable import VMM

/// The ACPI power button (a Generic Event Device interrupt): `power-button.elf` finds the GED
/// and the button in the DSDT, waits for the interrupt and powers off through S5, as an OS
/// with an ACPI button driver does.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct PowerButtonTests {
    @Test func aPressMakesTheGuestPowerOff() throws {
        let running = try RunningVM.boot("power-button.elf")
        #expect(running.waitFor("PWRB waiting"), "\(running.text)")
        #expect(running.text.contains("PWRB gsi=\(Layout.powerButtonEventGSI)"), "\(running.text)")
        // Nothing happens without a press.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!running.text.contains("PWRB pressed"))
        try running.vm.pressPowerButton()
        #expect(running.finish(timeout: 30) == .powerOff, "\(running.text)")
        #expect(running.text.contains("PWRB pressed"), "\(running.text)")
    }

    @Test func aPausedVMRefusesThePressAndTheButtonWorksAfterARestore() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let source = try RunningVM.boot("power-button.elf")
        #expect(source.waitFor("PWRB waiting"), "\(source.text)")
        try source.vm.pause()
        #expect(throws: VMError.self) { try source.vm.pressPowerButton() }
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        #expect(!source.text.contains("PWRB pressed"))
        let restored = try RunningVM.restore(dir.file("s"))
        Thread.sleep(forTimeInterval: 0.2)
        try restored.vm.pressPowerButton()
        #expect(restored.finish(timeout: 30) == .powerOff, "\(restored.text)")
        #expect(restored.text.contains("PWRB pressed"), "\(restored.text)")
    }

    @Test func theClientPressesTheButtonOfARunningMonitor() throws {
        let socket = BalloonCLITests.socketPath()
        let child = try BalloonCLITests.Child(["run", "--kernel", try GuestKit.path("power-button.elf"), "--memory", "64M", "--api-socket", socket])
        #expect(child.waitFor("PWRB waiting"), "\(child.text)")
        let press = try CLITests.run("skiff", ["vm", "power-button", "--api-socket", socket])
        #expect(press.status == 0, "\(press.stderr)")
        #expect(child.finish() == 0, "\(child.text)")
        #expect(child.text.contains("PWRB pressed"), "\(child.text)")
    }
}
