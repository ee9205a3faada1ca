import ArchX86
import GuestMemory
import Loader
import Storage
import VirtioNet

/// What to do when the guest resets itself (i8042 0xFE, ACPI reset, triple fault).
public enum RebootAction: String, Sendable, CaseIterable, Codable {
    /// Stop the VM and exit as after a poweroff.
    case exit
    /// Boot the same configuration again.
    case restart
}

/// Everything needed to boot one VM.
public struct VMConfiguration: Sendable {
    /// Path of the kernel image (bzImage, PVH ELF or multiboot).
    public var kernelPath: String
    /// Optional initrd (Linux) or first module (multiboot).
    public var initrdPath: String?
    /// Kernel command line.
    public var commandLine: String
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    /// Number of vCPUs.
    public var vcpuCount: Int
    /// CPUID template.
    public var cpuTemplate: CPUTemplate
    /// Behaviour on guest reset.
    public var onReboot: RebootAction
    /// How to read the kernel file (automatic detection by default).
    public var kernelFormat: KernelFormat = .automatic
    /// Handling of instructions the host's KVM cannot emulate.
    public var emulationAssist: EmulationAssistMode = .auto
    /// virtio-pci devices, in PCI slot order (slot 1 upward).
    public var devices: [VirtioDeviceSpec] = []
    /// Extra multiboot modules after the initrd.
    public var modules: [Module] = []
    /// Print VM events and an exit summary on stderr.
    public var verbose = false
    /// What backs guest RAM (anonymous memory by default; a memfd lets another process map it).
    public var memoryBacking: GuestMemoryBacking = .anonymous
    /// Let KSM merge identical pages of this VM's RAM with other VMs' (MADV_MERGEABLE).
    public var samePageMerging = true
    /// Rate limits of disks and network devices, applied in order (`VirtualMachine.setRateLimit`
    /// changes them later).
    public var rateLimits: [DeviceRateLimit] = []

    /// A multiboot module: a file and the command line the guest sees for it.
    public struct Module: Sendable, Equatable {
        public var path: String
        public var commandLine: String
        public init(path: String, commandLine: String = "") {
            self.path = path
            self.commandLine = commandLine
        }
    }

    public init(kernelPath: String, initrdPath: String? = nil, commandLine: String = "", memorySize: UInt64 = 256 << 20,
                vcpuCount: Int = 1, cpuTemplate: CPUTemplate = .baseline, onReboot: RebootAction = .exit) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
        self.memorySize = memorySize
        self.vcpuCount = vcpuCount
        self.cpuTemplate = cpuTemplate
        self.onReboot = onReboot
    }
}


/// A virtio device to attach to the VM.
public enum VirtioDeviceSpec: Sendable, Equatable {
    /// virtio-rng fed by the host's getrandom.
    case rng
    /// virtio-blk backed by the image at `path`, opened as `format` (never probed) when the
    /// VM is built; `serial` is the GET_ID string (default: the image's file name).
    case block(path: String, format: DiskFormat, readOnly: Bool, serial: String?)
    /// virtio-net on the TAP interface `tap` (created if absent) with `mac` in its
    /// configuration space (a random locally administered address if nil).
    case net(tap: String, mac: MACAddress?)
    /// virtio-vsock for guest context ID `cid`: host processes connect to the AF_UNIX socket
    /// `socket` (created when the VM is built); guest connections to port P go to `socket_P`.
    case vsock(cid: UInt32, socket: String)
    /// virtio-balloon; its target is set while the VM runs (`VirtualMachine.setBalloonTarget`).
    case balloon(BalloonSpec)
    /// virtio-console (hvc0) on the same host stdio as the serial console; host input goes to
    /// it instead of the UART.
    case console
}

/// Options of the virtio-balloon device.
public struct BalloonSpec: Sendable, Equatable {
    /// Offer the statistics queue (guest memory statistics on request).
    public var statistics: Bool
    /// Offer free page reporting: the guest reports free pages, which go back to the host.
    public var freePageReporting: Bool
    /// Let the guest deflate when it runs out of memory (the target becomes a soft limit).
    public var deflateOnOOM: Bool

    public init(statistics: Bool = true, freePageReporting: Bool = false, deflateOnOOM: Bool = false) {
        self.statistics = statistics
        self.freePageReporting = freePageReporting
        self.deflateOnOOM = deflateOnOOM
    }
}
