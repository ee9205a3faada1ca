import ArgumentParser
import Foundation
import SkiffCLI
import Storage
import Testing
@testable import VMCommands
@testable import VMM

/// Exit statuses as documented (README, `--help`): 64 (EX_USAGE) for usage errors — unknown
/// options, malformed and out-of-range values, options that cannot be combined — and 1 for
/// runtime errors, from every command of `skiff` and `skiff-vmm`. `skiff image` has its own
/// table in ImageCLIConventionTests.
struct ExitStatusCLITests {
    /// Tool and arguments; `K` stands for a file that exists (never booted: the error comes first).
    static let usageErrors: [(String, [String])] = [
        ("skiff", ["frobnicate"]),
        ("skiff", ["run"]),
        ("skiff", ["run", "--kernel", "K", "--frobnicate"]),
        ("skiff", ["run", "--kernel"]),
        ("skiff", ["run", "--kernel", "K", "--memory", "lots"]),
        ("skiff", ["run", "--kernel", "K", "--memory", "4K"]),
        ("skiff", ["run", "--kernel", "K", "--memory", "1T"]),
        ("skiff", ["run", "--kernel", "K", "--memory", "1.1K"]),
        ("skiff", ["run", "--kernel", "K", "--memory", "99999999999999999999"]),
        ("skiff", ["run", "--kernel", "K", "--cpus", "0"]),
        ("skiff", ["run", "--kernel", "K", "--cpus", "255"]),
        ("skiff", ["run", "--kernel", "K", "--cpus", "two"]),
        ("skiff", ["run", "--kernel", "K", "--cpu-template", "fastest"]),
        ("skiff", ["run", "--kernel", "K", "--on-reboot", "explode"]),
        ("skiff", ["run", "--kernel", "K", "--kernel-format", "elf"]),
        ("skiff", ["run", "--kernel", "K", "--emulation-assist", "maybe"]),
        ("skiff", ["run", "--kernel", "K", "--console", "tty"]),
        ("skiff", ["run", "--kernel", "K", "--ksm", "maybe"]),
        ("skiff", ["run", "--kernel", "K", "--serial", "tty"]),
        ("skiff", ["run", "--kernel", "K", "--serial", "file="]),
        ("skiff", ["run", "--kernel", "K", "--console-log-size", "1K"]),
        ("skiff", ["run", "--kernel", "K", "--console-log-size", "2T"]),
        ("skiff", ["run", "--kernel", "K", "--console-log-size", "big"]),
        ("skiff", ["run", "--kernel", "K", "--disk", ""]),
        ("skiff", ["run", "--kernel", "K", "--disk", "d.img,format=vmdk"]),
        ("skiff", ["run", "--kernel", "K", "--disk", "d.img,bw=0"]),
        ("skiff", ["run", "--kernel", "K", "--disk", "d.img,bw=fast"]),
        ("skiff", ["run", "--kernel", "K", "--disk", "d.img,bw=2T"]),
        ("skiff", ["run", "--kernel", "K", "--disk", "d.img,serial=123456789012345678901"]),
        ("skiff", ["run", "--kernel", "K", "--net", "mac=02:00:00:00:00:01"]),
        ("skiff", ["run", "--kernel", "K", "--net", "tap=t0,mac=zz"]),
        ("skiff", ["run", "--kernel", "K", "--vsock", "cid=2,socket=/tmp/v.sock"]),
        ("skiff", ["run", "--kernel", "K", "--vsock", "cid=3"]),
        ("skiff", ["run", "--kernel", "K", "--balloon-deflate-on-oom"]),
        ("skiff", ["run", "--kernel", "K", "--restore", "/snap"]),
        ("skiff", ["run", "--incoming", "ftp://host"]),
        ("skiff", ["run", "--restore", "/snap", "--incoming-base", "/base"]),
        ("skiff-vmm", []),
        ("skiff-vmm", ["--kernel", "K", "--memory", "4K"]),
        ("skiff-vmm", ["--kernel", "K", "--cpus", "-1"]),
        ("skiff-vmm", ["--kernel", "K", "--serial", "file"]),
        ("skiff-vmm", ["--restore", "/snap", "--frobnicate"]),
        ("skiff", ["vm", "status"]),
        ("skiff", ["vm", "status", "--api-socket", ""]),
        ("skiff", ["vm", "status", "--api-socket", "/x.sock", "--output", "xml"]),
        ("skiff", ["vm", "balloon", "--api-socket", "/x.sock", "lots"]),
        ("skiff", ["vm", "balloon", "--api-socket", "/x.sock", "1.5M"]),
        ("skiff", ["vm", "rate-limit", "--api-socket", "/x.sock", "disk0", "--direction", "up"]),
        ("skiff", ["vm", "rate-limit", "--api-socket", "/x.sock", "disk0", "--bw", "fast"]),
        ("skiff", ["vm", "rate-limit", "--api-socket", "/x.sock", "disk0", "--iops", "0"]),
        ("skiff", ["vm", "rate-limit", "--api-socket", "/x.sock", "disk0", "--bw-burst", "1M"]),
        ("skiff", ["snapshot", "create", "--api-socket", "/x.sock"]),
        ("skiff", ["migrate", "--api-socket", "/x.sock", "ftp://host"]),
        ("skiff", ["migrate", "--api-socket", "/x.sock", "tcp://127.0.0.1:1", "--max-downtime", "0"]),
        ("skiff", ["migrate", "--api-socket", "/x.sock", "tcp://127.0.0.1:1", "--bandwidth", "lots"]),
        ("skiff", ["migrate", "--api-socket", "/x.sock", "tcp://127.0.0.1:1", "--timeout", "-5"]),
        ("skiff", ["fork", "/snap"]),
        ("skiff", ["fork", "/snap", "--dir", "/tmp/forks", "--count", "0"]),
        ("skiff", ["fork", "/snap", "--dir", "/tmp/forks", "--cid-base", "2"]),
        ("skiff", ["fork", "/snap", "--dir", "/tmp/forks", "--tap-prefix", "averylongprefix"]),
    ]

