import VMM

/// The arguments of a plain restore (`--restore DIR` with at most `--api-socket`,
/// `--console-socket`, `--console-log`, `--ksm` and `--verbose`, each once, as separate
/// words), read without ArgumentParser.
///
/// A restore is meant to take a few milliseconds from exec() to running vCPUs, and building
/// ArgumentParser's model of the ~40 VM options costs about 1.6 ms of that on the build
/// hosts (runtime type lookups on first use). Anything else — another option, `--opt=value`,
/// a repeated or empty value — returns nil and goes through ArgumentParser, which also owns
/// every error message. `RestoreFastPathTests` checks that both readings agree.
public enum RestoreFastPath {
    /// What `VMLauncher.run` needs.
    public struct Launch {
        public var source: VMSource
        public var apiSocket: String?
        public var console: ConsoleSettings
    }

    /// The launch for `arguments` (without the program name), or nil when ArgumentParser must read them.
    public static func parse(_ arguments: [String]) -> Launch? {
        // Plain variables, no Dictionary: this runs before anything else in the process.
        var restore: String?, apiSocket: String?, consoleSocket: String?, consoleLog: String?, ksm: String?
        var verbose = false
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--verbose" {
                guard !verbose else { return nil }
                verbose = true
                i += 1
                continue
            }
            guard i + 1 < arguments.count else { return nil }
            let value = arguments[i + 1]
            guard !value.isEmpty, !value.hasPrefix("-") else { return nil }
            switch word {
            case "--restore" where restore == nil: restore = value
            case "--api-socket" where apiSocket == nil: apiSocket = value
            case "--console-socket" where consoleSocket == nil: consoleSocket = value
            case "--console-log" where consoleLog == nil: consoleLog = value
            case "--ksm" where ksm == nil: ksm = value
            default: return nil
            }
            i += 2
        }
        guard let restore else { return nil }
        var options = RestoreOptions()
        options.verbose = verbose
        switch ksm {
        case nil, "on": options.samePageMerging = true
        case "off": options.samePageMerging = false
        default: return nil
        }
        var console = ConsoleSettings()
        console.logPath = consoleLog
        console.socketPath = consoleSocket
        return Launch(source: .restore(directory: restore, options: options), apiSocket: apiSocket, console: console)
    }
}
