/// The guest kit's workload (guests/src/workload.c) as the tests judge it: shared by the
/// monitor's and the daemon's migration tests.

/// Checks the output of guests/src/workload.c: `WL seq=<s> hash=<h>` lines every `report`
/// steps whose hashes are recomputed here from the same step function, so a lost, repeated or
/// corrupted step anywhere (or a page that came back wrong and failed the guest's own
/// verification) shows up.
public struct WorkloadChecker: Sendable {
    public let pages: UInt64
    public let report: UInt64

    /// A checker for a workload over `pages` pages that reports every `report` steps.
    public init(pages: UInt64, report: UInt64) {
        self.pages = pages
        self.report = report
    }

    /// One `WL seq=<s> hash=<h>` line.
    public struct Line: Equatable, Sendable {
        public let seq: UInt64
        public let hash: UInt64
    }

    /// The seq/hash lines of `text` in order; a last line without its newline (output read
    /// while the guest writes, or cut by a kill) is not judged.
    public static func lines(_ text: String) -> [Line] {
        let complete = text.lastIndex(of: "\n").map { text[...$0] } ?? ""
        return complete.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard words.count == 3, words[0] == "WL", words[1].hasPrefix("seq="), words[2].hasPrefix("hash="),
                  let seq = UInt64(words[1].dropFirst(4)), let hash = UInt64(words[2].dropFirst(5), radix: 16) else { return nil }
            return Line(seq: seq, hash: hash)
        }
    }

    static func splitmix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    static func fnv(_ h: UInt64, _ w: UInt32) -> UInt64 {
        let x = h ^ UInt64(w)
        return x &* 0x1b3 &+ (x << 40)
    }

    /// The hash after `steps` steps.
    public func hash(after steps: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in 0..<steps {
            let p = UInt32((Self.splitmix(s) >> 32) % pages)
            h = Self.fnv(Self.fnv(Self.fnv(h, UInt32(truncatingIfNeeded: s)), UInt32(truncatingIfNeeded: s >> 32)), p)
        }
        return h
    }

    /// Problems with the concatenated output: gaps, repeats, wrong hashes, failed verification.
    public func problems(_ text: String) -> [String] {
        var problems: [String] = []
        if text.contains("SKIFF-TEST FAIL") { problems.append("the guest failed: \(text.split(separator: "\n").filter { $0.contains("FAIL") })") }
        let lines = Self.lines(text)
        if lines.isEmpty { problems.append("no WL lines") }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var steps: UInt64 = 0
        var previous: UInt64?
        for line in lines {
            if let previous, line.seq != previous + report, line.seq % report == 0 || line.seq < previous {
                problems.append("seq \(line.seq) follows seq \(previous)")
            }
            while steps < line.seq {
                let p = UInt32((Self.splitmix(steps) >> 32) % pages)
                h = Self.fnv(Self.fnv(Self.fnv(h, UInt32(truncatingIfNeeded: steps)), UInt32(truncatingIfNeeded: steps >> 32)), p)
                steps += 1
            }
            if line.seq == steps && line.hash != h { problems.append("seq \(line.seq): hash \(String(line.hash, radix: 16)), expected \(String(h, radix: 16))") }
            previous = line.seq
        }
        return problems
    }
}
