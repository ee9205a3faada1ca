import Foundation
import Testing

/// Runs host tools (as, objdump) for tests that cross-check against binutils.
enum HostTools {
    /// Whether CI requires the tools (CI=true): a missing tool then fails instead of skipping.
    static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Whether tests needing `tools` run: always in CI (where a missing tool fails them), elsewhere
    /// only when every tool is installed.
    static func shouldRun(_ tools: String...) -> Bool {
        required || tools.allSatisfy { find($0) != nil }
    }

    /// Why such a test was skipped.
    static func skipReason(_ tools: String...) -> Comment {
        Comment(rawValue: "needs \(tools.joined(separator: ", ")) (binutils, python3); missing: \(tools.filter { find($0) == nil }.joined(separator: ", "))")
    }

    /// The path of `name` on PATH, if present.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a tool and returns its standard output, or nil if it failed.
    static func run(_ tool: String, _ arguments: [String]) -> String? {
        guard let path = find(tool) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Disassembles raw bytes with objdump (Intel syntax): one (bytes, text) pair per instruction.
    static func objdump(_ bytes: [UInt8], machine: String = "i386:x86-64") -> [(bytes: [UInt8], text: String)]? {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("x86emu-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        guard (try? Data(bytes).write(to: file)) != nil else { return nil }
        guard let out = run("objdump", ["-D", "-b", "binary", "-m", machine, "-M", "intel", "--insn-width=15", file.path]) else { return nil }
        var result: [(bytes: [UInt8], text: String)] = []
        for line in out.split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[0].trimmingCharacters(in: .whitespaces).hasSuffix(":") else { continue }
            let data = parts[1].split(separator: " ").compactMap { UInt8($0, radix: 16) }
            result.append((data, parts[2].split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")))
        }
        return result
    }
}
