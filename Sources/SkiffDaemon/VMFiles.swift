import Foundation

/// Where one VM's files are: its directory under the data directory (disks the daemon made,
/// the cloud-init seed, the console log, the monitor's stderr) and its sockets under the run
/// directory (short paths: unix socket paths are limited to 107 bytes).
struct VMFiles: Sendable {
    let name: String
    let directory: String
    let runDirectory: String

    init(name: String, dataDirectory: String, runDirectory: String) {
        self.name = name
        self.directory = "\(dataDirectory)/vms/\(name)"
        self.runDirectory = runDirectory
    }

    var apiSocket: String { "\(runDirectory)/\(name).api" }
    var consoleSocket: String { "\(runDirectory)/\(name).console" }
    var vsockSocket: String { "\(runDirectory)/\(name).vsock" }
    var consoleLog: String { "\(directory)/console.log" }
    /// The monitor's stdout when it cannot write the console log itself.
    var monitorOutput: String { "\(directory)/monitor.out" }
    var monitorErrors: String { "\(directory)/monitor.err" }
    var seed: String { "\(directory)/cidata.img" }
    func disk(_ index: Int) -> String { "\(directory)/disk\(index).qcow2" }

    /// Longest socket path a sockaddr_un holds.
    static let maxSocketPath = 107

    func checkSocketPaths() throws(DaemonError) {
        for p in [apiSocket, consoleSocket, vsockSocket] where p.utf8.count > Self.maxSocketPath {
            throw DaemonError(.invalidRequest, "socket path \(p) is longer than \(Self.maxSocketPath) bytes: use a shorter run directory or VM name")
        }
    }
}
