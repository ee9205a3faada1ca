import Foundation
import Testing

/// QEMU is the reference for the multiboot command lines a guest sees (its `-kernel`, `-append`
/// and `-initrd` options): Skiff, given the same file names and arguments, must hand over the same
/// bytes. Both run the guest kit's `cmdline.elf` and `bootinfo.elf` from the repository root with
/// relative paths, and the lines the guests print are compared.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason),
       .enabled(if: QEMUSystem.shouldRun, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"))
struct MultibootConventionTests {
    /// Runs `executable` in the repository root; returns stdout (SIGKILL after 60 s).
    static func output(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = GuestKit.root
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let watchdog = DispatchWorkItem { kill(process.processIdentifier, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        return String(decoding: data, as: UTF8.self)
    }

    /// The lines about command lines a guest printed, from their keyword on (QEMU's firmware
    /// leaves terminal escapes in front of the first line) and without module addresses (the two
    /// place modules differently).
    static func commandLineLines(_ text: String) -> [String] {
        var lines: [String] = []
        for line in text.split(separator: "\n") {
            for keyword in ["module ", "cmdline \"", "argc ", "argv["] {
                guard let start = line.range(of: keyword) else { continue }
                var kept = String(line[start.lowerBound...])
                if keyword == "module " {
                    kept = kept.split(separator: " ").filter { !$0.hasPrefix("0x") }.joined(separator: " ")
                }
                lines.append(kept)
                break
            }
        }
        return lines
    }

    static func qemu(_ kernel: String, _ append: String, initrd: String? = nil) throws -> String {
        let accel = KVMAvailability.openError == nil ? "kvm" : "tcg"
        var arguments = ["-accel", accel, "-M", "pc", "-m", "64", "-nographic", "-serial", "stdio", "-display", "none",
                         "-monitor", "none", "-net", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                         "-kernel", kernel, "-append", append]
        if let initrd { arguments += ["-initrd", initrd] }
        return try output(try #require(QEMUSystem.path), arguments)
    }

    static func skiff(_ arguments: [String]) throws -> String {
        try output(CLITests.binDirectory.appendingPathComponent("skiff-vmm").path, ["--memory", "64M"] + arguments)
    }

    @Test(arguments: ["first second=2  third", "", "first"])
    func kernelCommandLineMatchesQEMU(_ append: String) throws {
        let kernel = "guests/build/cmdline.elf"
        _ = try GuestKit.path("cmdline.elf")
        let reference = Self.commandLineLines(try Self.qemu(kernel, append))
        let skiff = Self.commandLineLines(try Self.skiff(["--kernel", kernel, "--cmdline", append]))
        #expect(!reference.isEmpty)
        #expect(skiff == reference, "QEMU: \(reference)\nSkiff: \(skiff)")
        #expect(reference.first == "cmdline \"\(kernel) \(append)\"")
    }

    @Test func moduleCommandLinesMatchQEMU() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-mb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("one.bin").path, second = dir.appendingPathComponent("two.bin").path
        try Data("first module".utf8).write(to: URL(fileURLWithPath: first))
        try Data("second module".utf8).write(to: URL(fileURLWithPath: second))
        let kernel = "guests/build/bootinfo.elf"
        _ = try GuestKit.path("bootinfo.elf")
        let reference = Self.commandLineLines(try Self.qemu(kernel, "x=1", initrd: "\(first) arg one,\(second)"))
        let skiff = Self.commandLineLines(try Self.skiff(["--kernel", kernel, "--cmdline", "x=1", "--initrd", first, "--module", "\(second)"]))
        let withArguments = Self.commandLineLines(try Self.skiff(["--kernel", kernel, "--cmdline", "x=1", "--module", "\(first) arg one", "--module", second]))
        #expect(reference.count == 3, "\(reference)")
        // --initrd cannot carry arguments: compare its module line without them.
        #expect(skiff.count == reference.count)
        #expect(skiff.first == reference.first)
        #expect(withArguments == reference, "QEMU: \(reference)\nSkiff: \(withArguments)")
    }
}

/// Where QEMU's system emulator is; required in CI.
enum QEMUSystem {
    static let path: String? = ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var shouldRun: Bool { KVMAvailability.inCI || path != nil }
}
