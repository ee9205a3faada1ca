import Foundation
import Testing

/// The `skiff` and `skiff-vmm` executables as a user runs them: exit statuses and one-line errors.
struct CLITests {
    static let binDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug")

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        /// The process was still running at the timeout and was sent SIGTERM (which stops a VM cleanly, status 0).
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
        if timedOut { process.terminate() }
        process.waitUntilExit()
        collected.append(out.fileHandleForReading.readDataToEndOfFile())
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: collected, as: UTF8.self),
                      stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                      timedOut: timedOut)
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
        #expect(r.status != 0)
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
            #expect(r.status == 1, "length \(length): \(r.stderr)")
            #expect(oneLine(r.stderr) && r.stderr.hasPrefix("skiff: error: "), "length \(length): \(r.stderr)")
        }
        for i in 0..<5 {
            var corrupted = bytes
            for _ in 0..<8 { corrupted[Int.random(in: 0..<min(256, corrupted.count), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            let path = dir.appendingPathComponent("corrupt-\(i)").path
            try corrupted.write(to: URL(fileURLWithPath: path))
            let r = try Self.run("skiff", ["run", "--kernel", path, "--memory", "64M"], timeout: 20)
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), "\(r.stderr)")
            // Refused, or it ran (to an end, or looping until stopped): never a silent clean exit.
            #expect(r.status != 0 || r.stdout.contains("SKIFF-TEST") || r.timedOut, "corruption \(i): \(r.stderr)")
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
