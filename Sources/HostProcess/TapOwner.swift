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
        guard !name.isEmpty, name.utf8.count < 16, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x2f }) else {
            throw ProcessError("invalid TAP name '\(name.prefix(40))': 1 to 15 printable ASCII characters without '/'")
        }
        // Opened as the monitor opens it (cvh_tap_open: a TUN device or another kind is refused).
        let existed = unsafe cvh_interface_exists(name) != 0
        var actual = [CChar](repeating: 0, count: 16)
        let fd = unsafe cvh_tap_open(name, &actual)
        guard fd >= 0 else { throw .fromErrno("cannot give TAP \(name) to uid \(uid)", -fd) }
        defer { close(fd) }
        let r = chp_tap_hand_over(fd, existed ? 0 : 1, uid, gid)
        guard r == 0 else { throw .fromErrno("cannot give TAP \(name) to uid \(uid)", -r) }
        return !existed
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
