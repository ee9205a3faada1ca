#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SystemExtras

/// The host's /dev/kvm: version and capability checks, supported CPUID, and VM creation.
public final class KVMSystem: Sendable {
    /// The KVM API version Skiff speaks.
    public static let requiredAPIVersion: Int32 = 12

    /// Capabilities Skiff relies on, checked when the system is opened.
    public static let requiredCapabilities: [(Int32, String)] = [
        (KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (in-kernel interrupt controller)"),
        (KVM_CAP_HLT, "KVM_CAP_HLT"),
        (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
        (KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"),
        (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"),
        (KVM_CAP_PIT2, "KVM_CAP_PIT2"),
        (KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"),
        (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"),
        (KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"),
        (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
        (KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"),
        (KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"),
        (KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"),
        (KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"),
        (KVM_CAP_NR_VCPUS, "KVM_CAP_NR_VCPUS"),
    ]

    let fd: OwnedFileDescriptor
    /// Size of each vCPU's shared `kvm_run` mapping.
    public let vcpuMmapSize: Int
    /// The most vCPUs a VM may have on this host.
    public let maxVCPUs: Int

    /// Opens `path` (normally /dev/kvm) and checks the API version and every required capability.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let raw = unsafe path.withCString { unsafe csystemOpen($0, O_RDWR | O_CLOEXEC) }
        guard raw >= 0 else {
            let code = errno
            switch code {
            case ENOENT, ENODEV, ENXIO: throw .deviceMissing(path: path)
            case EACCES, EPERM: throw .permissionDenied(path: path)
            default: throw .openFailed(path: path, SystemError("open \(path)", code: code))
            }
        }
        fd = OwnedFileDescriptor(taking: raw)
        let version = try ioctlValue(raw, CKVM_GET_API_VERSION, "KVM_GET_API_VERSION")
        guard version == Self.requiredAPIVersion else { throw .apiVersion(found: version) }
        for (cap, name) in Self.requiredCapabilities {
            let r = ckvm_ioctl_val(raw, CKVM_CHECK_EXTENSION, UInt(cap))
            guard r > 0 else { throw .missingCapability(name: name) }
        }
        let mmapSize = try ioctlValue(raw, CKVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE")
        vcpuMmapSize = Int(mmapSize)
        let maxV = ckvm_ioctl_val(raw, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_MAX_VCPUS))
        let recommended = ckvm_ioctl_val(raw, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_NR_VCPUS))
        maxVCPUs = Int(max(maxV, recommended, 1))
    }

    /// Value of KVM_CHECK_EXTENSION for `capability` (0 = absent).
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_val(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    /// The CPUID leaves KVM can expose to guests (KVM_GET_SUPPORTED_CPUID).
    public func supportedCPUID() throws(KVMError) -> [kvm_cpuid_entry2] {
        var count: UInt32 = 128
        while true {
            let buffer = CPUIDBuffer(count: count)
            let r = unsafe ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_SUPPORTED_CPUID, buffer.raw)
            if r >= 0 { return buffer.entries }
            if errno == E2BIG, count < 4096 {
                count *= 2
                continue
            }
            throw .ioctl(.current("KVM_GET_SUPPORTED_CPUID"))
        }
    }

    /// The MSR indices KVM can save and restore (KVM_GET_MSR_INDEX_LIST).
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        var count: UInt32 = 256
        while true {
            let size = ckvm_msr_list_size(count)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { unsafe raw.deallocate() }
            let list = unsafe raw.bindMemory(to: kvm_msr_list.self, capacity: 1)
            unsafe list.pointee.nmsrs = count
            if unsafe ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_MSR_INDEX_LIST, raw) >= 0 {
                let n = unsafe Int(min(list.pointee.nmsrs, count))
                let indices = unsafe ckvm_msr_list_indices(list)
                return (0..<n).map { unsafe indices?[$0] ?? 0 }
            }
            if errno == E2BIG, count < 8192 {
                count = unsafe max(count * 2, list.pointee.nmsrs)
                continue
            }
            throw .ioctl(.current("KVM_GET_MSR_INDEX_LIST"))
        }
    }

    /// Creates a VM (KVM_CREATE_VM, default machine type).
    public func createVM() throws(KVMError) -> VirtualMachineFD {
        let vmfd = try ioctlValue(fd.rawValue, CKVM_CREATE_VM, "KVM_CREATE_VM", 0)
        return VirtualMachineFD(fd: OwnedFileDescriptor(taking: vmfd), system: self)
    }
}

/// open(2) without the variadic mode argument.
@inline(__always)
func csystemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 {
    unsafe open(path, flags)
}
