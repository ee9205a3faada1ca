import ArgumentParser
import ControlProtocol
import CSkiffSystem
import Storage
import VMM

#if canImport(Glibc)
import Glibc
#endif

/// `skiff fork`: N VMs from one snapshot, sharing every page none of them changed.
public struct ForkCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fork",
        abstract: "Start N VMs from one snapshot, each with its own identity, sharing unmodified memory.",
        discussion: """
            Each fork maps the snapshot's memory file MAP_PRIVATE (pages are shared until a fork writes them) and \
            gets a new identity: a qcow2 overlay per disk on top of the snapshot's disk (which must not change while \
            forks use it), a new MAC per network interface (fork 3 on TAP PREFIX3, or PREFIX3n0, PREFIX3n1, ... \
            with several), vsock CID CID-BASE + 3, and a new VM generation ID. Fork 3 lives in DIR/fork-3/: \
            console.log, api.sock (its control socket), disk overlays. \
            The monitors run in the background; stop one with 'skiff vm stop' or by killing its pid.

            Exit status: 0 when every fork runs, 64 for usage errors, 1 for other errors.
            """)

    @Argument(help: ArgumentHelp("Snapshot directory.", valueName: "snapshot"))
    var snapshot: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Number of VMs to start, 1 to 4096.", valueName: "count"))
    var count: Int = 1

    @Option(name: .long, help: ArgumentHelp("Directory for the forks' files (created if missing).", valueName: "dir"))
    var dir: String

    @Option(name: .customLong("cid-base"), help: ArgumentHelp("vsock CID of fork 0.", valueName: "cid"))
    var cidBase: UInt32 = 1000

    @Option(name: .customLong("tap-prefix"), help: ArgumentHelp("Prefix of the forks' TAP names (the fork's number follows).", valueName: "prefix"))
    var tapPrefix: String = "fk"

    @Option(name: .long, help: ArgumentHelp("The monitor to run (default: skiff-vmm next to this program).", valueName: "path"))
    var monitor: String?

    public init() {}

    public func validate() throws {
        guard (1...4096).contains(count) else { throw ValidationError("--count must be 1 to 4096") }
        guard tapPrefix.utf8.count + 5 <= 15 else { throw ValidationError("--tap-prefix is too long for interface names") }
        guard cidBase >= 3, UInt64(cidBase) + UInt64(count) < 0xffff_ffff else { throw ValidationError("--cid-base out of range") }
    }

    public func run() throws {
        let description: SnapshotDescription
        do {
            description = try SnapshotDescription.read(snapshot)
        } catch {
            throw CommandFailure("\(error)")
        }
        let monitorPath = monitor ?? Self.siblingExecutable("skiff-vmm")
        guard unsafe access(monitorPath, X_OK) == 0 else { throw CommandFailure("cannot run the monitor \(monitorPath)") }
        if unsafe mkdir(dir, 0o755) != 0 && errno != EEXIST { throw CommandFailure(unsafe "cannot create \(dir): \(String(cString: strerror(errno)))") }
        for i in 0..<count {
            let home = "\(dir)/fork-\(i)"
            guard unsafe mkdir(home, 0o755) == 0 else { throw CommandFailure(unsafe "cannot create \(home): \(String(cString: strerror(errno)))") }
            var arguments = [monitorPath, "--restore", snapshot, "--api-socket", "\(home)/api.sock"]
            for (k, disk) in description.disks.enumerated() {
                let overlay = "\(home)/disk\(k).qcow2"
                guard let format = DiskFormat(rawValue: disk.format) else { throw CommandFailure("disk \(disk.path): unknown format") }
                do {
                    try ImageOperations.clone(base: disk.path, baseFormat: format, to: overlay)
                } catch {
                    throw CommandFailure("fork \(i): cannot create the overlay of \(disk.path): \(error)")
                }
                arguments += ["--disk", "\(overlay),format=qcow2\(disk.readOnly ? ",readonly" : "")"]
            }
            for (k, _) in description.networkInterfaces.enumerated() {
                arguments += ["--net", "tap=\(tapPrefix)\(i)\(description.networkInterfaces.count > 1 ? "n\(k)" : "")"]
            }
            if description.vsockCID != nil {
                arguments += ["--vsock", "cid=\(cidBase + UInt32(i)),socket=\(home)/vsock.sock"]
            }
            let pid = try Self.spawn(arguments, output: "\(home)/console.log")
            print("fork \(i): pid \(pid), api \(home)/api.sock, console \(home)/console.log")
        }
        // Each monitor answers on its control socket once its VM runs.
        for i in 0..<count {
            let socket = "\(dir)/fork-\(i)/api.sock"
            var up = false
            for _ in 0..<200 {
                if let client = try? ControlClient(path: socket), case .status(let s)? = try? client.send(.status, timeout: 2), s.state == .running {
                    up = true
                    break
                }
                usleep(50_000)
            }
            guard up else { throw CommandFailure("fork \(i) did not start; see \(dir)/fork-\(i)/console.log") }
        }
    }

    /// The path of `name` in this program's directory.
    static func siblingExecutable(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return name }
        let path = String(cString: buffer)
        guard let slash = path.lastIndex(of: "/") else { return name }
        return String(path[..<slash]) + "/" + name
    }

    /// Starts `arguments` in a new session with stdin from /dev/null and output appended to `output`.
    static func spawn(_ arguments: [String], output: String) throws -> pid_t {
        var actions = unsafe posix_spawn_file_actions_t()
        unsafe posix_spawn_file_actions_init(&actions)
        defer { unsafe posix_spawn_file_actions_destroy(&actions) }
        unsafe posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        unsafe posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        unsafe posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        unsafe posix_spawnattr_init(&attributes)
        defer { unsafe posix_spawnattr_destroy(&attributes) }
        unsafe posix_spawnattr_setflags(&attributes, 0x80)  // POSIX_SPAWN_SETSID (a GNU extension)
        var argv: [UnsafeMutablePointer<CChar>?] = unsafe arguments.map { unsafe strdup($0) }
        unsafe argv.append(nil)
        defer { for unsafe a in unsafe argv { unsafe free(a) } }
        var pid: pid_t = 0
        let r = unsafe posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard r == 0 else { throw CommandFailure(unsafe "cannot start \(arguments[0]): \(String(cString: strerror(r)))") }
        return pid
    }
}
