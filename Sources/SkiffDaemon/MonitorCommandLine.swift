import Foundation
import SkiffSpec

/// What the installed monitor supports, read once from `skiff-vmm --help`: the daemon passes
/// newer options only to a monitor that has them (and falls back otherwise, e.g. to the
/// monitor's stdout as the console log).
public struct MonitorCapabilities: Sendable, Equatable {
    public var consoleLog = false
    public var consoleSocket = false
    public var ksm = false
    public var rateLimits = false

    public init() {}

    /// Reads the capabilities from the monitor's help text.
    public static func parse(help: String) -> MonitorCapabilities {
        var c = MonitorCapabilities()
        c.consoleLog = help.contains("--console-log")
        c.consoleSocket = help.contains("--console-socket")
        c.ksm = help.contains("--ksm")
        c.rateLimits = help.contains("bw=")
        return c
    }

    /// Runs `monitor --help` and parses it.
    public static func probe(monitor: String) -> MonitorCapabilities {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: monitor)
        process.arguments = ["--help"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        do { try process.run() } catch { return MonitorCapabilities() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return parse(help: String(decoding: data, as: UTF8.self))
    }
}

/// Builds a monitor's arguments from a VM spec.
enum MonitorCommandLine {
    /// `--disk` and `--net` fields are comma-separated: a comma in a path is written twice.
    static func escape(_ s: String) -> String { s.replacingOccurrences(of: ",", with: ",,") }

    static func arguments(spec: VMSpec, files: VMFiles, diskPaths: [String], capabilities: MonitorCapabilities) -> [String] {
        var args = ["--kernel", spec.kernel, "--memory", "\(spec.memoryBytes >> 10)K", "--cpus", String(spec.vcpus),
                    "--api-socket", files.monitorAPISocket]
        if let t = spec.cpuTemplate { args += ["--cpu-template", t.rawValue] }
        if let initrd = spec.initrd { args += ["--initrd", initrd] }
        if let cmdline = spec.cmdline, !cmdline.isEmpty { args += ["--cmdline", cmdline] }
        for (i, disk) in (spec.disks ?? []).enumerated() {
            var d = escape(diskPaths[i])
            d += ",format=\((disk.clone != nil ? .qcow2 : disk.format ?? .raw).rawValue)"
            if disk.readonly == true { d += ",readonly" }
            if let serial = disk.serial { d += ",serial=\(serial)" }
            if capabilities.rateLimits {
                if let bw = disk.bandwidth, bw > 0 { d += ",bw=\(bw)" }
                if let iops = disk.iops, iops > 0 { d += ",iops=\(iops)" }
                if let burst = disk.burst, burst > 0 { d += ",bw-burst=\(burst)" }
            }
            args += ["--disk", d]
        }
        if spec.cloudInit != nil {
            args += ["--disk", "\(escape(files.seed)),format=raw,readonly,serial=cidata"]
        }
        for nic in spec.nics ?? [] {
            var n = "tap=\(nic.tap)"
            if let mac = nic.mac { n += ",mac=\(mac)" }
            if capabilities.rateLimits {
                for (key, value) in [("rx-bw", nic.rxBandwidth), ("tx-bw", nic.txBandwidth), ("rx-pps", nic.rxPps), ("tx-pps", nic.txPps)] {
                    if let value, value > 0 { n += ",\(key)=\(value)" }
                }
            }
            args += ["--net", n]
        }
        if let vsock = spec.vsock { args += ["--vsock", "cid=\(vsock.cid),socket=\(escape(files.monitorVsockSocket))"] }
        if spec.hasBalloon {
            args.append("--balloon")
            if spec.balloon?.freePageReporting ?? true { args.append("--balloon-free-page-reporting") }
            if spec.balloon?.deflateOnOOM == true { args.append("--balloon-deflate-on-oom") }
        }
        if capabilities.consoleLog { args += ["--console-log", files.monitorConsoleLog] }
        if capabilities.consoleSocket { args += ["--console-socket", files.monitorConsoleSocket] }
        if capabilities.ksm { args += ["--ksm", spec.ksm ?? true ? "on" : "off"] }
        return args
    }

    /// Arguments of a monitor that continues a snapshot: only the host resources are given
    /// (the snapshot holds the hardware).
    static func restoreArguments(spec: VMSpec, files: VMFiles, directory: String, diskPaths: [String],
                                 capabilities: MonitorCapabilities) -> [String] {
        let full = arguments(spec: spec, files: files, diskPaths: diskPaths, capabilities: capabilities)
        var args = ["--restore", directory, "--api-socket", files.monitorAPISocket]
        if let t = spec.cpuTemplate { args += ["--cpu-template", t.rawValue] }
        var i = 0
        while i < full.count {
            if ["--disk", "--net", "--vsock", "--console-log", "--console-socket", "--ksm"].contains(full[i]), i + 1 < full.count {
                args += [full[i], full[i + 1]]
                i += 2
            } else {
                i += 1
            }
        }
        return args
    }

    /// Arguments of a monitor that waits for a VM migrating in on `endpoint`: like a restore,
    /// only the host resources are given (the stream carries the hardware).
    static func incomingArguments(spec: VMSpec, files: VMFiles, endpoint: String, diskPaths: [String],
                                  capabilities: MonitorCapabilities) -> [String] {
        var args = restoreArguments(spec: spec, files: files, directory: "", diskPaths: diskPaths, capabilities: capabilities)
        args[0] = "--incoming"
        args[1] = endpoint
        return args
    }
}
