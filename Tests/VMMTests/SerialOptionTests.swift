import ArgumentParser
import Foundation
import Testing
@testable import VMCommands
@testable import VMM

/// `--serial stdio|file=PATH|none` on `skiff run` and `skiff-vmm`: where the console output goes.
struct SerialOptionTests {
    static func options(_ arguments: [String]) throws -> VMOptions {
        try VMOptions.parse(["--kernel", "/k"] + arguments)
    }

    @Test func serialOptionPicksTheConsoleOutput() throws {
        let standard = try Self.options([]).consoleSettings()
        #expect(standard.output == .standardOutput && standard.readsStandardInput)
        let stdio = try Self.options(["--serial", "stdio"]).consoleSettings()
        #expect(stdio.output == .standardOutput && stdio.readsStandardInput)
        let file = try Self.options(["--serial", "file=/var/log/vm,1.log"]).consoleSettings()
        #expect(file.output == .file("/var/log/vm,1.log") && !file.readsStandardInput)
        let none = try Self.options(["--serial", "none", "--console-log", "/l"]).consoleSettings()
        #expect(none.output == .none && !none.readsStandardInput && none.logPath == "/l")
        for bad in ["tty", "file=", "file", "FILE=/x", ""] {
            #expect(throws: ValidationError.self, "\(bad)") { try Self.options(["--serial", bad]).consoleSettings() }
        }
    }

    /// `--serial file=PATH` keeps the console in a file (replacing what was there) and off
    /// stdout; `--serial none` drops it (the log still gets it). The guest runs the same.
    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func serialFileKeepsTheConsoleOffStdout() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-serial-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hello = try GuestKit.path("hello.elf")
        for tool in ["skiff", "skiff-vmm"] {
            let path = dir + "/\(tool).console"
            try "stale output from an earlier VM\n".write(toFile: path, atomically: false, encoding: .utf8)
            let r = try CLITests.run(tool, (tool == "skiff" ? ["run"] : []) + ["--kernel", hello, "--memory", "64M", "--serial", "file=" + path])
            #expect(r.status == 33, "\(tool): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(tool) wrote the console to stdout: \(r.stdout)")
            let kept = try String(contentsOfFile: path, encoding: .utf8)
            #expect(kept.contains("Hello from Skiff guest") && kept.contains("SKIFF-TEST PASS hello"), "\(tool): \(kept)")
            #expect(!kept.contains("stale"), "\(tool): the file was appended to, not replaced")
        }
        let log = dir + "/none.log"
        let none = try CLITests.run("skiff", ["run", "--kernel", hello, "--memory", "64M", "--serial", "none", "--console-log", log])
        #expect(none.status == 33, "\(none.stderr)")
        #expect(none.stdout.isEmpty, "\(none.stdout)")
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("Hello from Skiff guest"))
        // A file that cannot be created is a runtime error before the guest starts.
        let bad = try CLITests.run("skiff", ["run", "--kernel", hello, "--memory", "64M", "--serial", "file=" + dir + "/no/such/dir/c"])
        #expect(bad.status == 1 && bad.stderr.contains("no/such/dir"), "\(bad.stderr)")
    }
}
