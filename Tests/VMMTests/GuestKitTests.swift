import Foundation
import Testing
@testable import VMM

/// Every guest-kit program, booted on real KVM.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct GuestKitTests {
    @Test func serialHello() throws {
        let run = try GuestKit.boot("hello.elf")
        #expect(run.outcome == GuestKit.passStatus)
        #expect(run.output.contains("Hello from Skiff guest"))
        #expect(run.output.contains("SKIFF-TEST PASS hello"))
    }

    @Test func multibootAOutKludgeHonoursAddressFields() throws {
        let run = try GuestKit.boot("hello-aout.bin")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("aout load 0x200000"))
        #expect(run.output.contains("bss clean"))
    }

    @Test func multibootInfoCarriesCommandLineMemoryMapAndModules() throws {
        let module = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-module-\(UUID().uuidString)")
        try Data("module payload: hello".utf8).write(to: module)
        defer { try? FileManager.default.removeItem(at: module) }
        let run = try GuestKit.boot("bootinfo.elf", cmdline: "alpha beta=2", initrd: module.path) { c in
            c.modules = [VMConfiguration.Module(path: module.path, commandLine: "second --flag")]
        }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        // File names first, as GRUB and QEMU pass them.
        let kernel = try GuestKit.path("bootinfo.elf")
        #expect(run.output.contains("cmdline \"\(kernel) alpha beta=2\"\n"), "\(run.output)")
        #expect(run.output.contains("mmap 0x100000 0x3f00000 1"))
        #expect(run.output.contains("mmap 0x0 0x9fc00 1"))
        #expect(run.output.contains("modules 2"))
        #expect(run.output.contains("cmdline \"\(module.path)\" data \"module payload: hello"), "\(run.output)")
        #expect(run.output.contains("cmdline \"\(module.path) second --flag\" data "), "\(run.output)")
    }

    /// A test kernel that splits its command line into argv sees its own file name as argv[0]
    /// and its first argument as argv[1].
    @Test func multibootKernelSeesItsFileNameAsArgv0() throws {
        let kernel = try GuestKit.path("cmdline.elf")
        let run = try GuestKit.boot("cmdline.elf", cmdline: "first second=2  third")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("cmdline \"\(kernel) first second=2  third\"\nargc 4\n"), "\(run.output)")
        #expect(run.output.contains("argv[0] \"\(kernel)\"\nargv[1] \"first\"\n"), "\(run.output)")
    }

    @Test func pvhEntryGetsStartInfo() throws {
        for name in ["hello-pvh.elf", "hello-pvh64.elf"] {
            let run = try GuestKit.boot(name, cmdline: "console=ttyS0 pvh")
            #expect(run.outcome == GuestKit.passStatus, "\(name): \(run.output)")
            #expect(run.output.contains("pvh magic 0x336ec578 version 1"))
            #expect(run.output.contains("cmdline \"console=ttyS0 pvh\""))
            #expect(run.output.contains("memmap 0x100000 0x3f00000 1"))
        }
    }

    @Test func bzImageEntryGetsZeroPage() throws {
        let initrd = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-initrd-\(UUID().uuidString)")
        try Data("initrd bytes for the mini kernel".utf8).write(to: initrd)
        defer { try? FileManager.default.removeItem(at: initrd) }
        let run = try GuestKit.boot("bzimage-mini", cmdline: "console=ttyS0 mini", initrd: initrd.path)
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        // The Linux boot protocol counts as Linux: on hosts that leak XSAVE, Skiff appends noxsave.
        let expected = (["console=ttyS0 mini"] + run.vm.addedKernelOptions).joined(separator: " ")
        #expect(run.output.contains("cmdline \"\(expected)\""))
        #expect(run.output.contains("BIOS-e820: [mem 0x0000000000100000-0x0000000003ffffff] usable"))
        #expect(run.output.contains("initrd bytes for the mini"))
    }

    @Test(arguments: [1, 2, 4])
    func everyVCPUReportsItsAPICID(cpus: Int) throws {
        let run = try GuestKit.boot("smp.elf", cpus: cpus)
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("fw_cfg cpus \(cpus)"))
        // APs report in arrival order; every APIC ID must appear exactly once.
        let line = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("smp online \(cpus) apic ids") })
        let ids = line.split(separator: " ").dropFirst(5).compactMap { Int($0) }
        #expect(ids.sorted() == Array(0..<cpus))
    }

    @Test func pitAndLAPICTimerInterruptsArrive() throws {
        let run = try GuestKit.boot("timer.elf")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("pit ticks"))
        #expect(run.output.contains("lapic ticks"))
    }

    @Test func i8042ResetStopsOrRestartsTheVM() throws {
        let stopped = try GuestKit.boot("i8042-reset.elf")
        #expect(stopped.outcome == .reset)
        #expect(stopped.output.contains("resetting"))
        // With restart, the guest boots again; stop it after the second boot.
        let restarted = try GuestKit.boot("i8042-reset.elf", onReboot: .restart, timeout: 60) { _ in } whileRunning: { vm, console in
            var seen = 0
            while seen < 2 {
                _ = console.waitFor(String(repeating: "resetting\n", count: 1), timeout: 1)
                seen = console.text.components(separatedBy: "resetting").count - 1
            }
            vm.stop()
        }
        #expect(restarted.outcome == .stopped)
        #expect(restarted.vm.boots >= 2)
    }

    /// Linux on Skiff's hardware-reduced ACPI reboots through the BIOS reset vector (EFI first,
    /// then BIOS: see ResetVector); the guest kit does the same, and the VM must reset.
    @Test func rebootThroughTheBIOSResetVectorResets() throws {
        let run = try GuestKit.boot("reboot-bios.elf", timeout: 30)
        #expect(run.outcome == .reset, "\(run.outcome): \(run.output)")
        #expect(run.output.contains("rebooting through the BIOS reset vector"))
        let restarted = try GuestKit.boot("reboot-bios.elf", onReboot: .restart, timeout: 60) { _ in } whileRunning: { vm, console in
            while console.text.components(separatedBy: "rebooting through").count - 1 < 3 {
                _ = console.waitFor("rebooting through", timeout: 1)
            }
            vm.stop()
        }
        #expect(restarted.outcome == .stopped)
        #expect(restarted.vm.boots >= 3)
    }

    @Test func debugExitStatusFollowsTheGuestValue() throws {
        let run = try GuestKit.boot("debug-exit.elf", cmdline: "code=42")
        #expect(run.outcome == .debugExit(status: 85))
        #expect(run.output.contains("exiting with 42"))
    }

    @Test func longModePaging() throws {
        let run = try GuestKit.boot("longmode.elf")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("long mode ok"))
        #expect(run.output.contains("high mapping 0xffff800000000000"))
    }

    @Test func rtcShowsTheHostTime() throws {
        let run = try GuestKit.boot("rtc.elf")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        let line = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("rtc 2") })
        let formatter = DateFormatter()
        formatter.dateFormat = "'rtc' yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let guestTime = try #require(formatter.date(from: String(line)))
        #expect(abs(guestTime.timeIntervalSinceNow) < 120)
    }

    @Test func uartReceivesHostInput() throws {
        let run = try GuestKit.boot("uart-echo.elf") { _ in } whileRunning: { vm, console in
            guard console.waitFor("ready", timeout: 30) else { return }
            let input = Array("skiff kvm\n".utf8)
            var sent = 0
            while sent < input.count {
                sent += input[sent...].withUnsafeBytes { vm.sendConsoleInput($0) }
            }
        }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("got: skiff kvm"))
    }

    @Test func acpiPoweroffEndsTheVMCleanly() throws {
        let run = try GuestKit.boot("poweroff.elf")
        #expect(run.outcome == .powerOff, "\(run.output)")
        #expect(run.output.contains("acpi poweroff slp_typ 5"))
    }

    @Test func randomPortAndMMIOTrafficLeavesTheVMMRunning() throws {
        let run = try GuestKit.boot("hostile.elf", timeout: 120)
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        // Unclaimed ports read all ones: the guest counts them.
        let line = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("io ports reading 0xff") })
        let count = Int(line.split(separator: " ").last ?? "") ?? 0
        #expect(count > 60000)
        #expect(run.output.contains("mmio writes"))
    }
}
