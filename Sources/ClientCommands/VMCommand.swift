import ArgumentParser
import ControlProtocol
import Foundation

/// `skiff vm …`: talk to a running VM's monitor.
public struct VMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Control a running VM through its monitor's control socket.",
        subcommands: [Status.self, Pause.self, Resume.self, Balloon.self, BalloonStats.self, Metrics.self])

    public init() {}

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the VM's run state and identity.")
        @OptionGroup var monitor: MonitorOptions

        func run() throws {
            guard case .status(let s) = try monitor.send(.status) else { throw ClientFailure("unexpected reply") }
            if monitor.output == .json { return try Output.json(s) }
            print("state: \(s.state.rawValue)")
            print("vcpus: \(s.vcpus)")
            print("memory: \(Output.bytes(s.memoryBytes))")
            print(String(format: "uptime: %.1f s", s.uptimeSeconds))
            if let r = s.restoredFrom { print("restored-from: \(r)") }
            if let g = s.generationID { print("generation-id: \(g)") }
            if s.migrating { print("migrating: yes") }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the VM's vCPUs and quiesce its devices.")
        @OptionGroup var monitor: MonitorOptions
        func run() throws { _ = try monitor.send(.pause) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Continue a paused VM.")
        @OptionGroup var monitor: MonitorOptions
        func run() throws { _ = try monitor.send(.resume) }
    }

    struct Balloon: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the balloon's target size.")
        @OptionGroup var monitor: MonitorOptions
        @Argument(help: ArgumentHelp("Target in MiB (memory taken from the guest).", valueName: "mib"))
        var target: UInt64
        func run() throws { _ = try monitor.send(.setBalloon(targetMiB: target)) }
    }

    struct BalloonStats: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "balloon-stats", abstract: "Show the balloon and the guest's memory statistics.")
        @OptionGroup var monitor: MonitorOptions

        func run() throws {
            guard case .balloon(let b) = try monitor.send(.balloonStatistics) else { throw ClientFailure("unexpected reply") }
            if monitor.output == .json { return try Output.json(b) }
            print("target-pages \(b.targetPages)")
            print("actual-pages \(b.actualPages)")
            print("target-mib \(UInt64(b.targetPages) / 256)")
            print("actual-mib \(UInt64(b.actualPages) / 256)")
            print("inflated-pages \(b.inflatedPages)")
            print("deflated-pages \(b.deflatedPages)")
            print("reported-pages \(b.reportedPages)")
            print("rejected \(b.rejected)")
            print("statistics-updates \(b.statisticsUpdates)")
            for m in b.statistics { print("\(m.name) \(m.value)") }
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the VM's counters (exits, emulation assist, console).")
        @OptionGroup var monitor: MonitorOptions

        func run() throws {
            guard case .metrics(let list) = try monitor.send(.metrics) else { throw ClientFailure("unexpected reply") }
            if monitor.output == .json { return try Output.json(list) }
            for m in list { print("\(m.name) \(m.value)") }
        }
    }
}
