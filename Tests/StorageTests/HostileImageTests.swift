import Foundation
import Testing
@testable import Storage

/// Replays tests/fixtures/qcow2-hostile: every malformed image gives a clear error, never a crash, and
/// opening it for writing changes no file but (at most) the image itself.
@Suite struct HostileImageTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var file: String
        var mode: String
        var expected: String
        var testDescription: String { file }
    }

    static let corpus: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("tests/fixtures/qcow2-hostile").path
    }()

    static let cases: [Case] = {
        guard let text = try? String(contentsOfFile: corpus + "/cases.tsv", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return fields.count == 3 ? Case(file: fields[0], mode: fields[1], expected: fields[2]) : nil
        }
    }()

    @Test func corpusIsPresent() {
        #expect(Self.cases.count >= 30)
    }

    /// Copies the corpus to a scratch directory and fingerprints every file.
    static func scratchCopy() throws -> TempDir {
        let dir = TempDir()
        for name in try FileManager.default.contentsOfDirectory(atPath: corpus) {
            try FileManager.default.copyItem(atPath: corpus + "/" + name, toPath: dir.file(name))
        }
        return dir
    }

    static func fingerprints(_ dir: TempDir) throws -> [String: [UInt8]] {
        var prints: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) { prints[name] = try fileBytes(dir.file(name)) }
        return prints
    }

    static func expectError(_ expected: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error containing '\(expected)'")
        } catch {
            #expect("\(error)".contains(expected), "error was: \(error)")
        }
    }

    @Test(arguments: cases)
    func hostileImageIsRefusedCleanly(testCase: Case) throws {
        let dir = try Self.scratchCopy()
        let path = dir.file(testCase.file)
        let before = try Self.fingerprints(dir)
        switch testCase.mode {
        case "ok":
            let image = try DiskImage.open(path: path, format: .qcow2, readOnly: true)
            _ = try image.readBytes(at: 0, count: Int(image.size))
        case "error":
            Self.expectError(testCase.expected) { _ = try DiskImage.open(path: path, format: .qcow2, readOnly: true) }
            Self.expectError(testCase.expected) { _ = try DiskImage.open(path: path, format: .qcow2, readOnly: false) }
        case "read-error":
            let image = try DiskImage.open(path: path, format: .qcow2, readOnly: true)
            Self.expectError(testCase.expected) { _ = try image.readBytes(at: 0, count: Int(image.size)) }
            try image.close()
            let writable = try DiskImage.open(path: path, format: .qcow2, readOnly: false)
            Self.expectError(testCase.expected) { try writable.writeBytes([1, 2, 3], at: 100) }
        case "readonly-only":
            let image = try DiskImage.open(path: path, format: .qcow2, readOnly: true)
            _ = try image.readBytes(at: 0, count: Int(image.size))
            try image.close()
            Self.expectError(testCase.expected) { _ = try DiskImage.open(path: path, format: .qcow2, readOnly: false) }
        case "repair-error":
            let image = try DiskImage.openQCOW2(path: path, readOnly: true)
            #expect(try image.check().corruptions > 0)
            try image.close()
            let writable = try DiskImage.openQCOW2(path: path, readOnly: false)
            Self.expectError(testCase.expected) { _ = try writable.check(repairing: true) }
        case "raw":
            // Explicit format: the qcow2-looking header is just data.
            let image = try DiskImage.open(path: path, format: .raw, readOnly: true)
            let bytes = try fileBytes(path)
            #expect(image.size == UInt64(bytes.count))
            #expect(try image.readBytes(at: 0, count: 512) == Array(bytes[0..<512]))
        default:
            Issue.record("unknown mode \(testCase.mode)")
        }
        // Nothing outside the image under test changed (and hostile images the reader refused are untouched).
        let after = try Self.fingerprints(dir)
        for (name, bytes) in before where name != testCase.file || testCase.mode == "error" {
            #expect(after[name] == bytes, "\(name) changed")
        }
    }
}
