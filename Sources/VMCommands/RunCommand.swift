import ArgumentParser
import Units
import ArchX86
import ControlProtocol
import Loader
import VMM

/// The options that describe one VM, shared by `skiff run` and `skiff-vmm`.
public struct VMOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Kernel image: bzImage, PVH ELF or multiboot.", valueName: "path"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp(
        "Continue the VM saved in this snapshot directory instead of booting (no kernel needed). --disk, --net and --vsock then replace the snapshot's devices of that kind, in order.",
        valueName: "dir"))
    var restore: String?

    @Option(name: .long, help: ArgumentHelp(
        "Wait for a VM migrating in ('skiff migrate' on the source) on tcp://ADDR:PORT or unix:PATH and continue it here. --disk, --net and --vsock replace its devices of that kind, in order.",
        valueName: "url"))
    var incoming: String?

    @Option(name: .customLong("incoming-base"), help: ArgumentHelp(
        "With --incoming: where this host keeps the snapshot the migrating VM was forked or restored from (default: the source's path); only pages that differ from it travel.",
        valueName: "dir"))
    var incomingBase: String?

    @Option(name: .customLong("kernel-format"), help: ArgumentHelp("Kernel format: automatic, bzImage, pvh or multiboot.", valueName: "format"))
    var kernelFormat: String = "automatic"

    @Option(name: .long, help: ArgumentHelp("Initial ramdisk (Linux) or first module (multiboot).", valueName: "path"))
    var initrd: String?

    @Option(name: .long, help: ArgumentHelp("Extra multiboot module: 'PATH[ ARGS]' (repeatable).", valueName: "path[ args]"))
    var module: [String] = []

    @Option(name: .long, help: ArgumentHelp("Kernel command line.", valueName: "string"))
    var cmdline: String = ""

    @Option(name: .long, help: ArgumentHelp(
        "Guest RAM, 16M to 512G (a number is MiB; K, M, G, T suffixes, also as KB/KiB, e.g. 512M, 1.5G; default 256M).", valueName: "size"))
    var memory: String?

    @Option(name: .long, help: ArgumentHelp("Number of vCPUs, 1 to 254 (default 1).", valueName: "count"))
    var cpus: Int?

    @Option(name: .customLong("cpu-template"), help: ArgumentHelp("CPUID template: baseline (default) or host.", valueName: "baseline|host"))
    var cpuTemplate: String?

    @Option(name: .customLong("on-reboot"), help: ArgumentHelp("What a guest reset does: exit (default) or restart.", valueName: "exit|restart"))
    var onReboot: String?

    @Option(name: .customLong("emulation-assist"), help: ArgumentHelp("Complete instructions the host's KVM cannot emulate: auto, on or off.", valueName: "auto|on|off"))
    var emulationAssist: String = EmulationAssistMode.auto.rawValue

    @Flag(name: .long, help: "Attach a virtio-rng device fed by the host's getrandom.")
    var rng = false

    @Flag(name: .long, help: "Attach a virtio-balloon device (with statistics); set its target through --api-socket.")
    var balloon = false

    @Flag(name: .customLong("balloon-deflate-on-oom"), help: "Let the guest deflate the balloon when it runs out of memory.")
    var balloonDeflateOnOOM = false

    @Flag(name: .customLong("balloon-free-page-reporting"), help: "Let the guest report free pages, which go back to the host.")
    var balloonFreePageReporting = false

    @Option(name: .long, help: ArgumentHelp(
        "Console device for host input: serial or virtio (hvc0; the output of both goes where --serial says).", valueName: "serial|virtio"))
    var console: String = "serial"

    @Option(name: .customLong("api-socket"), help: ArgumentHelp(
        "Serve the control API on this unix socket ('skiff vm', 'skiff snapshot' and 'skiff migrate' talk to it).", valueName: "path"))
    var apiSocket: String?

    @Option(name: .long, help: ArgumentHelp(
        "Attach a virtio-blk disk (repeatable). The format is raw unless format= says otherwise: images are never probed. readonly refuses guest writes; serial= sets the GET_ID string (default: the file name). bw= (bytes/s, K/M/G suffixes) and iops= limit it (bw-burst=, iops-burst=: a one-time allowance spent first); 'skiff vm rate-limit' changes them later.",
        valueName: DiskOption.usage))
    var disk: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Attach a virtio-net device on a TAP interface (repeatable), created if absent (needs CAP_NET_ADMIN); its addresses and link state are the host's business. Without mac= the guest gets a random locally administered address. rx-bw=/tx-bw= (bytes/s) and rx-pps=/tx-pps= (frames/s) limit what the guest receives/sends.",
        valueName: NetOption.usage))
    var net: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Attach a virtio-vsock device with guest context ID N. Host processes connect to the AF_UNIX socket PATH (created by Skiff) and write 'CONNECT <port>\\n'; guest connections to host port P go to PATH_P.",
        valueName: "cid=N,socket=PATH"))
    var vsock: String?

    @Flag(name: .long, help: "Print VM events and an exit summary on stderr.")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp(
        "Where the console output goes: stdio (this terminal or pipe; stdin is the console's input), file=PATH (a new file, or truncated; stdin is not read) or none.",
        valueName: "stdio|file=PATH|none"))
    var serial: String = "stdio"

    @Option(name: .customLong("console-log"), help: ArgumentHelp(
        "Also append the console output to this file, kept bounded: past --console-log-size it moves to FILE.1 and a new file starts.",
        valueName: "file"))
    var consoleLog: String?

    @Option(name: .customLong("console-log-size"), help: ArgumentHelp(
        "Size at which the console log rotates, 4K to 1T (a number is MiB, like --memory).", valueName: "size"))
    var consoleLogSize: String = "1M"

    @Option(name: .customLong("console-socket"), help: ArgumentHelp(
        "Serve the serial console on this unix socket: clients get the recent output, then the live output; what they send is console input.",
        valueName: "path"))
    var consoleSocket: String?

    @Option(name: .long, help: ArgumentHelp("Let KSM merge identical pages of guest RAM with other VMs.", valueName: "on|off"))
    var ksm: String = "on"

    /// Where the VM comes from: a boot of `--kernel`, or `--restore DIR`.
    func makeSource() throws(ValidationError) -> VMSource {
        if let incoming {
            guard restore == nil else { throw ValidationError("--incoming and --restore cannot be combined") }
            guard let endpoint = MigrationEndpoint(incoming) else { throw ValidationError("--incoming must be tcp://ADDR:PORT or unix:PATH") }
            var options = IncomingOptions()
            options.restore = try restoreOptions(for: "--incoming")
            options.baseDirectory = incomingBase
            return .incoming(endpoint, options: options)
        }
        guard incomingBase == nil else { throw ValidationError("--incoming-base needs --incoming") }
        guard let restore else { return .boot(try makeConfiguration()) }
        guard !restore.isEmpty else { throw ValidationError("--restore needs a snapshot directory") }
        return .restore(directory: restore, options: try restoreOptions(for: "--restore"))
    }

    /// Options of a VM that takes its hardware from elsewhere (a snapshot or a migration).
    private func restoreOptions(for flag: String) throws(ValidationError) -> RestoreOptions {
        guard kernel == nil, initrd == nil, module.isEmpty, cmdline.isEmpty, memory == nil, cpus == nil, onReboot == nil,
              kernelFormat == "automatic", !rng, !balloon, !balloonDeflateOnOOM, !balloonFreePageReporting, console == "serial" else {
            throw ValidationError("\(flag) takes the VM's hardware from elsewhere: only --disk, --net, --vsock, --cpu-template, --api-socket and --verbose may be given with it")
        }
        var options = RestoreOptions()
        if let cpuTemplate {
            guard let t = CPUTemplate(rawValue: cpuTemplate) else {
                throw ValidationError("--cpu-template must be one of: \(CPUTemplate.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            options.cpuTemplate = t
        }
        let (specs, limits) = try diskAndNetDevices()
        options.deviceOverrides += specs
        options.rateLimits = limits
        if let vsock { options.deviceOverrides.append(try VsockOption.parse(vsock)) }
        options.verbose = verbose
        options.samePageMerging = try samePageMerging()
        return options
    }

    /// The `--disk` and `--net` devices, and their rate limits named as the VM counts them.
    private func diskAndNetDevices() throws(ValidationError) -> ([VirtioDeviceSpec], [DeviceRateLimit]) {
        var specs: [VirtioDeviceSpec] = []
        var limits: [DeviceRateLimit] = []
        for (i, d) in disk.enumerated() {
            let parsed = try DiskOption.parse(d)
            specs.append(parsed.spec)
            if let l = parsed.limits { limits.append(DeviceRateLimit(device: "disk\(i)", limits: l)) }
        }
        for (i, n) in net.enumerated() {
            let parsed = try NetOption.parse(n)
            specs.append(parsed.spec)
            if let l = parsed.receive { limits.append(DeviceRateLimit(device: "net\(i)", limits: l)) }
            if let l = parsed.transmit { limits.append(DeviceRateLimit(device: "net\(i)", limits: l)) }
        }
        return (specs, limits)
    }

    /// The validated VM configuration.
    func makeConfiguration() throws(ValidationError) -> VMConfiguration {
        guard let kernel, !kernel.isEmpty else { throw ValidationError("--kernel is required (or --restore DIR)") }
        let bytes: UInt64
        do {
            bytes = try ByteSize.parse(memory ?? "256M")
            _ = try MemoryMap(ramSize: bytes)
        } catch {
            throw ValidationError("--memory: \(error)")
        }
        guard let template = CPUTemplate(rawValue: cpuTemplate ?? CPUTemplate.baseline.rawValue) else {
            throw ValidationError("--cpu-template must be one of: \(CPUTemplate.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let reboot = RebootAction(rawValue: onReboot ?? RebootAction.exit.rawValue) else {
            throw ValidationError("--on-reboot must be one of: \(RebootAction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let cpus = self.cpus ?? 1
        guard cpus >= 1, cpus <= 254 else { throw ValidationError("--cpus must be between 1 and 254") }
        var config = VMConfiguration(
            kernelPath: kernel, initrdPath: initrd, commandLine: cmdline, memorySize: bytes, vcpuCount: cpus,
            cpuTemplate: template, onReboot: reboot)
        config.modules = module.map { spec in
            let parts = spec.split(separator: " ", maxSplits: 1)
            return VMConfiguration.Module(path: String(parts.first ?? ""), commandLine: parts.count > 1 ? String(parts[1]) : "")
        }
        config.verbose = verbose
        if rng { config.devices.append(.rng) }
        let (specs, limits) = try diskAndNetDevices()
        config.devices += specs
        config.rateLimits = limits
        if let vsock { config.devices.append(try VsockOption.parse(vsock)) }
        if balloon {
            config.devices.append(.balloon(BalloonSpec(statistics: true, freePageReporting: balloonFreePageReporting,
                                                       deflateOnOOM: balloonDeflateOnOOM)))
        } else if balloonDeflateOnOOM || balloonFreePageReporting {
            throw ValidationError("--balloon-deflate-on-oom and --balloon-free-page-reporting need --balloon")
        }
        switch console {
        case "serial": break
        case "virtio": config.devices.append(.console)
        default: throw ValidationError("--console must be one of: serial, virtio")
        }
        if let apiSocket, apiSocket.isEmpty { throw ValidationError("--api-socket needs a path") }
        guard let assist = EmulationAssistMode(rawValue: emulationAssist) else {
            throw ValidationError("--emulation-assist must be one of: \(EmulationAssistMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        config.emulationAssist = assist
        guard let format = KernelFormat(rawValue: kernelFormat) else {
            throw ValidationError("--kernel-format must be one of: \(KernelFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        config.kernelFormat = format
        config.samePageMerging = try samePageMerging()
        return config
    }

    func samePageMerging() throws(ValidationError) -> Bool {
        switch ksm {
        case "on": return true
        case "off": return false
        default: throw ValidationError("--ksm must be on or off")
        }
    }

    /// Where the console goes.
    func consoleSettings() throws(ValidationError) -> ConsoleSettings {
        var settings = ConsoleSettings()
        switch serial {
        case "stdio":
            settings.output = .standardOutput
        case "none":
            settings.output = .none
            settings.readsStandardInput = false
        case let value where value.hasPrefix("file="):
            let path = String(value.dropFirst(5))
            guard !path.isEmpty else { throw ValidationError("--serial file= needs a path") }
            settings.output = .file(path)
            settings.readsStandardInput = false
        default:
            throw ValidationError("--serial must be stdio, file=PATH or none")
        }
        settings.logPath = consoleLog
        settings.socketPath = consoleSocket
        let size: UInt64
        do {
            size = try ByteSize.parse(consoleLogSize)
        } catch {
            throw ValidationError("--console-log-size: \(error)")
        }
        guard size >= 4096, size <= 1 << 40 else { throw ValidationError("--console-log-size must be 4K to 1T") }
        settings.logLimit = Int(size)
        if let p = consoleLog, p.isEmpty { throw ValidationError("--console-log needs a path") }
        if let p = consoleSocket, p.isEmpty { throw ValidationError("--console-socket needs a path") }
        return settings
    }

    public init() {}
}

/// `skiff run`: boots one VM in this process with its serial console on stdio.
public struct RunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a kernel in a new VM with the serial console on this terminal.",
        discussion: VMOptions.discussion)

    @OptionGroup var options: VMOptions

    public init() {}

    public func validate() throws {
        _ = try options.makeSource()
        _ = try options.consoleSettings()
    }

    public func run() throws {
        let status = VMLauncher.run(try options.makeSource(), apiSocket: options.apiSocket, console: try options.consoleSettings())
        throw ExitCode(status)
    }
}

extension VMOptions {
    static let discussion = """
        The kernel may be a Linux bzImage, an ELF with a PVH entry note (vmlinux), or a multiboot v1 kernel. \
        On a terminal, Ctrl-A then x stops the VM; so do SIGTERM, SIGINT and SIGHUP.

        Exit status: 0 after the guest powers off (or resets with --on-reboot exit, or is stopped); \
        (v << 1) | 1 after the guest writes v to the debug-exit port 0xf4; 64 for usage errors \
        (unknown options, malformed or out-of-range values, options that cannot be combined); \
        1 for other errors (files that cannot be read, a disk in use, a failing guest).

        Sizes: a number with an optional unit B, K, M, G, T (or KB, KiB, ...; powers of 1024), \
        e.g. 512M or 1.5G; a plain number is MiB for --memory and --console-log-size, bytes for \
        the rates of --disk and --net.

        virtio devices take PCI slots 1, 2, ... in this order: --rng, each --disk as given, each --net, \
        --vsock, --balloon, then --console virtio. A disk image is opened (and locked) before the guest \
        starts; its format is raw unless format=qcow2 is given. TAP interfaces and the vsock socket are \
        opened when the VM is built.
        """
}
