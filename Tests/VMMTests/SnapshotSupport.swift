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

