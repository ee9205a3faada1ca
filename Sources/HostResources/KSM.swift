/// The host's kernel same-page merging: its settings and what it saved.
public struct KSM: Sendable {
    public let root: String
    public init(root: String = "/sys/kernel/mm/ksm") { self.root = root }

    public struct Status: Sendable, Equatable {
        public var available: Bool
        public var run: Bool
        public var pagesToScan: Int
        public var sleepMilliseconds: Int
        /// Distinct merged pages kept.
        public var pagesShared: Int64
        /// Page mappings that point to them (the saving is pagesSharing pages).
        public var pagesSharing: Int64
        public var savedBytes: Int64 { pagesSharing * 4096 }

        public init(available: Bool, run: Bool, pagesToScan: Int, sleepMilliseconds: Int, pagesShared: Int64, pagesSharing: Int64) {
            self.available = available
            self.run = run
            self.pagesToScan = pagesToScan
            self.sleepMilliseconds = sleepMilliseconds
            self.pagesShared = pagesShared
            self.pagesSharing = pagesSharing
        }
    }

    public func status() -> Status {
        guard let run = SysFS.readInt("\(root)/run") else {
            return Status(available: false, run: false, pagesToScan: 0, sleepMilliseconds: 0, pagesShared: 0, pagesSharing: 0)
        }
        return Status(available: true, run: run == 1,
                      pagesToScan: Int(SysFS.readInt("\(root)/pages_to_scan") ?? 0),
                      sleepMilliseconds: Int(SysFS.readInt("\(root)/sleep_millisecs") ?? 0),
                      pagesShared: SysFS.readInt("\(root)/pages_shared") ?? 0,
                      pagesSharing: SysFS.readInt("\(root)/pages_sharing") ?? 0)
    }

    /// Changes the settings given (nil leaves one as it is).
    public func configure(run: Bool?, pagesToScan: Int?, sleepMilliseconds: Int?) throws(ResourceError) {
        if let pagesToScan { try SysFS.write(String(pagesToScan), to: "\(root)/pages_to_scan") }
        if let sleepMilliseconds { try SysFS.write(String(sleepMilliseconds), to: "\(root)/sleep_millisecs") }
        if let run { try SysFS.write(run ? "1" : "0", to: "\(root)/run") }
    }

    /// Pages of process `pid` that KSM merged (/proc/PID/ksm_merging_pages), and its
    /// `ksm_process_profit` from /proc/PID/ksm_stat when the kernel has it.
    public static func process(pid: Int32, procRoot: String = "/proc") -> (mergingPages: Int64, profitBytes: Int64?)? {
        guard let pages = SysFS.readInt("\(procRoot)/\(pid)/ksm_merging_pages") else { return nil }
        let stat = SysFS.read("\(procRoot)/\(pid)/ksm_stat").map(SysFS.keyValues) ?? [:]
        return (pages, stat["ksm_process_profit"])
    }
}
