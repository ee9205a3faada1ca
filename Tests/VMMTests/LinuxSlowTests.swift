import Foundation
import Testing
@testable import VMM

/// Opt-in (SKIFF_SLOW_TESTS=1): the Debian kernel boots with a busybox initramfs to `/init`,
/// which prints a marker and powers the VM off. On hosts whose KVM emulates instructions this
/// takes many minutes; the test prints how long it took, or how far the kernel got. On the
/// emulating hosts Skiff is built on the kernel gets to "Run /init" and then dies at the first
/// system call: their SYSCALL leaves the CPU in ring 3 (docs/emulation-assist.md).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SKIFF_SLOW_TESTS"] == "1", "set SKIFF_SLOW_TESTS=1 to boot Linux to /init"))
struct LinuxSlowTests {
    /// The kernel's timestamp on "Run /init as init process", if it got there.
    static func secondsToInit(_ console: String) -> String? {
        guard let line = console.split(separator: "\n").first(where: { $0.contains("Run /init as init process") }),
              let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]"), open < close else { return nil }
        return line[line.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
    }

    /// Whether this host's KVM runs SYSCALL from ring 3 correctly (guests/src/user-mode.c): the
    /// instruction-emulating hosts this project is built on do not, and Linux then dies at /init's
    /// first system call. Printed so a failure names its cause.
    static func reportRingThree() {
        guard let run = try? GuestKit.boot("user-mode.elf") else { return }
        if run.outcome != GuestKit.passStatus {
            let reason = run.output.split(separator: "\n").last.map(String.init) ?? "no output"
            print("note: this host's KVM fails the ring-3 SYSCALL check (user-mode.elf: \(reason)); Linux user space cannot run here")
        }
    }

    /// Initcalls that only set up tracing, and the crypto self-tests (RSA in generic C): they run for
    /// many minutes at emulation speed and a boot does not need them.
    static let skippedInitcalls = "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs cryptomgr.notests"

    @Test func debianKernelBootsToInitAndPowersOff() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.vmlinux)
        let initramfs = try LinuxKernel.require(LinuxKernel.initramfs)
        let limit = Double(ProcessInfo.processInfo.environment["SKIFF_SLOW_TIMEOUT"] ?? "") ?? 3600
        let start = Date()
        let run = try GuestKit.boot(kernel, cmdline: LinuxKernel.commandLine("\(Self.skippedInitcalls) rdinit=/init"),
                                    memory: 256 << 20, initrd: initramfs, timeout: limit)
        let seconds = Date().timeIntervalSince(start)
        let lastLine = run.output.split(separator: "\n").last.map(String.init) ?? "(no output)"
        print("Linux to /init: \(run.outcome) after \(String(format: "%.0f", seconds)) s; last console line: \(lastLine)")
        print("kernel reached 'Run /init' at \(Self.secondsToInit(run.output) ?? "(never)") s of guest time")
        if !run.output.contains("SKIFF-INIT-OK") { Self.reportRingThree() }
        #expect(run.output.contains("SKIFF-INIT-OK"), "did not reach /init in \(Int(seconds)) s; got as far as: \(lastLine); outcome \(run.outcome)")
        #expect(run.outcome == .powerOff)
    }

    /// A kernel that panics with panic=-1 (no root file system here) must reset the VM: Linux
    /// reboots through the BIOS reset vector on Skiff's hardware-reduced ACPI (ResetVector).
    /// The crypto library self-tests are skipped as well: at emulation speed they take minutes.
    @Test func panicWithPanicMinusOneResetsTheVM() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.bzImage)
        let limit = Double(ProcessInfo.processInfo.environment["SKIFF_SLOW_TIMEOUT"] ?? "") ?? 3600
        let start = Date()
        let skipped = Self.skippedInitcalls.replacingOccurrences(
            of: "tracer_init_tracefs", with: "tracer_init_tracefs,blake2s_mod_init,chacha20poly1305_init,curve25519_init")
        let run = try GuestKit.boot(kernel, cmdline: LinuxKernel.commandLine("\(skipped) root=/dev/nonexistent"),
                                    memory: 256 << 20, timeout: limit)
        print("Linux panic: \(run.outcome) after \(String(format: "%.0f", Date().timeIntervalSince(start))) s")
        #expect(run.output.contains("Kernel panic - not syncing: VFS: Unable to mount root fs"), "\(run.output.suffix(2000))")
        #expect(run.outcome == .reset, "\(run.outcome)")
    }
}

/// Opt-in (SKIFF_SLOW_TESTS=1, root): the Debian kernel loads its own virtio modules from the
/// initramfs, mounts an ext4 virtio-blk disk, reads virtio-rng, and talks TCP to a peer behind
/// a TAP in a network namespace this test creates. `SKIFF_BINARY` may name a release build.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SKIFF_SLOW_TESTS"] == "1" && NetworkNamespaceSupport.problem == nil,
                "set SKIFF_SLOW_TESTS=1 (as root) to boot Linux with virtio devices"))
