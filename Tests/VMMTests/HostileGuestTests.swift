import Foundation
import Synchronization
import Testing
import LegacyDevices
import Virtio
@testable import VirtioVsock

/// Hostile guests (guests/build/flood.elf) against a real monitor process (`skiff run` on
/// KVM): each attack runs while the test samples the monitor's memory every 5 ms. Its peak
/// anonymous memory (RssAnon + RssShmem: heap, stacks, buffers and guest RAM, all a guest can
/// make grow) must stay within a stated allowance over a baseline: the same monitor, with the
/// same devices, running the same guest quietly (`mode=quiet`). File-backed pages (the
/// monitor's code and libraries) vary by up to ~1 MiB between identical runs with the page
/// cache's fault-around, so the kernel's high-water mark of everything (VmHWM, which also
/// catches a spike between samples) gets the allowance plus `codeSlack`.
/// docs/hostile-guests.md lists each bound and why it holds.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason), .serialized)
struct HostileGuestTests {
    static let mib: UInt64 = 1 << 20

    /// An atomic count shared with reader threads.
    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func increment() { value.add(1, ordering: .relaxed) }
        func decrement() { value.subtract(1, ordering: .releasing) }
        var current: Int { value.load(ordering: .acquiring) }
    }

    /// A `skiff run` process whose memory is sampled every 5 ms while it runs.
    final class Monitor: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        private let captured = Mutex(Data())
        private let diagnostics = Mutex(Data())
        private let peaks = Mutex(Footprint(anonymous: 0, highWater: 0))
        /// CPU seconds (user + system) of the process at the last sample.
        private let cpuSeconds = Mutex<Double>(0)
        let started = Date()
        private let sampling = Atomic<Bool>(true)
        /// Reader threads still before end of file.
        private let readers = Counter()
        private var sampler: Thread?

        /// - Parameters:
        ///   - readOutput: false leaves the console pipe unread (a stuck reader).
        ///   - cpu: pins the monitor to this host CPU (taskset).
        ///   - namespace: runs it inside this network namespace.
        ///   - wrapper: a command that execs the monitor (e.g. prlimit with its options).
        init(_ arguments: [String], readOutput: Bool = true, cpu: Int? = nil, namespace: TestNamespace? = nil, wrapper: [String] = []) throws {
            var command = wrapper + [CLITests.binDirectory.appendingPathComponent("skiff").path, "run"] + arguments
            if let cpu { command = ["/usr/bin/taskset", "-c", "\(cpu)"] + command }
            if let namespace { command = ["/usr/sbin/ip", "netns", "exec", namespace.name] + command }
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            process.standardInput = input
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            // Reader threads until end of file rather than readability handlers: libdispatch's
            // event loop crashed the test process once while handlers were being removed.
            if readOutput {
                let h = output.fileHandleForReading
                readers.increment()
                Thread.detachNewThread { [weak self, readers] in
                    while case let d = h.availableData, !d.isEmpty { self?.captured.withLock { $0.append(d) } }
                    readers.decrement()
                }
            }
            let e = errors.fileHandleForReading
            readers.increment()
            Thread.detachNewThread { [weak self, readers] in
                while case let d = e.availableData, !d.isEmpty { self?.diagnostics.withLock { $0.append(d) } }
                readers.decrement()
            }
            let pid = process.processIdentifier
            // Weak: a test that ends early drops the monitor, whose deinit kills the process.
            let thread = Thread { [weak self] in
                while let me = self, me.sampling.load(ordering: .relaxed) {
                    me.sample(pid)
                    usleep(5_000)
                }
            }
            thread.start()
            sampler = thread
        }

        private func sample(_ pid: Int32) {
            if let s = Self.memory(pid) {
                peaks.withLock { $0 = Footprint(anonymous: max($0.anonymous, s.anonymous), highWater: max($0.highWater, s.highWater)) }
            }
            if let c = Self.cpu(pid) { cpuSeconds.withLock { $0 = max($0, c) } }
        }

        /// RssAnon + RssShmem and VmHWM of `pid` in bytes (nil once it has exited).
        static func memory(_ pid: Int32) -> Footprint? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            func field(_ name: String) -> UInt64? {
                guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
                return line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }.map { $0 << 10 }
            }
            guard let anon = field("RssAnon"), let shmem = field("RssShmem"), let hwm = field("VmHWM") else { return nil }
            return Footprint(anonymous: anon + shmem, highWater: hwm)
        }

        /// utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat, after the command name).
        static func cpu(_ pid: Int32) -> Double? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
            return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        /// CPU seconds the monitor used (as last sampled) and the wall time since it started.
        var usage: (cpu: Double, wall: Double) { (cpuSeconds.withLock { $0 }, Date().timeIntervalSince(started)) }

        var text: String { String(decoding: captured.withLock { $0 }, as: UTF8.self) }
        var stderr: String { String(decoding: diagnostics.withLock { $0 }, as: UTF8.self) }
        /// The peaks seen so far: the largest anonymous sample and the largest VmHWM.
        var peak: Footprint { peaks.withLock { $0 } }

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
            // Everything written up to end of file (at most 5 s more if a grandchild holds a pipe).
            let drained = Date().addingTimeInterval(5)
            while readers.current > 0 && Date() < drained { usleep(5_000) }
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

    /// File-backed pages allowed on top of an allowance in the VmHWM check (see the suite's comment).
    static let codeSlack: UInt64 = 4 << 20

    /// Peak memory of a monitor: anonymous (sampled) and VmHWM (the kernel's mark), in bytes.
    struct Footprint: Sendable, CustomStringConvertible {
        var anonymous: UInt64
        var highWater: UInt64
        var description: String { "anonymous \(anonymous >> 10) KiB, VmHWM \(highWater >> 10) KiB" }
    }

    /// Checks `peak` against `base` + `allowance` (anonymous) and + `allowance` + `codeSlack` (VmHWM).
    static func expectBounded(_ name: String, peak: Footprint, base: Footprint, allowance: UInt64,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        func delta(_ a: UInt64, _ b: UInt64) -> String { "\(Int64(a >> 10) - Int64(b >> 10)) KiB" }
        print("hostile \(name): baseline \(base), under attack \(peak) (anonymous +\(delta(peak.anonymous, base.anonymous)), "
              + "VmHWM +\(delta(peak.highWater, base.highWater))), allowed +\(allowance >> 10) KiB")
        #expect(peak.anonymous > 0 && peak.highWater > 0, "\(name): no memory sample", sourceLocation: sourceLocation)
        #expect(peak.anonymous <= base.anonymous + allowance,
                "\(name): anonymous peak \(peak.anonymous >> 10) KiB over baseline \(base.anonymous >> 10) KiB + \(allowance >> 10) KiB",
                sourceLocation: sourceLocation)
        #expect(peak.highWater <= base.highWater + allowance + codeSlack,
                "\(name): VmHWM \(peak.highWater >> 10) KiB over baseline \(base.highWater >> 10) KiB + \((allowance + codeSlack) >> 10) KiB",
                sourceLocation: sourceLocation)
    }

    /// Peak memory of a monitor with `devices` running the guest quietly for a second.
    static func baseline(_ devices: [String], namespace: TestNamespace? = nil) throws -> Footprint {
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
        let usage = m.usage
        print("hostile \(name): monitor CPU \(String(format: "%.2f", usage.cpu)) s over \(String(format: "%.1f", usage.wall)) s")
        #expect(status == 33, "\(name): status \(status.map(String.init) ?? "killed"); \(m.text.suffix(400))\(m.stderr)")
        expectBounded(name, peak: m.peak, base: base, allowance: allowance)
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
                                allowance: 4 * Self.mib, readOutput: false, timeout: 60)
        // What reached the pipe is at most the pipe plus what was buffered, far from 16 MiB.
        let through = m.output.fileHandleForReading.availableData.count
        #expect(through < 16 << 20)
    }

    /// 16 MiB through virtio-console while 16 console-socket clients (the most the socket
    /// takes) never read: each client's backlog is dropped past 256 KiB, so the monitor holds at
    /// most the console buffer, the scrollback and 16 backlogs.
    @Test func aConsoleFloodIntoStuckSocketClientsKeepsEachBacklogBounded() throws {
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/console.sock"
        let devices = ["--console", "virtio", "--console-socket", socket]
        let base = try Self.baseline(devices)
        let m = try Monitor(["--kernel", try Self.kernel, "--memory", "64M", "--cmdline", "mode=vcon count=16777216"] + devices)
        var clients: [UnixStream] = []
        let deadline = Date().addingTimeInterval(20)
        while clients.count < 16 && Date() < deadline {
            if let c = UnixStream.connect(socket) { clients.append(c) } else { usleep(2_000) }
        }
        #expect(clients.count == 16)
        let status = m.finish(timeout: 90)
        #expect(status == 33, "\(m.text.suffix(300))\(m.stderr)")
        let peak = m.peak
        // The 1 MiB console buffer, 64 KiB of scrollback, per client 256 KiB of backlog plus the
        // one 64 KiB chunk that pushes it over; 2 MiB for the rest.
        let allowance = UInt64(1 << 20) + 64 * 1024 + 16 * (256 + 64) * 1024 + 2 * Self.mib
        Self.expectBounded("console socket, 16 stuck clients", peak: peak, base: base, allowance: allowance)
        #expect(m.text.contains("flood vcon done 16777216 bytes"), "\(m.text.suffix(300))")
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
        print("hostile console input (\(console)): accepted \(accepted) bytes (pipe \(pipeSize))")
        // The pipe, the device's host input queue, the UART's 16-byte receive FIFO and the
        // input pump's one 256-byte read: nothing else buffers input.
        let queue = console == "serial" ? Serial16550.defaultInputCapacity + 16 : VirtioConsole.defaultInputCapacity
        #expect(accepted <= pipeSize + queue + 256, "\(accepted) bytes accepted")
        #expect(accepted >= pipeSize, "the monitor took no input at all")
        Self.expectBounded("console input (\(console))", peak: peak, base: base, allowance: 2 * Self.mib)
    }

    /// A console-socket client flooding input: the socket server stops reading it.
    @Test func aConsoleSocketInputFloodIsRefusedOnceTheQueueIsFull() throws {
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/console.sock"
        // The baseline serves a console socket too (its server thread and buffers are not the flood's).
        let base = try Self.baseline(["--console-socket", dir + "/baseline.sock"])
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
        print("hostile console socket input: accepted \(accepted) bytes (sndbuf \(size))")
        // The socket's send buffer (a unix socket charges queued data to the sender; one send
        // may overshoot it by its own size), the server's one held 4 KiB read, the UART's
        // input queue and its 16-byte FIFO.
        #expect(accepted <= Int(size) + chunk.count + 4096 + Serial16550.defaultInputCapacity + 16, "\(accepted) bytes accepted")
        Self.expectBounded("console socket input", peak: peak, base: base, allowance: 2 * Self.mib)
    }

    // MARK: Exits

    @Test func aPortIOFloodAllocatesNothingPerExit() throws {
        let m = try Self.attack("port I/O", cmdline: "mode=pio count=60000", allowance: 2 * Self.mib)
        #expect(m.text.contains("flood pio done 60000 exits 30000 cmos exits 2 strings"), "\(m.text.suffix(300))")
        // Unclaimed ports read as all ones: half of the accesses are reads.
        #expect(m.text.contains("30000 unclaimed reads of all ones"), "\(m.text.suffix(300))")
    }

    @Test func anMMIOFloodToUnclaimedAndClaimedAddressesAllocatesNothingPerExit() throws {
        let m = try Self.attack("MMIO", cmdline: "mode=mmio count=60000 handled=1", devices: ["--rng"], allowance: 2 * Self.mib)
        #expect(m.text.contains("flood mmio done 60000 accesses 30000 unclaimed reads of all ones"), "\(m.text.suffix(300))")
        // The device still answers: VERSION_1 (bit 32, bit 0 of the upper word), EVENT_IDX (29)
        // and INDIRECT_DESC (28) read back through the feature select it was hammered with.
        #expect(m.text.contains("flood mmio done 60000 claimed accesses features 0x30000001"), "\(m.text.suffix(300))")
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

    /// 128 or 384 connections to a host listener that accepts and never reads, 384 KiB on each
    /// with no regard for credit, then 1024 requests to ports nobody listens on, while the guest
    /// never posts a receive buffer (so every answer the device owes waits). Each connection's
    /// host socket buffer fills, then its 64 KiB of pending data in the monitor, then the guest
    /// oversteps its credit and is reset; with 384 the device-wide budget (16 MiB) is reached
    /// first and connections are reset by it.
    @Test(arguments: [128, 384])
    func aVsockDataFloodIntoAStuckHostReaderStopsAtTheCredit(connections: Int) throws {
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/v.sock"
        let api = dir + "/api.sock"
        let listener = try UnixStream.listen(path + "_5000")
        _ = Glibc.listen(listener.fd, 1024)  // a backlog for every connection the guest makes
        let held = Mutex<[UnixStream]>([])
        let accepting = Atomic<Bool>(true)
        let acceptor = Thread {
            while accepting.load(ordering: .relaxed) {
                if let c = listener.accept(timeout: 0.2) { held.withLock { $0.append(c) } }
            }
        }
        acceptor.start()
        defer { accepting.store(false, ordering: .relaxed) }
        let devices = ["--vsock", "cid=3,socket=\(path)", "--api-socket", api]
        let base = try Self.baseline(devices)
        let m = try Monitor(["--kernel", try Self.kernel, "--memory", "64M", "--cmdline",
                             "mode=vsock count=\(connections) per=393216 port=5000 hold=1"] + devices)
        defer { m.stop() }
        #expect(m.waitFor("flood vsock holding", timeout: 180), "\(m.text.suffix(300))\(m.stderr)")
        #expect(m.text.contains("flood vsock done \(connections + 1024) requests \(connections * 96) data packets"), "\(m.text.suffix(300))")
        usleep(300_000)
        let r = try CLITests.run("skiff", ["vm", "metrics", "--api-socket", api], timeout: 20)
        #expect(r.status == 0, "\(r.stderr)")
        var metrics: [String: UInt64] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let v = UInt64(f[1]) { metrics[String(f[0])] = v }
        }
        let peak = m.peak
        let count = held.withLock { $0.count }
        print("hostile vsock: host accepted \(count); credit violations \(metrics["vsock.credit-violations"] ?? 0), refused \(metrics["vsock.refused"] ?? 0), "
              + "connect failures \(metrics["vsock.connect-failures"] ?? 0), dropped resets \(metrics["vsock.dropped-resets"] ?? 0), open \(metrics["vsock.connections"] ?? 0)")
        #expect(count == connections, "\(count) host connections")
        // Every connection was reset once: for overstepping its credit once its host socket and its
        // pending buffer were full, or earlier, by the device-wide budget.
        let limits = VsockLimits()
        let violations = metrics["vsock.credit-violations"] ?? 0
        let budget = metrics["vsock.budget-resets"] ?? 0
        print("hostile vsock: \(connections) connections: \(violations) credit violations, \(budget) budget resets")
        #expect(violations + budget == UInt64(connections), "\(r.stdout)")
        if connections * limits.bufferSize <= limits.maxPendingBytes {
            #expect(budget == 0, "\(r.stdout)")
        } else {
            #expect(budget > 0, "\(r.stdout)")
        }
        #expect(metrics["vsock.connect-failures"] == 1024, "\(r.stdout)")
        // Pending data: per connection at most its buffer, all together at most the budget; in
        // storage one partly filled 4 KiB chunk more per connection (VsockByteQueue.chunkSize),
        // and 1 KiB of bookkeeping each; 2 MiB for the rest.
        let pending = min(connections * limits.bufferSize, limits.maxPendingBytes)
        let allowance = UInt64(pending + connections * (VsockByteQueue.chunkSize + 1024)) + 2 * Self.mib
        Self.expectBounded("vsock (\(connections) connections)", peak: peak, base: base, allowance: allowance)
    }

    /// A guest opening 1023 connections (the device's limit) under an open-files limit of 512:
    /// the device stops at the limit minus its reserve of descriptors, so the control API
    /// still answers and reports the refusals. Before the reserve, the guest took every
    /// descriptor and the API went silent.
    @Test func aVsockConnectionFloodLeavesDescriptorsForTheControlAPI() throws {
        let prlimit = "/usr/bin/prlimit"
        try #require(FileManager.default.isExecutableFile(atPath: prlimit), "\(prlimit) is missing (util-linux)")
        let dir = MonitorCLITests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/v.sock"
        let api = dir + "/api.sock"
        let listener = try UnixStream.listen(path + "_5000")
        _ = Glibc.listen(listener.fd, 2048)
        let held = Mutex<[UnixStream]>([])
        let accepting = Atomic<Bool>(true)
        let acceptor = Thread {
            while accepting.load(ordering: .relaxed) {
                if let c = listener.accept(timeout: 0.2) { held.withLock { $0.append(c) } }
            }
        }
        acceptor.start()
        defer { accepting.store(false, ordering: .relaxed) }
        let limit = 512
        let m = try Monitor(["--kernel", try Self.kernel, "--memory", "64M", "--cmdline", "mode=vsock count=1023 per=0 strays=0 hold=1",
                             "--vsock", "cid=3,socket=\(path)", "--api-socket", api], wrapper: [prlimit, "--nofile=\(limit):\(limit)"])
        defer { m.stop() }
        #expect(m.waitFor("flood vsock holding", timeout: 90), "\(m.text.suffix(300))\(m.stderr)")
        usleep(500_000)
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(m.process.processIdentifier)/fd").count) ?? -1
        let r = try CLITests.run("skiff", ["vm", "metrics", "--api-socket", api], timeout: 20)
        #expect(r.status == 0, "the control API did not answer: \(r.stderr)")
        var metrics: [String: UInt64] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let v = UInt64(f[1]) { metrics[String(f[0])] = v }
        }
        let cap = try #require(metrics["vsock.connection-cap"], "\(r.stdout)")
        print("hostile vsock under an open-files limit of \(limit): cap \(cap), connections \(metrics["vsock.connections"] ?? 0), refused \(metrics["vsock.refused"] ?? 0), descriptors open \(open)")
        #expect(cap > 0 && cap <= UInt64(limit - VsockLimits().descriptorReserve), "\(r.stdout)")
        #expect(metrics["vsock.connections"] == cap, "\(r.stdout)")
        #expect(metrics["vsock.refused"] == 1023 - cap, "\(r.stdout)")
        #expect(open > 0 && open <= limit - VsockLimits().descriptorReserve + 16, "\(open) descriptors open")
    }
}

