/// Which instructions accept a LOCK prefix: read-modify-write instructions with a memory
/// destination. LOCK on anything else raises #UD.
enum LockRules {
    static func accepts(_ i: DecodedInstruction) -> Bool {
        // AMD encodes MOV to/from CR8 as LOCK MOV CR0: leave those to whoever knows them.
        if i.map == .map0F && (i.opcode == 0x20 || i.opcode == 0x22) { return true }
        guard let m = i.modRM, !m.isRegister else { return false }
        switch i.map {
        case .primary:
            switch i.opcode {
            case 0x00, 0x01, 0x08, 0x09, 0x10, 0x11, 0x18, 0x19, 0x20, 0x21, 0x28, 0x29, 0x30, 0x31, 0x86, 0x87: return true
            case 0x80, 0x81, 0x82, 0x83: return m.reg != 7
            case 0xF6, 0xF7: return m.reg == 2 || m.reg == 3
            case 0xFE, 0xFF: return m.reg <= 1
            default: return false
            }
        case .map0F:
            switch i.opcode {
            case 0xAB, 0xB3, 0xBB, 0xB0, 0xB1, 0xC0, 0xC1: return true
            case 0xBA: return m.reg >= 5
            case 0xC7: return m.reg == 1
            default: return false
            }
        case .map0F38, .map0F3A:
            return false
        }
    }
}
