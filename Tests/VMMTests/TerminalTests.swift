import CSkiffSystem
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `skiff run` in a terminal: raw mode while the VM runs, Ctrl-A x stops it, the terminal
/// settings come back afterwards.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct TerminalTests {
    @Test func ctrlAXStopsTheVMAndRestoresTheTerminal() throws {
        var path = [CChar](repeating: 0, count: 128)
        let master = csystem_open_pty(&path, 128)
        try #require(master >= 0)
        defer { close(master) }
        let name = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let slave = open(name, O_RDWR | O_NOCTTY)
        try #require(slave >= 0)
        defer { close(slave) }
        var before = termios()
        tcgetattr(slave, &before)

        let process = Process()
        process.executableURL = CLITests.binDirectory.appendingPathComponent("skiff")
        process.arguments = ["run", "--kernel", try GuestKit.path("idle.elf"), "--memory", "64M"]
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()

        // Wait for the guest's line on the terminal.
        var seen = ""
        let deadline = Date().addingTimeInterval(30)
        var buffer = [UInt8](repeating: 0, count: 256)
        while !seen.contains("Hello from Skiff guest") && Date() < deadline {
            var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) > 0 {
                let n = read(master, &buffer, buffer.count)
                if n > 0 { seen += String(decoding: buffer[0..<n], as: UTF8.self) }
            }
        }
        #expect(seen.contains("Hello from Skiff guest"))
        var during = termios()
        tcgetattr(slave, &during)
        #expect(during.c_lflag & tcflag_t(ICANON) == 0, "the terminal is in raw mode while the VM runs")

        let escape: [UInt8] = [0x01, UInt8(ascii: "x")]
        _ = write(master, escape, escape.count)
        let stopBy = Date().addingTimeInterval(15)
        while process.isRunning && Date() < stopBy { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        var after = termios()
        tcgetattr(slave, &after)
        #expect(after.c_lflag == before.c_lflag, "terminal modes restored")
    }
}