/// virtio-net receive backlog: the guest posts four receive buffers once and never again
/// while the host floods its TAP. The monitor must stop reading the TAP (the kernel drops the
/// frames and counts them) instead of queueing them.
extension HostileGuestTests {
    @Suite(.enabled(if: NetworkNamespaceSupport.shouldRun, NetworkNamespaceSupport.skipReason), .serialized)
    struct Net {
        typealias Monitor = HostileGuestTests.Monitor

        static let flooder = """
        import socket, sys, time
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((sys.argv[1], 0))
        s.setblocking(False)
        frame = b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01' + b'\\x08\\x00' + bytes(1500)
        n = 0
        end = time.time() + float(sys.argv[2])
        while time.time() < end:
            try:
                s.send(frame)
                n += 1
            except OSError:
                time.sleep(0.0005)
        print("sent", n, flush=True)
        """

        @Test func aReceiveBacklogStaysInTheKernelNotInTheMonitor() throws {
            let ns = try TestNamespace()
            let tap = "hfltap0"
            try ns.ip(["tuntap", "add", "dev", tap, "mode", "tap"])
            try ns.ip(["link", "set", tap, "up"])
            let devices = ["--net", "tap=\(tap),mac=02:53:4b:00:00:02"]

            let base = try Self.baseline(devices, ns)
            let m = try Monitor(["--kernel", try HostileGuestTests.kernel, "--memory", "64M", "--cmdline", "mode=net"] + devices, namespace: ns)
            #expect(m.waitFor("flood net ready"), "\(m.text)\(m.stderr)")
            let python = try #require(NetworkNamespaceSupport.findPython())
            let flood = ns.process(python, ["-c", Self.flooder, tap, "6"])
            let out = Pipe()
            flood.standardOutput = out
            flood.standardError = out
            try flood.run()
            flood.waitUntilExit()
            let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let peak = m.peak
            let alive = m.process.isRunning
            m.stop()
            let stats = try ns.ip(["-s", "link", "show", "dev", tap])
            print("hostile net receive backlog: \(said.trimmingCharacters(in: .whitespacesAndNewlines))")
            #expect(alive, "the monitor died under the flood: \(m.stderr)")
            let sent = said.split(separator: " ").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
            // Enough frames to fill the four buffers, the TAP's queue and far more.
            #expect(sent > 5000, "\(said)")
            // One frame held for buffers that never come, plus the engine's fixed buffers: 2 MiB.
            HostileGuestTests.expectBounded("net receive backlog", peak: peak, base: base, allowance: 2 * HostileGuestTests.mib)
            // The kernel dropped what the monitor did not read: TX of the TAP is the guest's receive side.
            let dropped = Self.txDropped(stats)
            #expect(dropped > 0, "\(stats)")
        }

