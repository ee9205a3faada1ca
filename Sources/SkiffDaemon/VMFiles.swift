import Foundation

/// Where one VM's files are: its directory under the data directory (disks the daemon made,
/// the cloud-init seed, the console log, the monitor's stderr) and its sockets under the run
/// directory (short paths: unix socket paths are limited to 107 bytes) or, for a jailed
/// monitor, under its jail's `root/run`.
struct VMFiles: Sendable {
    let name: String
    let directory: String
    let runDirectory: String
    /// `<chroot base>/skiff-vmm/<name>` when the monitor runs jailed.
    let jailDirectory: String?

    init(name: String, dataDirectory: String, runDirectory: String, jailDirectory: String? = nil) {
        self.name = name
        self.directory = "\(dataDirectory)/vms/\(name)"
        self.runDirectory = runDirectory
        self.jailDirectory = jailDirectory
    }

    /// The jail's `/run` as the host sees it.
    var jailRun: String? { jailDirectory.map { "\($0)/root/run" } }

    static let jailAPISocket = "api.sock"
    static let jailConsoleSocket = "console.sock"
    static let jailVsockSocket = "vsock.sock"
    static let jailConsoleLog = "console.log"

    var apiSocket: String { jailRun.map { "\($0)/\(Self.jailAPISocket)" } ?? "\(runDirectory)/\(name).api" }
    var consoleSocket: String { jailRun.map { "\($0)/\(Self.jailConsoleSocket)" } ?? "\(runDirectory)/\(name).console" }
    var vsockSocket: String { jailRun.map { "\($0)/\(Self.jailVsockSocket)" } ?? "\(runDirectory)/\(name).vsock" }
    /// The log the monitor writes now.
    var consoleLog: String { jailRun.map { "\($0)/\(Self.jailConsoleLog)" } ?? "\(directory)/console.log" }
    /// A jailed VM's earlier runs' console output (its jail is rebuilt for every run).
    var consoleArchive: String { "\(directory)/console.log" }

    /// The names the monitor is given: host paths, or for a jailed monitor paths in its jail
    /// (the jailer places `/run/NAME` at `<root>/run/NAME`).
    var monitorAPISocket: String { jailDirectory == nil ? apiSocket : "/run/\(Self.jailAPISocket)" }
    var monitorConsoleSocket: String { jailDirectory == nil ? consoleSocket : "/run/\(Self.jailConsoleSocket)" }
    var monitorVsockSocket: String { jailDirectory == nil ? vsockSocket : "/run/\(Self.jailVsockSocket)" }
    var monitorConsoleLog: String { jailDirectory == nil ? consoleLog : "/run/\(Self.jailConsoleLog)" }

    /// The monitor's stdout when it cannot write the console log itself.
    var monitorOutput: String { "\(directory)/monitor.out" }
    var monitorErrors: String { "\(directory)/monitor.err" }
    var seed: String { "\(directory)/cidata.img" }
    func disk(_ index: Int) -> String { "\(directory)/disk\(index).qcow2" }

    /// Longest socket path a sockaddr_un holds.
    static let maxSocketPath = 107

    func checkSocketPaths() throws(DaemonError) {
        for p in [apiSocket, consoleSocket, vsockSocket] where p.utf8.count > Self.maxSocketPath {
            let hint = jailDirectory == nil ? "use a shorter run directory or VM name" : "use a shorter VM name or chroot base (--chroot-base)"
            throw DaemonError(.invalidRequest, "socket path \(p) is longer than \(Self.maxSocketPath) bytes: \(hint)")
        }
    }
}
