/// The version `skiffd --version` prints: the release of the monitor and CLI it ships with
/// (a test checks that it equals `skiff --version`).
public enum DaemonVersion {
    public static let current = "0.4.0"
}

/// When the daemon runs monitors through `skiff-jailer`.
public enum JailerMode: String, Sendable, Codable, CaseIterable {
    /// When the daemon runs as root and the jailer exists.
    case auto
    /// Always: the daemon refuses to start without a usable jailer.
    case on
    /// Never: monitors run as the daemon's user, unconfined.
    case off
}

/// How skiffd runs: where it keeps things and its policies. Every field has a default that
/// works with no configuration file.
public struct DaemonConfiguration: Sendable, Codable, Equatable {
    /// The API's unix socket.
    public var socketPath = "/run/skiff/skiffd.sock"
    /// Group that owns the socket (mode 0660); nil keeps the daemon's.
    public var socketGroup: String?
    /// Database, VM directories, images.
    public var dataDirectory = "/var/lib/skiff"
    /// Monitor sockets (control and console); default: the API socket's directory + /vms.
    public var runDirectory: String?
    /// The monitor executable; default: skiff-vmm beside skiffd.
    public var monitorPath: String?
    /// Optional TCP listener ("127.0.0.1:8710"); needs `tokenFile`.
    public var tcpAddress: String?
    /// File whose first line is the bearer token TCP clients must send.
    public var tokenFile: String?
    /// TLS certificate and key (PEM) for the TCP listener.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// vCPUs that may be allocated per host CPU.
    public var cpuAllocationRatio: Double = 4.0
    /// Guest RAM that may be allocated per byte of host RAM.
    public var memoryAllocationRatio: Double = 1.0
    /// Host RAM kept out of the allocation (bytes).
    public var reservedMemory: UInt64 = 512 << 20
    /// Seconds a graceful stop waits for the guest before stopping it.
    public var stopTimeout: Double = 10
    /// Seconds a monitor has to open its control socket.
    public var startTimeout: Double = 15
    /// Largest request body (bytes).
    public var maxBodyBytes = 1 << 20
    /// Automatic ballooning under memory pressure.
    public var autoBalloon = true
    /// PSI memory "some avg10" (percent) above which the balloon policy reclaims.
    public var pressureHigh: Double = 10
    /// ... and below which it gives memory back.
    public var pressureLow: Double = 1
    /// Where the policy reads memory pressure (PSI format); default `/proc/pressure/memory`.
    /// Tests point it at a file they write.
    public var pressureFile: String?
    /// Seconds between policy rounds (balloon, KSM, metrics sampling).
    public var policyInterval: Double = 2
    /// Manage host KSM settings (run, pages_to_scan, sleep_millisecs) at start.
    public var manageKSM = false
    /// Whether monitors run confined by `skiff-jailer` (docs/jailer.md).
    public var jailer: JailerMode = .auto
    /// The jailer executable; default: skiff-jailer beside skiffd.
    public var jailerPath: String?
    /// Where jails are built (`<base>/skiff-vmm/<VM>/root`); default: the data directory + /jail.
    public var chrootBase: String?
    /// The first uid (and gid) given to a jailed VM; each VM gets its own.
    public var jailFirstUID: UInt32 = 300_000
    /// How many uids from `jailFirstUID` on are the daemon's to give out.
    public var jailUIDCount: UInt32 = 65_536

    public init() {}

    /// The jail base directory.
    public var resolvedChrootBase: String { chrootBase ?? dataDirectory + "/jail" }

    public var resolvedRunDirectory: String {
        if let runDirectory { return runDirectory }
        let dir = socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (dir.isEmpty ? "." : dir) + "/vms"
    }
}

import Foundation

extension DaemonConfiguration {
    /// Reads a JSON configuration file: any subset of the fields; the rest keep their defaults.
    public static func load(file: String) throws -> DaemonConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else { throw DaemonError(.invalidRequest, "cannot read \(file)") }
        guard data.count <= 1 << 20 else { throw DaemonError(.invalidRequest, "\(file) is larger than 1 MiB") }
        let defaults = try JSONEncoder().encode(DaemonConfiguration())
        guard var merged = try JSONSerialization.jsonObject(with: defaults) as? [String: Any],
              let given = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DaemonError(.invalidRequest, "\(file) is not a JSON object")
        }
        let unknown = Set(given.keys).subtracting(Self.fieldNames)
        guard unknown.isEmpty else { throw DaemonError(.invalidRequest, "unknown field(s) in \(file): \(unknown.sorted().joined(separator: ", "))") }
        for (k, v) in given { merged[k] = v }
        return try JSONDecoder().decode(DaemonConfiguration.self, from: JSONSerialization.data(withJSONObject: merged))
    }

    static let fieldNames: Set<String> = [
        "socketPath", "socketGroup", "dataDirectory", "runDirectory", "monitorPath", "tcpAddress", "tokenFile", "tlsCertificate", "tlsKey",
        "cpuAllocationRatio", "memoryAllocationRatio", "reservedMemory", "stopTimeout", "startTimeout", "maxBodyBytes", "autoBalloon", "pressureFile",
        "pressureHigh", "pressureLow", "policyInterval", "manageKSM", "jailer", "jailerPath", "chrootBase", "jailFirstUID", "jailUIDCount",
    ]
}
