/// The opcode map an instruction's opcode byte belongs to.
public enum OpcodeMap: Int, Sendable, Hashable, CustomStringConvertible {
    /// One-byte opcodes.
    case primary
    /// 0F xx.
    case map0F
    /// 0F 38 xx.
    case map0F38
    /// 0F 3A xx.
    case map0F3A

    /// The escape bytes that select the map.
    public var escapeBytes: [UInt8] {
        switch self {
        case .primary: return []
        case .map0F: return [0x0F]
        case .map0F38: return [0x0F, 0x38]
        case .map0F3A: return [0x0F, 0x3A]
        }
    }

    public var description: String {
        switch self {
        case .primary: return "1-byte"
        case .map0F: return "0f"
        case .map0F38: return "0f 38"
        case .map0F3A: return "0f 3a"
        }
    }
}

/// How an opcode continues after its opcode byte: ModRM and immediate layout.
enum OperandLayout: Sendable, Equatable {
    /// Nothing follows.
    case none
    /// A ModRM byte (with SIB and displacement).
    case modRM
    /// An 8-bit immediate.
    case imm8
    /// A 16-bit immediate.
    case imm16
    /// 16 or 32 bits by operand size (32 for 64-bit operands).
    case immZ
    /// 16, 32 or 64 bits by operand size (MOV reg, imm).
    case immV
    /// ModRM then imm8.
    case modRMImm8
    /// ModRM then a 16/32-bit immediate.
    case modRMImmZ
    /// ENTER: imm16 then imm8.
    case enter
    /// Far pointer: 16/32-bit offset and a 16-bit selector.
    case farPointer
    /// A memory offset as wide as the address size (MOV AL/rAX, moffs).
    case memoryOffset
    /// Group 3 byte form (F6): ModRM, and imm8 for /0 and /1.
    case group3Byte
    /// Group 3 (F7): ModRM, and a 16/32-bit immediate for /0 and /1.
    case group3
    /// A legacy prefix byte.
    case prefix
    /// Escape to the 0F map.
    case escape
    /// Escape to a three-byte map (0F 38, 0F 3A).
    case escape3
}

/// Per-opcode layout tables for the four legacy maps, written one row (16 opcodes) per string:
///
///     . none   m ModRM   b imm8   w imm16   z imm16/32   v imm16/32/64   M ModRM+imm8
///     Z ModRM+imm16/32   e ENTER   p far pointer   o moffs   f/F group 3   P prefix   x escape
enum OpcodeTables {
    static let primary: [OperandLayout] = parse([
        "mmmmbz..mmmmbz.x", // 00
        "mmmmbz..mmmmbz..", // 10
        "mmmmbzP.mmmmbzP.", // 20
        "mmmmbzP.mmmmbzP.", // 30
        "................", // 40 (REX in 64-bit mode)
        "................", // 50
        "..mmPPPPzZbM....", // 60
        "bbbbbbbbbbbbbbbb", // 70
        "MZMMmmmmmmmmmmmm", // 80
        "..........p.....", // 90
        "oooo....bz......", // A0
        "bbbbbbbbvvvvvvvv", // B0
        "MMw.mmMZe.w..b..", // C0
        "mmmmbb..mmmmmmmm", // D0
        "bbbbbbbbzzpb....", // E0
        "P.PP..fF......mm", // F0
    ])

    static let map0F: [OperandLayout] = parse([
        "mmmm.........m.M", // 00 (0F 0F is 3DNow!, ModRM + imm8 suffix)
        "mmmmmmmmmmmmmmmm", // 10
        "mmmm....mmmmmmmm", // 20
        "........x.x.....", // 30
        "mmmmmmmmmmmmmmmm", // 40
        "mmmmmmmmmmmmmmmm", // 50
        "mmmmmmmmmmmmmmmm", // 60
        "MMMMmmm.mm..mmmm", // 70
        "zzzzzzzzzzzzzzzz", // 80
        "mmmmmmmmmmmmmmmm", // 90
        "...mMm.....mMmmm", // A0
        "mmmmmmmmmmMmmmmm", // B0
        "mmMmMMMm........", // C0
        "mmmmmmmmmmmmmmmm", // D0
        "mmmmmmmmmmmmmmmm", // E0
        "mmmmmmmmmmmmmmmm", // F0
    ])

    static let map0F38: [OperandLayout] = Array(repeating: .modRM, count: 256)
    static let map0F3A: [OperandLayout] = Array(repeating: .modRMImm8, count: 256)

    /// One-byte opcodes that raise #UD in 64-bit mode (C4, C5 and 62 are VEX/EVEX there instead).
    static let invalidIn64BitMode: Set<UInt8> = [
        0x06, 0x07, 0x0E, 0x16, 0x17, 0x1E, 0x1F, 0x27, 0x2F, 0x37, 0x3F, 0x60, 0x61, 0x82, 0x9A, 0xCE, 0xD4, 0xD5, 0xD6, 0xEA,
    ]

    /// 0F opcodes that are undefined on current processors (#UD).
    static let undefined0F: Set<UInt8> = [
        0x04, 0x0A, 0x0C, 0x24, 0x25, 0x26, 0x27, 0x36, 0x39, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x7A, 0x7B, 0xA6, 0xA7,
    ]

    /// The layout of `opcode` in `map`.
    static func layout(_ map: OpcodeMap, _ opcode: UInt8) -> OperandLayout {
        switch map {
        case .primary: return primary[Int(opcode)]
        case .map0F: return map0F[Int(opcode)]
        case .map0F38: return map0F38[Int(opcode)]
        case .map0F3A: return map0F3A[Int(opcode)]
        }
    }

    private static func parse(_ rows: [String]) -> [OperandLayout] {
        var table: [OperandLayout] = []
        table.reserveCapacity(256)
        for row in rows {
            for c in row {
                switch c {
                case "m": table.append(.modRM)
                case "b": table.append(.imm8)
                case "w": table.append(.imm16)
                case "z": table.append(.immZ)
                case "v": table.append(.immV)
                case "M": table.append(.modRMImm8)
                case "Z": table.append(.modRMImmZ)
                case "e": table.append(.enter)
                case "p": table.append(.farPointer)
                case "o": table.append(.memoryOffset)
                case "f": table.append(.group3Byte)
                case "F": table.append(.group3)
                case "P": table.append(.prefix)
                case "x": table.append(table.count == 0x0F ? .escape : .escape3)
                default: table.append(.none)
                }
            }
        }
        // A malformed row would misalign every later opcode; pad or trim so lookups never trap.
        while table.count < 256 { table.append(.none) }
        return Array(table.prefix(256))
    }
}
