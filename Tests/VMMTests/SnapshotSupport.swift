import Foundation
import Synchronization
import Testing
@testable import VMM

/// A VM running on a background thread of the test process, with its console captured.
final class RunningVM: @unchecked Sendable {
    let vm: VirtualMachine
    let console: CapturedConsoleOutput
    private let done = DispatchSemaphore(value: 0)
    private let result = Mutex<MachineOutcome?>(nil)

    init(_ vm: VirtualMachine, console: CapturedConsoleOutput) {
        self.vm = vm
        self.console = console
        Thread.detachNewThread { [self] in
            let outcome = vm.run()
            result.withLock { $0 = outcome }
            done.signal()
        }
    }

    /// Boots a guest-kit program.
    static func boot(_ name: String, cmdline: String = "", memory: UInt64 = 64 << 20, cpus: Int = 1,
                     configure: (inout VMConfiguration) -> Void = { _ in }) throws -> RunningVM {
        var config = VMConfiguration(kernelPath: try GuestKit.path(name), commandLine: cmdline, memorySize: memory, vcpuCount: cpus)
        configure(&config)
        let console = CapturedConsoleOutput()
        return RunningVM(try VirtualMachine(configuration: config, console: console), console: console)
    }

    /// Restores a snapshot.
    static func restore(_ directory: String, options: RestoreOptions = RestoreOptions()) throws -> RunningVM {
        let console = CapturedConsoleOutput()
        return RunningVM(try VirtualMachine.restore(from: directory, options: options, console: console), console: console)
    }

    var text: String { console.text }

    func waitFor(_ needle: String, timeout: Double = 60) -> Bool { console.waitFor(needle, timeout: timeout) }

    /// Waits for the VM to end (stopping it after `timeout`) and returns how it ended.
    @discardableResult
    func finish(timeout: Double = 60) -> MachineOutcome {
        if done.wait(timeout: .now() + timeout) == .timedOut {
            vm.stop()
            done.wait()
        }
        done.signal()
        TestSeccomp.expectNoRefusals()
        return result.withLock { $0 } ?? .stopped
    }

    /// Stops the VM and waits for it.
    func stop() {
        vm.stop()
        finish(timeout: 30)
    }
}

/// A fresh directory under the temporary directory, removed by `cleanup()`.
struct ScratchDirectory {
    let path: String
    init(_ name: String = "skiff-snap") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Checks the output of guests/src/workload.c: `WL seq=<s> hash=<h>` lines every `report`
/// steps whose hashes are recomputed here from the same step function, so a lost, repeated or
/// corrupted step anywhere (or a page that came back wrong and failed the guest's own
/// verification) shows up.
struct WorkloadChecker {
    let pages: UInt64
    let report: UInt64

    struct Line: Equatable {
        let seq: UInt64
        let hash: UInt64
    }

    /// The seq/hash lines of `text` in order; a last line without its newline (output read
    /// while the guest writes, or cut by a kill) is not judged.
    static func lines(_ text: String) -> [Line] {
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
    func hash(after steps: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in 0..<steps {
            let p = UInt32((Self.splitmix(s) >> 32) % pages)
            h = Self.fnv(Self.fnv(Self.fnv(h, UInt32(truncatingIfNeeded: s)), UInt32(truncatingIfNeeded: s >> 32)), p)
        }
        return h
    }

    /// Problems with the concatenated output: gaps, repeats, wrong hashes, failed verification.
    func problems(_ text: String) -> [String] {
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