        static func baseline(_ devices: [String], _ ns: TestNamespace) throws -> Footprint {
            try HostileGuestTests.baseline(devices, namespace: ns)
        }

        /// The TX "dropped" count from `ip -s link show` (line after the "TX:" header, 4th number).
        static func txDropped(_ text: String) -> Int {
            let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let i = lines.firstIndex(where: { $0.hasPrefix("TX:") }), i + 1 < lines.count else { return 0 }
            let fields = lines[i + 1].split(separator: " ")
            return fields.count > 3 ? Int(fields[3]) ?? 0 : 0
        }
    }

    /// Another VM's latency while a hostile one floods: an echo guest (flood.elf mode=echo, one
    /// UART byte in, the same byte out, halting in between) answers single bytes from the host;
    /// the round trip is measured before, during and after a hostile MMIO-exit flood and a
    /// virtio-console flood in a second monitor. Method: each monitor is pinned to its own host
    /// CPU (taskset; echo on CPU 0, hostile on CPU 1), as a host places VMs, so the test measures
    /// what one monitor does to another through shared host state, not CPU time-sharing on a
    /// busy two-core machine; the medians of 40 round trips are compared. (The first two CPUs
    /// this process may use; fewer than two fails the test.)
    @Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason), .serialized)
    struct Neighbour {
        typealias Monitor = HostileGuestTests.Monitor

        /// Round-trip times in seconds of `count` single bytes through the echo VM.
        static func roundTrips(_ echo: Monitor, count: Int) -> [Double] {
            let w = echo.input.fileHandleForWriting.fileDescriptor
            let r = echo.output.fileHandleForReading.fileDescriptor
            var times: [Double] = []
            var byte: UInt8 = 0x61
            for _ in 0..<count {
                let start = Date()
                _ = write(w, &byte, 1)
                var got: UInt8 = 0
                var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 5000) == 1, read(r, &got, 1) == 1, got == byte else { return times }
                times.append(Date().timeIntervalSince(start))
                byte = byte == 0x7a ? 0x61 : byte + 1
                usleep(20_000)
            }
            return times
        }

        /// The CPUs this process may run on (Cpus_allowed_list of /proc/self/status, e.g. "0-3,6").
        static func allowedCPUs() -> [Int] {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
                  let list = line.split(separator: ":").last else { return [] }
            var cpus: [Int] = []
            for part in list.trimmingCharacters(in: .whitespaces).split(separator: ",") {
                let bounds = part.split(separator: "-").compactMap { Int($0) }
                if bounds.count == 1 { cpus.append(bounds[0]) }
                if bounds.count == 2, bounds[0] <= bounds[1] { cpus += Array(bounds[0]...bounds[1]) }
            }
            return cpus
        }

        static func median(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.isEmpty ? .infinity : s[s.count / 2]
        }

        @Test(arguments: [("mmio", "mode=mmio count=400000", [String]()), ("msix", "mode=msix count=400000", ["--rng"]),
                          ("vcon", "mode=vcon count=200000000", ["--console", "virtio"])])
        func anEchoVMKeepsItsLatencyWhileAHostileVMFloods(name: String, cmdline: String, devices: [String]) throws {
            let cpus = Self.allowedCPUs()
            try #require(cpus.count >= 2, "the latency test pins two monitors to two CPUs; this process may use \(cpus)")
            let echo = try Monitor(["--kernel", try HostileGuestTests.kernel, "--memory", "64M", "--cmdline", "mode=echo"], readOutput: false, cpu: cpus[0])
            defer { echo.stop() }
            // Read up to the ready line by hand (the output is not captured for this monitor).
            var seen = [UInt8]()
            let r = echo.output.fileHandleForReading.fileDescriptor
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains("flood echo ready\n") {
                var p = pollfd(fd: r, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 1000) == 1 else { continue }
                var b: UInt8 = 0
                if read(r, &b, 1) == 1 { seen.append(b) }
            }
            try #require(String(decoding: seen, as: UTF8.self).contains("flood echo ready\n"), "\(String(decoding: seen, as: UTF8.self))")

            let before = Self.roundTrips(echo, count: 40)
            let hostile = try Monitor(["--kernel", try HostileGuestTests.kernel, "--memory", "64M", "--cmdline", cmdline] + devices, cpu: cpus[1])
            #expect(hostile.waitFor("flood \(name) start"), "\(hostile.text)\(hostile.stderr)")
            let during = Self.roundTrips(echo, count: 40)
            let stillFlooding = hostile.process.isRunning && !hostile.text.contains("flood \(name) done")
            hostile.stop()
            let after = Self.roundTrips(echo, count: 40)
            try #require(before.count == 40 && during.count == 40 && after.count == 40, "echo stopped answering: \(before.count) \(during.count) \(after.count)")
            let quiet = max(Self.median(before), Self.median(after))
            let loaded = Self.median(during)
            print("hostile neighbour (\(name)): echo median \(Int(Self.median(before) * 1e6)) us before, \(Int(loaded * 1e6)) us during, \(Int(Self.median(after) * 1e6)) us after")
            #expect(stillFlooding, "the hostile guest finished before the measurement ended: make it longer")
            // Within twice the quiet median plus 0.2 ms. A control run with both monitors pinned
            // to the same CPU measured 2.6x for the virtio-console flood (docs/hostile-guests.md):
            // contention of that size fails this check.
            #expect(loaded <= 2 * quiet + 0.0002, "median \(Int(loaded * 1e6)) us under attack vs \(Int(quiet * 1e6)) us quiet")
        }
    }
}
