import CVirtioHost
import Synchronization
import SystemExtras
#if canImport(Glibc)
import Glibc
#endif

/// A Linux TAP interface opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte
/// virtio-net header, as the backend of a virtio-net device.
public final class TapDevice: VirtioNetBackend, Sendable {
    /// The interface name the kernel reports.
    public let name: String
    /// Whether this open created the interface (it then disappears when closed).
    public let created: Bool
    public let supportsOffloads: Bool
    private let descriptor: Mutex<OwnedFileDescriptor?>
    private let rawFD: Int32

    /// Checks a TAP name before it reaches the kernel: 1–15 bytes, no '/', ':' or whitespace.
    public static func validateName(_ name: String) throws(SystemError) {
        let ok = !name.isEmpty && name.utf8.count <= 15 && name != "." && name != ".."
            && !name.utf8.contains { $0 <= 0x20 || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 >= 0x7f }
        guard ok else { throw SystemError("TAP name '\(name)' must be 1-15 printable characters without '/', ':' or spaces", code: EINVAL) }
    }

    /// Opens (creating it if absent) the TAP interface `name`. Creating one needs CAP_NET_ADMIN;
    /// its addresses and link state are left to the host.
    public init(name: String) throws(SystemError) {
        try Self.validateName(name)
        let existed = unsafe cvh_interface_exists(name) != 0
        var actual = [CChar](repeating: 0, count: 16)
        let fd = unsafe cvh_tap_open(name, &actual)
        guard fd >= 0 else { throw SystemError("open TAP \(name)", code: -fd) }
        let owned = OwnedFileDescriptor(taking: fd)
        let r = cvh_tap_set_vnet_hdr_size(fd, Int32(VirtioNetHeader.size))
        guard r == 0 else { throw SystemError("TUNSETVNETHDRSZ on \(name)", code: -r) }
        // Probe offload support, then start with none until the driver asks for them.
        let all = UInt32(CVH_TUN_F_CSUM | CVH_TUN_F_TSO4 | CVH_TUN_F_TSO6)
        supportsOffloads = cvh_tap_set_offload(fd, all) == 0 && cvh_tap_set_offload(fd, 0) == 0
        descriptor = Mutex(owned)
        rawFD = fd
        self.name = unsafe actual.withUnsafeBufferPointer { p in
            unsafe String(decoding: unsafe p.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        created = !existed
    }

    public var fd: Int32 { rawFD }

    public func setOffloads(_ flags: UInt32) throws(SystemError) {
        let r = cvh_tap_set_offload(rawFD, flags)
        guard r == 0 else { throw SystemError("TUNSETOFFLOAD on \(name)", code: -r) }
    }

    public func close() { descriptor.withLock { $0 = nil } }
}
