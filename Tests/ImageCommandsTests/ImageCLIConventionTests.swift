import Foundation
import Storage
import Testing

/// `skiff image` as users of qemu-img expect it, through the real `skiff` binary: one size
/// grammar, formats that are never guessed, `resize PATH -1G` without `--`, and exit statuses
/// 64 for usage errors and 1 for runtime errors.
@Suite(.serialized) struct ImageCLIConventionTests {
    typealias Output = ImageCommandTests.Output

    static func skiff() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = (exe as NSString).deletingLastPathComponent + "/skiff"
        try #require(FileManager.default.isExecutableFile(atPath: path), "build skiff first (swift build)")
        return path
    }

    @discardableResult
    static func image(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try skiff())
        process.arguments = ["image"] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    static func virtualSize(_ path: String, format: String) throws -> Int? {
        let info = try image(["info", "-f", format, "--output", "json", path])
        let json = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        return json?["virtual-size"] as? Int
    }

    static func fileSize(_ path: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
    }

    @Test(arguments: [
        ("256MB", 256 << 20), ("256MiB", 256 << 20), ("256M", 256 << 20), ("256m", 256 << 20),
        ("1.5G", 3 << 29), ("64KiB", 64 << 10), ("64kb", 64 << 10), ("1048576", 1 << 20), ("4096B", 4096),
    ] as [(String, Int)])
    func createTakesTheSizeGrammarOfRunMemory(size: String, bytes: Int) throws {
        let dir = ImageCommandTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for format in ["qcow2", "raw"] {
            let path = "\(dir)/a.\(format)"
            let r = try Self.image(["create", "-f", format, path, size])
            #expect(r.status == 0, "\(format) \(size): \(r.stderr)")
            #expect(try Self.virtualSize(path, format: format) == bytes, "\(format) \(size)")
        }
    }

    @Test func resizeTakesTheSameGrammarAndAMinusSizeWithoutDoubleDash() throws {
        let dir = ImageCommandTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let raw = dir + "/disk.raw"
        #expect(try Self.image(["create", "-f", "raw", raw, "2GiB"]).status == 0)
        // -1G looks like an option to an argument parser; it must still be the size.
        let shrink = try Self.image(["resize", "-f", "raw", "--shrink", raw, "-1G"])
        #expect(shrink.status == 0, "\(shrink.stderr)")
        #expect(try Self.fileSize(raw) == 1 << 30)
        // Option after the size, and the `--` spelling, work too.
        #expect(try Self.image(["resize", "-f", "raw", raw, "-256MB", "--shrink"]).status == 0)
        #expect(try Self.fileSize(raw) == 768 << 20)
        #expect(try Self.image(["resize", "-f", "raw", "--shrink", raw, "--", "-0.25GiB"]).status == 0)
        #expect(try Self.fileSize(raw) == 512 << 20)
        #expect(try Self.image(["resize", "-f", "raw", raw, "+512MB"]).status == 0)
        #expect(try Self.fileSize(raw) == 1 << 30)
        // A shrink without --shrink, below zero, or with a mistyped option is refused and changes nothing.
        for arguments in [["-1K"], ["--shrink", "-2G"], ["--shirnk", "-1K"], ["-1K", "-2K"]] {
            let r = try Self.image(["resize", "-f", "raw", raw] + arguments)
            #expect(r.status == 64, "\(arguments): \(r.stderr)")
            #expect(try Self.fileSize(raw) == 1 << 30, "\(arguments)")
        }
        #expect(try Self.image(["resize", "-f", "raw", raw, "--shirnk", "-1K"]).stderr.contains("Unknown option '--shirnk'"))
        // qcow2 grows with a relative size; shrinking it is not supported (a runtime refusal).
        let qcow = dir + "/disk.qcow2"
        #expect(try Self.image(["create", "-f", "qcow2", qcow, "64M"]).status == 0)
        #expect(try Self.image(["resize", qcow, "+64MiB"]).status == 0)
        #expect(try Self.virtualSize(qcow, format: "qcow2") == 128 << 20)
        let qshrink = try Self.image(["resize", qcow, "-1M"])
        #expect(qshrink.status == 1 && qshrink.stderr.contains("shrinking qcow2"), "\(qshrink.stderr)")
    }

    @Test func aRawFileIsNeverTakenForQcow2OrProbed() throws {
        let dir = ImageCommandTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let raw = dir + "/disk.raw"
        #expect(try Self.image(["create", "-f", "raw", raw, "64M"]).status == 0)
        for verb in [["resize", raw, "+1G"], ["check", raw]] {
            let r = try Self.image(verb)
            #expect(r.status == 64, "\(verb): \(r.stderr)")
            #expect(r.stderr.contains("pass -f raw"), "\(verb): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        #expect(try Self.fileSize(raw) == 64 << 20, "a refused resize changed the file")
        // With -f raw: resize works, check says what qemu-img says (exit 63).
        #expect(try Self.image(["resize", "-f", "raw", raw, "+1M"]).status == 0)
        #expect(try Self.fileSize(raw) == 65 << 20)
        let check = try Self.image(["check", "-f", "raw", raw])
        #expect(check.status == 63 && check.stdout.contains("does not support checks"), "\(check)")
        // A file with a qcow2 header is not imported as raw bytes unless -f raw says so.
        let qcow = dir + "/disk.qcow2"
        #expect(try Self.image(["create", "-f", "qcow2", qcow, "1M"]).status == 0)
        let store = ["--store", dir + "/store"]
        let refused = try Self.image(["import"] + store + [qcow, "q"])
        #expect(refused.status == 64 && refused.stderr.contains("pass -f qcow2"), "\(refused.stderr)")
        #expect(try Self.image(["import"] + store + ["-f", "qcow2", qcow, "q"]).status == 0)
        #expect(try Self.image(["import"] + store + ["-f", "raw", qcow, "r"]).status == 0)
    }

    /// Usage errors: what was typed is wrong. `RAW`, `QCOW2` and `DIR` stand for scratch files.
    @Test(arguments: [
        ["frobnicate"],
        ["create"],
        ["create", "-f", "vmdk", "DIR/n.img", "1G"],
        ["create", "-f", "raw", "DIR/n.img"],
        ["create", "DIR/n.img", "lots"],
        ["create", "DIR/n.img", "99E"],
        ["create", "DIR/n.img", "1.1K"],
        ["create", "-o", "cluster_size=3000", "DIR/n.img", "1G"],
        ["create", "-o", "cluster_size=big", "DIR/n.img", "1G"],
        ["create", "-o", "compat=2", "DIR/n.img", "1G"],
        ["create", "-o", "refcount_bits=3", "DIR/n.img", "1G"],
        ["create", "-b", "RAW", "DIR/n.img"],
        ["info", "--output", "xml", "QCOW2"],
        ["check", "RAW"],
        ["check", "-r", "some", "QCOW2"],
        ["convert", "-O", "raw", "QCOW2", "DIR/out.raw"],
        ["convert", "-f", "qcow2", "-O", "vmdk", "QCOW2", "DIR/out.raw"],
        ["clone", "--cluster-size", "3000", "-F", "raw", "RAW", "DIR/c.qcow2"],
        ["rebase", "-b", "RAW", "QCOW2"],
        ["resize", "RAW", "+1G"],
        ["resize", "-f", "raw", "RAW"],
        ["resize", "-f", "raw", "RAW", "-1K"],
        ["resize", "-f", "raw", "RAW", "lots"],
        ["resize", "QCOW2", "+16E"],
        ["import", "--store", "DIR/s", "--chunk-size", "100", "RAW", "x"],
        ["import", "--store", "DIR/s", "RAW", "bad/name"],
        ["export", "--store", "DIR/s", "-O", "vmdk", "x", "DIR/o"],
    ])
    func usageErrorsExit64(arguments: [String]) throws {
        let dir = ImageCommandTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try Self.image(["create", "-f", "raw", dir + "/r.raw", "1M"]).status == 0)
        #expect(try Self.image(["create", "-f", "qcow2", dir + "/q.qcow2", "1M"]).status == 0)
        let resolved = arguments.map {
            $0.replacingOccurrences(of: "DIR", with: dir).replacingOccurrences(of: "QCOW2", with: dir + "/q.qcow2")
                .replacingOccurrences(of: "RAW", with: dir + "/r.raw")
        }
        let r = try Self.image(resolved)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stderr.hasPrefix("skiff: error: ") && r.stderr.split(separator: "\n").count == 1, "\(arguments): \(r.stderr)")
    }

    @Test func runtimeErrorsExit1() throws {
        let dir = ImageCommandTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let qcow = dir + "/q.qcow2"
        #expect(try Self.image(["create", "-f", "qcow2", qcow, "16M"]).status == 0)
        var cases: [([String], String)] = [
            (["info", "-f", "qcow2", dir + "/missing.qcow2"], "No such file"),
            (["check", dir + "/missing.qcow2"], "No such file"),
            (["resize", dir + "/missing.qcow2", "+1M"], "No such file"),
            (["convert", "-f", "qcow2", "-O", "raw", dir + "/missing.qcow2", dir + "/o.raw"], "No such file"),
            (["list", "--store", dir + "/no-store"], "not an image store"),
            (["export", "--store", dir + "/no-store", "x", dir + "/o.raw"], "not an image store"),
        ]
        // A disk in use by another process (this one holds the writer's lock).
        let held = try DiskImage.open(path: qcow, format: .qcow2, readOnly: false)
        defer { try? held.close() }
        cases += [
            (["check", "-r", "leaks", qcow], "in use"),
            (["resize", qcow, "+1M"], "in use"),
            (["commit", qcow], "has no backing file"),
        ]
        for (arguments, message) in cases {
            let r = try Self.image(arguments)
            #expect(r.status == 1, "\(arguments): \(r.stderr)")
            #expect(r.stderr.hasPrefix("skiff: error: ") && r.stderr.contains(message), "\(arguments): \(r.stderr)")
        }
    }
}
