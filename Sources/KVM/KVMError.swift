import SystemExtras

/// Why Skiff cannot use KVM on this host, with the fix a user can apply.
public enum KVMError: Error, CustomStringConvertible, Sendable {
    case deviceMissing(path: String)
    case permissionDenied(path: String)
    case openFailed(path: String, SystemError)
    case apiVersion(found: Int32)
    case missingCapability(name: String)
    case ioctl(SystemError)
    /// A saved vCPU or platform state that cannot be restored (wrong sizes, counts, values).
    case invalidState(String)
    /// A request KVM would refuse, caught before the ioctl (for example a dirty ring size
    /// that is not a power of two).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .deviceMissing(let path):
            return "\(path) does not exist: enable virtualization in the firmware and load the kvm module (modprobe kvm_intel or kvm_amd)"
        case .permissionDenied(let path):
            return "no permission to open \(path): run as root or add your user to the 'kvm' group (sudo usermod -aG kvm $USER)"
        case .openFailed(let path, let error):
            return "cannot open \(path): \(error.message)"
        case .apiVersion(let found):
            return "KVM API version \(found) is not supported: Skiff needs version 12 (a Linux kernel from 2007 or later)"
        case .missingCapability(let name):
            return "this host's KVM lacks \(name), which Skiff needs: use a newer host kernel"
        case .ioctl(let error):
            return error.description
        case .invalidState(let reason):
            return "invalid saved state: \(reason)"
        case .invalidArgument(let reason):
            return "invalid KVM request: \(reason)"
        }
    }
}
