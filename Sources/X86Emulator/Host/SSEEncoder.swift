/// Re-encodes a decoded, allow-listed SSE instruction for the host: the form's own mandatory prefix,
/// escape bytes and opcode; ModRM with the decoded XMM register numbers; any general-purpose operand
/// as RAX; any memory operand as [RDI]; the immediate byte. Segment, address-size and other
/// prefixes are dropped (the guest address was already resolved).
enum SSEEncoder {
    static func encode(_ instruction: DecodedInstruction, _ form: SSEForm) -> [UInt8] {
        var out: [UInt8] = []
        if let p = form.prefix.byte { out.append(p) }
        var rex: UInt8 = 0
        if form.rexWSignificant && instruction.rex?.w == true { rex |= 0x08 }

        let regBits: UInt8
        switch form.reg {
        case .xmm:
            let r = instruction.regField
            regBits = UInt8(r & 7)
            if r >= 8 { rex |= 0x04 }
        case .gprDestination:
            regBits = 0  // RAX
        case .opcodeExtension(let e):
            regBits = e & 7
        }

        let modRM: UInt8
        if instruction.memory != nil {
            modRM = regBits << 3 | 0x07  // mod 00, rm 111: [rdi]
        } else {
            let rmBits: UInt8
            if form.rm == .gprOrMemory {
                rmBits = 0  // RAX
            } else {
                let r = instruction.rmField
                rmBits = UInt8(r & 7)
                if r >= 8 { rex |= 0x01 }
            }
            modRM = 0xC0 | regBits << 3 | rmBits
        }

        if rex != 0 { out.append(0x40 | rex) }
        out += form.map.escapeBytes
        out.append(form.opcode)
        out.append(modRM)
        if form.hasImmediate { out.append(UInt8(truncatingIfNeeded: instruction.immediate)) }
        return out
    }
}
