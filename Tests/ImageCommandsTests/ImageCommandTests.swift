import ArgumentParser
import Foundation
import Testing
@testable import ImageCommands

/// Runs the `image` verbs the way users do, through the storage tool's `image` entry point.
@Suite(.serialized) struct ImageCommandTests {
    static func tool() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = (exe as NSString).deletingLastPathComponent + "/skiff-storage-stress"
        try #require(FileManager.default.isExecutableFile(atPath: path), "build skiff-storage-stress first (swift build)")
        return path
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func image(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try tool())
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

    static func tempDir() -> String {
        let path = NSTemporaryDirectory() + "skiff-cli-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func parsesQemuStyleArguments() throws {
        let command = try ImageCommand.parseAsRoot(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "-o", "cluster_size=4096", "x.qcow2", "1G"])
        let create = try #require(command as? CreateCommand)
        #expect(create.format == "qcow2" && create.backing == "base.raw" && create.backingFormat == "raw")
        #expect(try CLI.parseSize("1G") == 1 << 30)
        #expect(try CLI.parseSize("512") == 512)
        #expect(throws: (any Error).self) { try CLI.parseSize("12Q") }
        #expect(throws: (any Error).self) { try CLI.parseSize("99999999999E") }
        let options = try CLI.qcow2Options("cluster_size=2M,compat=0.10,refcount_bits=16", size: 5)
        #expect(options.clusterSize == 2 << 20 && options.version == 2)
    }

    @Test func createInfoCheckConvertCloneEndToEnd() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try Self.image(["create", "-f", "qcow2", dir + "/a.qcow2", "64M"]).status == 0)
        let info = try Self.image(["info", "--output", "json", dir + "/a.qcow2"])
        #expect(info.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect(json["virtual-size"] as? Int == 64 << 20)
        #expect(json["format"] as? String == "qcow2")
        #expect(json["cluster-size"] as? Int == 65536)
        #expect(json["dirty-flag"] as? Bool == false)
        let check = try Self.image(["check", dir + "/a.qcow2"])
        #expect(check.status == 0 && check.stdout.contains("No errors were found"))
        // convert needs an explicit source format.
        #expect(try Self.image(["convert", "-O", "raw", dir + "/a.qcow2", dir + "/a.raw"]).status != 0)
        #expect(try Self.image(["convert", "-f", "qcow2", "-O", "raw", dir + "/a.qcow2", dir + "/a.raw"]).status == 0)
        let clone = try Self.image(["clone", "-F", "raw", dir + "/a.raw", dir + "/vm.qcow2"])
        #expect(clone.status == 0, "\(clone.stderr)")
        let cloneInfo = try Self.image(["info", "--output", "json", dir + "/vm.qcow2"])
        #expect(cloneInfo.stdout.contains("\"backing-filename-format\" : \"raw\""))
        #expect(try Self.image(["resize", dir + "/vm.qcow2", "+64M"]).status == 0)
        #expect(try Self.image(["info", "--output", "json", dir + "/vm.qcow2"]).stdout.contains("\"virtual-size\" : \(128 << 20)"))
        #expect(try Self.image(["commit", dir + "/vm.qcow2"]).status == 0)
        #expect(try Self.image(["rebase", "-u", "-b", "", dir + "/vm.qcow2"]).status == 0)
        // Errors are clear and exit non-zero.
        let missing = try Self.image(["info", "-f", "qcow2", dir + "/nope.qcow2"])
        #expect(missing.status != 0 && missing.stderr.contains("No such file"))
    }

    @Test func storeVerbsReportJSON() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        var state: UInt64 = 88
        for i in 0..<(2 << 20) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/a.raw"))
        let store = ["--store", dir + "/store"]
        #expect(try Self.image(["import"] + store + [dir + "/a.raw", "one"]).status == 0)
        #expect(try Self.image(["import"] + store + [dir + "/a.raw", "two"]).status == 0)
        let list = try Self.image(["list", "--output", "json"] + store)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let stats = try #require(json["stats"] as? [String: Any])
        #expect(stats["logical-bytes"] as? Int == 6 << 20)
        #expect((stats["ratio"] as? Double ?? 0) > 2.5)
        #expect(try Self.image(["export"] + store + ["-O", "raw", "two", dir + "/out.raw"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/out.raw")) == Data(bytes))
        #expect(try Self.image(["verify"] + store).status == 0)
        #expect(try Self.image(["rm"] + store + ["one"]).status == 0)
        #expect(try Self.image(["gc", "--output", "json"] + store).stdout.contains("\"removed-chunks\" : 0"))
    }
}