struct LinuxVirtioSlowTests {
    static let responder = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], 7777))
        s.listen(1)
        s.settimeout(int(sys.argv[2]))
        print("ready", flush=True)
        c, peer = s.accept()
        data = c.recv(4096)
        print("got", data.decode(errors="replace").strip(), "from", peer[0], flush=True)
        c.sendall(b"pong:" + data)
        c.close()
        """

    @Test func debianKernelDrivesSkiffVirtioDevices() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.vmlinux)
        let initramfs = try LinuxKernel.require(LinuxKernel.initramfs)
        let limit = Double(ProcessInfo.processInfo.environment["SKIFF_SLOW_TIMEOUT"] ?? "") ?? 5400
        let skiff = ProcessInfo.processInfo.environment["SKIFF_BINARY"] ?? CLITests.binDirectory.appendingPathComponent("skiff").path

        // An ext4 disk with one file on it.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-linux-virtio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("root"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("hello from the host\n".utf8).write(to: dir.appendingPathComponent("root/hello.txt"))
        let image = dir.appendingPathComponent("disk.ext4").path
        let mkfs = try NetworkNamespaceSupport.tool("/usr/sbin/mkfs.ext4", ["-q", "-F", "-d", dir.appendingPathComponent("root").path, image, "32M"])
        try #require(mkfs.status == 0, "mkfs.ext4: \(mkfs.output)")

        // A namespace with a TAP and a TCP responder on the host side of it.
        let ns = try TestNamespace()
        let tap = "sktap\(ns.subnet)"
        try ns.ip(["tuntap", "add", "dev", tap, "mode", "tap"])
        try ns.ip(["addr", "add", "\(ns.hostAddress)/30", "dev", tap])
        try ns.ip(["link", "set", tap, "up"])
        let responder = ns.process(try #require(NetworkNamespaceSupport.findPython()), ["-c", Self.responder, ns.hostAddress, String(Int(limit))])
        let responderOut = Pipe()
        responder.standardOutput = responderOut
        try responder.run()
        // SIGKILL: a child may inherit SIGTERM blocked from the test runner's thread.
        defer { if responder.isRunning { kill(responder.processIdentifier, SIGKILL); responder.waitUntilExit() } }

        let cmdline = LinuxKernel.commandLine("\(LinuxSlowTests.skippedInitcalls) nowatchdog skiff.virtio skiff.ip=\(ns.guestAddress) skiff.peer=\(ns.hostAddress)")
        let vm = ns.process(skiff, ["run", "--kernel", kernel, "--initrd", initramfs, "--memory", "384M", "--cmdline", cmdline,
                                    "--disk", "\(image),format=raw", "--net", "tap=\(tap)", "--rng", "--balloon"])
        let out = Pipe()
        vm.standardOutput = out
        vm.standardError = out
        let start = Date()
        try vm.run()
        let deadline = Date().addingTimeInterval(limit)
        while vm.isRunning && Date() < deadline { usleep(500_000) }
        if vm.isRunning { kill(vm.processIdentifier, SIGKILL) }
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        vm.waitUntilExit()
        let seconds = Int(Date().timeIntervalSince(start))
        let last = output.split(separator: "\n").last.map(String.init) ?? "(no output)"
        print("Linux with virtio devices: exit \(vm.terminationStatus) after \(seconds) s; last line: \(last)")
        print("kernel reached 'Run /init' at \(LinuxSlowTests.secondsToInit(output) ?? "(never)") s of guest time")
        if !output.contains("SKIFF-INIT-OK") { LinuxSlowTests.reportRingThree() }
        for line in output.split(separator: "\n") where line.contains("SKIFF-") { print("  \(line)") }

        #expect(output.contains("SKIFF-INIT-OK"), "did not reach /init in \(seconds) s; last line: \(last)")
        #expect(output.contains("SKIFF-VIRTIO modules"), "modules were not loaded")
        #expect(!output.contains("insmod") || !output.contains("failed"), "a module failed to load")
        #expect(output.contains("SKIFF-VIRTIO disk says: hello from the host"))
        #expect(output.contains("SKIFF-VIRTIO blk ok"))
        #expect(output.contains("SKIFF-VIRTIO rng "))
        #expect(output.contains("SKIFF-VIRTIO net reply: pong:hello-from-linux"))
        let written = try NetworkNamespaceSupport.tool("/usr/sbin/debugfs", ["-R", "cat /guest.txt", image])
        #expect(written.output.contains("written by the guest"), "the guest's file is not on the disk: \(written.output)")
        #expect(vm.terminationStatus == 0)
    }
}

/// The console parsing the slow tests report with (runs in the normal suite).
struct LinuxConsoleParsingTests {
    @Test func guestTimeAtRunInitIsTakenFromTheKernelTimestamp() {
        let console = "[    0.000000] Linux version 6.1\n[  603.633942] Run /init as init process\n[  604.1] init[1]: segfault\n"
        #expect(LinuxSlowTests.secondsToInit(console) == "603.633942")
        #expect(LinuxSlowTests.secondsToInit("[    1.0] Freeing unused kernel memory\n") == nil)
        #expect(LinuxSlowTests.secondsToInit("Run /init as init process without a timestamp\n") == nil)
    }
}
