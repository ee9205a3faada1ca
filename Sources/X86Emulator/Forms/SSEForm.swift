/// One allow-listed SSE form: everything needed to re-encode it for the host CPU and to move its
/// inputs and results between the guest and the host. Its effects are confined to XMM registers,
/// MXCSR, arithmetic flags, at most one general-purpose register (or RAX/RCX/RDX for the string
/// compares) and at most one memory operand.
struct SSEForm: Sendable, Equatable {
    /// The operand in ModRM.reg.
    enum RegOperand: Sendable, Equatable {
        /// An XMM register (source and/or destination).
        case xmm
        /// A general-purpose register written with the result (PMOVMSKB, PEXTRW, MOVMSKPS, CVTSS2SI…).
        case gprDestination
        /// An opcode extension (shift-by-immediate groups): ModRM.reg is part of the opcode.
        case opcodeExtension(UInt8)
    }

    /// The operand in ModRM.rm.
    enum RMOperand: Sendable, Equatable {
        /// An XMM register or a memory operand.
        case xmmOrMemory
        /// An XMM register only (mod = 11).
        case xmmOnly
        /// Memory only (mod ≠ 11).
        case memoryOnly
        /// A general-purpose register or a memory operand (MOVD, PINSRW, PEXTRB, CVTSI2SS…).
        case gprOrMemory
    }

    /// How the memory operand (or the r/m register) is used.
    enum RMDirection: Sendable, Equatable {
        /// Read: a source.
        case source
        /// Written: a store, or an extract to a register.
        case destination
    }

    /// Registers used without being named in ModRM.
    enum ImplicitRegisters: Sendable, Equatable {
        case none
        /// PCMPISTRI: writes ECX.
        case writesRCX
        /// PCMPESTRI: reads EAX/EDX (RAX/RDX with REX.W), writes ECX.
        case readsRAXRDXWritesRCX
        /// PCMPESTRM: reads EAX/EDX (RAX/RDX with REX.W).
        case readsRAXRDX
    }

    let mnemonic: String
    let map: OpcodeMap
    let opcode: UInt8
    let prefix: MandatoryPrefix
    let reg: RegOperand
    let rm: RMOperand
    let direction: RMDirection
    /// Bytes of the memory operand (without REX.W).
    let memorySize: Int
    /// Bytes of the memory operand with REX.W, for forms where REX.W selects 64-bit data (MOVQ, PEXTRQ…).
    let memorySizeWide: Int?
    /// The legacy-SSE 16-byte alignment rule applies to the memory operand (#GP(0) when misaligned).
    let aligned: Bool
    let hasImmediate: Bool
    let implicit: ImplicitRegisters
    /// Sets CF, PF, AF, ZF, SF and OF (PTEST, COMISS, PCMPxSTRx…).
    let writesFlags: Bool
    /// Can raise SIMD floating-point exceptions: re-executed only while MXCSR masks all of them.
    let floatingPoint: Bool
    let feature: CPUFeatures

    /// Whether REX.W changes the instruction (and so must be re-encoded).
    var rexWSignificant: Bool { memorySizeWide != nil || implicit == .readsRAXRDX || implicit == .readsRAXRDXWritesRCX || reg == .gprDestination }

    /// The memory operand size for this decoded instance.
    func memoryBytes(rexW: Bool) -> Int { rexW ? (memorySizeWide ?? memorySize) : memorySize }

    /// The ModRM requirement this form puts on decoded instructions.
    var modRMRequirement: ModRMRequirement {
        switch (reg, rm) {
        case (.opcodeExtension(let e), _): return .register(reg: e)
        case (_, .xmmOnly): return .register
        case (_, .memoryOnly): return .memory
        default: return .any
        }
    }

    /// The whole-table form entry.
    var instructionForm: InstructionForm {
        InstructionForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: .exactly(prefix), modRM: modRMRequirement,
                        operation: .sse(self), feature: feature)
    }
}
