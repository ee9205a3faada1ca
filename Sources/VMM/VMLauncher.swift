#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import DeviceModel
import KVM
import Migration
import SystemExtras

/// Where a VM comes from.
public enum VMSource: Sendable {
    /// Boot a kernel.
    case boot(VMConfiguration)
    /// Continue a VM from a snapshot directory.
    case restore(directory: String, options: RestoreOptions)
    /// Wait for a VM migrating in on this endpoint and continue it.
    case incoming(MigrationEndpoint, options: IncomingOptions)
}

/// Where the serial console goes besides stdout.
public struct ConsoleSettings: Sendable {
    /// A bounded log of the output (rotated to `logPath.1`).
    public var logPath: String?
    /// Bytes the log holds before it rotates.
    public var logLimit = 1 << 20
    /// A unix socket serving scrollback, live output and input (for a host daemon).
    public var socketPath: String?

    public init() {}
}

/// Runs a VM in this process with its console on the terminal: what `skiff run` does.
public enum VMLauncher {
    /// Boots `config`; see `run(_:apiSocket:)`.
    public static func runInteractive(_ config: VMConfiguration, apiSocket: String? = nil) -> Int32 {
        run(.boot(config), apiSocket: apiSocket)
    }

    /// Builds the VM, forwards stdin/stdout to the console, serves the control API on
    /// `apiSocket` if given, and returns the exit status: 0 after poweroff (or reset with
    /// `--on-reboot exit`, or a stop), the debug-exit status, or 1 after printing the error.
    public static func run(_ source: VMSource, apiSocket: String? = nil, console settings: ConsoleSettings = ConsoleSettings()) -> Int32 {
        StartTrace.mark("main")
        signal(SIGPIPE, SIG_IGN)
        // SIGTERM, SIGINT and SIGHUP stop the VM cleanly: blocked in every thread (they inherit
        // the mask) and taken by one thread with sigwait.
        let stopSignals = TerminationSignals()
        let console: BufferedConsoleOutput
        do {
            var sinks: [any ConsoleSink] = [FileDescriptorSink(fd: 1)]
            if let path = settings.logPath { sinks.append(try RotatingLogSink(path: path, limit: settings.logLimit)) }
            console = try BufferedConsoleOutput(sinks: sinks)
        } catch {
            writeStderr("skiff: error: console: \(error)")
            return 1
        }
        defer { console.close() }
        let vm: VirtualMachine
        let verbose: Bool
        do {
            switch source {
            case .boot(let config):
                vm = try VirtualMachine(configuration: config, console: console)
                verbose = config.verbose
            case .restore(let directory, let options):
                vm = try VirtualMachine.restore(from: directory, options: options, console: console)
                verbose = options.verbose
            case .incoming(let endpoint, let options):
                let listener: MigrationListener
                do {
                    listener = try MigrationListener(endpoint: endpoint)
                } catch {
                    throw VMError(error.description)
                }
                if options.restore.verbose { writeStderr("skiff: waiting for a migrating VM on \(endpoint)") }
                vm = try VirtualMachine.receiveMigration(on: listener, options: options, console: console)
                verbose = options.restore.verbose
            }
        } catch {
            writeStderr("skiff: error: \(error)")
            return 1
        }
        if verbose || !vm.addedKernelOptions.isEmpty {
            for notice in vm.notices { writeStderr("skiff: note: \(notice)") }
        }
        if !vm.addedKernelOptions.isEmpty {
            writeStderr("skiff: note: added \(vm.addedKernelOptions.joined(separator: " ")) to the kernel command line")
        }
        stopSignals.onSignal { [vm] in vm.stop() }
        if let path = settings.socketPath {
            do {
                console.addSink(try ConsoleSocket(path: path) { [vm] bytes in vm.sendConsoleInput(bytes) })
            } catch {
                writeStderr("skiff: error: \(error)")
                return 1
            }
        }
        var control: ControlSocket?
        if let apiSocket {
            do {
                let c = try ControlSocket(path: apiSocket) { [vm] request in ControlCommands.handle(request, target: vm) }
                try c.start()
                control = c
            } catch {
                writeStderr("skiff: error: \(error)")
                return 1
            }
        }
        defer { control?.stop() }
        var pump: ConsoleInputPump?
        do {
            let p = try ConsoleInputPump(fd: 0, sink: { [vm] bytes in vm.sendConsoleInput(bytes) }, onQuit: { [vm] in vm.stop() })
            try p.start()
            pump = p
        } catch {
            writeStderr("skiff: warning: console input disabled: \(error)")
        }
        // Benchmarks time exec() → vCPUs running against this line (CLOCK_MONOTONIC).
        if StartTrace.enabled {
            writeStderr("skiff: trace: \(StartTrace.summary) vcpus-start monotonic-ns=\(StartTrace.now())")
        }
        let outcome = vm.run()
        pump?.stop()
        if verbose {
            writeStderr("skiff: VM ended: \(outcome); exits \(vm.lastExitCounts.sorted { $0.key < $1.key })")
            if !vm.emulationSummary.isEmpty { writeStderr("skiff: emulation assist: \(vm.emulationSummary)") }
        }
        return exitStatus(for: outcome)
    }

    /// The process exit status for a VM outcome.
    public static func exitStatus(for outcome: MachineOutcome) -> Int32 {
        switch outcome {
        case .powerOff, .reset, .stopped: return 0
        case .debugExit(let status): return status
        case .failed(let message):
            writeStderr("skiff: error: \(message)")
            return 1
        }
    }
}

/// Writes one line to stderr.
func writeStderr(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.utf8CString.withUnsafeBufferPointer { buf in
        _ = Glibc.write(2, buf.baseAddress, buf.count - 1)
    }
}
