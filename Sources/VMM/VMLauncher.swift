#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import DeviceModel
import KVM
import Logging
import Migration
import Seccomp
import SystemExtras
import X86Emulator

/// Where a VM comes from.
public enum VMSource: Sendable {
    /// Boot a kernel.
    case boot(VMConfiguration)
    /// Continue a VM from a snapshot directory.
    case restore(directory: String, options: RestoreOptions)
    /// Wait for a VM migrating in on this endpoint and continue it.
    case incoming(MigrationEndpoint, options: IncomingOptions)
}

/// Where the console goes: stdout (or a file, or nowhere), a log, a socket.
public struct ConsoleSettings: Sendable {
    /// The main destination of console output.
    public enum Output: Sendable, Equatable {
        /// The process's stdout (a terminal or a pipe).
        case standardOutput
        /// A file, created or truncated when the VM starts.
        case file(String)
        /// Nowhere (the log and the socket still get it).
        case none
    }

    public var output = Output.standardOutput
    /// Whether stdin feeds the console (and Ctrl-A x stops the VM on a terminal).
    public var readsStandardInput = true
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
    /// `apiSocket` if given, and returns the exit status: 0 after poweroff (or a reset the
    /// configuration turns into an exit, or a stop), the debug-exit status, or 1 after
    /// logging the error. Notes, errors and lifecycle events go to `MonitorLog`'s logger.
    public static func run(_ source: VMSource, apiSocket: String? = nil, console settings: ConsoleSettings = ConsoleSettings()) -> Int32 {
        StartTrace.mark("main")
        let verbose: Bool
        switch source {
        case .boot(let config): verbose = config.verbose
        case .restore(_, let options): verbose = options.verbose
        case .incoming(_, let options): verbose = options.restore.verbose
        }
        let log = MonitorLog.logger(verbose: verbose)
        signal(SIGPIPE, SIG_IGN)
        raiseOpenFilesLimit()
        // SIGTERM, SIGINT and SIGHUP stop the VM cleanly: blocked in every thread (they inherit
        // the mask) and taken by one thread with sigwait.
        let stopSignals = TerminationSignals()
        let console: BufferedConsoleOutput
        do {
            var sinks: [any ConsoleSink] = []
            switch settings.output {
            case .standardOutput: sinks.append(FileDescriptorSink(fd: 1))
            case .file(let path): sinks.append(try FileDescriptorSink(creating: path))
            case .none: break
            }
            if let path = settings.logPath { sinks.append(try RotatingLogSink(path: path, limit: settings.logLimit)) }
            // Its writer thread starts once seccomp is on, so that it is confined too.
            console = try BufferedConsoleOutput(sinks: sinks, startingWriter: false)
        } catch {
            log.error("console: \(error)")
            return 1
        }
        defer { console.close() }
        let vm: VirtualMachine
        do {
            switch source {
            case .boot(let config):
                vm = try VirtualMachine(configuration: config, console: console)
                log.info("VM built", metadata: ["kernel": "\(config.kernelPath)", "memory": "\(config.memorySize)", "vcpus": "\(config.vcpuCount)"])
            case .restore(let directory, let options):
                vm = try VirtualMachine.restore(from: directory, options: options, console: console)
                log.info("VM restored", metadata: ["snapshot": "\(directory)"])
            case .incoming(let endpoint, let options):
                let listener: MigrationListener
                do {
                    listener = try MigrationListener(endpoint: endpoint)
                } catch {
                    throw VMError(error.description)
                }
                log.info("waiting for a migrating VM on \(endpoint)")
                // A stop signal ends the wait at once (the listener's socket is removed).
                let stop = stopSignals.pendingDescriptor()
                let received = Result { () throws(VMError) -> VirtualMachine in
                    try VirtualMachine.receiveMigration(on: listener, options: options, console: console, stopWhenReadable: stop?.rawValue)
                }
                if case .failure(let error) = received, stopSignals.arePending {
                    log.info("stop signal received while waiting for a migrating VM: \(error)")
                    return 0
                }
                vm = try received.get()
                log.info("VM migrated in", metadata: ["endpoint": "\(endpoint)"])
            }
        } catch {
            log.error("\(error)")
            return 1
        }
        // Seccomp: every thread started from here on confines itself to its role's allow-list;
        // this thread does so right before the vCPUs start (docs/seccomp.md).
        let seccomp: SeccompPolicy?
        do {
            seccomp = try SeccompPolicy.activate(vm.configuration.seccomp, profile: seccompProfile(for: vm.configuration))
            try console.startWriter()
        } catch {
            log.error("\(error)")
            return 1
        }
        if verbose || !vm.addedKernelOptions.isEmpty {
            for notice in vm.notices { log.notice("\(notice)") }
        }
        if !vm.addedKernelOptions.isEmpty {
            log.notice("added \(vm.addedKernelOptions.joined(separator: " ")) to the kernel command line")
        }
        // Weakly: the VM is released on this thread, never on the signal thread.
        stopSignals.onSignal { [weak vm] in
            log.info("stop signal received")
            vm?.stop()
        }
        if let path = settings.socketPath {
            do {
                unsafe console.addSink(try ConsoleSocket(path: path) { [vm] bytes in unsafe vm.sendConsoleInput(bytes) })
            } catch {
                log.error("\(error)")
                return 1
            }
        }
        var control: ControlSocket?
        if let apiSocket {
            do {
                let c = try ControlSocket(path: apiSocket) { [vm] request in
                    let reply = ControlCommands.handle(request, target: vm)
                    Self.logControl(request, reply: reply, to: log)
                    return reply
                }
                try c.start()
                control = c
            } catch {
                log.error("\(error)")
                return 1
            }
        }
        defer { control?.stop() }
        var pump: ConsoleInputPump?
        if settings.readsStandardInput {
            do {
                let p = unsafe try ConsoleInputPump(fd: 0, sink: { [vm] bytes in unsafe vm.sendConsoleInput(bytes) }, onQuit: { [vm] in vm.stop() })
                try p.start()
                pump = p
            } catch {
                log.warning("console input disabled: \(error)")
            }
        }
        // Benchmarks time exec() → vCPUs running against this line (CLOCK_MONOTONIC).
        if StartTrace.enabled {
            log.notice("trace: \(StartTrace.summary) vcpus-start monotonic-ns=\(StartTrace.now())")
        }
        seccomp?.confineMainThread(rebuildsMachines: vm.configuration.onReboot == .restart)
        let outcome = vm.run()
        stopSignals.finish()
        pump?.stop()
        log.info("VM ended", metadata: ["outcome": "\(outcome)"])
        if verbose {
            log.debug("exits \(vm.lastExitCounts.sorted { $0.key < $1.key })")
            if !vm.emulationSummary.isEmpty { log.debug("emulation assist: \(vm.emulationSummary)") }
        }
        return exitStatus(for: outcome, log: log)
    }

