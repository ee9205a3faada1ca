import CHostProcess
import CVirtioHost

#if canImport(Glibc)
import Glibc
#endif

/// Persistent TAP devices a confined monitor attaches to without CAP_NET_ADMIN.
public enum TapDevice {
    /// Makes the TAP `name` owned by `uid` and `gid` (creating it, persistent, when it does
    /// not exist). Returns whether it was created. Needs CAP_NET_ADMIN.
    public static func setOwner(_ name: String, uid: UInt32, gid: UInt32) throws(ProcessError) -> Bool {
        try checkName(name)
        let existed = exists(name)
        let fd = try open(name, for: "give TAP \(name) to uid \(uid)")
        defer { close(fd) }
        let r = chp_tap_hand_over(fd, existed ? 0 : 1, uid, gid)
        guard r == 0 else { throw .fromErrno("cannot give TAP \(name) to uid \(uid)", -r) }
        return !existed
    }

    /// Gives the existing TAP `name` back to `uid` and `gid` (it stays persistent).
    public static func restoreOwner(_ name: String, uid: UInt32, gid: UInt32) throws(ProcessError) {
        try checkName(name)
        let fd = try open(name, for: "give TAP \(name) back to \(uid):\(gid)")
        defer { close(fd) }
        let r = chp_tap_hand_over(fd, 0, uid, gid)
        guard r == 0 else { throw .fromErrno("cannot give TAP \(name) back to \(uid):\(gid)", -r) }
    }

    /// Deletes the persistent TAP `name` (it goes once no process has it open).
    public static func delete(_ name: String) throws(ProcessError) {
        try checkName(name)
        guard exists(name) else { return }
        let fd = try open(name, for: "delete TAP \(name)")
        defer { close(fd) }
        let r = chp_tap_set_persistent(fd, 0)
        guard r == 0 else { throw .fromErrno("cannot delete TAP \(name)", -r) }
    }

    /// Whether a network interface `name` exists.
    public static func exists(_ name: String) -> Bool { unsafe cvh_interface_exists(name) != 0 }

    /// The owner and group of TAP `name` as the kernel reports them (nil each when it has
    /// none), or nil when there is no such TAP.
    public static func owner(_ name: String) -> (uid: Int64?, gid: Int64?)? {
        guard (try? checkName(name)) != nil,
              let owner = SmallFile.read("/sys/class/net/\(name)/owner", limit: 32),
              let group = SmallFile.read("/sys/class/net/\(name)/group", limit: 32) else { return nil }
        func id(_ data: [UInt8]) -> Int64? {
            let value = Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            return value.flatMap { $0 >= 0 && $0 < 0xffff_ffff ? $0 : nil }
        }
        return (id(owner), id(group))
    }

    private static func checkName(_ name: String) throws(ProcessError) {
        guard !name.isEmpty, name.utf8.count < 16, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x2f }) else {
            throw ProcessError("invalid TAP name '\(name.prefix(40))': 1 to 15 printable ASCII characters without '/'")
        }
    }

    /// Opens TAP `name` as the monitor opens it (cvh_tap_open: a TUN device or another kind is refused).
    private static func open(_ name: String, for what: String) throws(ProcessError) -> Int32 {
        var actual = [CChar](repeating: 0, count: 16)
        let fd = unsafe cvh_tap_open(name, &actual)
        guard fd >= 0 else { throw .fromErrno("cannot \(what)", -fd) }
        return fd
    }
}

extension ProcessIdentity {
    /// Sends `signal` to this very process through a pidfd (never to a recycled pid). False
    /// when it is gone.
    @discardableResult
    public func send(_ signal: Int32) -> Bool {
        let fd = chp_pidfd_open(pid)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard isAlive() else { return false }
        return chp_pidfd_send_signal(fd, signal) == 0
    }
}
