import Foundation
import Synchronization
import Testing

/// What the jail tests need: root (namespaces, mknod, cgroups) and a usable /dev/kvm. In CI
/// a missing piece fails them; elsewhere they are skipped with the reason.
enum JailAvailability {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static let problem: String? = {
        if getuid() != 0 { return "not root (the jailer creates namespaces, device nodes and cgroups)" }
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return "/dev/kvm: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        // KVM_GET_API_VERSION
        guard ioctl(fd, 0xAE00) == 12 else { return "/dev/kvm does not report KVM API version 12" }
        return nil
    }()

    static var shouldRun: Bool { inCI || problem == nil }
    static var skipReason: Comment { "jail tests skipped outside CI: \(problem ?? "")" }
}

enum JailTest {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `SKIFF_BIN_DIR` (a sanitizer build's products), else `.build/debug`.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["SKIFF_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return repository.appendingPathComponent(".build/debug")
    }()
    static let uid: UInt32 = 61234
    static let gid: UInt32 = 61235

    static func tool(_ name: String) -> String { binDirectory.appendingPathComponent(name).path }

    /// A guest of the guest kit (guests/build, made by scripts/setup.sh).
    static func guest(_ name: String) throws -> String {
        let path = repository.appendingPathComponent("guests/build/\(name)").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure("\(path) is missing: run scripts/setup.sh (it builds the guest kit)")
        }
        return path
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// A root-owned 0755 directory for jails, removed (with every jail in it) by `remove`.
    final class Base {
        let path: String
        init() throws {
            path = "/tmp/skj-\(UUID().uuidString.prefix(8).lowercased())"
            guard mkdir(path, 0o755) == 0, chmod(path, 0o755) == 0 else { throw Failure("cannot create \(path)") }
        }
        func jail(_ id: String) -> String { path + "/skiff-vmm/" + id }
        func root(_ id: String) -> String { jail(id) + "/root" }
        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A fresh id (letters, digits, hyphens).
    static func id(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// The jailer's options for a test VM; `extra` go before `--`.
    static func jailerArguments(_ base: Base, id: String, extra: [String] = [], monitor: [String]) -> [String] {
        ["--id", id, "--uid", "\(uid)", "--gid", "\(gid)", "--chroot-base-dir", base.path] + extra + ["--"] + monitor
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs an executable to its end (SIGKILL after `timeout`).
    static func run(_ executable: String, _ arguments: [String], timeout: Double = 120) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Reader threads until end of file, not readability handlers (libdispatch's event loop
        // crashed a test process once while handlers were removed).
        let stdout = EndOfFileReader(out.fileHandleForReading), stderr = EndOfFileReader(err.fileHandleForReading)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let (o, e) = (stdout.finish(), stderr.finish())
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// A process in the background whose stdout and stderr are collected together.
    final class Background: @unchecked Sendable {
        // @unchecked: `process` and `reader` are used from the test's thread only.
        let process = Process()
        private let pipe = Pipe()

        init(_ executable: String, _ arguments: [String], stdin: Pipe? = nil) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = pipe
            process.standardError = pipe
            process.standardInput = stdin ?? FileHandle.nullDevice
            try process.run()
            reader = EndOfFileReader(pipe.fileHandleForReading)
        }
        private var reader: EndOfFileReader?

        var pid: Int32 { process.processIdentifier }
        var text: String { String(decoding: reader?.data ?? Data(), as: UTF8.self) }

        func waitFor(_ needle: String, count: Int = 1, timeout: Double = 60) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if text.components(separatedBy: needle).count - 1 >= count { return true }
                if !process.isRunning { break }
                usleep(20_000)
            }
            return text.components(separatedBy: needle).count - 1 >= count
        }

        /// Waits for the end (SIGKILL after `timeout`) and returns the exit status.
        @discardableResult
        func finish(timeout: Double = 30) -> Int32 {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            _ = reader?.finish()
            return process.terminationStatus
        }
    }

    /// Polls for the monitor's pid file (the jailer writes it before the monitor starts).
    static func monitorPID(_ base: Base, _ id: String, timeout: Double = 30) -> Int32? {
        let file = base.jail(id) + "/skiff-vmm.pid"
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return pid
            }
            usleep(10_000)
        }
        return nil
    }

    /// The fields of /proc/PID/status.
    static func status(_ pid: Int32) -> [String: String] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// Whether a path exists without following a final symbolic link.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The cgroup directories a VM with `id` gets on this host under the default parent, v1 or v2.
    static func cgroupDirectories(_ id: String) -> [String] {
        let v1 = ["cpu", "memory", "blkio"].map { "/sys/fs/cgroup/\($0)/skiff-vmm/\(id)" }
        return v1 + ["/sys/fs/cgroup/skiff-vmm/\(id)", "/sys/fs/cgroup/unified/skiff-vmm/\(id)"]
    }

    /// Stops `p` with SIGKILL if it still runs (cleanup after a failed expectation).
    static func kill9(_ p: Background) {
        if p.process.isRunning { kill(p.pid, SIGKILL) }
    }
}

/// Collects what a pipe delivers on a thread of its own until end of file.
final class EndOfFileReader: Sendable {
    private let collected = Mutex(Data())
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while case let d = handle.availableData, !d.isEmpty { collected.withLock { $0.append(d) } }
            done.signal()
        }
    }

    /// What arrived so far.
    var data: Data { collected.withLock { $0 } }

    /// Waits for end of file (at most `timeout` seconds, for a grandchild holding the pipe) and
    /// returns everything read.
    func finish(timeout: Double = 5) -> Data {
        _ = done.wait(timeout: .now() + timeout)
        return data
    }
}
