#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import SystemExtras

/// The monitor's seccomp policy: one compiled filter per thread role, installed by each
/// thread on itself before it does its work (`HostThread` calls `confine` first thing on
/// every new thread; `VMLauncher` confines the main thread right before the vCPUs start).
///
/// Filters stack and only narrow, and a thread inherits its creator's: so threads are
/// created by a spawner thread whose filter is the union of every role's allow-list plus
/// what creating a thread takes, and each new thread then narrows itself to its role
/// (docs/seccomp.md).
public final class SeccompPolicy: ThreadConfinement {
    public let action: SeccompAction
    private let programs: [ThreadRole: SeccompCompiler.Program]
    /// The main thread's filter when a reboot builds a new machine (`--on-reboot restart`).
    private let mainRebuilding: SeccompCompiler.Program
    private let probe: SeccompProbe?

    /// Compiles every role's filter for `profile`.
    init(action: SeccompAction, profile: SeccompProfile, probe: SeccompProbe?) throws(SeccompError) {
        self.action = action
        self.probe = probe
        var plain = profile
        plain.mainRebuildsMachines = false
        var programs: [ThreadRole: SeccompCompiler.Program] = [:]
        for role in ThreadRole.allCases {
            let rules = SeccompAllowList.rules(for: role, profile: plain)
            programs[role] = try SeccompCompiler.compile(rules, refusals: SeccompAllowList.refusals(for: role, profile: plain), action: action)
        }
        self.programs = programs
        var rebuilding = profile
        rebuilding.mainRebuildsMachines = true
        mainRebuilding = try SeccompCompiler.compile(SeccompAllowList.rules(for: .main, profile: rebuilding),
                                                     refusals: SeccompAllowList.refusals(for: .main, profile: rebuilding), action: action)
    }

    /// Turns seccomp on for this process: compiles the filters and confines every thread
    /// created from now on (`HostThread.confineThreads`); the caller confines its own thread
    /// with `confineMainThread` once its set-up is done. Nil for `.off`. Call it after
    /// blocking the signals a dedicated thread takes (new threads get the spawner's mask).
    public static func activate(_ mode: SeccompMode, profile: SeccompProfile) throws(SeccompError) -> SeccompPolicy? {
        guard let action = SeccompAction(mode) else { return nil }
        return try activate(action: action, profile: profile)
    }

    /// As `activate(_:profile:)` with an explicit action (tests use `.trapAndRecord`). When the
    /// process's threads are already confined, returns nil and changes nothing.
    public static func activate(action: SeccompAction, profile: SeccompProfile) throws(SeccompError) -> SeccompPolicy? {
        guard !HostThread.threadsAreConfined else { return nil }
        if action == .trapAndRecord {
            let r = csystem_install_sigsys_recorder()
            guard r == 0 else { throw SeccompError(unsafe "cannot handle SIGSYS: \(String(cString: strerror(-r)))") }
        }
        let policy = try SeccompPolicy(action: action, profile: profile, probe: SeccompProbe.fromEnvironment())
        do {
            guard try HostThread.confineThreads(with: policy) else { return nil }
        } catch {
            throw SeccompError("cannot start the spawner thread: \(error)")
        }
        return policy
    }

    /// Confines the calling thread as the monitor's main thread; `rebuildsMachines` when a
    /// guest reset makes it build a new machine (`--on-reboot restart`).
    public func confineMainThread(rebuildsMachines: Bool) {
        install(rebuildsMachines ? mainRebuilding : programs[.main], role: .main)
    }

    public func confine(_ role: ThreadRole) {
        install(programs[role], role: role)
    }

    /// Instructions in each role's compiled filter (for docs and tests).
    public var instructionCounts: [ThreadRole: Int] { programs.mapValues(\.instructionCount) }

    private func install(_ program: SeccompCompiler.Program?, role: ThreadRole) {
        guard let program else { Self.die("no filter for thread role \(role.rawValue)") }
        csystem_set_thread_tag(Int32(ThreadRole.allCases.firstIndex(of: role) ?? -1))
        // no_new_privs is inherited: the spawner and the main thread set it for everyone.
        if role == .spawner || role == .main {
            let r = csystem_set_no_new_privs()
            if r != 0 { Self.die(unsafe "prctl(PR_SET_NO_NEW_PRIVS): \(String(cString: strerror(-r)))") }
        }
        let r = unsafe program.bytes.withUnsafeBytes { unsafe csystem_seccomp_install($0.baseAddress, UInt16(program.instructionCount)) }
        if r != 0 { Self.die(unsafe "cannot install the \(role.rawValue) thread's filter: \(String(cString: strerror(-r)))") }
        probe?.fire(on: role)
    }

    /// A thread that cannot be confined must not go on: the process ends (write and
    /// exit_group are allowed by every filter).
    private static func die(_ message: String) -> Never {
        let line = "skiff: error: seccomp: \(message)\n"
        unsafe line.utf8CString.withUnsafeBufferPointer { _ = unsafe write(2, $0.baseAddress, $0.count - 1) }
        _exit(1)
    }
}

/// What the filters allow beyond the fixed lists, from the VM's configuration.
public struct SeccompProfile: Sendable, Equatable {
    /// The VM has virtio-net devices: their TAP offload ioctl is allowed on vCPU threads
    /// (the guest driver's feature choice applies it), and building a machine opens TAPs.
    public var network = false
    /// The main thread builds a new machine after a guest reset.
    public var mainRebuildsMachines = false
    /// The emulation assist's code region (vCPU threads may make its slots executable).
    public var executableRegion: ExecutableRegion?

    /// A reserved, size-aligned region of `size` bytes at `base`, made executable `slotSize` bytes at a time.
    public struct ExecutableRegion: Sendable, Equatable {
        public var base: UInt64
        public var size: UInt64
        public var slotSize: UInt64
        public init(base: UInt64, size: UInt64, slotSize: UInt64) {
            self.base = base
            self.size = size
            self.slotSize = slotSize
        }
    }

    public init(network: Bool = false, executableRegion: ExecutableRegion? = nil) {
        self.network = network
        self.executableRegion = executableRegion
    }
}

/// System calls that seccomp filters refused in this process (`.trapAndRecord` only).
public enum SeccompViolations {
    public struct Record: Sendable, CustomStringConvertible {
        public let role: ThreadRole?
        public let systemCall: String
        public let arguments: [UInt64]
        public var description: String {
            let args = arguments.map { "0x" + String($0, radix: 16) }.joined(separator: ", ")
            return "\(role?.rawValue ?? "unconfined") thread: \(systemCall)(\(args))"
        }
    }

    /// Every refusal recorded so far (at most CSYSTEM_SIGSYS_SLOTS are kept).
    public static var all: [Record] {
        var raw = [csystem_sigsys_record](repeating: csystem_sigsys_record(), count: Int(CSYSTEM_SIGSYS_SLOTS))
        let n = unsafe Int(raw.withUnsafeMutableBufferPointer { unsafe csystem_sigsys_records($0.baseAddress, Int32($0.count)) })
        return raw.prefix(n).map { r in
            let roles = ThreadRole.allCases
            let role = r.tag >= 0 && Int(r.tag) < roles.count ? roles[Int(r.tag)] : nil
            let a = r.arguments
            return Record(role: role, systemCall: SeccompAllowList.name(ofSystemCall: r.number), arguments: [a.0, a.1, a.2, a.3, a.4, a.5])
        }
    }

    /// How many refusals happened (also those past the kept records).
    public static var count: Int { Int(csystem_sigsys_count()) }
}