    @Test(arguments: usageErrors)
    func usageErrorsExit64(tool: String, arguments: [String]) throws {
        let kernel = try GuestKit.path("hello.elf")
        let r = try CLITests.run(tool, arguments.map { $0 == "K" ? kernel : $0 }, timeout: 30)
        #expect(r.status == 64, "\(tool) \(arguments): \(r.stderr)")
        #expect(r.stderr.hasPrefix("\(tool): error: "), "\(tool) \(arguments): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(tool) \(arguments): \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(tool) \(arguments): \(r.stdout)")
    }

    /// Runtime errors: the command line is fine, the world is not.
    @Test func runtimeErrorsExit1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-exit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(String, [String], String)] = [
            ("skiff", ["run", "--kernel", dir + "/missing-kernel"], "cannot read kernel"),
            ("skiff-vmm", ["--kernel", dir + "/missing-kernel"], "cannot read kernel"),
            ("skiff", ["run", "--kernel", "/etc/hostname"], "not a bzImage, PVH ELF or multiboot kernel"),
            ("skiff", ["run", "--kernel", "/etc"], "not a regular file"),
            ("skiff", ["run", "--restore", dir + "/missing-snapshot"], "missing-snapshot"),
            ("skiff-vmm", ["--restore", dir + "/missing-snapshot"], "missing-snapshot"),
            ("skiff", ["vm", "status", "--api-socket", dir + "/missing.sock"], "cannot connect"),
            ("skiff", ["snapshot", "create", "--api-socket", dir + "/missing.sock", dir + "/snap"], "cannot connect"),
            ("skiff", ["migrate", "--api-socket", dir + "/missing.sock", "tcp://127.0.0.1:1"], "cannot connect"),
            ("skiff", ["fork", dir + "/missing-snapshot", "--dir", dir + "/forks"], "missing-snapshot"),
        ]
        for (tool, arguments, message) in cases {
            let r = try CLITests.run(tool, arguments, timeout: 30)
            #expect(r.status == 1, "\(tool) \(arguments): \(r.stderr)")
            #expect(r.stderr.hasPrefix("\(tool): error: ") || r.stderr.hasPrefix("skiff: error: "), "\(tool) \(arguments): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(tool) \(arguments): \(r.stderr)")
        }
    }

    /// A disk another process writes to is a runtime error, after the command line was accepted.
    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func aLockedDiskExits1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-exit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = dir + "/disk.raw"
        try ImageOperations.create(path: disk, format: .raw, size: 1 << 20, options: QCOW2CreateOptions(size: 1 << 20))
        let held = try DiskImage.open(path: disk, format: .raw, readOnly: false)
        defer { try? held.close() }
        for tool in ["skiff", "skiff-vmm"] {
            let r = try CLITests.run(tool, (tool == "skiff" ? ["run"] : []) + ["--kernel", try GuestKit.path("hello.elf"), "--memory", "64M", "--disk", disk])
            #expect(r.status == 1, "\(tool): \(r.stderr)")
            #expect(r.stderr.contains("in use"), "\(tool): \(r.stderr)")
            #expect(!r.stdout.contains("Hello from Skiff guest"), "the guest ran with a disk it could not have")
        }
    }

    // MARK: help text

    /// Every command of the tree under `root`, with its name path and its help text.
    static func commands(_ root: ParsableCommand.Type) -> [(path: [String], help: String)] {
        func walk(_ command: ParsableCommand.Type, _ path: [String]) -> [(path: [String], help: String)] {
            let here = path + [command.configuration.commandName ?? ""]
            return [(here, root.helpMessage(for: command, columns: 400))]
                + command.configuration.subcommands.flatMap { walk($0, here) }
        }
        return walk(root, [])
    }

    @Test func helpPlaceholdersNameTheirValue() throws {
        let all = Self.commands(SkiffCommand.self) + Self.commands(SkiffVMMCommand.self)
        var seen = 0
        for (path, help) in all {
            var rest = Substring(help)
            while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
                let placeholder = rest[rest.index(after: open)..<close]
                #expect(placeholder.count > 1, "\(path.joined(separator: " ")): <\(placeholder)> does not name its value")
                seen += 1
                rest = rest[rest.index(after: close)...]
            }
        }
        #expect(seen > 100)
        func help(_ command: [String]) -> String {
            all.first { $0.path == command }?.help ?? ""
        }
        let create = help(["skiff", "image", "create"])
        for expected in ["-f <format>", "-b <backing-file>", "-F <backing-format>", "-o <options>", "<path>", "<size>"] {
            #expect(create.contains(expected), "image create: \(expected)")
        }
        #expect(help(["skiff", "image", "check"]).contains("-r <leaks|all>"))
        #expect(help(["skiff", "image", "convert"]).contains("-O <output-format>"))
        #expect(help(["skiff", "image", "resize"]).contains("<path> [+|-]<size>"))
        #expect(help(["skiff", "image", "list"]).contains("--output <human|json>"))
        #expect(help(["skiff", "migrate"]).contains("--timeout <seconds>"))
        for command in [["skiff", "run"], ["skiff-vmm"]] {
            let text = help(command)
            #expect(text.contains("--serial <stdio|file=PATH|none>"), "\(command)")
            #expect(text.contains("64 for usage errors"), "\(command)")
            // A default is stated once, not in the text and again by the parser.
            #expect(!text.contains("(default 1M). (default: 1M)") && !text.contains("on (default) or off. (default: on)"))
        }
    }

    // MARK: option readings

    static func options(_ arguments: [String]) throws -> VMOptions {
        try VMOptions.parse(["--kernel", "/k"] + arguments)
    }

    @Test func sizeOptionsShareOneGrammar() throws {
        for memory in ["256M", "256MB", "256MiB", "256mib", "256", "0.25G", "262144K"] {
            #expect(try Self.options(["--memory", memory]).makeConfiguration().memorySize == 256 << 20, "\(memory)")
        }
        for size in ["64K", "64KB", "64KiB", "64kib", "0.0625M", "0.0625"] {
            #expect(try Self.options(["--console-log-size", size]).consoleSettings().logLimit == 64 << 10, "\(size)")
        }
        let plain = try DiskOption.parse("/d.img,bw=1048576").limits
        for bw in ["1M", "1MB", "1MiB", "1024K", "1024KiB"] {
            #expect(try DiskOption.parse("/d.img,bw=\(bw)").limits == plain, "\(bw)")
        }
        #expect(try NetOption.parse("tap=t0,rx-bw=1MiB").receive == NetOption.parse("tap=t0,rx-bw=1048576").receive)
    }
}