    /// What the seccomp filters must allow for `configuration` beyond the fixed lists.
    static func seccompProfile(for configuration: VMConfiguration) -> SeccompProfile {
        var profile = SeccompProfile()
        profile.network = configuration.devices.contains { if case .net = $0 { return true } else { return false } }
        profile.mainRebuildsMachines = configuration.onReboot == .restart
        if configuration.emulationAssist != .off, let region = ExecutableCodeRegion.shared {
            profile.executableRegion = .init(base: UInt64(region.base), size: UInt64(ExecutableCodeRegion.size),
                                             slotSize: UInt64(ExecutableCodeRegion.slotSize))
        }
        return profile
    }

    /// Control requests that change the VM are logged at info, the rest (status, metrics) at
    /// debug. A refused request is logged at info too: the client gets the error in its reply,
    /// and a warning on stderr would land in the middle of the console on a terminal.
    static func logControl(_ request: ControlRequest, reply: ControlReply, to log: Logger) {
        if case .failure(let error) = reply {
            log.info("control request refused: \(error.message)", metadata: ["request": "\(request.name)"])
            return
        }
        switch request {
        case .status, .metrics, .migrationStatus, .waitForMigration, .balloonStatistics:
            log.debug("control request", metadata: ["request": "\(request.name)"])
        case .setRateLimit(let device, _):
            log.info("control request", metadata: ["request": "\(request.name)", "device": "\(device.prefix(32))"])
        case .setBalloon(let mib):
            log.info("control request", metadata: ["request": "\(request.name)", "target-mib": "\(mib)"])
        default:
            log.info("control request", metadata: ["request": "\(request.name)"])
        }
    }

    /// The process exit status for a VM outcome.
    public static func exitStatus(for outcome: MachineOutcome, log: Logger = MonitorLog.logger()) -> Int32 {
        switch outcome {
        case .powerOff, .reset, .stopped: return 0
        case .debugExit(let status): return status
        case .failed(let message):
            log.error("\(message)")
            return 1
        }
    }
}

/// Raises the soft open-files limit to the hard one, as a server holding one descriptor per
/// connection should (a guest's vsock connections each hold one; the device still keeps a
/// reserve under whatever limit applies, see `VsockLimits.descriptorReserve`).
func raiseOpenFilesLimit() {
    var r = rlimit()
    guard unsafe getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0, r.rlim_cur < r.rlim_max else { return }
    r.rlim_cur = r.rlim_max
    _ = unsafe setrlimit(Int32(RLIMIT_NOFILE.rawValue), &r)
}
