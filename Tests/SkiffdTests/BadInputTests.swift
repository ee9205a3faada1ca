import Foundation
import Testing

/// Hostile and mistaken requests get one clear error with a stable code, and change nothing.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct BadInputTests {
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func specsAndStatesAreChecked() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("web1")])

        // Duplicate name.
        var r = try d.cli(["create", "-f", try d.spec("web1")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("a VM named 'web1' already exists") && r.stderr.contains("conflict"), "\(r.stderr)")

        // Unknown field (refused by the CLI's parser and by the API's).
        let typo = "\(d.dir)/typo.yaml"
        try "name: typo\nkernel: \(Paths.guest("idle.elf"))\nmemroy: 64M\n".write(toFile: typo, atomically: true, encoding: .utf8)
        r = try d.cli(["create", "-f", typo])
        #expect(r.status != 0 && r.stderr.contains("unknown field 'memroy'"), "\(r.stderr)")
        var h = try d.raw("POST", "/vms", body: Array("{\"name\":\"typo\",\"kernel\":\"/k\",\"memroy\":\"64M\"}".utf8),
                          headers: ["Content-Type": "application/json"])
        #expect(h.status == 400)
        #expect(Self.json(h.body)["code"] as? String == "invalidRequest")
        #expect((Self.json(h.body)["message"] as? String ?? "").contains("memroy"), "\(h.body)")

        // Files that do not exist.
        r = try d.cli(["create", "-f", try d.spec("nokernel", guest: "no-such-kernel.elf")])
        #expect(r.status != 0 && r.stderr.contains("kernel") && r.stderr.contains("does not exist"), "\(r.stderr)")
        let disk = "\(d.dir)/disk.yaml"
        try "name: nodisk\nkernel: \(Paths.guest("idle.elf"))\ndisks: [{path: /nonexistent/disk.img}]\n".write(toFile: disk, atomically: true, encoding: .utf8)
        r = try d.cli(["create", "-f", disk])
        #expect(r.status != 0 && r.stderr.contains("/nonexistent/disk.img does not exist"), "\(r.stderr)")

        // Wrong state for a verb.
        r = try d.cli(["pause", "web1"])
        #expect(r.status != 0 && r.stderr.contains("invalidState"), "\(r.stderr)")
        r = try d.cli(["stop", "web1"])
        #expect(r.status != 0 && r.stderr.contains("not running"), "\(r.stderr)")
        try d.ok(["start", "web1"])
        r = try d.cli(["start", "web1"])
        #expect(r.status != 0 && r.stderr.contains("already running"), "\(r.stderr)")
        r = try d.cli(["resume", "web1"])
        #expect(r.status != 0 && r.stderr.contains("invalidState"), "\(r.stderr)")
        r = try d.cli(["delete", "web1"])
        #expect(r.status != 0 && r.stderr.contains("stop it first"), "\(r.stderr)")
        r = try d.cli(["show", "ghost"])
        #expect(r.status != 0 && r.stderr.contains("no VM named 'ghost'") && r.stderr.contains("notFound"), "\(r.stderr)")

        // Nothing above changed the VM.
        #expect(try d.show("web1")["state"] as? String == "running")
        #expect(try d.ok(["list"]).split(separator: "\n").count == 2)
    }

    @Test func malformedAndOversizedBodies() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        var h = try d.raw("POST", "/vms", body: Array("{\"name\": ".utf8), headers: ["Content-Type": "application/json"])
        #expect(h.status == 400 && Self.json(h.body)["code"] as? String == "invalidRequest", "\(h.body)")
        h = try d.raw("POST", "/vms", body: Array("[1,2,3]".utf8), headers: ["Content-Type": "application/json"])
        #expect(h.status == 400, "\(h.body)")
        let big = [UInt8](repeating: 0x20, count: 2 << 20)
        // Refused on its Content-Length, before the body arrives.
        h = try d.raw("POST", "/vms", body: big, headers: ["Content-Type": "application/json"], sendAtMost: 65536)
        #expect(h.status == 413 && Self.json(h.body)["code"] as? String == "payloadTooLarge", "\(h.body)")
        // Without a length (chunked), refused once the limit is passed.
        var chunked = Array("200000\r\n".utf8) + [UInt8](repeating: 0x20, count: 0x200000) + Array("\r\n0\r\n\r\n".utf8)
        h = try d.raw("POST", "/vms", body: chunked, headers: ["Content-Type": "application/json", "Transfer-Encoding": "chunked"], sendAtMost: 0x110000)
        #expect(h.status == 413 && Self.json(h.body)["code"] as? String == "payloadTooLarge", "\(h.body)")
        chunked = []
        h = try d.raw("GET", "/no/such/route")
        #expect(h.status == 404 && Self.json(h.body)["code"] as? String == "notFound", "\(h.body)")
        h = try d.raw("POST", "/vms", body: Array("{\"name\":\"Bad Name\",\"kernel\":\"/k\"}".utf8), headers: ["Content-Type": "application/json"])
        #expect(h.status == 400, "\(h.body)")
        h = try d.raw("PUT", "/vms/x/balloon", body: Array("{\"targetMiB\": -5}".utf8), headers: ["Content-Type": "application/json"])
        #expect(h.status == 400 && (Self.json(h.body)["message"] as? String ?? "").contains("targetMiB"), "\(h.body)")
        // Negative numbers where the document says minimum 0 (a conversion trap before).
        h = try d.raw("GET", "/vms/x/console/log?bytes=-1")
        #expect(h.status == 400, "\(h.body)")
        h = try d.raw("POST", "/vms/x/stop?timeout=-3")
        #expect(h.status == 400, "\(h.body)")
        h = try d.raw("GET", "/events?since=-1")
        #expect(h.status == 400, "\(h.body)")
        h = try d.raw("GET", "/vms/..%2F..%2Fetc/console/log")
        #expect(h.status == 400 || h.status == 404, "\(h.body)")
        // The daemon still answers and holds nothing.
        let list = try d.raw("GET", "/vms")
        #expect(list.status == 200 && !list.body.contains("\"name\""), "\(list.body)")
    }

    /// A monitor that cannot start: its stderr reaches the error.
    @Test func monitorFailureCarriesItsStderr() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let bad = "\(d.dir)/bad.yaml"
        try "name: bad\nkernel: /etc/hostname\n".write(toFile: bad, atomically: true, encoding: .utf8)
        try d.ok(["create", "-f", bad])
        let r = try d.cli(["start", "bad"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("monitorFailed"), "\(r.stderr)")
        #expect(r.stderr.contains("not a bzImage, PVH ELF or multiboot kernel"), "\(r.stderr)")
        let vm = try d.show("bad")
        #expect(vm["state"] as? String == "stopped")
        #expect(d.monitors().isEmpty)
    }

    /// TCP needs the bearer token.
    @Test func tcpRequiresTheToken() throws {
        let port = UInt16.random(in: 20000...40000)
        let tokenFile = "/tmp/skd-token-\(getpid())"
        try "s3cr3t-token-0123456789\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        defer { unlink(tokenFile) }
        let d = try Daemon(extraArguments: ["--tcp", "127.0.0.1:\(port)", "--token-file", tokenFile])
        defer { d.tearDown() }
        var h = try RawHTTP.request(tcpPort: port, method: "GET", path: "/vms", body: nil, headers: [:])
        #expect(h.status == 401 && Self.json(h.body)["code"] as? String == "unauthorized", "\(h.body)")
        h = try RawHTTP.request(tcpPort: port, method: "GET", path: "/vms", body: nil, headers: ["Authorization": "Bearer wrong-token-0123456789x"])
        #expect(h.status == 401, "\(h.body)")
        h = try RawHTTP.request(tcpPort: port, method: "GET", path: "/vms", body: nil, headers: ["Authorization": "Bearer s3cr3t-token-0123456789"])
        #expect(h.status == 200, "\(h.body)")
        // The unix socket needs none, and is mode 0660.
        #expect(try d.raw("GET", "/vms").status == 200)
        var st = stat()
        #expect(stat(d.socket, &st) == 0 && st.st_mode & 0o777 == 0o660)
    }

    /// Runs a tool and returns its status and stdout (stderr appended).
    static func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// TLS on the TCP listener: a client that trusts the daemon's certificate gets through with
    /// the token, one that does not trust it is refused by the handshake, and plain HTTP to the
    /// TLS port gets no answer.
    @Test func tcpWithTLSServesOnlyTLS() throws {
        let tools = ["/usr/bin/openssl", "/usr/bin/curl"]
        if let missing = tools.first(where: { !FileManager.default.isExecutableFile(atPath: $0) }) {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "\(missing) is missing (apt-get install openssl curl)")
            print("tcpWithTLSServesOnlyTLS skipped: \(missing) is missing")
            return
        }
        let dir = "/tmp/skd-tls-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = try Self.runTool("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                                         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                                                         "-keyout", "\(dir)/key.pem", "-out", "\(dir)/cert.pem"])
        try #require(made.status == 0, "\(made.output)")
        try "tls-token-0123456789abcdef\n".write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        let port = UInt16.random(in: 20000...40000)
        let d = try Daemon(extraArguments: ["--tcp", "127.0.0.1:\(port)", "--token-file", "\(dir)/token",
                                            "--tls-cert", "\(dir)/cert.pem", "--tls-key", "\(dir)/key.pem"])
        defer { d.tearDown() }
        let url = "https://127.0.0.1:\(port)/vms"
        let trusted = try Self.runTool("/usr/bin/curl", ["-sS", "--max-time", "20", "--cacert", "\(dir)/cert.pem",
                                                         "-H", "Authorization: Bearer tls-token-0123456789abcdef",
                                                         "-w", "\\n%{http_code}", url])
        #expect(trusted.status == 0 && trusted.output.hasSuffix("\n200"), "\(trusted.output)")
        let noToken = try Self.runTool("/usr/bin/curl", ["-sS", "--max-time", "20", "--cacert", "\(dir)/cert.pem", "-w", "\\n%{http_code}", url])
        #expect(noToken.status == 0 && noToken.output.hasSuffix("\n401"), "\(noToken.output)")
        // Without the certificate the handshake fails (curl's 60: peer certificate cannot be authenticated).
        let untrusted = try Self.runTool("/usr/bin/curl", ["-sS", "--max-time", "20", url])
        #expect(untrusted.status == 60, "\(untrusted.output)")
        // Plain HTTP to the TLS port is not served.
        let plain = try Self.runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "-w", "\\n%{http_code}",
                                                       "-H", "Authorization: Bearer tls-token-0123456789abcdef", "http://127.0.0.1:\(port)/vms"])
        #expect(!plain.output.hasSuffix("\n200"), "\(plain.output)")
    }

}
