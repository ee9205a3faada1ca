import ControlProtocol
import Foundation
import Testing
import WorkloadCheck
@testable import VMM

/// The snapshot, restore, migrate and fork verbs as a user types them, with real processes.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct SnapshotCLITests {
    typealias Child = BalloonCLITests.Child

    /// Runs `skiff ARGS` to completion with posix_spawn and waitpid (a command that leaves
    /// background processes behind, such as `skiff fork`, is reaped here directly).
    static func run(_ arguments: [String], timeout: Double = 60) -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-out-\(UUID().uuidString.prefix(8))").path
        defer { unlink(output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let path = CLITests.binDirectory.appendingPathComponent("skiff").path
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &actions, nil, &argv, environ) == 0 else { return (-1, "cannot start \(path)") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(10_000)
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
    }
    static let checker = WorkloadChecker(pages: 8 * 256, report: 200)

    @Test func pauseSnapshotAndRestoreFromTheCommandLine() throws {
        let dir = ScratchDirectory("skiff-cli")
        defer { dir.cleanup() }
        let socket = dir.file("api.sock")
        let vm = try Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--cmdline", "mib=8 report=200", "--api-socket", socket], consoleOnly: true)
        #expect(vm.waitFor("WL seq=1000 "), "\(vm.text)")
        #expect(try Child(["vm", "pause", "--api-socket", socket]).finish() == 0)
        let status = try Child(["vm", "status", "--api-socket", socket])
        #expect(status.finish() == 0)
        #expect(status.text.contains("state: paused"), "\(status.text)")
        let again = try Child(["vm", "pause", "--api-socket", socket])
        #expect(again.finish() == 1)
        #expect(again.text.contains("skiff: error: the VM is already paused"), "\(again.text)")
        let snapshot = try Child(["snapshot", "create", "--api-socket", socket, dir.file("snap"), "--stop"])
        #expect(snapshot.finish(timeout: 60) == 0, "\(snapshot.text)")
        #expect(snapshot.text.hasPrefix("snapshot \(dir.file("snap")): "), "\(snapshot.text)")
        #expect(vm.finish() == 0, "the source stops after --stop: \(vm.text)")
        // Everything the source printed, read after it exited (the pipe may lag the guest).
        let printed = vm.text
        #expect(!FileManager.default.fileExists(atPath: socket), "the control socket is removed")
        let restored = try Child(["run", "--restore", dir.file("snap")], consoleOnly: true)
        let last = try #require(WorkloadChecker.lines(printed).last).seq
        #expect(restored.waitFor("WL seq=\(last + 4 * 200) "), "\(restored.text)")
        kill(restored.process.processIdentifier, SIGKILL)
        _ = restored.finish()
        #expect(Self.checker.problems(printed + restored.text).isEmpty, "\(Self.checker.problems(printed + restored.text))")
        // Restoring needs no kernel, and refuses hardware options.
        let refused = try Child(["run", "--restore", dir.file("snap"), "--memory", "1G"])
        #expect(refused.finish() == 64, "a usage error")
        #expect(refused.text.contains("--restore takes the VM's hardware from elsewhere"), "\(refused.text)")
    }

    @Test func migrateMovesTheVMAndItsConsoleToTheTargetProcess() throws {
        let dir = ScratchDirectory("skiff-cli")
        defer { dir.cleanup() }
        let socket = dir.file("api.sock")
        let target = try Child(["run", "--incoming", "unix:\(dir.file("incoming.sock"))", "--api-socket", dir.file("target.sock")], consoleOnly: true)
        let source = try Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--cmdline", "mib=8 report=200", "--api-socket", socket], consoleOnly: true)
        #expect(source.waitFor("WL seq=1000 "), "\(source.text)")
        let migrate = try Child(["migrate", "--api-socket", socket, "unix:\(dir.file("incoming.sock"))", "--max-downtime", "50"])
        #expect(migrate.finish(timeout: 120) == 0, "\(migrate.text)")
        #expect(migrate.text.contains("migrated to unix:\(dir.file("incoming.sock")): "), "\(migrate.text)")
        #expect(source.finish() == 0, "the source monitor exits with status 0: \(source.text)")
        let last = try #require(WorkloadChecker.lines(source.text).last).seq
        #expect(target.waitFor("WL seq=\(last + 4 * 200) "), "\(target.text)")
        let status = try Child(["vm", "status", "--api-socket", dir.file("target.sock")])
        #expect(status.finish() == 0)
        #expect(status.text.contains("state: running"), "\(status.text)")
        kill(target.process.processIdentifier, SIGKILL)
        _ = target.finish()
        #expect(Self.checker.problems(source.text + target.text).isEmpty, "\(Self.checker.problems(source.text + target.text))")
    }

    @Test func forkStartsVMsThatShareTheSnapshotAndDiffer() throws {
        let dir = ScratchDirectory("skiff-cli")
        defer { dir.cleanup() }
        #expect(FileManager.default.createFile(atPath: dir.file("disk.raw"), contents: Data(count: 1 << 20)))
        let socket = dir.file("api.sock")
        // An idle workload (dirty=0) so three forks do not starve the machine.
        let vm = try Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--cmdline", "mib=8 report=200 dirty=0", "--api-socket", socket,
                            "--disk", dir.file("disk.raw"), "--vsock", "cid=5,socket=\(dir.file("v.sock"))"])
        #expect(vm.waitFor("WL heartbeat n=2"), "\(vm.text)")
        #expect(try Child(["snapshot", "create", "--api-socket", socket, dir.file("snap"), "--stop"]).finish(timeout: 60) == 0)
        #expect(vm.finish() == 0)
        let fork = Self.run(["fork", dir.file("snap"), "--count", "3", "--dir", dir.file("forks"), "--cid-base", "100"])
        #expect(fork.status == 0, "\(fork.output)")
        var generations: Set<String> = []
        var pids: [Int32] = []
        for line in fork.output.split(separator: "\n") where line.hasPrefix("fork ") {
            if let p = line.split(separator: " ").dropFirst(3).first.flatMap({ Int32($0.trimmingCharacters(in: .punctuationCharacters)) }) { pids.append(p) }
        }
        defer { for p in pids { kill(p, SIGKILL) } }
        #expect(pids.count == 3, "\(fork.output)")
        for i in 0..<3 {
            let home = dir.file("forks/fork-\(i)")
            guard case .status(let s) = try ControlProtocol.ControlClient(path: home + "/api.sock").send(.status) else {
                Issue.record("no status from fork \(i)")
                continue
            }
            #expect(s.state == .running)
            if let g = s.generationID { generations.insert(g) }
            #expect(FileManager.default.fileExists(atPath: home + "/disk0.qcow2"), "each fork writes its own overlay")
            #expect(FileManager.default.fileExists(atPath: home + "/vsock.sock"))
            // Each fork continues the workload from the snapshot.
            let deadline = Date().addingTimeInterval(30)
            var log = ""
            while Date() < deadline {
                log = (try? String(contentsOfFile: home + "/console.log", encoding: .utf8)) ?? ""
                if log.components(separatedBy: "WL heartbeat").count > 3 { break }
                usleep(50_000)
            }
            #expect(log.components(separatedBy: "WL heartbeat").count > 3, "fork \(i): \(log)")
        }
        #expect(generations.count == 3, "every fork has its own generation ID")
        // The base disk is untouched.
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("disk.raw"))) == Data(count: 1 << 20))
    }

    @Test func aForkThatCannotCreateItsOverlayFailsCleanly() throws {
        let dir = ScratchDirectory("skiff-cli")
        defer { dir.cleanup() }
        #expect(FileManager.default.createFile(atPath: dir.file("disk.raw"), contents: Data(count: 1 << 20)))
        let socket = dir.file("api.sock")
        let vm = try Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--cmdline", "mib=8", "--api-socket", socket, "--disk", dir.file("disk.raw")])
        #expect(vm.waitFor("WL seq=1000 "), "\(vm.text)")
        #expect(try Child(["snapshot", "create", "--api-socket", socket, dir.file("snap"), "--stop"]).finish(timeout: 60) == 0)
        _ = vm.finish()
        // The fork directory exists and cannot be written into.
        try FileManager.default.createDirectory(atPath: dir.file("forks/fork-0"), withIntermediateDirectories: true)
        let fork = Self.run(["fork", dir.file("snap"), "--count", "1", "--dir", dir.file("forks")])
        #expect(fork.status == 1, "a runtime error")
        #expect(fork.output.contains("cannot create"), "\(fork.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("disk.raw"))) == Data(count: 1 << 20), "the base is untouched")
        // A snapshot whose disk is gone gives a clear error too.
        try FileManager.default.removeItem(atPath: dir.file("disk.raw"))
        let again = Self.run(["fork", dir.file("snap"), "--count", "1", "--dir", dir.file("forks2")])
        #expect(again.status == 1, "a runtime error")
        #expect(again.output.contains("cannot create the overlay of \(dir.file("disk.raw"))"), "\(again.output)")
    }
}
