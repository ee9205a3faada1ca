#if canImport(Glibc)
import Glibc
#endif
import CSkiffJail

/// Stop signals received by the jailer, passed on to the monitor once it catches them.
nonisolated(unsafe) private var pendingTerm: sig_atomic_t = 0
nonisolated(unsafe) private var pendingInt: sig_atomic_t = 0
nonisolated(unsafe) private var pendingHup: sig_atomic_t = 0

/// `skiff-jailer`: builds one VM's jail and runs the monitor in it (see docs/jailer.md).
///
/// The jailer stays outside as the monitor's parent: it places the monitor in its cgroups,
/// passes stop signals on, exits with the monitor's status and removes the cgroups (and with
/// `--cleanup` the jail) afterwards.
public enum Jailer {
    /// Runs the jailer with the process arguments (without the program name) and exits.
    public static func main(_ arguments: [String]) -> Never {
        // What the caller left open stays open here, outside the jail: a caller may watch a
        // descriptor it gave this process for its end (Foundation's Process does). The child
        // closes every one of them before it execs the monitor.
        installStopHandlers()
        if arguments.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
            print(JailerOptions.usage)
            exit(0)
        }
        do throws(JailError) {
            let options = try JailerOptions.parse(arguments)
            exit(try run(options))
        } catch {
            printError("skiff-jailer: error: \(error.description)")
            exit(error.exitStatus)
        }
    }

    /// Builds the jail, starts the monitor in it and waits for it; returns its exit status.
    public static func run(_ options: JailerOptions) throws(JailError) -> Int32 {
        guard geteuid() == 0 else { throw .invalid("skiff-jailer must run as root (it creates namespaces, device nodes and cgroups)") }
        let spec = try JailSpec.make(options, jailerPath: selfPath())
        var netFD: Int32 = -1
        if let netns = options.netns {
            netFD = unsafe open(netns, O_RDONLY | O_CLOEXEC)
            guard netFD >= 0 else { throw .current("open the network namespace \(netns)") }
        }
        defer { if netFD >= 0 { close(netFD) } }

        try JailBuilder.build(spec)
        var groups: [String] = []
        func undo() {
            CgroupPlan.remove(groups)
            HostFiles.removeTree(spec.jailDirectory)
        }
        let child: Int32
        do throws(JailError) {
            groups = try spec.cgroups.create()
            var errorPipe: [Int32] = [-1, -1], syncPipe: [Int32] = [-1, -1]
            unsafe try JailError.from(skj_pipe(&errorPipe), "create a pipe")
            unsafe try JailError.from(skj_pipe(&syncPipe), "create a pipe")
            // Children of this process start in a new PID namespace, where the monitor is PID 1.
            try JailError.from(skj_unshare(SKJ_CLONE_NEWPID), "create a PID namespace")
            let pid = skj_fork()
            try JailError.from(pid, "fork")
            if pid == 0 {
                close(errorPipe[0])
                close(syncPipe[1])
                JailChild.run(spec, netFD: netFD, syncFD: syncPipe[0], errorFD: errorPipe[1])
            }
            child = pid
            close(errorPipe[1])
            close(syncPipe[0])
            if netFD >= 0 {
                close(netFD)
                netFD = -1
            }
            do throws(JailError) {
                try spec.cgroups.place(pid: pid)
                try HostFiles.write("\(pid)\n", to: spec.pidFile, create: 0o644)
            } catch {
                kill(pid, SIGKILL)
                _ = waitChild(pid)
                close(syncPipe[1])
                close(errorPipe[0])
                throw error
            }
            // Go on; the child reports a failure through the error pipe, or exec closes it.
            var go: UInt8 = 0x67
            _ = unsafe write(syncPipe[1], &go, 1)
            close(syncPipe[1])
            let message = readAll(errorPipe[0])
            close(errorPipe[0])
            if !message.isEmpty {
                _ = waitChild(pid)
                throw .invalid(message)
            }
        } catch {
            undo()
            throw error
        }
        let status = waitChild(child)
        CgroupPlan.remove(groups)
        unsafe unlink(spec.pidFile)
        if options.cleanup, let failure = HostFiles.removeTree(spec.jailDirectory) {
            printError("skiff-jailer: warning: --cleanup: \(failure)")
        }
        return status
    }

    /// Waits for the monitor, passing on stop signals; returns its exit status (128 + the
    /// signal number when a signal ended it).
    static func waitChild(_ pid: Int32) -> Int32 {
        while true {
            var status: Int32 = 0
            let pending = unsafe pendingTerm != 0 || pendingInt != 0 || pendingHup != 0
            let r = unsafe waitpid(pid, &status, pending ? WNOHANG : 0)
            if r == pid {
                let signal = status & 0x7f
                return signal == 0 ? (status >> 8) & 0xff : 128 + signal
            }
            if r < 0 && errno != EINTR { return 1 }
            forward(pid)
            if unsafe pendingTerm != 0 || pendingInt != 0 || pendingHup != 0 { usleep(10_000) }
        }
    }

    /// Sends each pending stop signal once the monitor takes it: catches it, or blocks it for
    /// the thread that waits for it with sigwait. The monitor is its PID namespace's init, and
    /// the kernel drops signals an init neither handles nor blocks: one sent before the
    /// monitor set itself up would be lost.
    private static func forward(_ pid: Int32) {
        let caught = takenSignals(pid)
        if unsafe pendingTerm != 0, caught & (1 << (UInt64(SIGTERM) - 1)) != 0 { kill(pid, SIGTERM); unsafe pendingTerm = 0 }
        if unsafe pendingInt != 0, caught & (1 << (UInt64(SIGINT) - 1)) != 0 { kill(pid, SIGINT); unsafe pendingInt = 0 }
        if unsafe pendingHup != 0, caught & (1 << (UInt64(SIGHUP) - 1)) != 0 { kill(pid, SIGHUP); unsafe pendingHup = 0 }
    }

    /// SigCgt | SigBlk of /proc/PID/status (its main thread's mask).
    static func takenSignals(_ pid: Int32) -> UInt64 {
        guard let status = HostFiles.readSmallFile("/proc/\(pid)/status") else { return 0 }
        var mask: UInt64 = 0
        for line in status.split(separator: "\n") where line.hasPrefix("SigCgt:") || line.hasPrefix("SigBlk:") {
            if let hex = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last { mask |= UInt64(hex, radix: 16) ?? 0 }
        }
        return mask
    }

    private static func installStopHandlers() {
        _ = skj_install_handler(SIGTERM) { _ in unsafe pendingTerm = 1 }
        _ = skj_install_handler(SIGINT) { _ in unsafe pendingInt = 1 }
        _ = skj_install_handler(SIGHUP) { _ in unsafe pendingHup = 1 }
    }

    private static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 16 {
            let n = unsafe chunk.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk.prefix(n)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// This executable's path (to find `skiff-vmm` beside it).
    static func selfPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments.first ?? "skiff-jailer" }
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Writes one line to stderr.
func printError(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    let bytes = Array(text.utf8)
    _ = unsafe bytes.withUnsafeBytes { unsafe write(2, $0.baseAddress, $0.count) }
}
