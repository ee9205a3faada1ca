import CHostProcess

#if canImport(Glibc)
import Glibc
#endif

/// How a process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)
    /// It ended while another process was its parent (a monitor re-attached after a daemon
    /// restart): the kernel does not tell us its status.
    case unknown

    /// Whether the process ended on its own terms with status 0.
    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let s): return "exited with status \(s)"
        case .signalled(let s): return "killed by signal \(s)\(s == SIGKILL ? " (SIGKILL)" : s == SIGTERM ? " (SIGTERM)" : "")"
        case .unknown: return "exited (status unknown: it was not this daemon's child)"
        }
    }
}

/// Starts processes detached from the caller: a new session, stdio on files (never pipes to the
/// caller, which may be killed and restarted while they run), optionally inside cgroups.
public enum Spawner {
    /// Starts `executable` with `arguments` (not including argv[0]).
    /// - Parameters:
    ///   - stdoutPath, stderrPath: files opened for appending (created 0640).
    ///   - cgroupProcFiles: `cgroup.procs` files the child joins before exec.
    /// - Returns: the child's identity.
    public static func spawn(executable: String, arguments: [String], environment: [String] = [],
                             stdoutPath: String, stderrPath: String,
                             cgroupProcFiles: [String] = []) throws(ProcessError) -> ProcessIdentity {
        let input = unsafe open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .fromErrno("open /dev/null") }
        defer { close(input) }
        let output = unsafe open(stdoutPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard output >= 0 else { throw .fromErrno("open \(stdoutPath)") }
        defer { close(output) }
        let errors = unsafe open(stderrPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard errors >= 0 else { throw .fromErrno("open \(stderrPath)") }
        defer { close(errors) }

        var err: Int32 = 0
        var step: Int32 = 0
        let pid: pid_t = unsafe withCStrings([executable] + arguments) { argv in
            unsafe withCStrings(environment) { envp in
                unsafe withConstCStrings(cgroupProcFiles) { cgroups in
                    unsafe chp_spawn(executable, argv, envp, input, output, errors, cgroups, Int32(cgroupProcFiles.count), &err, &step)
                }
            }
        }
        guard pid > 0 else {
            let what: String
            switch step {
            case 1: what = "setsid"
            case 2: what = "joining the cgroups"
            case 3: what = "setting up stdio"
            case 4: what = "exec \(executable)"
            case 5: what = "fork"
            default: what = "pipe"
            }
            throw .fromErrno("cannot start \(executable): \(what)", err)
        }
        // The child runs; read its start time (it exists until reaped, which only we do).
        guard let stat = ProcessIdentity.readStat(pid: pid) else {
            throw ProcessError("cannot read /proc/\(pid)/stat of the process just started")
        }
        return ProcessIdentity(pid: pid, startTime: stat.startTime)
    }

    /// Calls `body` with a NULL-terminated array of C strings.
    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = unsafe strings.map { unsafe strdup($0) }
        unsafe pointers.append(nil)
        defer { for unsafe p in unsafe pointers { unsafe free(p) } }
        return unsafe pointers.withUnsafeBufferPointer { unsafe body($0.baseAddress!) }
    }

    static func withConstCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = unsafe strings.map { unsafe strdup($0) }
        unsafe pointers.append(nil)
        defer { for unsafe p in unsafe pointers { unsafe free(p) } }
        return unsafe pointers.withUnsafeBufferPointer { buffer in
            unsafe buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { unsafe body($0) }
        }
    }
}
