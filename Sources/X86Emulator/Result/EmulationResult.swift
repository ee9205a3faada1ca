/// What `Emulator.step` did.
public enum EmulationResult: Sendable, Equatable {
    /// The instruction ran; `state` holds its effects (RIP advanced). Write back what `changes` names.
    case completed(changes: StateChanges)
    /// Deliver this exception to the guest (KVM_SET_VCPU_EVENTS) after writing back what `changes`
    /// names. For faults RIP still points at the instruction; for INT3 it points past it.
    case injectException(ExceptionInjection, changes: StateChanges)
    /// The emulator cannot run this instruction: stop the VM with the description.
    case unsupported(UnsupportedInstruction)
}

/// Which parts of `CPUState` a step changed, so a VMM writes back only those (each is one ioctl).
public struct StateChanges: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `gpr`, `rip`, `rflags` (KVM_SET_REGS).
    public static let registers = StateChanges(rawValue: 1 << 0)
    /// Segment registers or CR2 (KVM_SET_SREGS).
    public static let specialRegisters = StateChanges(rawValue: 1 << 1)
    /// `xmm`, `mxcsr` (KVM_SET_FPU).
    public static let fpu = StateChanges(rawValue: 1 << 2)
}

/// An exception vector number.
public enum ExceptionVector: UInt8, Sendable, CustomStringConvertible {
    case divideError = 0
    case debug = 1
    case breakpoint = 3
    case invalidOpcode = 6
    case deviceNotAvailable = 7
    case stackFault = 12
    case generalProtection = 13
    case pageFault = 14
    case x87FloatingPoint = 16
    case alignmentCheck = 17
    case simdFloatingPoint = 19

    public var description: String {
        switch self {
        case .divideError: return "#DE"
        case .debug: return "#DB"
        case .breakpoint: return "#BP"
        case .invalidOpcode: return "#UD"
        case .deviceNotAvailable: return "#NM"
        case .stackFault: return "#SS"
        case .generalProtection: return "#GP"
        case .pageFault: return "#PF"
        case .x87FloatingPoint: return "#MF"
        case .alignmentCheck: return "#AC"
        case .simdFloatingPoint: return "#XM"
        }
    }
}

/// An exception to inject, in the shape of `kvm_vcpu_events.exception`.
public struct ExceptionInjection: Sendable, Equatable, CustomStringConvertible {
    public var vector: ExceptionVector
    /// The error code, for exceptions that push one (nil in real mode and for #UD, #BP, #NM, #MF, #DB).
    public var errorCode: UInt32?
    /// `exception_payload`: the faulting linear address for #PF (already stored in `CPUState.cr2`),
    /// the DR6 bits for #DB, else nil.
    public var payload: UInt64?

    public init(vector: ExceptionVector, errorCode: UInt32? = nil, payload: UInt64? = nil) {
        self.vector = vector
        self.errorCode = errorCode
        self.payload = payload
    }

    /// The CR2 value of a page fault.
    public var cr2: UInt64? { vector == .pageFault ? payload : nil }

    public var description: String {
        var s = vector.description
        if let e = errorCode { s += "(0x\(String(e, radix: 16)))" }
        if let c = cr2 { s += " at 0x\(String(c, radix: 16))" }
        return s
    }
}

/// Why the emulator gave up, with what a person needs to tell what the guest was doing.
public struct UnsupportedInstruction: Sendable, Equatable, CustomStringConvertible {
    /// The reason in a few words ("no emulation for opcode 0f 38 f0", "page table at 0x… is outside guest RAM").
    public var reason: String
    /// The instruction bytes fetched at RIP (up to 15; fewer if fetching stopped).
    public var bytes: [UInt8]
    public var rip: UInt64
    public var mode: ProcessorMode
    /// A disassembly of the decoded instruction, if decoding got that far.
    public var disassembly: String?

    public init(reason: String, bytes: [UInt8], rip: UInt64, mode: ProcessorMode, disassembly: String? = nil) {
        self.reason = reason
        self.bytes = bytes
        self.rip = rip
        self.mode = mode
        self.disassembly = disassembly
    }

    public var description: String {
        let hex = bytes.isEmpty ? "none" : bytes.map(hexByte).joined(separator: " ")
        var s = "cannot emulate instruction at RIP 0x\(String(rip, radix: 16)) (\(mode))"
        if let d = disassembly { s += " `\(d)`" }
        return s + ": \(reason); bytes: \(hex)"
    }
}

/// Two lowercase hex digits.
func hexByte(_ b: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
}

/// "0x…" in lowercase hex.
func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
