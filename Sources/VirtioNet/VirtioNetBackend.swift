import SystemExtras

/// Where a virtio-net device sends and receives frames: a non-blocking descriptor on which
/// each read returns one frame and each write sends one, both preceded by the 12-byte
/// virtio-net header (a TAP opened with IFF_VNET_HDR, or a SOCK_SEQPACKET socket in tests).
public protocol VirtioNetBackend: AnyObject, Sendable {
    /// The non-blocking descriptor the device reads and writes.
    var fd: Int32 { get }
    /// Whether `setOffloads` works (the device offers checksum/TSO features only then).
    var supportsOffloads: Bool { get }
    /// Tells the backend which offloaded frames the driver accepts (CVH_TUN_F_* bits).
    func setOffloads(_ flags: UInt32) throws(SystemError)
    /// Releases the descriptor (machine teardown); the device no longer uses it afterwards.
    func close()
}
