/// The SSE forms Skiff re-executes on the host CPU. Only these are ever encoded into host code.
///
/// Every entry is a legacy-SSE (non-VEX) XMM form; MMX forms (which touch x87 state) are absent.
/// Memory sizes and alignment follow the SDM: 16-byte memory operands must be 16-byte aligned
/// except for the unaligned moves (MOVUPS, MOVUPD, MOVDQU, LDDQU) and the string compares.
enum SSEAllowList {
    static let forms: [SSEForm] = moves + logicAndFloat + integerSSE2 + shifts + sse3 + ssse3 + sse41 + sse42 + cryptography + sha

    // MARK: - Builders

    /// xmm ← op(xmm, xmm/m): the common two-operand form.
    private static func op(_ mnemonic: String, _ map: OpcodeMap, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures,
                           memory: Int = 16, aligned: Bool? = nil, imm: Bool = false, fp: Bool = false, flags: Bool = false,
                           implicit: SSEForm.ImplicitRegisters = .none) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: prefix, reg: .xmm, rm: .xmmOrMemory, direction: .source,
                memorySize: memory, memorySizeWide: nil, aligned: aligned ?? (memory == 16), hasImmediate: imm || map == .map0F3A,
                implicit: implicit, writesFlags: flags, floatingPoint: fp, feature: feature)
    }

    /// xmm ← m (memory only).
    private static func loadOnly(_ mnemonic: String, _ map: OpcodeMap, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures,
                                 memory: Int, aligned: Bool) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: prefix, reg: .xmm, rm: .memoryOnly, direction: .source,
                memorySize: memory, memorySizeWide: nil, aligned: aligned, hasImmediate: false, implicit: .none,
                writesFlags: false, floatingPoint: false, feature: feature)
    }

    /// xmm ← op(xmm, xmm) (register only).
    private static func registerOnly(_ mnemonic: String, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: .map0F, opcode: opcode, prefix: prefix, reg: .xmm, rm: .xmmOnly, direction: .source,
                memorySize: 0, memorySizeWide: nil, aligned: false, hasImmediate: false, implicit: .none,
                writesFlags: false, floatingPoint: false, feature: feature)
    }

    /// xmm/m ← xmm: a store (or register-to-register move into r/m).
    private static func store(_ mnemonic: String, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures,
                              memory: Int, aligned: Bool, memoryOnly: Bool = false) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: .map0F, opcode: opcode, prefix: prefix, reg: .xmm, rm: memoryOnly ? .memoryOnly : .xmmOrMemory,
                direction: .destination, memorySize: memory, memorySizeWide: nil, aligned: aligned, hasImmediate: false,
                implicit: .none, writesFlags: false, floatingPoint: false, feature: feature)
    }

    /// gpr ← f(xmm) (register only: PMOVMSKB, MOVMSKPS, PEXTRW).
    private static func toGPR(_ mnemonic: String, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures, imm: Bool = false) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: .map0F, opcode: opcode, prefix: prefix, reg: .gprDestination, rm: .xmmOnly, direction: .source,
                memorySize: 0, memorySizeWide: nil, aligned: false, hasImmediate: imm, implicit: .none,
                writesFlags: false, floatingPoint: false, feature: feature)
    }

    /// gpr ← convert(xmm/m) (CVTSS2SI and friends).
    private static func convertToGPR(_ mnemonic: String, _ opcode: UInt8, _ prefix: MandatoryPrefix, _ feature: CPUFeatures, memory: Int) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: .map0F, opcode: opcode, prefix: prefix, reg: .gprDestination, rm: .xmmOrMemory, direction: .source,
                memorySize: memory, memorySizeWide: nil, aligned: false, hasImmediate: false, implicit: .none,
                writesFlags: false, floatingPoint: true, feature: feature)
    }

    /// xmm ← f(xmm, r/m): a general-purpose register or memory source (MOVD, PINSRx, CVTSI2SS).
    private static func fromGPR(_ mnemonic: String, _ map: OpcodeMap, _ opcode: UInt8, _ feature: CPUFeatures, prefix: MandatoryPrefix = .p66,
                                memory: Int, wide: Int? = nil, imm: Bool = false, fp: Bool = false) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: prefix, reg: .xmm, rm: .gprOrMemory, direction: .source,
                memorySize: memory, memorySizeWide: wide, aligned: false, hasImmediate: imm || map == .map0F3A, implicit: .none,
                writesFlags: false, floatingPoint: fp, feature: feature)
    }

    /// r/m ← f(xmm): a general-purpose register or memory destination (MOVD r/m32, PEXTRx, EXTRACTPS).
    private static func toGPROrMemory(_ mnemonic: String, _ map: OpcodeMap, _ opcode: UInt8, _ feature: CPUFeatures,
                                      memory: Int, wide: Int? = nil) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: map, opcode: opcode, prefix: .p66, reg: .xmm, rm: .gprOrMemory, direction: .destination,
                memorySize: memory, memorySizeWide: wide, aligned: false, hasImmediate: map == .map0F3A, implicit: .none,
                writesFlags: false, floatingPoint: false, feature: feature)
    }

    /// Shift of an XMM register by an immediate: 66 0F 71/72/73 /ext ib.
    private static func shiftImmediate(_ mnemonic: String, _ opcode: UInt8, _ ext: UInt8) -> SSEForm {
        SSEForm(mnemonic: mnemonic, map: .map0F, opcode: opcode, prefix: .p66, reg: .opcodeExtension(ext), rm: .xmmOnly, direction: .source,
                memorySize: 0, memorySizeWide: nil, aligned: false, hasImmediate: true, implicit: .none,
                writesFlags: false, floatingPoint: false, feature: .sse2)
    }

    // MARK: - Tables

    private static let moves: [SSEForm] = [
        op("movups", .map0F, 0x10, .none, .sse, aligned: false),
        op("movupd", .map0F, 0x10, .p66, .sse2, aligned: false),
        op("movss", .map0F, 0x10, .pF3, .sse, memory: 4),
        op("movsd", .map0F, 0x10, .pF2, .sse2, memory: 8),
        store("movups", 0x11, .none, .sse, memory: 16, aligned: false),
        store("movupd", 0x11, .p66, .sse2, memory: 16, aligned: false),
        store("movss", 0x11, .pF3, .sse, memory: 4, aligned: false),
        store("movsd", 0x11, .pF2, .sse2, memory: 8, aligned: false),
        loadOnly("movlps", .map0F, 0x12, .none, .sse, memory: 8, aligned: false),
        registerOnly("movhlps", 0x12, .none, .sse),
        loadOnly("movlpd", .map0F, 0x12, .p66, .sse2, memory: 8, aligned: false),
        store("movlps", 0x13, .none, .sse, memory: 8, aligned: false, memoryOnly: true),
        store("movlpd", 0x13, .p66, .sse2, memory: 8, aligned: false, memoryOnly: true),
        loadOnly("movhps", .map0F, 0x16, .none, .sse, memory: 8, aligned: false),
        registerOnly("movlhps", 0x16, .none, .sse),
        loadOnly("movhpd", .map0F, 0x16, .p66, .sse2, memory: 8, aligned: false),
        store("movhps", 0x17, .none, .sse, memory: 8, aligned: false, memoryOnly: true),
        store("movhpd", 0x17, .p66, .sse2, memory: 8, aligned: false, memoryOnly: true),
        op("movaps", .map0F, 0x28, .none, .sse),
        op("movapd", .map0F, 0x28, .p66, .sse2),
        store("movaps", 0x29, .none, .sse, memory: 16, aligned: true),
        store("movapd", 0x29, .p66, .sse2, memory: 16, aligned: true),
        store("movntps", 0x2B, .none, .sse, memory: 16, aligned: true, memoryOnly: true),
        store("movntpd", 0x2B, .p66, .sse2, memory: 16, aligned: true, memoryOnly: true),
        fromGPR("movd", .map0F, 0x6E, .sse2, memory: 4, wide: 8),
        op("movdqa", .map0F, 0x6F, .p66, .sse2),
        op("movdqu", .map0F, 0x6F, .pF3, .sse2, aligned: false),
        toGPROrMemory("movd", .map0F, 0x7E, .sse2, memory: 4, wide: 8),
        op("movq", .map0F, 0x7E, .pF3, .sse2, memory: 8),
        store("movdqa", 0x7F, .p66, .sse2, memory: 16, aligned: true),
        store("movdqu", 0x7F, .pF3, .sse2, memory: 16, aligned: false),
        store("movq", 0xD6, .p66, .sse2, memory: 8, aligned: false),
        store("movntdq", 0xE7, .p66, .sse2, memory: 16, aligned: true, memoryOnly: true),
        toGPR("movmskps", 0x50, .none, .sse),
        toGPR("movmskpd", 0x50, .p66, .sse2),
        toGPR("pmovmskb", 0xD7, .p66, .sse2),
        toGPR("pextrw", 0xC5, .p66, .sse2, imm: true),
        fromGPR("pinsrw", .map0F, 0xC4, .sse2, memory: 2, imm: true),
    ]

    private static let logicAndFloat: [SSEForm] = {
        var f: [SSEForm] = [
            op("unpcklps", .map0F, 0x14, .none, .sse), op("unpcklpd", .map0F, 0x14, .p66, .sse2),
            op("unpckhps", .map0F, 0x15, .none, .sse), op("unpckhpd", .map0F, 0x15, .p66, .sse2),
            op("andps", .map0F, 0x54, .none, .sse), op("andpd", .map0F, 0x54, .p66, .sse2),
            op("andnps", .map0F, 0x55, .none, .sse), op("andnpd", .map0F, 0x55, .p66, .sse2),
            op("orps", .map0F, 0x56, .none, .sse), op("orpd", .map0F, 0x56, .p66, .sse2),
            op("xorps", .map0F, 0x57, .none, .sse), op("xorpd", .map0F, 0x57, .p66, .sse2),
            op("shufps", .map0F, 0xC6, .none, .sse, imm: true), op("shufpd", .map0F, 0xC6, .p66, .sse2, imm: true),
            op("rsqrtps", .map0F, 0x52, .none, .sse), op("rsqrtss", .map0F, 0x52, .pF3, .sse, memory: 4),
            op("rcpps", .map0F, 0x53, .none, .sse), op("rcpss", .map0F, 0x53, .pF3, .sse, memory: 4),
            op("ucomiss", .map0F, 0x2E, .none, .sse, memory: 4, fp: true, flags: true),
            op("ucomisd", .map0F, 0x2E, .p66, .sse2, memory: 8, fp: true, flags: true),
            op("comiss", .map0F, 0x2F, .none, .sse, memory: 4, fp: true, flags: true),
            op("comisd", .map0F, 0x2F, .p66, .sse2, memory: 8, fp: true, flags: true),
            op("cmpps", .map0F, 0xC2, .none, .sse, imm: true, fp: true), op("cmppd", .map0F, 0xC2, .p66, .sse2, imm: true, fp: true),
            op("cmpss", .map0F, 0xC2, .pF3, .sse, memory: 4, imm: true, fp: true),
            op("cmpsd", .map0F, 0xC2, .pF2, .sse2, memory: 8, imm: true, fp: true),
            op("cvtps2pd", .map0F, 0x5A, .none, .sse2, memory: 8, fp: true),
            op("cvtpd2ps", .map0F, 0x5A, .p66, .sse2, fp: true),
            op("cvtss2sd", .map0F, 0x5A, .pF3, .sse2, memory: 4, fp: true),
            op("cvtsd2ss", .map0F, 0x5A, .pF2, .sse2, memory: 8, fp: true),
            op("cvtdq2ps", .map0F, 0x5B, .none, .sse2, fp: true),
            op("cvtps2dq", .map0F, 0x5B, .p66, .sse2, fp: true),
            op("cvttps2dq", .map0F, 0x5B, .pF3, .sse2, fp: true),
            op("cvttpd2dq", .map0F, 0xE6, .p66, .sse2, fp: true),
            op("cvtdq2pd", .map0F, 0xE6, .pF3, .sse2, memory: 8),
            op("cvtpd2dq", .map0F, 0xE6, .pF2, .sse2, fp: true),
            fromGPR("cvtsi2ss", .map0F, 0x2A, .sse, prefix: .pF3, memory: 4, wide: 8, fp: true),
            fromGPR("cvtsi2sd", .map0F, 0x2A, .sse2, prefix: .pF2, memory: 4, wide: 8, fp: true),
            convertToGPR("cvttss2si", 0x2C, .pF3, .sse, memory: 4), convertToGPR("cvttsd2si", 0x2C, .pF2, .sse2, memory: 8),
            convertToGPR("cvtss2si", 0x2D, .pF3, .sse, memory: 4), convertToGPR("cvtsd2si", 0x2D, .pF2, .sse2, memory: 8),
        ]
        // Packed and scalar arithmetic: 51 sqrt, 58 add, 59 mul, 5C sub, 5D min, 5E div, 5F max.
        for (opcode, name) in [(0x51, "sqrt"), (0x58, "add"), (0x59, "mul"), (0x5C, "sub"), (0x5D, "min"), (0x5E, "div"), (0x5F, "max")] as [(UInt8, String)] {
            f.append(op(name + "ps", .map0F, opcode, .none, .sse, fp: true))
            f.append(op(name + "pd", .map0F, opcode, .p66, .sse2, fp: true))
            f.append(op(name + "ss", .map0F, opcode, .pF3, .sse, memory: 4, fp: true))
            f.append(op(name + "sd", .map0F, opcode, .pF2, .sse2, memory: 8, fp: true))
        }
        return f
    }()

    private static let integerSSE2: [SSEForm] = {
        let table: [(UInt8, String)] = [
            (0x60, "punpcklbw"), (0x61, "punpcklwd"), (0x62, "punpckldq"), (0x63, "packsswb"), (0x64, "pcmpgtb"), (0x65, "pcmpgtw"),
            (0x66, "pcmpgtd"), (0x67, "packuswb"), (0x68, "punpckhbw"), (0x69, "punpckhwd"), (0x6A, "punpckhdq"), (0x6B, "packssdw"),
            (0x6C, "punpcklqdq"), (0x6D, "punpckhqdq"), (0x74, "pcmpeqb"), (0x75, "pcmpeqw"), (0x76, "pcmpeqd"),
            (0xD1, "psrlw"), (0xD2, "psrld"), (0xD3, "psrlq"), (0xD4, "paddq"), (0xD5, "pmullw"), (0xD8, "psubusb"),
            (0xD9, "psubusw"), (0xDA, "pminub"), (0xDB, "pand"), (0xDC, "paddusb"), (0xDD, "paddusw"), (0xDE, "pmaxub"),
            (0xDF, "pandn"), (0xE0, "pavgb"), (0xE1, "psraw"), (0xE2, "psrad"), (0xE3, "pavgw"), (0xE4, "pmulhuw"),
            (0xE5, "pmulhw"), (0xE8, "psubsb"), (0xE9, "psubsw"), (0xEA, "pminsw"), (0xEB, "por"), (0xEC, "paddsb"),
            (0xED, "paddsw"), (0xEE, "pmaxsw"), (0xEF, "pxor"), (0xF1, "psllw"), (0xF2, "pslld"), (0xF3, "psllq"),
            (0xF4, "pmuludq"), (0xF5, "pmaddwd"), (0xF6, "psadbw"), (0xF8, "psubb"), (0xF9, "psubw"), (0xFA, "psubd"),
            (0xFB, "psubq"), (0xFC, "paddb"), (0xFD, "paddw"), (0xFE, "paddd"),
        ]
        var f = table.map { op($0.1, .map0F, $0.0, .p66, .sse2) }
        f.append(op("pshufd", .map0F, 0x70, .p66, .sse2, imm: true))
        f.append(op("pshufhw", .map0F, 0x70, .pF3, .sse2, imm: true))
        f.append(op("pshuflw", .map0F, 0x70, .pF2, .sse2, imm: true))
        return f
    }()

    private static let shifts: [SSEForm] = [
        shiftImmediate("psrlw", 0x71, 2), shiftImmediate("psraw", 0x71, 4), shiftImmediate("psllw", 0x71, 6),
        shiftImmediate("psrld", 0x72, 2), shiftImmediate("psrad", 0x72, 4), shiftImmediate("pslld", 0x72, 6),
        shiftImmediate("psrlq", 0x73, 2), shiftImmediate("psrldq", 0x73, 3), shiftImmediate("psllq", 0x73, 6),
        shiftImmediate("pslldq", 0x73, 7),
    ]

    private static let sse3: [SSEForm] = [
        op("movsldup", .map0F, 0x12, .pF3, .sse3),
        op("movshdup", .map0F, 0x16, .pF3, .sse3),
        op("movddup", .map0F, 0x12, .pF2, .sse3, memory: 8),
        op("haddpd", .map0F, 0x7C, .p66, .sse3, fp: true), op("haddps", .map0F, 0x7C, .pF2, .sse3, fp: true),
        op("hsubpd", .map0F, 0x7D, .p66, .sse3, fp: true), op("hsubps", .map0F, 0x7D, .pF2, .sse3, fp: true),
        op("addsubpd", .map0F, 0xD0, .p66, .sse3, fp: true), op("addsubps", .map0F, 0xD0, .pF2, .sse3, fp: true),
        loadOnly("lddqu", .map0F, 0xF0, .pF2, .sse3, memory: 16, aligned: false),
    ]

    private static let ssse3: [SSEForm] = {
        let table: [(UInt8, String)] = [
            (0x00, "pshufb"), (0x01, "phaddw"), (0x02, "phaddd"), (0x03, "phaddsw"), (0x04, "pmaddubsw"), (0x05, "phsubw"),
            (0x06, "phsubd"), (0x07, "phsubsw"), (0x08, "psignb"), (0x09, "psignw"), (0x0A, "psignd"), (0x0B, "pmulhrsw"),
            (0x1C, "pabsb"), (0x1D, "pabsw"), (0x1E, "pabsd"),
        ]
        return table.map { op($0.1, .map0F38, $0.0, .p66, .ssse3) } + [op("palignr", .map0F3A, 0x0F, .p66, .ssse3)]
    }()

    private static let sse41: [SSEForm] = {
        let table: [(UInt8, String)] = [
            (0x10, "pblendvb"), (0x14, "blendvps"), (0x15, "blendvpd"), (0x28, "pmuldq"), (0x29, "pcmpeqq"), (0x2B, "packusdw"),
            (0x38, "pminsb"), (0x39, "pminsd"), (0x3A, "pminuw"), (0x3B, "pminud"), (0x3C, "pmaxsb"), (0x3D, "pmaxsd"),
            (0x3E, "pmaxuw"), (0x3F, "pmaxud"), (0x40, "pmulld"), (0x41, "phminposuw"),
        ]
        var f = table.map { op($0.1, .map0F38, $0.0, .p66, .sse41) }
        f.append(op("ptest", .map0F38, 0x17, .p66, .sse41, flags: true))
        // Sign and zero extensions read 2, 4 or 8 bytes.
        let extensions: [(UInt8, String, Int)] = [(0x0, "bw", 8), (0x1, "bd", 4), (0x2, "bq", 2), (0x3, "wd", 8), (0x4, "wq", 4), (0x5, "dq", 8)]
        for (low, suffix, size) in extensions {
            f.append(op("pmovsx" + suffix, .map0F38, 0x20 | low, .p66, .sse41, memory: size))
            f.append(op("pmovzx" + suffix, .map0F38, 0x30 | low, .p66, .sse41, memory: size))
        }
        f.append(loadOnly("movntdqa", .map0F38, 0x2A, .p66, .sse41, memory: 16, aligned: true))
        f += [
            op("roundps", .map0F3A, 0x08, .p66, .sse41, fp: true), op("roundpd", .map0F3A, 0x09, .p66, .sse41, fp: true),
            op("roundss", .map0F3A, 0x0A, .p66, .sse41, memory: 4, fp: true), op("roundsd", .map0F3A, 0x0B, .p66, .sse41, memory: 8, fp: true),
            op("blendps", .map0F3A, 0x0C, .p66, .sse41), op("blendpd", .map0F3A, 0x0D, .p66, .sse41),
            op("pblendw", .map0F3A, 0x0E, .p66, .sse41),
            toGPROrMemory("pextrb", .map0F3A, 0x14, .sse41, memory: 1),
            toGPROrMemory("pextrw", .map0F3A, 0x15, .sse41, memory: 2),
            toGPROrMemory("pextrd", .map0F3A, 0x16, .sse41, memory: 4, wide: 8),
            toGPROrMemory("extractps", .map0F3A, 0x17, .sse41, memory: 4),
            fromGPR("pinsrb", .map0F3A, 0x20, .sse41, memory: 1),
            op("insertps", .map0F3A, 0x21, .p66, .sse41, memory: 4),
            fromGPR("pinsrd", .map0F3A, 0x22, .sse41, memory: 4, wide: 8),
            op("dpps", .map0F3A, 0x40, .p66, .sse41, fp: true), op("dppd", .map0F3A, 0x41, .p66, .sse41, fp: true),
            op("mpsadbw", .map0F3A, 0x42, .p66, .sse41),
        ]
        return f
    }()

    private static let sse42: [SSEForm] = [
        op("pcmpgtq", .map0F38, 0x37, .p66, .sse42),
        op("pcmpestrm", .map0F3A, 0x60, .p66, .sse42, aligned: false, flags: true, implicit: .readsRAXRDX),
        op("pcmpestri", .map0F3A, 0x61, .p66, .sse42, aligned: false, flags: true, implicit: .readsRAXRDXWritesRCX),
        op("pcmpistrm", .map0F3A, 0x62, .p66, .sse42, aligned: false, flags: true),
        op("pcmpistri", .map0F3A, 0x63, .p66, .sse42, aligned: false, flags: true, implicit: .writesRCX),
    ]

    private static let cryptography: [SSEForm] = [
        op("aesimc", .map0F38, 0xDB, .p66, .aes), op("aesenc", .map0F38, 0xDC, .p66, .aes),
        op("aesenclast", .map0F38, 0xDD, .p66, .aes), op("aesdec", .map0F38, 0xDE, .p66, .aes),
        op("aesdeclast", .map0F38, 0xDF, .p66, .aes), op("aeskeygenassist", .map0F3A, 0xDF, .p66, .aes),
        op("pclmulqdq", .map0F3A, 0x44, .p66, .pclmulqdq),
    ]

    /// SHA extensions (no mandatory prefix; SHA256RNDS2 reads XMM0 implicitly). AMD processors accept
    /// misaligned memory operands here (measured on Zen), so no alignment #GP is raised; the SDM lists
    /// them with the aligned legacy-SSE class, but the kernel's SHA code never relies on the fault.
    private static let sha: [SSEForm] = [
        op("sha1nexte", .map0F38, 0xC8, .none, .sha, aligned: false), op("sha1msg1", .map0F38, 0xC9, .none, .sha, aligned: false),
        op("sha1msg2", .map0F38, 0xCA, .none, .sha, aligned: false), op("sha256rnds2", .map0F38, 0xCB, .none, .sha, aligned: false),
        op("sha256msg1", .map0F38, 0xCC, .none, .sha, aligned: false), op("sha256msg2", .map0F38, 0xCD, .none, .sha, aligned: false),
        op("sha1rnds4", .map0F3A, 0xCC, .none, .sha, aligned: false),
    ]
}
