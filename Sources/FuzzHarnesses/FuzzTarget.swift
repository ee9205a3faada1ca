/// Every fuzz target: a name (what `scripts/fuzz.sh` and the corpus directories use) and the
/// harness that runs one input. Harnesses never trap on hostile input; they throw
/// `FuzzInvariantViolation` when a property they check fails.
///
/// Inputs a guest controls: virtqueues, virtio-blk, virtio-net, vsock, balloon, PCI. Inputs a
/// file controls: qcow2 images, kernel images. The x86 emulator sees guest memory and state.
/// The control API and the snapshot and migration formats get targets here when they exist.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case splitQueue = "split-queue"
    case virtioBlock = "virtio-blk"
    case virtioNet = "virtio-net"
    case virtioVsock = "vsock"
    case virtioBalloon = "balloon"
    case pci = "pci"
    case qcow2 = "qcow2"
    case loader = "loader"
    case x86Emulator = "x86-emulator"

    /// Removes the files harnesses keep between inputs (the vsock harness's sockets, the qcow2
    /// harness's images); the next input creates them again.
    public static func removeTemporaryFiles() {
        VirtioVsockHarness.removeHost()
        QCOW2Harness.removeDirectory()
    }

    /// Runs one input.
    public func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        switch self {
        case .splitQueue: try SplitQueueHarness.run(data)
        case .virtioBlock: try VirtioBlockHarness.run(data)
        case .virtioNet: try VirtioNetHarness.run(data)
        case .virtioVsock: try VirtioVsockHarness.run(data)
        case .virtioBalloon: try VirtioBalloonHarness.run(data)
        case .pci: try PCIHarness.run(data)
        case .qcow2: try QCOW2Harness.run(data)
        case .loader: try LoaderHarness.run(data)
        case .x86Emulator: try X86EmulatorHarness.run(data)
        }
    }
}
