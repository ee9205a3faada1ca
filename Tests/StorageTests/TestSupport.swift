import Foundation
import Testing
@testable import Storage

/// A fresh temporary directory, removed when the value is deinitialized.
final class TempDir {
    let path: String

    init() {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        path = base + "/skiff-storage-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

final class DataBox: @unchecked Sendable {
    var data = Data()
    let done = DispatchSemaphore(value: 0)
}

/// Result of running a program.
struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Drain stderr on another thread: a child that fills one pipe while we wait on the other would hang.
    let errBox = DataBox()
    let errThread = Thread {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        errBox.done.signal()
    }
    errThread.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    errBox.done.wait()
    let errData = errBox.data
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData, as: UTF8.self))
}

/// Where QEMU's tools are, if installed.
enum QEMU {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static let imgPath: String? = {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/qemu-img") {
            return dir + "/qemu-img"
        }
        return nil
    }()

    static let ioPath: String? = {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/qemu-io") {
            return dir + "/qemu-io"
        }
        return nil
    }()

    /// Tests that need qemu-img run when it exists, and always in CI (where its absence fails them).
    static var shouldRun: Bool {
        if imgPath == nil && !isCI {
            print("skipping: qemu-img not installed (apt-get install qemu-utils)")
        }
        return imgPath != nil || isCI
    }

    /// The qemu-img path, or a recorded failure.
    static func img() throws -> String {
        try #require(imgPath, "qemu-img is required (install qemu-utils)")
    }

    static func io() throws -> String {
        try #require(ioPath, "qemu-io is required (install qemu-utils)")
    }

    @discardableResult
    static func imgRun(_ arguments: [String]) throws -> RunResult {
        try run(try img(), arguments)
    }

    /// `qemu-img check PATH` must report a clean image. Without qemu-img: an issue in CI, a
    /// printed note elsewhere (the rest of the calling test still runs).
    static func expectCleanCheck(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let imgPath else {
            if isCI {
                Issue.record("qemu-img is required with CI=true (apt-get install qemu-utils)", sourceLocation: sourceLocation)
            } else {
                print("qemu-img not installed: \(path) was not checked by qemu-img")
            }
            return
        }
        let check = try run(imgPath, ["check", path])
        #expect(check.status == 0, "qemu-img check: \(check.stdout)\(check.stderr)", sourceLocation: sourceLocation)
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }

    mutating func below(_ bound: UInt64) -> UInt64 { bound == 0 ? 0 : next() % bound }
}

extension BlockDevice {
    func readBytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return out
    }

    func writeBytes(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write(at: offset, from: $0) }
    }
}

/// Reads a whole file.
func fileBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}
