import Foundation
import HostProcess
import Testing

/// Whether tests that boot VMs run: always in CI (a missing /dev/kvm then fails them), and
/// elsewhere only when /dev/kvm opens.
enum KVMGate {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let available: Bool = {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }()
    static var shouldRun: Bool { inCI || available }
    static var skipReason: Comment { "skipped outside CI: /dev/kvm cannot be opened" }
}

/// Paths of the built executables and the guest kit.
enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `SKIFF_BIN_DIR` (a sanitizer build's products, scripts/sanitize.sh), else `.build/debug`.
    static let bin: String = {
        if let dir = ProcessInfo.processInfo.environment["SKIFF_BIN_DIR"], !dir.isEmpty { return dir }
        return root.appendingPathComponent(".build/debug").path
    }()
    /// `--jailer` for daemons whose test does not choose: `SKIFF_TEST_JAILER` (scripts/sanitize.sh
    /// sets `off`: a jailed monitor gets only `SKIFF_*` variables and sees no reports directory),
    /// else the daemon's default.
    static let jailerMode = ProcessInfo.processInfo.environment["SKIFF_TEST_JAILER"].flatMap { $0.isEmpty ? nil : $0 }
    static func guest(_ name: String) -> String { root.appendingPathComponent("guests/build/\(name)").path }
}

/// A real skiffd with its own socket, data and run directories, started and killed by tests.
final class Daemon: @unchecked Sendable {
    let dir: String
    var socket: String { "\(dir)/skiffd.sock" }
    var runDir: String { "\(dir)/run" }
    var dataDir: String { "\(dir)/data" }
    var logPath: String { "\(dir)/skiffd.log" }
    private(set) var process: Process?
    let extraArguments: [String]
    /// Whether the daemon's automatic ballooning runs (off unless a test is about it).
    let autoBalloon: Bool

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    init(extraArguments: [String] = [], autoBalloon: Bool = false) throws {
        // Short: unix socket paths are limited to 107 bytes.
        dir = "/tmp/skd-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        self.extraArguments = extraArguments
        self.autoBalloon = autoBalloon
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try start()
    }

    /// Starts skiffd and waits until its socket answers.
    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiffd")
        p.arguments = ["--socket", socket, "--data-dir", dataDir, "--run-dir", runDir, "--monitor", "\(Paths.bin)/skiff-vmm",
                       ] + (autoBalloon ? [] : ["--no-auto-balloon"]) + (extraArguments.contains("--reserved-memory") ? [] : ["--reserved-memory", "0"])
            + (extraArguments.contains("--jailer") ? [] : Paths.jailerMode.map { ["--jailer", $0] } ?? []) + extraArguments
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        logHandle.seekToEndOfFile()
        p.standardOutput = logHandle
        p.standardError = logHandle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let r = try? raw("GET", "/vms"), r.status == 200 { return }
            if !p.isRunning { throw HarnessError("skiffd exited: \(log(tail: 2000))") }
            usleep(50_000)
        }
        throw HarnessError("skiffd did not answer on \(socket): \(log(tail: 2000))")
    }

    /// kill -9 of the daemon (its VMs keep running).
    func kill9() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    func log(tail: Int) -> String {
        let text = fileText(logPath)
        return String(text.suffix(tail))
    }

    /// Runs `skiff ARGS --socket S`.
    @discardableResult
    func cli(_ arguments: [String], stdin: String? = nil, timeout: Double = 120) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff")
        p.arguments = arguments + ["--socket", socket]
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let outData = Mutex2<Data>(Data()), errData = Mutex2<Data>(Data())
        let t1 = Thread { outData.set(out.fileHandleForReading.readDataToEndOfFile()) }
        let t2 = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        t1.start()
        t2.start()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        Self.stop(p)
        while outData.isEmptyAndOpen || errData.isEmptyAndOpen { usleep(1000) }
        return Result(status: p.terminationStatus, stdout: String(decoding: outData.get(), as: UTF8.self),
                      stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Runs the CLI and requires success; returns stdout.
    @discardableResult
    func ok(_ arguments: [String], stdin: String? = nil) throws -> String {
        let r = try cli(arguments, stdin: stdin)
        guard r.status == 0 else { throw HarnessError("skiff \(arguments.joined(separator: " ")) failed (\(r.status)): \(r.stderr)") }
        return r.stdout
    }

    /// `skiff show NAME --output json` as a dictionary.
    func show(_ name: String) throws -> [String: Any] {
        let text = try ok(["show", name, "--output", "json"])
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw HarnessError("not JSON: \(text)") }
        return object
    }

    /// Writes a spec file and returns its path.
    func spec(_ name: String, guest: String = "idle.elf", memory: String = "64M", extra: String = "") throws -> String {
        let path = "\(dir)/\(name).yaml"
        let text = "name: \(name)\nkernel: \(Paths.guest(guest))\nmemory: \(memory)\n\(extra)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A raw HTTP/1.1 request on the unix socket (for malformed and oversized bodies).
    func raw(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:], sendAtMost: Int = .max) throws -> (status: Int, body: String) {
        try RawHTTP.request(unixSocket: socket, method: method, path: path, body: body, headers: headers, sendAtMost: sendAtMost)
    }

    /// Where the daemon builds jails (its default: the data directory + /jail).
    var jailBase: String { "\(dataDir)/jail/skiff-vmm" }

    /// Every monitor serving this daemon's VMs (found through /proc): unconfined ones by their
    /// control socket, jailed ones by their root directory, `<jailBase>/NAME/root`.
    func monitors() -> [Int32: String] {
        var found: [Int32: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let data = SmallFile.read("/proc/\(pid)/cmdline") else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if args.first?.hasSuffix("skiff-vmm") == true, let name = jailedName(pid) {
                if let stat = ProcessIdentity.readStat(pid: pid), stat.state == "Z" { continue }
                found[pid] = name
                continue
            }
            guard args.first?.hasSuffix("skiff-vmm") == true, let i = args.firstIndex(of: "--api-socket"), i + 1 < args.count,
                  args[i + 1].hasPrefix(runDir + "/") else { continue }
            if let stat = ProcessIdentity.readStat(pid: pid), stat.state == "Z" { continue }
            found[pid] = String(args[i + 1].dropFirst(runDir.count + 1).dropLast(4))
        }
        return found
    }

    /// The VM of a jailed monitor: its parent is this daemon's `skiff-jailer --id NAME`.
    func jailedName(_ pid: Int32) -> String? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
              let parent = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)),
              let data = SmallFile.read("/proc/\(parent)/cmdline") else { return nil }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard args.first?.hasSuffix("skiff-jailer") == true, let i = args.firstIndex(of: "--id"), i + 1 < args.count,
              let b = args.firstIndex(of: "--chroot-base-dir"), b + 1 < args.count, args[b + 1] == "\(dataDir)/jail" else { return nil }
        return args[i + 1]
    }

    /// Stops the daemon and every monitor it started, and removes the files.
    func tearDown() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        for pid in monitors().keys { kill(pid, SIGKILL) }
        usleep(100_000)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(dataDir)/vms")) ?? [] {
            for h in ["cpu", "cpuacct", "memory", "cpuset"] { rmdir("/sys/fs/cgroup/\(h)/skiff/\(name)") }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { tearDown() }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

