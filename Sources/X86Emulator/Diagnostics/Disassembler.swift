/// Intel-syntax text for decoded instructions, for error messages and logs.
///
/// Instructions the emulator knows get a mnemonic and operands ("pxor xmm3, xmmword [rip+0x1f40]");
/// others are named by their opcode, ModRM and memory operand ("opcode 0f 38 f0 /r reg 0, [rax+0x8]").
public enum Disassembler {
    /// Decodes and describes the instruction at the start of `bytes`.
    public static func describe(bytes: [UInt8], mode: ProcessorMode) -> String {
        switch Decoder.decode(bytes, mode: mode) {
        case .success(let i): return describe(i)
        case .failure(.truncated(let at)): return "(incomplete instruction: needs byte \(at + 1))"
        case .failure(.tooLong): return "(instruction longer than 15 bytes)"
        case .failure(.invalidOpcode): return "(invalid opcode)"
        case .failure(.unsupportedEncoding(let what)): return "(\(what))"
        }
    }

    /// Describes a decoded instruction.
    public static func describe(_ i: DecodedInstruction) -> String {
        var text = prefixText(i)
        switch InstructionTable.lookup(i) {
        case .form(let f):
            text += mnemonic(i, f)
            let ops = operands(i, f)
            if !ops.isEmpty { text += " " + ops.joined(separator: ", ") }
        case .invalidShape, .unknown:
            text += "opcode " + (i.map.escapeBytes + [i.opcode]).map(hexByte).joined(separator: " ")
            if let m = i.modRM {
                text += " /\(m.reg)"
                text += m.isRegister ? " reg \(i.rmField)" : ", " + memoryText(i, size: nil)
            }
            if i.immediateSize > 0 { text += ", imm 0x" + String(i.immediate, radix: 16) }
        }
        return text
    }

    /// The form's mnemonic, with the 64-bit names objdump and the SDM use under REX.W.
    private static func mnemonic(_ i: DecodedInstruction, _ f: InstructionForm) -> String {
        guard i.rex?.w == true else { return f.mnemonic }
        switch f.mnemonic {
        case "movd": return "movq"
        case "pextrd": return "pextrq"
        case "pinsrd": return "pinsrq"
        case "sysret": return "sysretq"
        case "fxsave": return "fxsave64"
        case "fxrstor": return "fxrstor64"
        default: return f.mnemonic
        }
    }

    private static func prefixText(_ i: DecodedInstruction) -> String {
        var s = ""
        if i.prefixes.lock { s += "lock " }
        return s
    }

    private static func operands(_ i: DecodedInstruction, _ f: InstructionForm) -> [String] {
        let rexW = i.rex?.w == true
        switch f.operation {
        case .popcnt, .lzcnt, .tzcnt:
            let size = i.operandSize / 8
            return [gprName(i.regField, size: size), rmText(i, size: size)]
        case .ldmxcsr, .stmxcsr, .fild32:
            return [memoryText(i, size: 4)]
        case .verifySegment:
            return [rmText(i, size: 2)]
        case .fxsave, .fxrstor:
            return [memoryText(i, size: nil)]
        case .rdpid:
            return [gprName(i.rmField, size: i.mode.is64Bit ? 8 : 4)]
        case .readSegmentBase, .writeSegmentBase:
            return [gprName(i.rmField, size: rexW ? 8 : 4)]
        case .undefined where i.modRM != nil:
            let size = i.operandSize == 16 ? 2 : 4
            return [gprName(i.regField, size: size), rmText(i, size: size)]
        case .sse(let form):
            return sseOperands(i, form, rexW: rexW)
        default:
            return []
        }
    }

    private static func sseOperands(_ i: DecodedInstruction, _ form: SSEForm, rexW: Bool) -> [String] {
        var ops: [String]
        let gprSize = rexW ? 8 : 4
        let rm: String
        if i.memory != nil {
            rm = memoryText(i, size: form.memoryBytes(rexW: rexW))
        } else if form.rm == .gprOrMemory {
            rm = gprName(i.rmField, size: gprSize)
        } else {
            rm = "xmm\(i.rmField)"
        }
        switch form.reg {
        case .opcodeExtension:
            ops = [rm]
        case .gprDestination:
            ops = [gprName(i.regField, size: gprSize), rm]
        case .xmm:
            let reg = "xmm\(i.regField)"
            ops = form.direction == .destination ? [rm, reg] : [reg, rm]
        }
        if form.hasImmediate { ops.append("0x" + String(i.immediate & 0xFF, radix: 16)) }
        if ["pblendvb", "blendvps", "blendvpd", "sha256rnds2"].contains(form.mnemonic) { ops.append("xmm0") }
        return ops
    }

    private static func rmText(_ i: DecodedInstruction, size: Int) -> String {
        i.memory == nil ? gprName(i.rmField, size: size) : memoryText(i, size: size)
    }

    private static let names64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
    private static let names16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"]

    /// The name of general-purpose register `index` at `size` bytes.
    static func gprName(_ index: Int, size: Int) -> String {
        let n = index & 15
        switch size {
        case 8: return names64[n]
        case 4: return n < 8 ? "e" + names64[n].dropFirst() : names64[n] + "d"
        default: return n < 8 ? names16[n] : names64[n] + "w"
        }
    }

    /// "dword fs:[rax+rbx*4+0x10]".
    private static func memoryText(_ i: DecodedInstruction, size: Int?) -> String {
        guard let m = i.memory else { return "[?]" }
        var s = ""
        if let size {
            switch size {
            case 1: s = "byte "
            case 2: s = "word "
            case 4: s = "dword "
            case 8: s = "qword "
            case 16: s = "xmmword "
            default: s = "\(size)-byte "
            }
        }
        if i.prefixes.segment != nil || m.segment == .fs || m.segment == .gs { s += "\(m.segment):" }
        s += "["
        var parts: [String] = []
        let registerSize = m.addressSize / 8
        if m.ripRelative { parts.append(m.addressSize == 32 ? "eip" : "rip") }
        if let b = m.base { parts.append(gprName(b, size: registerSize)) }
        if let x = m.index { parts.append(gprName(x, size: registerSize) + (m.scale > 1 ? "*\(m.scale)" : "")) }
        var text = parts.joined(separator: "+")
        if m.displacement != 0 || parts.isEmpty {
            let magnitude = m.displacement.magnitude
            let sign = m.displacement < 0 ? "-" : (parts.isEmpty ? "" : "+")
            text += sign + "0x" + String(magnitude, radix: 16)
        }
        return s + text + "]"
    }
}
