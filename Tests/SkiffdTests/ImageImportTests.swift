import Foundation
import Testing

/// Image import through the daemon (`POST /images`, `skiff images import`): a task that copies
/// raw and qcow2 files into the store, whose images are clone bases for VMs that boot; what it
/// refuses before copying anything, and what a failed copy leaves (nothing).
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct ImageImportTests {
    static let json = ["Content-Type": "application/json"]

    /// A 4 MiB raw disk whose sector 0 starts with `label` (32 printable bytes).
    static func rawDisk(_ path: String, label: String) throws {
        var bytes = [UInt8](repeating: 0, count: 4 << 20)
        for (i, b) in label.utf8.prefix(32).enumerated() { bytes[i] = b }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Runs one of skiff's local verbs (no daemon: `skiff image ...`); requires success.
    static func local(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff")
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw HarnessError("skiff \(arguments.joined(separator: " ")): \(text)") }
    }

    static func object(_ text: String) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw HarnessError("not JSON: \(text)") }
        return o
    }

    /// Polls a task until it ends.
    static func finished(_ d: Daemon, _ id: String) throws -> [String: Any] {
        var task: [String: Any] = [:]
        _ = try eventually(60) {
            task = try object(try d.raw("GET", "/tasks/\(id)").body)
            return task["state"] as? String != "running"
        }
        return task
    }

    static func images(_ d: Daemon) throws -> [[String: Any]] {
        let r = try d.raw("GET", "/images")
        guard r.status == 200, let list = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]] else {
            throw HarnessError("GET /images: \(r.status) \(r.body)")
        }
        return list
    }

    @Test func importRawAndQCOW2AndBootClones() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let raw = "\(d.dir)/src.img"
        try Self.rawDisk(raw, label: "SKIFF-IMPORT-RAW-0123456789ABCDE")
        // Through the CLI: a raw file, the format found from its content.
        let out = try d.ok(["images", "import", "base-raw", raw])
        #expect(out.contains("imageImport succeeded") && out.contains("format=raw") && out.contains("sizeBytes=\(4 << 20)"), "\(out)")

        // Through the API: a qcow2 made from another raw file.
        let raw2 = "\(d.dir)/src2.img"
        try Self.rawDisk(raw2, label: "SKIFF-IMPORT-QCOW2-0123456789ABC")
        let qcow = "\(d.dir)/src.qcow2"
        try Self.local(["image", "convert", "-f", "raw", "-O", "qcow2", raw2, qcow])
        let posted = try d.raw("POST", "/images", body: Array(#"{"name":"base-qcow","source":"\#(qcow)"}"#.utf8), headers: Self.json)
        #expect(posted.status == 202, "\(posted.status) \(posted.body)")
        let id = try #require(try Self.object(posted.body)["id"] as? String)
        let task = try Self.finished(d, id)
        #expect(task["state"] as? String == "succeeded" && task["kind"] as? String == "imageImport", "\(task)")
        #expect((task["result"] as? [String: String])?["format"] == "qcow2", "\(task)")

        let list = try Self.images(d)
        #expect(list.map { $0["name"] as? String } == ["base-qcow", "base-raw"])
        #expect(list.map { $0["format"] as? String } == ["qcow2", "raw"])
        let listed = try d.ok(["images", "list"])
        #expect(listed.contains("base-raw") && listed.contains("base-qcow"), "\(listed)")

        // Each image is the clone base of a VM whose guest reads its sector 0 and writes its
        // own clone (end=pass: it passes after the write, read-back and flush).
        for (vm, image, label) in [("from-raw", "base-raw", "SKIFF-IMPORT-RAW"), ("from-qcow", "base-qcow", "SKIFF-IMPORT-QCOW2")] {
            try d.ok(["create", "-f", try d.spec(vm, guest: "virtio-blk.elf", extra: "cmdline: end=pass\ndisks: [{clone: \(image)}]\n"), "--start"])
            #expect(try eventually(90) { try d.ok(["logs", vm]).contains("SKIFF-TEST PASS") }, "\((try? d.ok(["logs", vm])) ?? "")")
            let log = try d.ok(["logs", vm])
            #expect(log.contains("sector 0 \"\(label)"), "\(log)")
            #expect(log.contains("readback ok"), "\(log)")
        }
        // The guests wrote their clones, not the images.
        let base = try #require(FileManager.default.contents(atPath: "\(d.dataDir)/images/base-raw.raw"))
        let source = try Data(contentsOf: URL(fileURLWithPath: raw))
        #expect(base == source)

        // An image a VM uses is not deleted; once the VM is gone it is.
        let refused = try d.raw("DELETE", "/images/base-raw")
        let refusedCode = try Self.object(refused.body)["code"] as? String
        #expect(refused.status == 409 && refusedCode == "invalidState", "\(refused.body)")
        #expect(refused.body.contains("from-raw"), "\(refused.body)")
        let cli = try d.cli(["images", "delete", "base-raw"])
        #expect(cli.status != 0 && cli.stderr.contains("from-raw"), "\(cli.stderr)")
        try d.ok(["delete", "from-raw"])
        try d.ok(["images", "delete", "base-raw"])
        #expect(!FileManager.default.fileExists(atPath: "\(d.dataDir)/images/base-raw.raw"))
        #expect(try Self.images(d).map { $0["name"] as? String } == ["base-qcow"])
    }

    /// What is refused before any copy, with a clear error: a taken name, a missing source, a
    /// relative path, a directory, /dev/zero (which would copy forever), a FIFO, a qcow2 that
    /// is not one or has a backing file.
    @Test func badSourcesAreRefusedUpFront() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let raw = "\(d.dir)/src.img"
        try Self.rawDisk(raw, label: "x")
        try d.ok(["images", "import", "one", raw])
        func post(_ body: String) throws -> (Int, [String: Any]) {
            let r = try d.raw("POST", "/images", body: Array(body.utf8), headers: Self.json)
            return (r.status, (try? Self.object(r.body)) ?? [:])
        }
        var (status, error) = try post(#"{"name":"one","source":"\#(raw)"}"#)
        #expect(status == 409 && error["code"] as? String == "conflict" && (error["message"] as? String ?? "").contains("already exists"), "\(error)")
        let again = try d.cli(["images", "import", "one", raw])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again.stderr)")

        let fifo = "\(d.dir)/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let qcowWithBacking = "\(d.dir)/overlay.qcow2"
        try Self.local(["image", "clone", "-F", "raw", raw, qcowWithBacking])
        let notQCOW = raw
        for (body, words) in [
            (#"{"name":"two","source":"\#(d.dir)/missing.img"}"#, "does not exist"),
            (#"{"name":"two","source":"relative.img"}"#, "absolute"),
            (#"{"name":"two","source":"\#(d.dir)"}"#, "is a directory"),
            (#"{"name":"two","source":"/dev/zero"}"#, "character device"),
            (#"{"name":"two","source":"\#(fifo)"}"#, "FIFO"),
            (#"{"name":"two","source":"\#(notQCOW)","format":"qcow2"}"#, "not a qcow2"),
            (#"{"name":"two","source":"\#(qcowWithBacking)"}"#, "backing file"),
            (#"{"name":"two","source":"\#(raw)","extra":1}"#, "extra"),
        ] {
            (status, error) = try post(body)
            #expect(status == 400 && error["code"] as? String == "invalidRequest", "\(body): \(status) \(error)")
            #expect((error["message"] as? String ?? "").contains(words), "\(body): \(error)")
        }
        let dev = try d.cli(["images", "import", "two", "/dev/zero"], timeout: 30)
        #expect(dev.status != 0 && dev.stderr.contains("character device"), "\(dev.stderr)")
        #expect(try Self.images(d).map { $0["name"] as? String } == ["one"])
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(d.dataDir)/images")
        #expect(files == ["one.raw"], "\(files)")
    }

    /// A copy that fails (the images directory is a 2 MiB tmpfs, the source 4 MiB) ends its task
    /// failed with storageFull; no image appears and no partial file stays. A partial file a
    /// killed daemon left is removed when the next one starts.
    @Test func aFailedCopyLeavesNothing() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let images = "\(d.dataDir)/images"
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=2m", "tmpfs", images]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            if KVMGate.inCI {
                Issue.record("cannot mount a tmpfs (needs root), and CI=true")
            } else {
                print("skipped: cannot mount a tmpfs for the failed-copy test (needs root)")
            }
            return
        }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", images]
            try? umount.run()
            umount.waitUntilExit()
        }
        let raw = "\(d.dir)/big.img"
        try Self.rawDisk(raw, label: "x")
        let r = try d.raw("POST", "/images", body: Array(#"{"name":"big","source":"\#(raw)"}"#.utf8), headers: Self.json)
        #expect(r.status == 202, "\(r.body)")
        let id = try #require(try Self.object(r.body)["id"] as? String)
        let task = try Self.finished(d, id)
        #expect(task["state"] as? String == "failed", "\(task)")
        #expect((task["error"] as? [String: Any])?["code"] as? String == "storageFull", "\(task)")
        #expect(try Self.images(d).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: images).isEmpty)
        let cli = try d.cli(["images", "import", "big", raw])
        #expect(cli.status != 0, "\(cli.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: images).isEmpty)

        // A daemon killed mid-copy leaves a partial file: the next one removes it.
        d.kill9()
        #expect(FileManager.default.createFile(atPath: "\(images)/big.raw.partial", contents: Data(count: 4096)))
        try d.start()
        #expect(!FileManager.default.fileExists(atPath: "\(images)/big.raw.partial"))
        #expect(try Self.images(d).isEmpty)
    }
}
