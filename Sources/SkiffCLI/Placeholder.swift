import ArgumentParser

/// The `skiff` command line.
public struct SkiffCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "skiff", abstract: "Skiff virtual machines.")
    public init() {}
}

/// The per-VM monitor process.
public struct SkiffVMMCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "skiff-vmm", abstract: "Runs one virtual machine.")
    public init() {}
}
