import ControlProtocol
import Foundation
import Logging
import Testing
@testable import VMM

/// The monitor's log lines: text for people, JSON lines for a daemon.
struct MonitorLogTests {
    @Test func textLinesKeepTheFamiliarPrefixesAndAppendMetadata() {
        #expect(MonitorLogHandler.textLine(level: .error, message: "cannot open disk", metadata: [:]) == "skiff: error: cannot open disk\n")
        #expect(MonitorLogHandler.textLine(level: .warning, message: "w", metadata: [:]) == "skiff: warning: w\n")
        #expect(MonitorLogHandler.textLine(level: .notice, message: "n", metadata: [:]) == "skiff: note: n\n")
        #expect(MonitorLogHandler.textLine(level: .info, message: "control request", metadata: ["request": "pause", "by": "a b"])
            == "skiff: control request by=\"a b\" request=pause\n")
    }

    @Test func jsonLinesAreValidJSONWhateverTheMessageHolds() throws {
        let hostile = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 🚀"
        let line = MonitorLogHandler.jsonLine(level: .warning, label: "skiff", message: hostile, metadata: ["device": "disk0", "message": "shadowed"])
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == hostile)
        #expect(object["level"] as? String == "warning")
        #expect(object["device"] as? String == "disk0")
        let time = try #require(object["time"] as? Double)
        #expect(abs(time - Date().timeIntervalSince1970) < 60)
    }

    @Test func theEnvironmentPicksFormatAndLevel() {
        #expect(MonitorLog.logger(environment: [:]).logLevel == .notice)
        #expect(MonitorLog.logger(verbose: true, environment: [:]).logLevel == .debug)
        #expect(MonitorLog.logger(environment: ["SKIFF_LOG_FORMAT": "json"]).logLevel == .info)
        #expect(MonitorLog.logger(environment: ["SKIFF_LOG_LEVEL": "error"]).logLevel == .error)
        // Unknown values fall back to the defaults.
        #expect(MonitorLog.logger(environment: ["SKIFF_LOG_FORMAT": "xml", "SKIFF_LOG_LEVEL": "loud"]).logLevel == .notice)
    }
}

/// A monitor's JSON log, as a daemon reads it.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct MonitorJSONLogTests {
    @Test func aMonitorLogsItsLifeAndControlRequestsAsJSONLines() throws {
        let socket = BalloonCLITests.socketPath()
        let child = try BalloonCLITests.Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--memory", "64M",
                                               "--cmdline", "mib=1 dirty=0 report=1", "--api-socket", socket],
                                              environment: ["SKIFF_LOG_FORMAT": "json"])
        #expect(child.waitFor("WL heartbeat"), "\(child.text)")
        let refused = try CLITests.run("skiff", ["vm", "rate-limit", "--api-socket", socket, "disk3", "--iops", "1"])
        #expect(refused.status != 0)
        for verb in ["pause", "resume", "stop"] {
            let r = try CLITests.run("skiff", ["vm", verb, "--api-socket", socket])
            #expect(r.status == 0, "\(verb): \(r.stderr)")
        }
        #expect(child.finish() == 0, "\(child.text)")
        // stdout and stderr share the child's pipe: take the lines that are JSON objects.
        let records = child.text.split(separator: "\n").compactMap { line -> [String: Any]? in
            guard line.hasPrefix("{") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        let messages = records.map { "\($0["message"] ?? "")|\($0["request"] ?? "")" }
        #expect(messages.contains("VM built|"), "\(messages)")
        for verb in ["pause", "resume", "stop"] { #expect(messages.contains("control request|\(verb)"), "\(messages)") }
        #expect(records.contains { ($0["message"] as? String)?.hasPrefix("control request refused") == true && $0["level"] as? String == "warning" })
        #expect(messages.contains("VM ended|"), "\(messages)")
        #expect(records.allSatisfy { $0["time"] is Double && $0["level"] is String })
    }
}
