#if canImport(Glibc)
import Glibc
#endif

/// `skiff run` as the monitor itself: `skiff` replaces itself with the `skiff-vmm` beside it
/// before doing anything else, so a VM started from the CLI starts as fast as one started by
/// the monitor (the `skiff` binary also carries the daemon client and its libraries, which
/// cost ~3 ms of CPU between exec and the first serial byte). Help and version requests stay
/// in `skiff`, which knows the whole command tree.
public enum MonitorExec {
    /// The name the monitor is given as argv[0], and then uses in its usage and error lines.
    public static let runName = "skiff run"

    /// Execs `skiff-vmm` with `arguments` (those after `run`) when it sits beside this
    /// executable; returns only when it does not (or exec fails), to run in this process.
    public static func execMonitorIfBeside(arguments: [String]) {
        for a in arguments where a == "-h" || a == "--help" || a == "--version" || a == "help" { return }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return }
        let monitor = String(exe[...slash]) + "skiff-vmm"
        guard unsafe access(monitor, X_OK) == 0 else { return }
        var argv: [UnsafeMutablePointer<CChar>?] = unsafe ([runName] + arguments).map { unsafe strdup($0) }
        unsafe argv.append(nil)
        unsafe execv(monitor, argv)
        for unsafe p in unsafe argv { unsafe free(p) }
    }

    /// The command name the monitor shows: `skiff run` when `skiff` exec'd it so, else `skiff-vmm`.
    static var commandName: String {
        unsafe CommandLine.unsafeArgv[0].map { unsafe String(cString: $0) } == runName ? runName : "skiff-vmm"
    }
}
