import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI

/// `skiff images`: the images skiffd keeps as clone bases (`disks: [{clone: NAME}]`).
/// (`skiff image` is the local image toolbox, without a daemon.)
public struct ImagesCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "images", abstract: "List, import and delete the images skiffd keeps as clone bases.",
        subcommands: [ImagesListCommand.self, ImagesImportCommand.self, ImagesDeleteCommand.self], defaultSubcommand: ImagesListCommand.self)
    public init() {}
}

struct ImagesListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List skiffd's images.")
    @OptionGroup var server: DaemonOptions

    func run() throws {
        let format = server.output
        try server.run { c in
            switch try await c.client.listImages() {
            case .ok(let r):
                let images = try r.body.json
                if format == .json { return try Print.json(images) }
                var rows = [["NAME", "FORMAT", "SIZE", "PATH"]]
                for i in images { rows.append([i.name, i.format.rawValue, "\(i.sizeBytes >> 20) MiB", i.path]) }
                Print.table(rows)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

struct ImagesImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Copy a raw or qcow2 file into skiffd's images (a task with progress).")
    @Argument(help: "The image's name.") var name: String
    @Argument(help: "The file to copy (a regular file).") var source: String
    @Option(help: ArgumentHelp("raw or qcow2 (default: qcow2 if the file says so, else raw).", valueName: "format")) var format: String?
    @Flag(name: .customLong("no-wait"), help: "Return the task at once (its id; the task with --output json).") var noWait = false
    @OptionGroup var server: DaemonOptions

    func validate() throws {
        if let format, format != "raw", format != "qcow2" { throw ValidationError("--format must be raw or qcow2") }
    }

    func run() throws {
        let (name, source, noWait, output) = (self.name, absolutePath(self.source), self.noWait, server.output)
        let format = self.format.flatMap { Components.Schemas.ImageImport.FormatPayload(rawValue: $0) }
        try server.run { c in
            switch try await c.client.importImage(body: .json(.init(name: name, source: source, format: format))) {
            case .accepted(let t):
                try await follow(c, try t.body.json, noWait: noWait, format: output)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

struct ImagesDeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete an image no VM uses.")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions

    func run() throws {
        let (name, format) = (self.name, server.output)
        try server.run { c in
            switch try await c.client.deleteImage(path: .init(image: name)) {
            case .noContent: if format == .json { print("{}") } else { print("deleted image \(name)") }
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}
