import Foundation
import Synchronization
import Testing

/// Hostile guests (guests/build/flood.elf) against a real monitor process (`skiff run` on
/// KVM): each attack runs while the test samples the monitor's memory, and its peak resident
/// size (VmHWM, the kernel's own high-water mark, so a spike between samples counts too) must
/// stay within a stated allowance over a baseline: the same monitor, with the same devices,
/// running the same guest quietly (`mode=quiet`). docs/hostile-guests.md lists each bound
/// and why it holds.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason), .serialized)
struct HostileGuestTests {
    static let mib: UInt64 = 1 << 20

    /// A `skiff run` process whose memory is sampled every 5 ms while it runs.
    final class Monitor: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        private let captured = Mutex(Data())
        private let diagnostics = Mutex(Data())
        private let peaks = Mutex<(rss: UInt64, hwm: UInt64)>((0, 0))
        private let sampling = Atomic<Bool>(true)
        private var sampler: Thread?

        /// - Parameters:
        ///   - readOutput: false leaves the console pipe unread (a stuck reader).
        ///   - cpu: pins the monitor to this host CPU (taskset).
        ///   - namespace: runs it inside this network namespace.
        init(_ arguments: [String], readOutput: Bool = true, cpu: Int? = nil, namespace: TestNamespace? = nil) throws {
            var command = [CLITests.binDirectory.appendingPathComponent("skiff").path, "run"] + arguments
            if let cpu { command = ["/usr/bin/taskset", "-c", "\(cpu)"] + command }
            if let namespace { command = ["/usr/sbin/ip", "netns", "exec", namespace.name] + command }
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            process.standardInput = input
            process.standardOutput = output
            process.standardError = errors
            if readOutput {
                output.fileHandleForReading.readabilityHandler = { [weak self] h in
                    let d = h.availableData
                    self?.captured.withLock { $0.append(d) }
                }
            }
            errors.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.diagnostics.withLock { $0.append(d) }
            }
            try process.run()
            let pid = process.processIdentifier
            let thread = Thread { [self] in
                while sampling.load(ordering: .relaxed) {
                    if let s = Self.memory(pid) {
                        peaks.withLock { $0 = (max($0.rss, s.rss), max($0.hwm, s.hwm)) }
                    }
                    usleep(5_000)
                }
            }
            thread.start()
            sampler = thread
        }

        /// VmRSS and VmHWM of `pid` in bytes (nil once it has exited).
        static func memory(_ pid: Int32) -> (rss: UInt64, hwm: UInt64)? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            func field(_ name: String) -> UInt64? {
                guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
                return line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }.map { $0 << 10 }
            }
            guard let rss = field("VmRSS"), let hwm = field("VmHWM") else { return nil }
            return (rss, hwm)
        }

        var text: String { String(decoding: captured.withLock { $0 }, as: UTF8.self) }
        var stderr: String { String(decoding: diagnostics.withLock { $0 }, as: UTF8.self) }
        /// The peak resident size seen so far (the largest VmHWM sample).
        var peak: UInt64 { peaks.withLock { $0.hwm } }

        func waitFor(_ needle: String, timeout: Double = 60) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline && process.isRunning {
                if text.contains(needle) { return true }
                usleep(10_000)
            }
            return text.contains(needle)
        }

        /// Waits for the exit (SIGKILL after `timeout`); the exit status, or nil if it had to be killed.
        @discardableResult
        func finish(timeout: Double = 60) -> Int32? {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            let killed = process.isRunning
            if killed { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            sampling.store(false, ordering: .relaxed)
            output.fileHandleForReading.readabilityHandler = nil
            errors.fileHandleForReading.readabilityHandler = nil
            return killed ? nil : process.terminationStatus
        }

        /// Stops it with SIGTERM (SIGKILL if that does not work in `timeout` seconds).
        @discardableResult
        func stop(timeout: Double = 20) -> Int32? {
            kill(process.processIdentifier, SIGTERM)
            return finish(timeout: timeout)
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            sampling.store(false, ordering: .relaxed)
        }
    }

    static var kernel: String { get throws { try GuestKit.path("flood.elf") } }

    /// Peak resident size of a monitor with `devices` running the guest quietly for a second.
    static func baseline(_ devices: [String], namespace: TestNamespace? = nil) throws -> UInt64 {
        let m = try Monitor(["--kernel", try kernel, "--memory", "64M", "--cmdline", "mode=quiet"] + devices, namespace: namespace)
        #expect(m.waitFor("flood quiet ready"), "\(m.text)\(m.stderr)")
        usleep(1_000_000)
        let peak = m.peak
        m.stop()
        return peak
    }

    /// Runs `mode` with `devices` to its PASS line and checks the peak against baseline + `allowance`.
    @discardableResult
    static func attack(_ name: String, cmdline: String, devices: [String] = [], allowance: UInt64, readOutput: Bool = true,
                       timeout: Double = 120, while running: ((Monitor) -> Void)? = nil) throws -> Monitor {
        let base = try baseline(devices)
        let m = try Monitor(["--kernel", try kernel, "--memory", "64M", "--cmdline", cmdline] + devices, readOutput: readOutput)
        running?(m)
        let status = m.finish(timeout: timeout)
        #expect(status == 33, "\(name): status \(status.map(String.init) ?? "killed"); \(m.text.suffix(400))\(m.stderr)")
        let peak = m.peak
        print("hostile \(name): baseline \(base >> 10) KiB, under attack \(peak >> 10) KiB (+\(Int64(peak >> 10) - Int64(base >> 10)) KiB), allowed +\(allowance >> 10) KiB")
        #expect(peak > 0, "\(name): no memory sample")
        #expect(peak <= base + allowance, "\(name): peak \(peak >> 10) KiB over baseline \(base >> 10) KiB + \(allowance >> 10) KiB")
        return m
    }

    // MARK: Console output

    /// 256 KiB to the UART without waiting for THRE, read by the host as it comes.
    @Test func aUARTOutputFloodStaysInTheConsoleBuffer() throws {
        let m = try Self.attack("uart output", cmdline: "mode=uart count=262144", allowance: 3 * Self.mib)
        #expect(m.text.contains("flood uart done 262144 bytes"), "\(m.text.suffix(300))")
    }

    /// 16 MiB through virtio-console while nobody reads the console: the 1 MiB buffer fills,
    /// the rest is dropped, the guest never waits, and the monitor still exits.
    @Test func aVirtioConsoleFloodIntoAStuckReaderIsDroppedAndTheMonitorStillExits() throws {
        let m = try Self.attack("virtio-console output, stuck reader", cmdline: "mode=vcon count=16777216", devices: ["--console", "virtio"],
                                allowance: 4 * Self.mib, readOutput: false, timeout: 90)
        // What reached the pipe is at most the pipe plus what was buffered, far from 16 MiB.
        let through = m.output.fileHandleForReading.availableData.count
        #expect(through < 16 << 20)
    }

    // MARK: Console input

    /// The host writes console input as fast as it can to a guest that never reads it: the
    /// monitor takes only what its bounded queues hold, then stops reading (the writer blocks).
    @Test(arguments: ["serial", "virtio"])
    func aConsoleInputFloodIsRefusedOnceTheQueuesAreFull(console: String) throws {
        let base = try Self.baseline(["--console", console])
        let m = try Monitor(["--kernel", try Self.kernel, "--memory", "64M", "--cmdline", "mode=quiet", "--console", console])
        #expect(m.waitFor("flood quiet ready"), "\(m.text)\(m.stderr)")
        let fd = m.input.fileHandleForWriting.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let pipeSize = Int(fcntl(fd, 1032))  // F_GETPIPE_SZ (not exported to Swift)
        let chunk = [UInt8](repeating: 0x41, count: 65536)
        var accepted = 0
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { accepted += n } else { usleep(20_000) }
        }
        let peak = m.peak
        m.stop()
        print("hostile console input (\(console)): accepted \(accepted) bytes (pipe \(pipeSize)); baseline \(base >> 10) KiB, peak \(peak >> 10) KiB")
        // The device queue (64 KiB at most by default) plus the pump's 256-byte read plus the pipe.
        #expect(accepted <= pipeSize + (1 << 20), "\(accepted) bytes accepted")
        #expect(accepted >= pipeSize, "the monitor took no input at all")
        #expect(peak <= base + 2 * Self.mib, "peak \(peak >> 10) KiB over baseline \(base >> 10) KiB + 2048 KiB")
    }

    /// A console-socket client flooding input: the socket server stops reading it.
    @Test func aConsoleSocketInputFloodIsRefusedOnceTheQueueIsFull() throws {
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/console.sock"
        let base = try Self.baseline([])
        let m = try Monitor(["--kernel", try Self.kernel, "--memory", "64M", "--cmdline", "mode=quiet", "--console-socket", socket])
        #expect(m.waitFor("flood quiet ready"), "\(m.text)\(m.stderr)")
        let client = try #require(UnixStream.connect(socket))
        let fd = client.fd
        var size: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len)
        let chunk = [UInt8](repeating: 0x42, count: 65536)
        var accepted = 0
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 { accepted += n } else { usleep(20_000) }
        }
        let peak = m.peak
        m.stop()
        print("hostile console socket input: accepted \(accepted) bytes (sndbuf \(size)); baseline \(base >> 10) KiB, peak \(peak >> 10) KiB")
        // Socket buffers both ways (the peer's receive buffer is about as large as our send buffer)
        // plus the UART queue and one 4 KiB read held by the server.
        #expect(accepted <= 4 * Int(size) + (1 << 20), "\(accepted) bytes accepted")
        #expect(peak <= base + 2 * Self.mib, "peak \(peak >> 10) KiB over baseline \(base >> 10) KiB + 2048 KiB")
    }

    // MARK: Exits

    @Test func aPortIOFloodAllocatesNothingPerExit() throws {
        let m = try Self.attack("port I/O", cmdline: "mode=pio count=60000", allowance: 2 * Self.mib)
        #expect(m.text.contains("flood pio done 60000 exits"), "\(m.text.suffix(300))")
        // Unclaimed ports read as all ones: half of the accesses are reads.
        #expect(m.text.contains("30000 unclaimed reads of all ones"), "\(m.text.suffix(300))")
    }

    @Test func anMMIOFloodToUnclaimedAddressesAllocatesNothingPerExit() throws {
        let m = try Self.attack("MMIO", cmdline: "mode=mmio count=60000", allowance: 2 * Self.mib)
        #expect(m.text.contains("flood mmio done 60000 accesses 30000 unclaimed reads of all ones"), "\(m.text.suffix(300))")
    }

    @Test func anMSIXReprogrammingStormKeepsOneRoutePerVector() throws {
        let m = try Self.attack("MSI-X storm", cmdline: "mode=msix count=20000", devices: ["--rng"], allowance: 2 * Self.mib)
        #expect(m.text.contains("flood msix done 20000 table writes"), "\(m.text.suffix(300))")
    }

    @Test func balloonStatisticsSpamKeepsOneBuffer() throws {
        let m = try Self.attack("balloon statistics", cmdline: "mode=balloon count=1000", devices: ["--balloon"], allowance: 2 * Self.mib)
        #expect(m.text.contains("flood balloon done 1000 statistics buffers"), "\(m.text.suffix(300))")
    }

    // MARK: vsock

    /// 256 connections to a host listener that accepts and never reads, 64 KiB on each with
    /// no regard for credit, then 1024 requests to ports nobody listens on, while the guest
    /// never posts a receive buffer (so every answer the device owes waits).
    @Test func aVsockConnectionAndDataFloodStaysWithinTheConnectionAndCreditLimits() throws {
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/v.sock"
        let listener = try UnixStream.listen(path + "_5000")
        let held = Mutex<[UnixStream]>([])
        let accepting = Atomic<Bool>(true)
        let acceptor = Thread {
            while accepting.load(ordering: .relaxed) {
                if let c = listener.accept(timeout: 0.2) { held.withLock { $0.append(c) } }
            }
        }
        acceptor.start()
        defer { accepting.store(false, ordering: .relaxed) }
        let connections = 256
        // Per connection: at most the 64 KiB buffer it advertised (VsockLimits.bufferSize) plus
        // its bookkeeping; the rest is one allowance for the queues and epoll sets.
        let m = try Self.attack("vsock", cmdline: "mode=vsock count=\(connections) per=65536 port=5000",
                                devices: ["--vsock", "cid=3,socket=\(path)"], allowance: UInt64(connections) * 65 * 1024 + 2 * Self.mib)
        #expect(m.text.contains("flood vsock done \(connections + 1024) requests \(connections * 16) data packets"), "\(m.text.suffix(300))")
        accepting.store(false, ordering: .relaxed)
        usleep(300_000)
        let count = held.withLock { $0.count }
        #expect(count <= connections && count > 0, "\(count) host connections")
    }
}
