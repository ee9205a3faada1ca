/// Every instruction form the emulator knows, keyed by (map, opcode) for lookup.
enum InstructionTable {
    /// Non-SSE forms: the instructions KVM's emulator is known to fail on, and their neighbours.
    static let systemForms: [InstructionForm] = [
        form("int3", .primary, 0xCC, .any, .absent, .int3),
        form("fwait", .primary, 0x9B, .any, .absent, .fwait),
        form("fnclex", .primary, 0xDB, .any, .byte(0xE2), .fnclex),
        form("fninit", .primary, 0xDB, .any, .byte(0xE3), .fninit),
        form("fild", .primary, 0xDB, .any, .memory(reg: 0), .fild32),
        form("emms", .map0F, 0x77, .exactly(.none), .absent, .emms),
        form("ud2", .map0F, 0x0B, .any, .absent, .undefined),
        form("ud1", .map0F, 0xB9, .any, .any, .undefined),
        form("ud0", .map0F, 0xFF, .any, .any, .undefined),
        form("clac", .map0F, 0x01, .exactly(.none), .byte(0xCA), .clac, .smap),
        form("stac", .map0F, 0x01, .exactly(.none), .byte(0xCB), .stac, .smap),
        form("xgetbv", .map0F, 0x01, .exactly(.none), .byte(0xD0), .xgetbv, .xsave),
        form("swapgs", .map0F, 0x01, .exactly(.none), .byte(0xF8), .swapgs),
        form("rdtscp", .map0F, 0x01, .exactly(.none), .byte(0xF9), .rdtscp, .rdtscp),
        form("sysret", .map0F, 0x07, .exactly(.none), .absent, .sysret, .syscall),
        form("endbr64", .map0F, 0x1E, .exactly(.pF3), .byte(0xFA), .nop),
        form("endbr32", .map0F, 0x1E, .exactly(.pF3), .byte(0xFB), .nop),
        form("popcnt", .map0F, 0xB8, .exactly(.pF3), .any, .popcnt, .popcnt),
        form("tzcnt", .map0F, 0xBC, .exactly(.pF3), .any, .tzcnt, .bmi1),
        form("lzcnt", .map0F, 0xBD, .exactly(.pF3), .any, .lzcnt, .lzcnt),
        form("verr", .map0F, 0x00, .any, ModRMRequirement(kind: .anyOperand, reg: 4), .verifySegment(write: false)),
        form("verw", .map0F, 0x00, .any, ModRMRequirement(kind: .anyOperand, reg: 5), .verifySegment(write: true)),
        form("fxsave", .map0F, 0xAE, .exactly(.none), .memory(reg: 0), .fxsave),
        form("fxrstor", .map0F, 0xAE, .exactly(.none), .memory(reg: 1), .fxrstor),
        form("ldmxcsr", .map0F, 0xAE, .exactly(.none), .memory(reg: 2), .ldmxcsr, .sse),
        form("stmxcsr", .map0F, 0xAE, .exactly(.none), .memory(reg: 3), .stmxcsr, .sse),
        form("rdfsbase", .map0F, 0xAE, .exactly(.pF3), .register(reg: 0), .readSegmentBase(.fs), .fsgsbase),
        form("rdgsbase", .map0F, 0xAE, .exactly(.pF3), .register(reg: 1), .readSegmentBase(.gs), .fsgsbase),
        form("wrfsbase", .map0F, 0xAE, .exactly(.pF3), .register(reg: 2), .writeSegmentBase(.fs), .fsgsbase),
        form("wrgsbase", .map0F, 0xAE, .exactly(.pF3), .register(reg: 3), .writeSegmentBase(.gs), .fsgsbase),
        form("rdpid", .map0F, 0xC7, .exactly(.pF3), .register(reg: 7), .rdpid, .rdpid),
    ]

    /// All forms, SSE allow-list included.
    static let allForms: [InstructionForm] = systemForms + SSEAllowList.forms.map(\.instructionForm)

    /// Forms by (map, opcode).
    private static let byOpcode: [Int: [InstructionForm]] = {
        var d: [Int: [InstructionForm]] = [:]
        for f in allForms { d[key(f.map, f.opcode), default: []].append(f) }
        return d
    }()

    private static func key(_ map: OpcodeMap, _ opcode: UInt8) -> Int { map.rawValue << 8 | Int(opcode) }

    private static func form(_ mnemonic: String, _ map: OpcodeMap, _ opcode: UInt8, _ prefix: PrefixRequirement, _ modRM: ModRMRequirement,
                             _ operation: Operation, _ feature: CPUFeatures? = nil) -> InstructionForm {
        InstructionForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: prefix, modRM: modRM, operation: operation, feature: feature)
    }

    /// The outcome of looking a decoded instruction up.
    enum Lookup: Sendable, Equatable {
        case form(InstructionForm)
        /// The opcode and prefix belong to SSE forms here, but this ModRM shape is not one of them (#UD).
        case invalidShape
        /// Nothing known about this instruction.
        case unknown
    }

    /// Finds the form of `instruction`.
    static func lookup(_ instruction: DecodedInstruction) -> Lookup {
        guard let candidates = byOpcode[key(instruction.map, instruction.opcode)] else { return .unknown }
        if let f = candidates.first(where: { $0.matches(instruction) }) { return .form(f) }
        // SSE forms of this opcode and prefix cover every valid ModRM shape: anything else is #UD.
        let prefix = instruction.mandatoryPrefix
        let sseShapes = candidates.filter { f in
            if case .sse = f.operation, case .exactly(let p) = f.prefix, p == prefix { return true }
            return false
        }
        return sseShapes.isEmpty ? .unknown : .invalidShape
    }
}
