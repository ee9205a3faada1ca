import ArchX86
import DeviceModel
import Loader
import Snapshot
import Storage
import VirtioNet

/// Section names of a Skiff snapshot's state file.
enum SnapshotSection {
    static let configuration = "configuration"
    static let memory = "memory"
    static let machine = "machine"
    static let devices = "devices"
    static let all: Set<String> = [configuration, memory, machine, devices]
}

/// The VM configuration a snapshot was taken with, and its identity: enough to rebuild the
/// same virtual hardware without the kernel files.
struct SavedConfiguration: Codable, Sendable, Equatable {
    /// Random identity of this snapshot (32 hex digits).
    var snapshotID: String
    /// Seconds since 1970 when it was taken.
    var createdAt: Double
    var memorySize: UInt64
    var vcpuCount: Int
    var cpuTemplate: String
    var onReboot: String
    var emulationAssist: String
    var kernelPath: String
    var initrdPath: String?
    var commandLine: String
    var kernelFormat: String
    var modules: [SavedModule]
    var devices: [SavedDeviceSpec]
    /// Guest TSC frequency (kHz) when the snapshot was taken.
    var tscKHz: UInt32
    /// The VM generation ID the guest saw.
    var generationID: [UInt8]
    var balloonTargetPages: UInt64
    /// The snapshot this one is a diff against (nil for a full snapshot).
    var parent: SnapshotLineage?

    struct SavedModule: Codable, Sendable, Equatable {
        var path: String
        var commandLine: String
    }

    static let maxStringLength = 4096

    func validate() throws(SnapshotError) {
        func check(_ ok: Bool, _ reason: @autoclosure () -> String) throws(SnapshotError) {
            if !ok { throw .invalid(section: SnapshotSection.configuration, reason: reason()) }
        }
        try check(snapshotID.count == 32 && snapshotID.allSatisfy(\.isHexDigit), "snapshot id '\(snapshotID.prefix(40))'")
        try check(memorySize >= 1 << 20 && memorySize <= MemoryImage.maxMemory && memorySize % 4096 == 0, "memory size \(memorySize)")
        try check((1...254).contains(vcpuCount), "\(vcpuCount) vCPUs")
        try check(CPUTemplate(rawValue: cpuTemplate) != nil, "CPU template '\(cpuTemplate.prefix(32))'")
        try check(RebootAction(rawValue: onReboot) != nil, "reboot action '\(onReboot.prefix(32))'")
        try check(EmulationAssistMode(rawValue: emulationAssist) != nil, "emulation assist mode '\(emulationAssist.prefix(32))'")
        try check(KernelFormat(rawValue: kernelFormat) != nil, "kernel format '\(kernelFormat.prefix(32))'")
        try check(generationID.count == 16, "generation ID of \(generationID.count) bytes")
        try check(devices.count <= 31, "\(devices.count) devices")
        try check(modules.count <= 64, "\(modules.count) modules")
        let strings = [kernelPath, initrdPath ?? "", commandLine] + modules.flatMap { [$0.path, $0.commandLine] }
        try check(strings.allSatisfy { $0.utf8.count <= Self.maxStringLength }, "a path or command line is too long")
        for d in devices { try d.validate() }
        try check(balloonTargetPages <= memorySize / 4096, "balloon target \(balloonTargetPages) pages")
    }
}

/// A virtio device as configured, in a form a snapshot can carry.
enum SavedDeviceSpec: Codable, Sendable, Equatable {
    case rng
    case block(path: String, format: String, readOnly: Bool, serial: String?)
    case net(tap: String, mac: [UInt8])
    case vsock(cid: UInt32, socket: String)
    case balloon(statistics: Bool, freePageReporting: Bool, deflateOnOOM: Bool)
    case console

    /// The kind, for messages and matching overrides ("disk", "net", …).
    var kind: String {
        switch self {
        case .rng: return "rng"
        case .block: return "disk"
        case .net: return "net"
        case .vsock: return "vsock"
        case .balloon: return "balloon"
        case .console: return "console"
        }
    }

    func validate() throws(SnapshotError) {
        let c = SnapshotSection.configuration
        switch self {
        case .rng, .console, .balloon: return
        case .block(let path, let format, _, let serial):
            guard !path.isEmpty, path.utf8.count <= 4096, DiskFormat(rawValue: format) != nil, (serial?.utf8.count ?? 0) <= 64 else {
                throw .invalid(section: c, reason: "disk '\(path.prefix(64))'")
            }
        case .net(let tap, let mac):
            guard !tap.isEmpty, tap.utf8.count < 16, (try? MACAddress(bytes: mac)) != nil else {
                throw .invalid(section: c, reason: "net device '\(tap.prefix(16))'")
            }
        case .vsock(let cid, let socket):
            guard cid >= 3, cid < 0xffff_ffff, !socket.isEmpty, socket.utf8.count <= 4096 else {
                throw .invalid(section: c, reason: "vsock device cid \(cid)")
            }
        }
    }

    /// The device spec the VMM builds from this record.
    func spec() throws(SnapshotError) -> VirtioDeviceSpec {
        switch self {
        case .rng: return .rng
        case .console: return .console
        case .balloon(let s, let f, let d): return .balloon(BalloonSpec(statistics: s, freePageReporting: f, deflateOnOOM: d))
        case .block(let path, let format, let readOnly, let serial):
            guard let f = DiskFormat(rawValue: format) else { throw .invalid(section: SnapshotSection.configuration, reason: "disk format") }
            return .block(path: path, format: f, readOnly: readOnly, serial: serial)
        case .net(let tap, let mac):
            guard let m = try? MACAddress(bytes: mac) else { throw .invalid(section: SnapshotSection.configuration, reason: "MAC address") }
            return .net(tap: tap, mac: m)
        case .vsock(let cid, let socket): return .vsock(cid: cid, socket: socket)
        }
    }
}
