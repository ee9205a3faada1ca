import Foundation
import Testing

/// `--net` and `--vsock` values are checked before anything starts: one clear line each.
struct NetVsockCLITests {
    @Test(arguments: [
        (["--net", "tap"], "'tap' is not key=value"),
        (["--net", "tap=a/b"], "TAP name must be 1-15 printable characters"),
        (["--net", "tap=0123456789abcdef"], "TAP name must be 1-15 printable characters"),
        (["--net", "tap=t0,mac=01:00:00:00:00:00"], "multicast"),
        (["--net", "tap=t0,mac=02:00:00:00:00"], "six hex bytes"),
        (["--net", "tap=t0,tap=t1"], "'tap' given twice"),
        (["--net", "tap=t0,speed=10G"], "unknown option 'speed'"),
        (["--net", "mac=02:00:00:00:00:01"], "missing tap=NAME"),
        (["--vsock", "cid=2,socket=/tmp/x"], "cid must be a number from 3 to 4294967294"),
        (["--vsock", "cid=4294967295,socket=/tmp/x"], "cid must be a number from 3 to 4294967294"),
        (["--vsock", "cid=+3,socket=/tmp/x"], "cid must be a number"),
        (["--vsock", "cid=3"], "both cid= and socket= are needed"),
        (["--vsock", "cid=3,socket="], "socket path is empty"),
        (["--vsock", "cid=3,socket=/tmp/x,port=1"], "unknown option 'port'"),
    ])
    func badValuesGiveOneClearLine(extra: [String], expected: String) throws {
        let r = try CLITests.run("skiff", ["run", "--kernel", try GuestKit.path("hello.elf")] + extra)
        #expect(r.status == 64, "stderr: \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("skiff: error: ") && r.stderr.contains(expected), "stderr: \(r.stderr)")
    }

    @Test func anExistingSocketPathIsRefusedAndLeftAlone() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-cli-vsock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/taken.sock"
        let holder = try UnixStream.listen(path)
        let r = try CLITests.run("skiff", ["run", "--kernel", try GuestKit.path("hello.elf"), "--vsock", "cid=3,socket=\(path)"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot create the vsock socket") && r.stderr.contains("already exists"), "stderr: \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: path), "another process's socket must not be removed")
        _ = holder
    }
}
