import ArgumentParser
import ControlProtocol
import Foundation

/// `skiff snapshot …`.
public struct SnapshotCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Write snapshots of running VMs (restore one with 'skiff run --restore DIR').",
        subcommands: [Create.self])

    public init() {}

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause the VM, write its state and memory to a new directory, and resume it.",
            discussion: """
                The directory must not exist; it appears complete or not at all. --diff writes only the pages changed
                since the VM's previous snapshot (restoring it needs that snapshot too). --stop ends the VM afterwards.
                """)
        @OptionGroup var monitor: MonitorOptions
        @Argument(help: ArgumentHelp("New snapshot directory.", valueName: "dir"))
        var directory: String
        @Flag(name: .long, help: "Write only the pages changed since the previous snapshot.")
        var diff = false
        @Flag(name: .long, help: "Stop the VM after writing the snapshot.")
        var stop = false

        func run() throws {
            let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
            let reply = try monitor.send(.snapshot(SnapshotRequest(directory: absolute, diff: diff, stopAfter: stop)), timeout: 600)
            guard case .snapshot(let s) = reply else { throw ClientFailure("unexpected reply") }
            if monitor.output == .json { return try Output.json(s) }
            print("snapshot \(s.directory)\(s.diff ? " (diff)" : ""): \(s.pagesWritten) pages, memory file \(Output.bytes(s.memoryFileBytes)), state \(Output.bytes(s.stateFileBytes)), paused \(Output.milliseconds(s.pausedMilliseconds))\(s.resumed ? "" : ", VM not resumed")")
        }
    }
}
