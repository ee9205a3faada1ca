import Foundation
import Testing
@testable import VMM

/// Finds the guest test kit and boots its programs in-process.
enum GuestKit {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let buildDirectory = root.appendingPathComponent("guests/build")

    /// Path of guest `name`; records an issue if the kit was not built.
    static func path(_ name: String) throws -> String {
        let p = name.hasPrefix("/") ? name : buildDirectory.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: p) else {
            throw KitMissing(path: p)
        }
        return p
    }

    struct KitMissing: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: run scripts/setup.sh (it builds the guest kit)" }
    }

    struct Run {
        let outcome: MachineOutcome
        let output: String
        let vm: VirtualMachine
    }

    /// Boots `name` and waits for it to end (or `timeout` seconds, then stops it).
    static func boot(_ name: String, cmdline: String = "", memory: UInt64 = 64 << 20, cpus: Int = 1, initrd: String? = nil,
                     onReboot: RebootAction = .exit, timeout: Double = 60,
                     configure: (inout VMConfiguration) -> Void = { _ in }, whileRunning: (@Sendable (VirtualMachine, CapturedConsoleOutput) -> Void)? = nil) throws -> Run {
        var config = VMConfiguration(kernelPath: try path(name), initrdPath: initrd, commandLine: cmdline, memorySize: memory, vcpuCount: cpus, onReboot: onReboot)
        configure(&config)
        let console = CapturedConsoleOutput()
        let vm = try VirtualMachine(configuration: config, console: console)
        let watchdog = DispatchWorkItem { vm.stop() }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        if let whileRunning {
            DispatchQueue.global().async { whileRunning(vm, console) }
        }
        let outcome = vm.run()
        watchdog.cancel()
        TestSeccomp.expectNoRefusals()
        return Run(outcome: outcome, output: console.text, vm: vm)
    }

    /// The exit status a passing guest reports through debug-exit (0x10 << 1 | 1).
    static let passStatus = MachineOutcome.debugExit(status: 33)
}
