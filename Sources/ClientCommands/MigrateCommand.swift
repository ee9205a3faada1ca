import ArgumentParser
import ControlProtocol
import Foundation
import Units

/// `skiff migrate`: moves a running VM to another host's `skiff run --incoming`.
public struct MigrateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a running VM to a target waiting with 'skiff run --incoming URL'.",
        discussion: """
            Memory is copied while the VM runs (pre-copy rounds with the KVM dirty log) until what is left fits the
            downtime target, then the VM pauses, the rest and its device state travel, and the target continues it.
            Returns when the move is done; the source monitor then exits with status 0. If anything fails, the VM
            keeps running here. Disks are on storage both hosts see at the same paths (the image locks are handed
            over at switch-over), or travel with the VM with --copy-disks (only what each image holds itself: an
            overlay sends its own clusters, its backing file must be on the target).
            'skiff migrate NAME --to TARGET' moves a VM between two skiffd daemons instead ('skiff migrate NAME --to X --help').
            """)

    @OptionGroup var monitor: MonitorOptions

    @Argument(help: ArgumentHelp("Target: tcp://HOST:PORT or unix:PATH.", valueName: "url"))
    var destination: String

    @Option(name: .customLong("max-downtime"), help: ArgumentHelp("Longest pause at switch-over, in milliseconds.", valueName: "ms"))
    var maxDowntime: UInt32 = 50

    @Option(name: .long, help: ArgumentHelp(
        "Cap on the stream's rate, a size a second (a number is MiB, e.g. 100 or 1G; default: none).", valueName: "size"))
    var bandwidth: String?

    @Flag(name: .customLong("no-auto-converge"), help: "Do not throttle vCPUs when the guest dirties memory faster than it is sent.")
    var noAutoConverge = false

    @Flag(name: .customLong("copy-disks"), help: "Copy the disks too (the target has no shared storage; it creates them where its --disk options say).")
    var copyDisks = false

    @Option(name: .long, help: ArgumentHelp("Give up after this many seconds.", valueName: "seconds"))
    var timeout: UInt32 = 3600

    @Flag(name: .long, help: "Print progress on stderr while migrating.")
    var progress = false

    public init() {}

    public func validate() throws {
        guard MigrationEndpoint(destination) != nil else { throw ValidationError("the target must be tcp://HOST:PORT or unix:PATH") }
        guard maxDowntime >= 1 else { throw ValidationError("--max-downtime must be at least 1 ms") }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 s") }
        _ = try bandwidthLimit()
    }

    /// `--bandwidth` in bytes a second.
    func bandwidthLimit() throws(ValidationError) -> UInt64? {
        guard let bandwidth else { return nil }
        let bytes: UInt64
        do {
            bytes = try ByteSize.parse(bandwidth, defaultUnitShift: ByteSize.mebibytes)
        } catch {
            throw ValidationError("--bandwidth: \(error)")
        }
        guard bytes >= 1 << 20 else { throw ValidationError("--bandwidth must be at least 1M") }
        return bytes
    }

    public func run() throws {
        guard let endpoint = MigrationEndpoint(destination) else { throw ValidationError("the target must be tcp://HOST:PORT or unix:PATH") }
        let request = MigrationRequest(destination: endpoint, maxDowntimeMilliseconds: maxDowntime,
                                       bandwidthLimit: try bandwidthLimit(), autoConverge: !noAutoConverge,
                                       copyDisks: copyDisks, timeoutSeconds: timeout)
        // One connection for the whole move: the source monitor exits right after a successful
        // one, and the final report comes back on this connection before it does.
        let client: ControlClient
        do {
            client = try ControlClient(path: monitor.apiSocket)
            _ = try client.send(.migrate(request))
        } catch {
            throw ClientFailure(error.message)
        }
        while true {
            let reply: ControlReply
            do {
                reply = try client.send(.waitForMigration(seconds: 1), timeout: 30)
            } catch {
                throw ClientFailure(error.code == .transport ? "lost the source monitor before the migration finished: \(error.message)" : error.message)
            }
            guard case .migration(let p) = reply else { throw ClientFailure("unexpected reply") }
            switch p.phase {
            case .completed:
                if monitor.output == .json { return try Output.json(p) }
                print("migrated to \(p.destination): \(p.rounds) rounds, \(Output.bytes(p.bytesSent)) sent\(p.diskBytesSent > 0 ? " (disks \(Output.bytes(p.diskBytesSent)))" : "") (\(p.pagesSent) pages, \(p.zeroPages) zero, \(p.pagesSkippedByBase) already on the target), downtime \(Output.milliseconds(p.downtimeMilliseconds ?? 0)), total \(Output.milliseconds(p.totalMilliseconds))")
                return
            case .failed, .cancelled:
                throw ClientFailure("migration \(p.phase.rawValue): \(p.error ?? "unknown reason"); the VM keeps running here")
            case .none:
                throw ClientFailure("the monitor reports no migration")
            case .connecting, .precopy, .stopAndCopy:
                if progress {
                    FileHandle.standardError.write(Data("migrate: \(p.phase.rawValue) round \(p.rounds) sent \(Output.bytes(p.bytesSent)) remaining \(p.remainingPages) pages throttle \(p.throttlePercent)%\n".utf8))
                }
            }
        }
    }
}
