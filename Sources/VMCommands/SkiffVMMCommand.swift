import ArgumentParser
import VMM

/// `skiff-vmm`: the per-VM monitor process. It runs exactly one VM and exits with it.
public struct SkiffVMMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: MonitorExec.commandName,
        abstract: "Run one virtual machine (the per-VM monitor process).",
        discussion: VMOptions.discussion,
        version: SkiffVersion.current)

    @OptionGroup var options: VMOptions

    public init() {}

    public func validate() throws {
        _ = try options.makeSource()
        _ = try options.consoleSettings()
    }

    public func run() throws {
        throw ExitCode(VMLauncher.run(try options.makeSource(), apiSocket: options.apiSocket, console: try options.consoleSettings()))
    }
}
