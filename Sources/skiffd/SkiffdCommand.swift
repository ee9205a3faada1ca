import ArgumentParser
import Foundation
import Logging
import SkiffDaemon

/// `skiffd`: the Skiff host daemon.
@main
struct SkiffdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiffd",
        abstract: "The Skiff host daemon: VMs from specs, one skiff-vmm per VM, a REST API on a unix socket.",
        discussion: """
            Runs with no configuration file: the API on /run/skiff/skiffd.sock, state in /var/lib/skiff. VMs keep \
            running when skiffd stops or is killed; a new skiffd re-attaches to them. See docs/skiffd.md.
            Exit status: 64 for usage errors, 1 for runtime errors.
            """,
        version: DaemonVersion.current)

    @Option(help: ArgumentHelp("The API's unix socket.", valueName: "path")) var socket: String?
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Database, VM files and images.", valueName: "dir")) var dataDir: String?
    @Option(name: .customLong("run-dir"), help: ArgumentHelp("Monitor sockets (default: the socket's directory + /vms).", valueName: "dir"))
    var runDir: String?
    @Option(help: ArgumentHelp("The monitor executable (default: skiff-vmm beside skiffd).", valueName: "path")) var monitor: String?
    @Option(name: .customLong("socket-group"), help: ArgumentHelp("Group owning the socket (mode 0660).", valueName: "name"))
    var socketGroup: String?
    @Option(help: ArgumentHelp("Also serve the API on TCP (bearer token required).", valueName: "host:port")) var tcp: String?
    @Option(name: .customLong("token-file"), help: ArgumentHelp("File whose first line is the TCP bearer token.", valueName: "path"))
    var tokenFile: String?
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("TLS certificate chain (PEM) for --tcp.", valueName: "path")) var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: ArgumentHelp("TLS private key (PEM) for --tcp.", valueName: "path")) var tlsKey: String?
    @Option(name: .customLong("cpu-ratio"), help: ArgumentHelp("vCPUs allocatable per host CPU (default 4).", valueName: "ratio"))
    var cpuRatio: Double?
    @Option(name: .customLong("memory-ratio"), help: ArgumentHelp("Guest RAM allocatable per byte of host RAM (default 1).", valueName: "ratio"))
    var memoryRatio: Double?
    @Option(name: .customLong("reserved-memory"), help: ArgumentHelp("Host RAM kept out of allocation, in MiB (default 512).", valueName: "MiB"))
    var reservedMemory: UInt64?
    @Option(help: ArgumentHelp("A JSON file with DaemonConfiguration fields (optional; flags win).", valueName: "path")) var config: String?
    @Flag(name: .customLong("no-auto-balloon"), help: "Do not inflate balloons under host memory pressure.") var noAutoBalloon = false
    @Flag(name: .customLong("manage-ksm"), help: "Turn host KSM on and tune it while VMs run.") var manageKSM = false
    @Option(help: ArgumentHelp("Run monitors through skiff-jailer: auto (when root and the jailer exists), on, off (default auto).",
                               valueName: "mode")) var jailer: String?
    @Option(name: .customLong("jailer-path"), help: ArgumentHelp("The jailer executable (default: skiff-jailer beside skiffd).", valueName: "path"))
    var jailerPath: String?
    @Option(name: .customLong("chroot-base"), help: ArgumentHelp("Where jails are built (default: the data directory + /jail).", valueName: "dir"))
    var chrootBase: String?
    @Option(name: .customLong("jail-uids"), help: ArgumentHelp("The uids (and gids) given to jailed VMs, one each (default 300000-365535).",
                                                               valueName: "first-last"))
    var jailUIDs: String?
    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    func run() async throws {
        var configuration = DaemonConfiguration()
        if let config {
            do {
                configuration = try DaemonConfiguration.load(file: config)
            } catch {
                throw ValidationError("--config \(config): \(error)")
            }
        }
        if let socket { configuration.socketPath = socket }
        if let dataDir { configuration.dataDirectory = dataDir }
        if let runDir { configuration.runDirectory = runDir }
        if let monitor { configuration.monitorPath = monitor }
        if let socketGroup { configuration.socketGroup = socketGroup }
        if let tcp { configuration.tcpAddress = tcp }
        if let tokenFile { configuration.tokenFile = tokenFile }
        if let tlsCert { configuration.tlsCertificate = tlsCert }
        if let tlsKey { configuration.tlsKey = tlsKey }
        if let cpuRatio { configuration.cpuAllocationRatio = cpuRatio }
        if let memoryRatio { configuration.memoryAllocationRatio = memoryRatio }
        if let reservedMemory { configuration.reservedMemory = reservedMemory << 20 }
        if noAutoBalloon { configuration.autoBalloon = false }
        if manageKSM { configuration.manageKSM = true }
        if let jailer {
            guard let mode = JailerMode(rawValue: jailer) else { throw ValidationError("--jailer must be auto, on or off (got '\(jailer)')") }
            configuration.jailer = mode
        }
        if let jailerPath { configuration.jailerPath = jailerPath }
        if let chrootBase { configuration.chrootBase = chrootBase }
        if let jailUIDs {
            let parts = jailUIDs.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let first = UInt32(parts[0]), let last = UInt32(parts[1]), first > 0, last >= first, last < UInt32.max else {
                throw ValidationError("--jail-uids must be FIRST-LAST with 0 < FIRST <= LAST (got '\(jailUIDs)')")
            }
            configuration.jailFirstUID = first
            configuration.jailUIDCount = last - first + 1
        }

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "skiffd")
        let monitorPath = configuration.monitorPath ?? Self.besideSelf("skiff-vmm")
        guard FileManager.default.isExecutableFile(atPath: monitorPath) else {
            throw ValidationError("the monitor \(monitorPath) is not an executable file (give --monitor)")
        }
        signal(SIGPIPE, SIG_IGN)
        // SIGTERM and SIGINT start the servers' graceful shutdown; requests that never end by
        // themselves (an event stream, a console) must not keep the daemon up: after a grace
        // period it exits anyway. The VMs keep running either way; the next skiffd re-attaches.
        let deadlines = [Int32(SIGTERM), Int32(SIGINT)].map { (number: Int32) -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                logger.notice("signal \(number): stopping; exiting in at most \(Int(Self.shutdownGrace)) s")
                DispatchQueue.global().asyncAfter(deadline: .now() + Self.shutdownGrace) {
                    logger.notice("requests still open after \(Int(Self.shutdownGrace)) s: exiting")
                    Foundation.exit(0)
                }
            }
            source.resume()
            return source
        }
        defer { deadlines.forEach { $0.cancel() } }
        let supervisor = try Supervisor(configuration: configuration, monitorPath: monitorPath,
                                        jailerPath: configuration.jailerPath ?? Self.besideSelf("skiff-jailer"), logger: logger)
        supervisor.metrics.bootstrap()
        await supervisor.reattach()
        supervisor.startPolicies()
        try await DaemonServer(supervisor: supervisor, logger: logger).run()
        await supervisor.shutdown()
    }

    /// Seconds open requests get to finish after SIGTERM or SIGINT.
    static let shutdownGrace: Double = 3

    /// A file in the directory of this executable.
    static func besideSelf(_ name: String) -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/" + name
    }
}

