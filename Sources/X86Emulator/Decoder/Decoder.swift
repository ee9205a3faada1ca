/// Why decoding stopped.
public enum DecodeError: Error, Sendable, Equatable {
    /// The instruction needs byte `at`, which was not available (fetching stopped there).
    case truncated(at: Int)
    /// The instruction is longer than 15 bytes (#GP(0)).
    case tooLong
    /// The opcode is undefined in this mode (#UD).
    case invalidOpcode
    /// An encoding this decoder does not handle (VEX, EVEX, XOP, 3DNow!).
    case unsupportedEncoding(String)
}

/// A table-driven decoder for legacy-encoded x86 instructions in every mode: prefixes, REX, the
/// 1-byte, 0F, 0F 38 and 0F 3A maps, ModRM, SIB, displacements (16-, 32- and 64-bit addressing,
/// RIP-relative) and immediates.
public enum Decoder {
    /// The architectural maximum instruction length.
    public static let maximumLength = 15

    /// Decodes the instruction at the start of `bytes` for `mode`.
    ///
    /// `bytes` may be shorter than 15 when fetching stopped early; needing a missing byte gives
    /// `.truncated`. Needing a 16th byte gives `.tooLong`.
    public static func decode(_ bytes: [UInt8], mode: ProcessorMode) -> Result<DecodedInstruction, DecodeError> {
        var cursor = ByteCursor(bytes: bytes)
        do {
            return .success(try decode(&cursor, mode: mode))
        } catch {
            return .failure(error)
        }
    }

    private static func decode(_ c: inout ByteCursor, mode: ProcessorMode) throws(DecodeError) -> DecodedInstruction {
        let is64 = mode.is64Bit
        var prefixes = LegacyPrefixes()
        var rex: REX?
        var byte = try c.next()
        prefixLoop: while true {
            switch byte {
            case 0xF0: prefixes.lock = true
            case 0xF2: prefixes.repne = true; prefixes.lastRepeat = 0xF2
            case 0xF3: prefixes.rep = true; prefixes.lastRepeat = 0xF3
            case 0x66: prefixes.operandSize = true
            case 0x67: prefixes.addressSize = true
            case 0x26: prefixes.segment = .es
            case 0x2E: prefixes.segment = .cs
            case 0x36: prefixes.segment = .ss
            case 0x3E: prefixes.segment = .ds
            case 0x64: prefixes.segment = .fs
            case 0x65: prefixes.segment = .gs
            case 0x40...0x4F where is64:
                // A REX prefix counts only if the opcode follows it directly.
                rex = REX(raw: byte)
                byte = try c.next()
                continue prefixLoop
            default:
                break prefixLoop
            }
            rex = nil
            byte = try c.next()
        }

        var map = OpcodeMap.primary
        var opcode = byte
        if opcode == 0x0F {
            let second = try c.next()
            switch second {
            case 0x38: map = .map0F38; opcode = try c.next()
            case 0x3A: map = .map0F3A; opcode = try c.next()
            case 0x0F: throw .unsupportedEncoding("3DNow! instruction")
            default: map = .map0F; opcode = second
            }
        } else {
            try checkVectorEscape(opcode, &c, is64: is64)
        }

        let operandSize: Int
        if is64 {
            operandSize = rex?.w == true ? 64 : (prefixes.operandSize ? 16 : 32)
        } else {
            let d = mode.defaultOperandSize
            operandSize = prefixes.operandSize ? (d == 16 ? 32 : 16) : d
        }
        let addressSize: Int
        if is64 {
            addressSize = prefixes.addressSize ? 32 : 64
        } else {
            let d = mode.defaultAddressSize
            addressSize = prefixes.addressSize ? (d == 16 ? 32 : 16) : d
        }

        if map == .primary && is64 && OpcodeTables.invalidIn64BitMode.contains(opcode) { throw .invalidOpcode }
        if map == .map0F && OpcodeTables.undefined0F.contains(opcode) { throw .invalidOpcode }

        let layout = OpcodeTables.layout(map, opcode)
        var modRM: ModRM?
        var memory: MemoryOperand?
        switch layout {
        case .modRM, .modRMImm8, .modRMImmZ, .group3Byte, .group3:
            let m = ModRM(try c.next())
            modRM = m
            if map == .map0F && (0x20...0x23).contains(opcode) {
                // MOV to/from control and debug registers ignore the mod field: always registers.
                break
            }
            if !m.isRegister {
                memory = try decodeMemory(m, &c, rex: rex, addressSize: addressSize, prefixes: prefixes, is64: is64)
            }
        default:
            break
        }

        var immediateSize: Int
        let z = operandSize == 16 ? 2 : 4
        switch layout {
        case .imm8, .modRMImm8: immediateSize = 1
        case .imm16: immediateSize = 2
        // Near branches included: 66 gives them a 16-bit displacement, as on AMD processors and in
        // objdump (Intel ignores 66 on them in 64-bit mode).
        case .immZ, .modRMImmZ: immediateSize = z
        case .immV: immediateSize = operandSize / 8
        case .enter: immediateSize = 3
        case .farPointer: immediateSize = z + 2
        case .memoryOffset: immediateSize = addressSize / 8
        case .group3Byte: immediateSize = (modRM?.reg ?? 2) <= 1 ? 1 : 0
        case .group3: immediateSize = (modRM?.reg ?? 2) <= 1 ? z : 0
        case .none, .modRM, .prefix, .escape, .escape3: immediateSize = 0
        }
        // AMD's SSE4a EXTRQ (66 0F 78 /0 ib ib) and INSERTQ (F2 0F 78 /r ib ib) carry two immediates.
        if map == .map0F && opcode == 0x78 && (prefixes.lastRepeat == 0xF2 || (prefixes.lastRepeat == nil && prefixes.operandSize)) {
            immediateSize = 2
        }
        var immediate: UInt64 = 0
        for i in 0..<immediateSize {
            let b = try c.next()
            if i < 8 { immediate |= UInt64(b) << (8 * UInt64(i)) }
        }

        return DecodedInstruction(
            bytes: Array(c.bytes.prefix(c.position)), mode: mode, prefixes: prefixes, rex: rex, map: map, opcode: opcode,
            modRM: modRM, memory: memory, immediate: immediate, immediateSize: immediateSize,
            operandSize: operandSize, addressSize: addressSize)
    }