final class Mutex2<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    private var set = false
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; set = true; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    var isEmptyAndOpen: Bool { lock.lock(); defer { lock.unlock() }; return !set }
}

/// The text of the file at `path` ("" when it is missing), read with `SmallFile`: Foundation's
/// reader leaks 4 KiB per empty file (LeakSanitizer found it here as in the daemon;
/// docs/sanitizers.md).
func fileText(_ path: String) -> String {
    String(decoding: SmallFile.read(path, limit: 64 << 20) ?? [], as: UTF8.self)
}

/// Waits until `condition` holds (polling), up to `timeout` seconds.
func eventually(_ timeout: Double = 15, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// Minimal HTTP/1.1 over a unix socket or TCP (tests only).
enum RawHTTP {
    /// `sendAtMost` stops sending the body there (as a client that waits for an early answer).
    static func request(unixSocket: String? = nil, tcpPort: UInt16? = nil, method: String, path: String, body: [UInt8]?,
                        headers: [String: String], sendAtMost: Int = .max) throws -> (status: Int, body: String) {
        let fd: Int32
        if let unixSocket {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_un()
            a.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &a.sun_path) { raw in for (i, b) in unixSocket.utf8.enumerated() { raw[i] = b } }
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard r == 0 else { close(fd); throw HarnessError("connect \(unixSocket): \(String(cString: strerror(errno)))") }
        } else {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = (tcpPort ?? 0).bigEndian
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard r == 0 else { close(fd); throw HarnessError("connect tcp: \(String(cString: strerror(errno)))") }
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // A server that refuses a body early may stop reading it: give up sending then.
        var sendTimeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body, headers["Transfer-Encoding"] == nil { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + (body ?? []).prefix(sendAtMost)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may close early on an oversized body
            done += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !isComplete(response) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let line = text.split(separator: "\r\n").first, line.split(separator: " ").count >= 2,
              let status = Int(line.split(separator: " ")[1]) else { throw HarnessError("no HTTP response: \(text.prefix(200))") }
        let bodyText = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, bodyText)
    }

    /// Whether `bytes` hold a whole response with a Content-Length (else read to the close).
    static func isComplete(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<split.lowerBound].lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
              let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else { return false }
        return text.utf8.count - text[..<split.upperBound].utf8.count >= length
    }
}

extension Daemon {
    /// Runs `skiff ARGS` with a pipe as stdin; once stdout contains `until`, writes `then`
    /// (e.g. the detach key) and waits for the exit. Returns the result and whether `until` was seen.
    func interactive(_ arguments: [String], until: String, then input: [UInt8], timeout: Double = 30,
                     meanwhile: (@Sendable () -> Void)? = nil) throws -> (Result, Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff")
        p.arguments = arguments + ["--socket", socket]
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = stdin
        try p.run()
        var collected = Data()
        var seen = false
        if let meanwhile { Thread { meanwhile() }.start() }
        let deadline = Date().addingTimeInterval(timeout)
        let fd = out.fileHandleForReading.fileDescriptor
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                collected.append(chunk)
            }
            if String(decoding: collected, as: UTF8.self).contains(until) {
                seen = true
                break
            }
        }
        stdin.fileHandleForWriting.write(Data(input))
        // With input (a detach key) the command should end by itself; without, it is stopped.
        let end = Date().addingTimeInterval(input.isEmpty ? 0 : 10)
        while p.isRunning && Date() < end { usleep(10_000) }
        Self.stop(p)
        collected.append(out.fileHandleForReading.readDataToEndOfFile())
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        return (Result(status: p.terminationStatus, stdout: String(decoding: collected, as: UTF8.self),
                       stderr: String(decoding: errors, as: UTF8.self)), seen)
    }

    /// Ends a child: SIGTERM, then SIGKILL (the test runner's threads block SIGTERM, and
    /// children inherit that mask).
    static func stop(_ p: Process) {
        if p.isRunning { p.terminate() }
        let end = Date().addingTimeInterval(2)
        while p.isRunning && Date() < end { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Whether the monitor has the console socket (`--console-socket`).
    static var monitorHasConsoleSocket: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff-vmm")
        p.arguments = ["--help"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try? p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).contains("--console-socket")
    }
}
