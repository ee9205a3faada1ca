import ArgumentParser
import Testing
@testable import VMCommands
@testable import VMM

/// The restore fast path of `skiff-vmm` reads its arguments exactly as ArgumentParser does,
/// and hands everything else to ArgumentParser.
struct RestoreFastPathTests {
    /// The fields a restore launch is made of, for comparing the two readings.
    struct Reading: Equatable {
        var directory: String
        var verbose: Bool
        var samePageMerging: Bool
        var overrides: Int
        var rateLimits: Int
        var apiSocket: String?
        var logPath: String?
        var logLimit: Int
        var socketPath: String?

        init?(_ source: VMSource, apiSocket: String?, console: ConsoleSettings) {
            guard case .restore(let directory, let options) = source else { return nil }
            self.directory = directory
            verbose = options.verbose
            samePageMerging = options.samePageMerging
            overrides = options.deviceOverrides.count
            rateLimits = options.rateLimits.count
            self.apiSocket = apiSocket
            logPath = console.logPath
            logLimit = console.logLimit
            socketPath = console.socketPath
        }
    }

    func argumentParserReading(_ arguments: [String]) throws -> Reading? {
        let command = try SkiffVMMCommand.parse(arguments)
        return Reading(try command.options.makeSource(), apiSocket: command.options.apiSocket, console: try command.options.consoleSettings())
    }

    @Test(arguments: [
        ["--restore", "/snap"],
        ["--restore", "/snap", "--api-socket", "/run/vm/api.sock"],
        ["--api-socket", "/a.sock", "--restore", "/s", "--console-socket", "/c.sock", "--console-log", "/var/log/c.log", "--ksm", "off", "--verbose"],
        ["--ksm", "on", "--restore", "relative/dir"],
    ])
    func plainRestoresAreReadTheSameWay(_ arguments: [String]) throws {
        let fast = try #require(RestoreFastPath.parse(arguments), "\(arguments) fell back")
        let slow = try argumentParserReading(arguments)
        #expect(Reading(fast.source, apiSocket: fast.apiSocket, console: fast.console) == slow)
    }

    @Test(arguments: [
        [],
        ["--kernel", "/k"],
        ["--restore=/snap"],
        ["--restore", "/snap", "--restore", "/other"],
        ["--restore", "/snap", "--verbose", "--verbose"],
        ["--restore"],
        ["--restore", ""],
        ["--restore", "/snap", "--api-socket"],
        ["--restore", "/snap", "--ksm", "maybe"],
        ["--restore", "/snap", "--disk", "/d.img"],
        ["--restore", "/snap", "--console-log-size", "4M"],
        ["--restore", "/snap", "--help"],
        ["--restore", "/snap", "--version"],
        ["--restore", "/snap", "extra"],
        ["--restore", "--api-socket", "/a.sock"],
    ])
    func anythingElseGoesToArgumentParser(_ arguments: [String]) {
        #expect(RestoreFastPath.parse(arguments) == nil, "\(arguments)")
    }
}
