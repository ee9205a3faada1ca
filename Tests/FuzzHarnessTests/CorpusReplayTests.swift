import Foundation
import Testing
import FuzzHarnesses

/// Replays every seed (`fuzz/corpus/TARGET`) and every input that once crashed a target
/// (`fuzz/regressions/TARGET`) through its harness without sanitizers: each must run to the end
/// with every checked property holding. Serialized: a harness keeps its guest RAM and files
/// between inputs.
@Suite(.serialized) struct CorpusReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func inputs(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let directory = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedCorpusRunsClean(_ target: FuzzTarget) throws {
        defer { FuzzTarget.removeTemporaryFiles() }
        let seeds = Self.inputs("corpus", target)
        #expect(!seeds.isEmpty, "no seeds in fuzz/corpus/\(target.rawValue)")
        for url in seeds {
            let bytes = [UInt8](try Data(contentsOf: url))
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(target.rawValue) seed \(url.lastPathComponent): \(error)")
            }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func crashRegressionsRunClean(_ target: FuzzTarget) throws {
        defer { FuzzTarget.removeTemporaryFiles() }
        for url in Self.inputs("regressions", target) {
            let bytes = [UInt8](try Data(contentsOf: url))
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(target.rawValue) regression \(url.lastPathComponent): \(error)")
            }
        }
    }
}
