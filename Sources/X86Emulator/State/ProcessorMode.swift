/// The operating mode the vCPU is in, as far as instruction decoding and addressing care.
public enum ProcessorMode: Sendable, Equatable, CustomStringConvertible {
    /// CR0.PE = 0.
    case real
    /// Protected mode with RFLAGS.VM = 1.
    case virtual8086
    /// Protected mode (not long mode); `bits` is the CS default size, 16 or 32.
    case protected(bits: Int)
    /// Long mode with a 16- or 32-bit code segment.
    case compatibility(bits: Int)
    /// Long mode with a 64-bit code segment.
    case long64

    public var description: String {
        switch self {
        case .real: return "real mode"
        case .virtual8086: return "virtual-8086 mode"
        case .protected(let b): return "\(b)-bit protected mode"
        case .compatibility(let b): return "\(b)-bit compatibility mode"
        case .long64: return "64-bit mode"
        }
    }

    /// 64-bit mode (REX prefixes, RIP-relative addressing, 64-bit addresses).
    public var is64Bit: Bool { self == .long64 }

    /// Default operand size in bits (16 or 32; 64-bit mode defaults to 32).
    public var defaultOperandSize: Int {
        switch self {
        case .real, .virtual8086: return 16
        case .protected(let b), .compatibility(let b): return b
        case .long64: return 32
        }
    }

    /// Default address size in bits.
    public var defaultAddressSize: Int {
        self == .long64 ? 64 : defaultOperandSize
    }
}
