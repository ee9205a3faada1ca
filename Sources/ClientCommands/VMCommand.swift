import ArgumentParser
import ControlProtocol
import Foundation
import Units

/// `skiff vm …`: talk to a running VM's monitor.
public struct VMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Control a running VM through its monitor's control socket.",
        subcommands: [Status.self, Pause.self, Resume.self, Balloon.self, BalloonStats.self, Metrics.self, RateLimit.self,
                      PowerButton.self, Stop.self])

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
        @Argument(help: ArgumentHelp(
            "Target: the memory taken from the guest, whole MiB (a number is MiB, e.g. 512 or 1G).", valueName: "size"))
        var target: String

        /// The target in MiB.
        func targetMiB() throws(ValidationError) -> UInt64 {
            let bytes: UInt64
            do {
                bytes = try ByteSize.parse(target, defaultUnitShift: ByteSize.mebibytes)
            } catch {
                throw ValidationError("balloon target: \(error)")
            }
            guard bytes % (1 << 20) == 0 else { throw ValidationError("the balloon target must be whole MiB") }
            return bytes >> 20
        }

        func validate() throws { _ = try targetMiB() }
        func run() throws { _ = try monitor.send(.setBalloon(targetMiB: try targetMiB())) }
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

    struct RateLimit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rate-limit",
            abstract: "Set or clear a disk's or network device's rate limits (new buckets start full).",
            discussion: "Devices are named disk0, disk1, … and net0, net1, … in the order the VM was given them. Without --bw and --iops the device is unlimited again.")
        @OptionGroup var monitor: MonitorOptions
        @Argument(help: ArgumentHelp("diskN or netN.", valueName: "device"))
        var device: String
        @Option(name: .long, help: ArgumentHelp("Bytes a second (K, M, G suffixes).", valueName: "size"))
        var bw: String?
        @Option(name: .long, help: ArgumentHelp("Requests (disk) or frames (network) a second.", valueName: "rate"))
        var iops: UInt64?
        @Option(name: .customLong("bw-burst"), help: ArgumentHelp("Bytes allowed once, on top of the rate.", valueName: "size"))
        var bwBurst: String?
        @Option(name: .customLong("iops-burst"), help: ArgumentHelp("Operations allowed once, on top of the rate.", valueName: "count"))
        var iopsBurst: UInt64?
        @Option(name: .long, help: ArgumentHelp("For a network device: rx (what the guest receives), tx or both.", valueName: "rx|tx|both"))
        var direction: String = "both"

        func validate() throws {
            guard ["rx", "tx", "both"].contains(direction) else { throw ValidationError("--direction must be rx, tx or both") }
            if bwBurst != nil && bw == nil { throw ValidationError("--bw-burst needs --bw") }
            if iopsBurst != nil && iops == nil { throw ValidationError("--iops-burst needs --iops") }
            if iops == 0 { throw ValidationError("--iops must be at least 1") }
        }

        func run() throws {
            func size(_ text: String, _ flag: String) throws -> UInt64 {
                do {
                    let n = try ByteSize.parse(text, defaultUnitShift: 0)
                    guard n > 0 else { throw ValidationError("\(flag) must be at least 1") }
                    return n
                } catch let e as ByteSize.Error {
                    throw ValidationError("\(flag): \(e.description)")
                }
            }
            let bandwidth = try bw.map { TokenBucket.rate(try size($0, "--bw"), burst: try bwBurst.map { try size($0, "--bw-burst") } ?? 0) }
            let operations = iops.map { TokenBucket.rate($0, burst: iopsBurst ?? 0) }
            let d: RateLimits.Direction = direction == "rx" ? .receive : direction == "tx" ? .transmit : .both
            _ = try monitor.send(.setRateLimit(device: device, limits: RateLimits(bandwidth: bandwidth, operations: operations, direction: d)))
        }
    }

    struct PowerButton: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "power-button", abstract: "Press the ACPI power button (the guest decides what to do).")
        @OptionGroup var monitor: MonitorOptions
        func run() throws { _ = try monitor.send(.powerButton) }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the VM now (no guest shutdown); its monitor exits.")
        @OptionGroup var monitor: MonitorOptions
        func run() throws { _ = try monitor.send(.stop) }
    }
}
