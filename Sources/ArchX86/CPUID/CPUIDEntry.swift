/// One CPUID result as exchanged with KVM (`struct kvm_cpuid_entry2`).
public struct CPUIDEntry: Equatable, Sendable, CustomStringConvertible {
    /// KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic): the result depends on `index` (ECX).
    public static let significantIndex: UInt32 = 1

    /// Leaf (EAX input).
    public var function: UInt32
    /// Subleaf (ECX input); meaningful only with `significantIndex`.
    public var index: UInt32
    /// KVM_CPUID_FLAG_* bits.
    public var flags: UInt32
    public var eax: UInt32
    public var ebx: UInt32
    public var ecx: UInt32
    public var edx: UInt32

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function
        self.index = index
        self.flags = flags
        self.eax = eax
        self.ebx = ebx
        self.ecx = ecx
        self.edx = edx
    }

    /// The value of `register`.
    public subscript(register: CPUIDRegister) -> UInt32 {
        get {
            switch register {
            case .eax: return eax
            case .ebx: return ebx
            case .ecx: return ecx
            case .edx: return edx
            }
        }
        set {
            switch register {
            case .eax: eax = newValue
            case .ebx: ebx = newValue
            case .ecx: ecx = newValue
            case .edx: edx = newValue
            }
        }
    }

    /// The entry with all four result registers cleared.
    public var zeroed: CPUIDEntry {
        CPUIDEntry(function: function, index: index, flags: flags)
    }

    public var description: String {
        func h(_ v: UInt32) -> String {
            let s = String(v, radix: 16)
            return "0x" + String(repeating: "0", count: 8 - s.count) + s
        }
        return "CPUID(\(h(function)), \(index)) flags \(flags): eax \(h(eax)) ebx \(h(ebx)) ecx \(h(ecx)) edx \(h(edx))"
    }
}

/// A CPUID output register.
public enum CPUIDRegister: String, Sendable, CaseIterable {
    case eax, ebx, ecx, edx
}
