/// What a monitor thread does, which decides the system calls it may make once the process
/// confines its threads (seccomp, see docs/seccomp.md). Every `HostThread` has one.
public enum ThreadRole: String, CaseIterable, Sendable {
    /// The thread that builds the VM and waits for it (`VMLauncher`), also across reboots.
    case main
    /// A vCPU: KVM_RUN and the port-I/O and MMIO exits it handles.
    case vcpu
    /// Device worker threads, one per active virtio device.
    case virtioBlock = "virtio-blk"
    case virtioNet = "virtio-net"
    case virtioVsock = "virtio-vsock"
    case virtioConsole = "virtio-console"
    case virtioBalloon = "virtio-balloon"
    case virtioRNG = "virtio-rng"
    /// Writes buffered guest console output to stdout, the console log and console-socket clients.
    case consoleOutput = "console-out"
    /// Forwards stdin to the guest console.
    case consoleInput = "console-in"
    /// Serves the console on a unix socket.
    case consoleSocket = "console-sock"
    /// Serves the control API, and does the work of its requests (pause, resume, snapshot).
    case control = "control-api"
    /// Waits for SIGTERM, SIGINT and SIGHUP and stops the VM.
    case signals
    /// An outgoing live migration.
    case migration
    /// Auto-converge: slows the vCPUs down during a migration.
    case throttle = "vcpu-throttle"
    /// Creates every other thread once threads are confined (`HostThread.confineThreads`).
    case spawner
}

/// Restricts threads to what their role needs (the monitor's seccomp policy implements it).
public protocol ThreadConfinement: AnyObject, Sendable {
    /// Confines the calling thread to `role`. Called first thing on every new thread, before
    /// its body runs, and must not return without having done so (a thread that cannot be
    /// confined ends the process).
    func confine(_ role: ThreadRole)
}