    /// VEX (C4, C5), EVEX (62) and XOP (8F) escapes, which this decoder does not take apart.
    private static func checkVectorEscape(_ opcode: UInt8, _ c: inout ByteCursor, is64: Bool) throws(DecodeError) {
        switch opcode {
        case 0xC4, 0xC5, 0x62:
            // Outside 64-bit mode these are LES/LDS/BOUND unless the next byte has mod = 11.
            let next = try c.peek()
            if is64 || next >= 0xC0 {
                throw .unsupportedEncoding(opcode == 0x62 ? "EVEX-encoded instruction" : "VEX-encoded instruction")
            }
        case 0x8F:
            let next = try c.peek()
            if (next >> 3) & 7 != 0 { throw .unsupportedEncoding("XOP-encoded instruction") }
        default:
            break
        }
    }

    /// Decodes SIB, displacement and the segment of a memory operand.
    private static func decodeMemory(_ m: ModRM, _ c: inout ByteCursor, rex: REX?, addressSize: Int, prefixes: LegacyPrefixes,
                                     is64: Bool) throws(DecodeError) -> MemoryOperand {
        var base: Int?
        var index: Int?
        var scale = 1
        var displacement: Int64 = 0
        var ripRelative = false
        var stackDefault = false

        if addressSize == 16 {
            switch m.rm {
            case 0: base = 3; index = 6           // BX + SI
            case 1: base = 3; index = 7           // BX + DI
            case 2: base = 5; index = 6; stackDefault = true  // BP + SI
            case 3: base = 5; index = 7; stackDefault = true  // BP + DI
            case 4: base = 6                      // SI
            case 5: base = 7                      // DI
            case 6:
                if m.mod != 0 { base = 5; stackDefault = true }  // BP (mod 0: disp16 only)
            default: base = 3                     // BX
            }
            switch m.mod {
            case 0 where m.rm == 6: displacement = Int64(Int16(bitPattern: try c.next16()))
            case 1: displacement = Int64(Int8(bitPattern: try c.next()))
            case 2: displacement = Int64(Int16(bitPattern: try c.next16()))
            default: break
            }
        } else {
            let rexB = rex?.b == true ? 8 : 0
            if m.rm == 4 {
                let sib = try c.next()
                scale = 1 << Int(sib >> 6)
                let indexField = Int((sib >> 3) & 7) | (rex?.x == true ? 8 : 0)
                if indexField != 4 { index = indexField }
                let baseField = Int(sib & 7)
                if baseField == 5 && m.mod == 0 {
                    displacement = Int64(Int32(bitPattern: try c.next32()))
                } else {
                    base = baseField | rexB
                    stackDefault = (baseField | rexB) == 4 || (baseField | rexB) == 5  // RSP, RBP (not R12, R13)
                }
            } else if m.rm == 5 && m.mod == 0 {
                displacement = Int64(Int32(bitPattern: try c.next32()))
                ripRelative = is64
            } else {
                base = Int(m.rm) | rexB
                stackDefault = base == 5  // RBP (not R13)
            }
            switch m.mod {
            case 1: displacement = Int64(Int8(bitPattern: try c.next()))
            case 2: displacement = Int64(Int32(bitPattern: try c.next32()))
            default: break
            }
        }

        var segment: SegmentName = stackDefault ? .ss : .ds
        if let s = prefixes.segment, !is64 || s == .fs || s == .gs { segment = s }
        return MemoryOperand(segment: segment, base: base, index: index, scale: scale, displacement: displacement,
                             ripRelative: ripRelative, addressSize: addressSize)
    }
}

/// Reads instruction bytes, enforcing the 15-byte limit and the fetched length.
struct ByteCursor {
    let bytes: [UInt8]
    var position = 0

    mutating func next() throws(DecodeError) -> UInt8 {
        let b = try peek()
        position += 1
        return b
    }

    func peek() throws(DecodeError) -> UInt8 {
        guard position < Decoder.maximumLength else { throw .tooLong }
        guard position < bytes.count else { throw .truncated(at: position) }
        return bytes[position]
    }

    mutating func next16() throws(DecodeError) -> UInt16 {
        let lo = try next()
        let hi = try next()
        return UInt16(lo) | UInt16(hi) << 8
    }

    mutating func next32() throws(DecodeError) -> UInt32 {
        let lo = try next16()
        let hi = try next16()
        return UInt32(lo) | UInt32(hi) << 16
    }
}
