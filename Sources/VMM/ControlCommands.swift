import Virtio

/// What the control API can do to a running VM's balloon (`VirtualMachine` provides it).
public protocol BalloonControl: AnyObject, Sendable {
    func setBalloonTarget(pages: UInt64) throws(VMError)
    func balloonStatistics(freshWithin timeout: Double) -> VirtioBalloon.Status?
    /// Counters of the running VM as (name, value), names made of `[a-z0-9.-]`.
    func metrics() -> [(name: String, value: UInt64)]
}

extension VirtualMachine: BalloonControl {}

/// The control socket's commands: `balloon <MiB>` sets the balloon target, `balloon-stats`
/// asks the guest for fresh statistics and prints them, `metrics` prints the VM's counters (exits
/// by kind, emulation-assist instructions), `help` lists the commands.
public enum ControlCommands {
    /// How long `balloon-stats` waits for the guest's fresh statistics.
    public static let statisticsTimeout = 1.0
    static let pagesPerMiB: UInt64 = 256
    static let usage = "commands: balloon <MiB>, balloon-stats, metrics, help"

    /// Runs one request line; the reply ends with `ok` or `error: …`.
    public static func handle(_ line: String, target: any BalloonControl) -> [String] {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let command = words.first else { return ["error: empty request; \(usage)"] }
        switch command {
        case "help":
            guard words.count == 1 else { return ["error: help takes no arguments"] }
            return [usage, "ok"]
        case "balloon":
            guard words.count == 2, let mib = parseMiB(words[1]) else {
                return ["error: usage: balloon <MiB> (a whole number of MiB)"]
            }
            let (pages, overflow) = mib.multipliedReportingOverflow(by: pagesPerMiB)
            guard !overflow else { return ["error: balloon \(mib) MiB is larger than guest RAM"] }
            do {
                try target.setBalloonTarget(pages: pages)
            } catch {
                return ["error: \(error.message)"]
            }
            return ["target-mib \(mib)", "ok"]
        case "balloon-stats":
            guard words.count == 1 else { return ["error: balloon-stats takes no arguments"] }
            guard let s = target.balloonStatistics(freshWithin: statisticsTimeout) else {
                return ["error: the VM has no balloon device (start it with --balloon)"]
            }
            var lines = [
                "target-pages \(s.targetPages)", "actual-pages \(s.actualPages)",
                "target-mib \(UInt64(s.targetPages) / pagesPerMiB)", "actual-mib \(UInt64(s.actualPages) / pagesPerMiB)",
                "inflated-pages \(s.inflatedPages)", "deflated-pages \(s.deflatedPages)", "reported-pages \(s.reportedPages)",
                "rejected \(s.rejected)", "statistics-updates \(s.statisticsUpdates)",
            ]
            lines += s.statistics?.lines ?? []
            lines.append("ok")
            return lines
        case "metrics":
            guard words.count == 1 else { return ["error: metrics takes no arguments"] }
            return target.metrics().map { "\($0.name) \($0.value)" } + ["ok"]
        default:
            return ["error: unknown command '\(command.prefix(32))'; \(usage)"]
        }
    }

    /// A decimal number of MiB: digits only, at most 10 of them.
    static func parseMiB(_ word: Substring) -> UInt64? {
        guard !word.isEmpty, word.count <= 10, word.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(word)
    }
}
