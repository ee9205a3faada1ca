/// What an emulated instruction does.
enum Operation: Sendable, Equatable {
    case int3
    case clac
    case stac
    case popcnt
    case lzcnt
    case tzcnt
    case fwait
    /// FNCLEX, FNINIT, EMMS and FILD m32int: the x87 instructions Linux runs when switching FPU
    /// state on AMD CPUs (X86_BUG_FXSAVE_LEAK) and at FPU initialisation.
    case fnclex
    case fninit
    case emms
    case fild32
    /// FXSAVE / FXRSTOR (and their REX.W forms): the 512-byte x87/SSE image.
    case fxsave
    case fxrstor
    /// VERR / VERW: ZF = the selector names a segment readable / writable at the current privilege.
    case verifySegment(write: Bool)
    case ldmxcsr
    case stmxcsr
    /// ENDBR64 / ENDBR32: no effect without CET.
    case nop
    /// UD0, UD1, UD2.
    case undefined
    case rdtscp
    case rdpid
    case readSegmentBase(SegmentName)
    case writeSegmentBase(SegmentName)
    case swapgs
    case sysret
    case xgetbv
    /// An allow-listed SSE form, re-executed on the host CPU.
    case sse(SSEForm)
}

/// Which mandatory prefix a form requires.
enum PrefixRequirement: Sendable, Equatable {
    /// Any prefixes (they are ignored).
    case any
    /// Exactly this mandatory prefix (66 may still act as an operand-size prefix next to F2/F3).
    case exactly(MandatoryPrefix)
}

/// Which ModRM bytes a form accepts.
struct ModRMRequirement: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// The opcode has no ModRM byte.
        case absent
        case anyOperand
        case registerOnly
        case memoryOnly
    }

    var kind: Kind
    /// Required ModRM.reg (opcode extension), if any.
    var reg: UInt8?
    /// Required whole ModRM byte (forms like 0F 01 CA), if any.
    var exactByte: UInt8?

    static let absent = ModRMRequirement(kind: .absent)
    static let any = ModRMRequirement(kind: .anyOperand)
    static let register = ModRMRequirement(kind: .registerOnly)
    static let memory = ModRMRequirement(kind: .memoryOnly)
    static func byte(_ b: UInt8) -> ModRMRequirement { ModRMRequirement(kind: .registerOnly, exactByte: b) }
    static func register(reg: UInt8) -> ModRMRequirement { ModRMRequirement(kind: .registerOnly, reg: reg) }
    static func memory(reg: UInt8) -> ModRMRequirement { ModRMRequirement(kind: .memoryOnly, reg: reg) }

    func accepts(_ m: ModRM?) -> Bool {
        guard let m else { return kind == .absent }
        switch kind {
        case .absent: return false
        case .anyOperand: break
        case .registerOnly: if !m.isRegister { return false }
        case .memoryOnly: if m.isRegister { return false }
        }
        if let r = reg, m.reg != r { return false }
        if let b = exactByte, m.byte != b { return false }
        return true
    }
}

/// One row of the instruction table: an encoding pattern, its mnemonic and what it does.
struct InstructionForm: Sendable, Equatable {
    let mnemonic: String
    let map: OpcodeMap
    let opcode: UInt8
    let prefix: PrefixRequirement
    let modRM: ModRMRequirement
    let operation: Operation
    /// The guest CPUID feature the instruction needs (#UD without it), if any.
    let feature: CPUFeatures?

    func matches(_ i: DecodedInstruction) -> Bool {
        guard i.map == map, i.opcode == opcode, modRM.accepts(i.modRM) else { return false }
        switch prefix {
        case .any: return true
        case .exactly(let p): return i.mandatoryPrefix == p
        }
    }
}
