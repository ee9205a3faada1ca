/// Legacy prefixes seen before the opcode.
public struct LegacyPrefixes: Sendable, Equatable {
    /// F0.
    public var lock = false
    /// F3 (REP/REPE, or a mandatory prefix).
    public var rep = false
    /// F2 (REPNE, or a mandatory prefix).
    public var repne = false
    /// 66.
    public var operandSize = false
    /// 67.
    public var addressSize = false
    /// The last segment override (2E, 36, 3E, 26, 64, 65), as written.
    public var segment: SegmentName?
    /// The last of F2/F3, which selects the mandatory prefix when both appear.
    public var lastRepeat: UInt8?

    public init() {}
}

/// The mandatory (SIMD) prefix that selects among forms of an opcode.
public enum MandatoryPrefix: Sendable, Hashable, CustomStringConvertible {
    case none, p66, pF3, pF2

    /// The prefix byte, if any.
    public var byte: UInt8? {
        switch self {
        case .none: return nil
        case .p66: return 0x66
        case .pF3: return 0xF3
        case .pF2: return 0xF2
        }
    }

    public var description: String { byte.map(hexByte) ?? "none" }
}

/// The REX prefix bits.
public struct REX: Sendable, Equatable {
    /// The raw byte (40–4F).
    public let raw: UInt8
    public var w: Bool { raw & 8 != 0 }
    public var r: Bool { raw & 4 != 0 }
    public var x: Bool { raw & 2 != 0 }
    public var b: Bool { raw & 1 != 0 }
}

/// The three fields of a ModRM byte, without REX extensions.
public struct ModRM: Sendable, Equatable {
    public let mod: UInt8
    public let reg: UInt8
    public let rm: UInt8

    init(_ byte: UInt8) {
        mod = byte >> 6
        reg = (byte >> 3) & 7
        rm = byte & 7
    }

    /// The raw byte.
    public var byte: UInt8 { mod << 6 | reg << 3 | rm }
    /// Whether the r/m operand is a register.
    public var isRegister: Bool { mod == 3 }
}

/// A memory operand: segment, base, index × scale and displacement.
public struct MemoryOperand: Sendable, Equatable {
    /// The segment after overrides (in 64-bit mode only FS and GS overrides count).
    public var segment: SegmentName
    /// Base register number (0–15), if any.
    public var base: Int?
    /// Index register number (0–15), if any.
    public var index: Int?
    /// 1, 2, 4 or 8.
    public var scale: Int
    /// Sign-extended displacement.
    public var displacement: Int64
    /// RIP-relative: the displacement is added to the address of the next instruction.
    public var ripRelative: Bool
    /// 16, 32 or 64.
    public var addressSize: Int
    /// 16-bit addressing: the base and index registers come from the 16-bit table (BX, BP, SI, DI).
    public var sixteenBit: Bool { addressSize == 16 }
}

/// A fully decoded instruction.
public struct DecodedInstruction: Sendable, Equatable {
    /// The instruction's bytes; `bytes.count` is its length (1…15).
    public let bytes: [UInt8]
    public let mode: ProcessorMode
    public let prefixes: LegacyPrefixes
    /// The REX prefix, if one immediately precedes the opcode (64-bit mode).
    public let rex: REX?
    public let map: OpcodeMap
    public let opcode: UInt8
    public let modRM: ModRM?
    /// The memory operand when ModRM selects memory.
    public let memory: MemoryOperand?
    /// The immediate, zero-extended (`immediateSize` bytes, 0 if none).
    public let immediate: UInt64
    public let immediateSize: Int
    /// 16, 32 or 64.
    public let operandSize: Int
    /// 16, 32 or 64.
    public let addressSize: Int

    /// The instruction length in bytes.
    public var length: Int { bytes.count }

    /// The mandatory prefix: the last of F2/F3 if any, else 66 if present.
    public var mandatoryPrefix: MandatoryPrefix {
        if let r = prefixes.lastRepeat { return r == 0xF2 ? .pF2 : .pF3 }
        return prefixes.operandSize ? .p66 : .none
    }

    /// ModRM.reg extended by REX.R (0–15).
    var regField: Int { Int(modRM?.reg ?? 0) | (rex?.r == true ? 8 : 0) }
    /// ModRM.rm extended by REX.B (0–15), meaningful when the r/m operand is a register.
    var rmField: Int { Int(modRM?.rm ?? 0) | (rex?.b == true ? 8 : 0) }
}
