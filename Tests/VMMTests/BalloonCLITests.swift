import Foundation
import Synchronization
import ControlProtocol
import Testing

/// `skiff run --balloon --api-socket` as a user drives it: the control socket changes the
/// balloon target of the running `skiff` process, whose resident memory follows.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct BalloonCLITests {
    /// A running `skiff` with its stdout collected.
    final class Child: @unchecked Sendable {
        let process = Process()
        let output = Mutex(Data())
        private let stdout = Pipe()
        /// Signalled when the reader has seen the end of the child's output.

        /// With `consoleOnly`, the child's stderr (the monitor's log) goes to the test's own
        /// stderr and `text` holds only the console, whose lines a log line could otherwise split.
        init(_ arguments: [String], stdin: Pipe? = nil, environment: [String: String] = [:], consoleOnly: Bool = false) throws {
            process.executableURL = CLITests.binDirectory.appendingPathComponent("skiff")
            process.arguments = arguments
            if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            process.standardOutput = stdout
            process.standardError = consoleOnly ? FileHandle.standardError : stdout
            process.standardInput = stdin ?? FileHandle.nullDevice
            try process.run()
            // One reader until end of file, so `finish` can wait for every byte in order (a
            // readability handler may still hold a chunk when it is removed).
            let reader = stdout.fileHandleForReading
            Thread.detachNewThread { [self] in
                while true {
                    let d = reader.availableData
                    if d.isEmpty { break }
                    self.output.withLock { $0.append(d) }
                }
                self.readerDone.signal()
            }
        }
        private let readerDone = DispatchSemaphore(value: 0)

        var text: String { String(decoding: output.withLock { $0 }, as: UTF8.self) }

        func waitFor(_ needle: String, timeout: Double = 60) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if text.contains(needle) { return true }
                usleep(10_000)
            }
            return text.contains(needle)
        }

        /// VmRSS of the child in bytes.
        var residentBytes: UInt64 {
            guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kib = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) else { return 0 }
            return kib << 10
        }

        func finish(timeout: Double = 30) -> Int32 {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            // Everything the child wrote, up to end of file (a grandchild holding the pipe, such
            // as a forked monitor, may keep it open: then what has arrived within 5 s).
            _ = readerDone.wait(timeout: .now() + 5)
            return process.terminationStatus
        }
    }

    static func socketPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("skiff-balloon-\(UUID().uuidString.prefix(8)).sock").path
    }

    @Test func theControlSocketInflatesAndDeflatesARunningVM() throws {
        let socket = Self.socketPath()
        let child = try Child(["run", "--kernel", try GuestKit.path("virtio-balloon.elf"), "--memory", "64M", "--cmdline", "mib=32",
                               "--balloon", "--balloon-free-page-reporting", "--api-socket", socket])
        #expect(child.waitFor("touched 8192 pages"), "\(child.text)")
        let touched = child.residentBytes
        // The CLI as a user types it, then the typed API for the details.
        let set = try Child(["vm", "balloon", "--api-socket", socket, "32"])
        #expect(set.finish() == 0, "\(set.text)")
        #expect(child.waitFor("inflated 8192\n"), "\(child.text)")
        // The device discards a request's pages before completing it, so the memory is back now.
        let inflated = child.residentBytes
        let printed = try Child(["vm", "balloon-stats", "--api-socket", socket])
        #expect(printed.finish() == 0)
        let stats = printed.text.split(separator: "\n").map(String.init)
        #expect(stats.contains("actual-pages 8192"), "\(stats)")
        #expect(stats.contains("inflated-pages 8192"), "\(stats)")
        #expect(stats.contains("total-memory 67108864"), "\(stats)")
        #expect(stats.contains("free-memory 50331648"), "\(stats)")
        #expect(stats.contains { $0.hasPrefix("statistics-updates ") && $0 != "statistics-updates 1" }, "fresh statistics: \(stats)")
        let client = try ControlProtocol.ControlClient(path: socket)
        // The running VM's counters: the guest has done port I/O (its serial output) by now.
        guard case .metrics(let metrics) = try client.send(.metrics) else {
            Issue.record("no metrics")
            return
        }
        #expect(metrics.contains { $0.name == "exits.io" && $0.value > 0 }, "\(metrics)")
        #expect(throws: ControlError.self) { try client.send(.setBalloon(targetMiB: 65)) }
        let refused = try Child(["vm", "balloon", "--api-socket", socket, "65"])
        #expect(refused.finish() == 1)
        #expect(refused.text.contains("balloon target 16640 pages is larger than guest RAM"), "\(refused.text)")
        #expect(try client.send(.setBalloon(targetMiB: 0)) == .done)
        #expect(child.waitFor("deflated 8192 zeroed 8192"), "\(child.text)")
        #expect(child.waitFor("reported 8192\n"), "\(child.text)")
        let reported = child.residentBytes
        _ = try client.send(.balloonStatistics)  // the guest goes on once asked for statistics
        let status = child.finish()
        #expect(status == 33, "\(child.text)")
        #expect(child.text.contains("report zeroed 8192"), "\(child.text)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file is removed on exit")

        let mib = Double(1 << 20)
        let freed = (Double(touched) - Double(inflated)) / mib
        print("skiff child VmRSS: \(Double(touched) / mib) MiB after the guest touched 32 MiB, \(Double(inflated) / mib) MiB after inflating (freed \(freed) MiB), \(Double(reported) / mib) MiB after free page reporting")
        #expect(freed >= 30 && freed <= 34, "freed \(freed) MiB")
        #expect(reported <= inflated + (3 << 20))
    }

    @Test func virtioConsoleTakesStdinAndBothConsolesReachStdout() throws {
        let stdin = Pipe()
        let child = try Child(["run", "--kernel", try GuestKit.path("virtio-console.elf"), "--console", "virtio"], stdin: stdin)
        #expect(child.waitFor("virtio-console waiting for input"), "\(child.text)")
        stdin.fileHandleForWriting.write(Data("typed on stdin\n".utf8))
        #expect(child.finish() == 33, "\(child.text)")
        #expect(child.text.contains("hello from hvc0\n"))
        #expect(child.text.contains("echo: typed on stdin\n"), "\(child.text)")
    }

    @Test(arguments: [
        (["--console", "hvc"], "--console must be one of: serial, virtio", 64),
        (["--balloon-deflate-on-oom"], "--balloon-deflate-on-oom and --balloon-free-page-reporting need --balloon", 64),
        (["--api-socket", ""], "--api-socket needs a path", 64),
        (["--balloon", "--api-socket", "/"], "control socket /: the path already exists", 1),
    ] as [([String], String, Int32)])
    func badOptionsGiveOneLine(extra: [String], expected: String, status: Int32) throws {
        let r = try CLITests.run("skiff", ["run", "--kernel", try GuestKit.path("hello.elf")] + extra)
        #expect(r.status == status, "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
    }
}
