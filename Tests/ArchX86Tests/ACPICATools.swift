import Foundation
import Testing

/// Runs the ACPICA command-line tools (`iasl`, `acpiexec` from the acpica-tools package).
///
/// When a tool is missing the tests that need it are skipped with a reason, except under
/// `CI=true`, where they run and fail.
enum ACPICATools {
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Full path of `tool` on `PATH`, if installed.
    static func path(of tool: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories {
            let candidate = "\(directory)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Whether tests needing `iasl` and `acpiexec` should run (installed, or required by CI).
    static var shouldRun: Bool {
        isCI || (path(of: "iasl") != nil && path(of: "acpiexec") != nil)
    }

    struct Result {
        let status: Int32
        let output: String
    }

    /// Runs `tool` with `arguments` in `directory`, capturing stdout and stderr together.
    static func run(_ tool: String, _ arguments: [String], in directory: URL) throws -> Result {
        let executable = try #require(path(of: tool), "\(tool) is not installed (apt-get install acpica-tools)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-acpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
