import Foundation
import Testing

/// The `skiff` and `skiff-vmm` executables as a user runs them: exit statuses and one-line errors.
struct CLITests {
    /// The directory holding `skiff` and `skiff-vmm`: `SKIFF_BIN_DIR`, else the directory the test
    /// runner was built into (so a `--scratch-path` or sanitizer build runs its own executables),
    /// else `.build/debug`.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["SKIFF_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let runnerDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: runnerDirectory.appendingPathComponent("skiff-vmm").path) { return runnerDirectory }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug")
    }()

    struct Result {
        /// The exit status, or the signal number when the process died by a signal.
        let status: Int32
        let stdout: String
        let stderr: String
        /// `.exit` or `.uncaughtSignal`: a signal's number in `status` is not an exit status.
        var reason: Process.TerminationReason = .exit
        /// The test killed the process after `timeout` seconds.
        var timedOut = false
    }

    /// Runs `tool`; when stdout first contains `after`, writes `stdin` to it (else right away).
    static func run(_ tool: String, _ arguments: [String], stdin: String? = nil, after: String? = nil, timeout: Double = 60) throws -> Result {
        let process = Process()
        process.executableURL = binDirectory.appendingPathComponent(tool)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        var collected = Data()
        if let stdin {
            if let after {
                let deadline = Date().addingTimeInterval(timeout)
                while !String(decoding: collected, as: UTF8.self).contains(after) && Date() < deadline {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    collected.append(chunk)
                }
            }
            input.fileHandleForWriting.write(Data(stdin.utf8))
        }
        try input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        // SIGKILL: children of the test runner inherit a mask that blocks SIGTERM.
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        collected.append(out.fileHandleForReading.readDataToEndOfFile())
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: collected, as: UTF8.self),
                      stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                      reason: process.terminationReason, timedOut: timedOut)
    }

    func oneLine(_ s: String) -> Bool { s.split(separator: "\n").count == 1 }

    @Test(arguments: [
        (["run"], "--kernel"),
        (["run", "--kernel", "/nonexistent/kernel"], "cannot read kernel /nonexistent/kernel"),
        (["run", "--kernel", "/etc/hostname", "--memory", "lots"], "--memory"),
        (["run", "--kernel", "/etc/hostname", "--memory", "4K"], "memory size"),
        (["run", "--kernel", "/etc/hostname", "--cpus", "0"], "--cpus"),
        (["run", "--kernel", "/etc/hostname", "--cpu-template", "fastest"], "--cpu-template"),
        (["run", "--kernel", "/etc/hostname", "--on-reboot", "explode"], "--on-reboot"),
        (["run", "--kernel", "/etc/hostname"], "not a bzImage, PVH ELF or multiboot kernel"),
        (["run", "--kernel", "/etc"], "not a regular file"),
        (["run", "--kernel", "/etc/hostname", "--frobnicate"], "frobnicate"),
    ])
    func badInputGivesOneClearLine(arguments: [String], expected: String) throws {
        let r = try Self.run("skiff", arguments)
        #expect(r.reason == .exit && r.status != 0, "status \(r.status) (\(r.reason))")
        #expect(oneLine(r.stderr), "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("skiff: error: "), "stderr: \(r.stderr)")
        #expect(r.stderr.contains(expected), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"))
    }

    @Test func truncatedAndHostileKernelFilesAreRefusedCleanly() throws {
        let kernel = try GuestKit.path("hello-pvh64.elf")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: kernel))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SystemRandomNumberGenerator()
        for (i, length) in [0, 4, 52, 64, 100, bytes.count / 2].enumerated() {
            let path = dir.appendingPathComponent("truncated-\(i)").path
            try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
            let r = try Self.run("skiff", ["run", "--kernel", path, "--memory", "64M"])
            #expect(r.reason == .exit && r.status == 1, "length \(length): status \(r.status) (\(r.reason)): \(r.stderr)")
            #expect(oneLine(r.stderr) && r.stderr.hasPrefix("skiff: error: "), "length \(length): \(r.stderr)")
        }
        for i in 0..<5 {
            var corrupted = bytes
            for _ in 0..<8 { corrupted[Int.random(in: 0..<min(256, corrupted.count), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            let path = dir.appendingPathComponent("corrupt-\(i)").path
            try corrupted.write(to: URL(fileURLWithPath: path))
            let r = try Self.run("skiff", ["run", "--kernel", path, "--memory", "64M"], timeout: 20)
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), "\(r.stderr)")
            // Refused with one line (1), or booted and ended as guests end (a verdict, a reset or power-off,
            // a guest failure named on one line); or still running when the test stopped it. Never a
            // death by signal of its own.
            if !r.timedOut {
                #expect(r.reason == .exit, "corruption \(i): killed by signal \(r.status): \(r.stderr)")
                if r.status == 1 {
                    #expect(oneLine(r.stderr) && r.stderr.hasPrefix("skiff: error: "), "corruption \(i): \(r.stderr)")
                }
            }
        }
    }

    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func exitStatusFollowsTheGuest() throws {
        let hello = try Self.run("skiff", ["run", "--kernel", try GuestKit.path("hello.elf"), "--memory", "64M"])
        #expect(hello.status == 33)
        #expect(hello.stdout.contains("Hello from Skiff guest"))
        let poweroff = try Self.run("skiff", ["run", "--kernel", try GuestKit.path("poweroff.elf"), "--memory", "64M"])
        #expect(poweroff.status == 0, "\(poweroff.stdout)\(poweroff.stderr)")
        let exit42 = try Self.run("skiff-vmm", ["--kernel", try GuestKit.path("debug-exit.elf"), "--cmdline", "code=42", "--memory", "64M"])
        #expect(exit42.status == 85)
        let reset = try Self.run("skiff", ["run", "--kernel", try GuestKit.path("i8042-reset.elf"), "--on-reboot", "exit", "--memory", "64M"])
        #expect(reset.status == 0)
    }

    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func pipedStdinReachesTheGuestUART() throws {
        let r = try Self.run("skiff", ["run", "--kernel", try GuestKit.path("uart-echo.elf"), "--memory", "64M"], stdin: "hello from a pipe\n", after: "ready")
        #expect(r.status == 33, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("got: hello from a pipe"))
    }
}
