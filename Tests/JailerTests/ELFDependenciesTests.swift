import Foundation
import Testing
@testable import Jailer

/// The libraries the jail holds are the ones the dynamic loader would load.
struct ELFDependenciesTests {
    /// `ldd` as the reference: every library it lists (name => path) must be in the jail at
    /// the path the loader inside will look at.
    @Test func theMonitorsLibrariesMatchLdd() throws {
        let vmm = JailTest.tool("skiff-vmm")
        let ldd = try JailTest.run("/usr/bin/ldd", [vmm])
        try #require(ldd.status == 0, "ldd: \(ldd.stderr)")
        var expected: [String: String] = [:]
        var interpreter: String?
        for line in ldd.stdout.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words.count >= 3, words[1] == "=>" { expected[words[0]] = words[2] }
            if words.count == 2, words[0].hasPrefix("/") { interpreter = words[0] }
        }
        #expect(expected["libc.so.6"] != nil, "\(ldd.stdout)")

        let deps = try ELFDependencies.resolve(executable: vmm, jailPath: "/skiff-vmm")
        #expect(deps.interpreter?.hostPath == interpreter && deps.interpreter?.jailPath == interpreter)
        let byName = Dictionary(deps.libraries.map { (String($0.jailPath.split(separator: "/").last ?? ""), $0) }, uniquingKeysWith: { a, _ in a })
        for (name, path) in expected {
            let lib = try #require(byName[name], "\(name) is missing from \(deps.libraries.map(\.jailPath))")
            // The same file ldd found (paths may differ by symbolic links such as /lib -> usr/lib).
            #expect(realpath(lib.hostPath) == realpath(path), "\(name): \(lib.hostPath) vs \(path)")
        }
        // Libraries glibc or the monitor load later with dlopen come along when the host has them.
        if FileManager.default.fileExists(atPath: "/lib/x86_64-linux-gnu/libgcc_s.so.1") { #expect(byName["libgcc_s.so.1"] != nil) }
        #expect(deps.extraSearchPath.isEmpty, "\(deps.extraSearchPath)")
    }

    func realpath(_ path: String) -> String {
        guard let p = Foundation.realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    /// A statically linked executable needs nothing (busybox-static from scripts/setup.sh).
    @Test func aStaticExecutableNeedsNoLibraries() throws {
        let busybox = "/bin/busybox"
        guard FileManager.default.fileExists(atPath: busybox) else {
            if JailAvailability.inCI { Issue.record("\(busybox) is missing (scripts/setup.sh installs busybox-static)") }
            return
        }
        let deps = try ELFDependencies.resolve(executable: busybox, jailPath: "/busybox")
        #expect(deps.interpreter == nil && deps.libraries.isEmpty)
    }

    @Test func originIsExpandedOnBothSides() {
        let (host, jail) = ELFDependencies.expand("$ORIGIN/../lib", host: "/opt/app/bin", jail: "/")
        #expect(host == "/opt/app/bin/../lib" && jail == "/../lib")
        let (h2, j2) = ELFDependencies.expand("${ORIGIN}/./x/", host: "/a", jail: "/b")
        #expect(h2 == "/a/x" && j2 == "/b/x")
    }

    @Test func ldSoConfIncludesAreFollowed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skj-ldconf-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/conf.d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "# comment\n/opt/first\ninclude \(dir)/conf.d/*.conf\n/opt/last  # trailing\n".write(toFile: dir + "/ld.so.conf", atomically: true, encoding: .utf8)
        try "/opt/b\n".write(toFile: dir + "/conf.d/b.conf", atomically: true, encoding: .utf8)
        try "/opt/a/\n/opt/first\n".write(toFile: dir + "/conf.d/a.conf", atomically: true, encoding: .utf8)
        try "/ignored\n".write(toFile: dir + "/conf.d/c.txt", atomically: true, encoding: .utf8)
        #expect(ELFDependencies.configuredDirectories(dir + "/ld.so.conf") == ["/opt/first", "/opt/a", "/opt/b", "/opt/last"])
    }

    @Test func nonELFFilesAreRefused() throws {
        let error = #expect(throws: JailError.self) { try ELFDependencies.resolve(executable: "/etc/hostname", jailPath: "/x") }
        #expect(error?.description == "/etc/hostname is not an ELF file")
    }
}
