import Testing

@testable import ArchX86

@Suite("GDT entries")
struct GDTEntryTests {
    @Test("known encodings", arguments: [
        (UInt16(0xA09B), UInt32(0), UInt32(0xF_FFFF), UInt64(0x00AF_9B00_0000_FFFF)),
        (0xC093, 0, 0xF_FFFF, 0x00CF_9300_0000_FFFF),
        (0x808B, 0, 0xF_FFFF, 0x008F_8B00_0000_FFFF),
        (0xC09B, 0, 0xF_FFFF, 0x00CF_9B00_0000_FFFF),
        (0x008B, 0, 0x67, 0x0000_8B00_0000_0067),
        (0x4092, 0x1234_5678, 0xA_BCDE, 0x124A_9234_5678_BCDE),
    ])
    func encodings(flags: UInt16, base: UInt32, limit: UInt32, encoded: UInt64) {
        let entry = GDTEntry(flags: flags, base: base, limit: limit)
        #expect(entry.encoded == encoded)
        #expect(GDTEntry(encoded: encoded) == entry)
    }

    @Test("named entries")
    func named() {
        #expect(GDTEntry.code64.encoded == 0x00AF_9B00_0000_FFFF)
        #expect(GDTEntry.code32.encoded == 0x00CF_9B00_0000_FFFF)
        #expect(GDTEntry.data.encoded == 0x00CF_9300_0000_FFFF)
        #expect(GDTEntry.tss64.encoded == 0x008F_8B00_0000_FFFF)
        #expect(GDTEntry.null.encoded == 0)
    }

    @Test("decoded fields of the 64-bit code segment")
    func decodedFields() {
        let code = GDTEntry(encoded: 0x00AF_9B00_0000_FFFF)
        #expect(code.present && code.isCodeOrData && code.longMode && code.granularity4K)
        #expect(!code.defaultOperationSize32 && !code.available)
        #expect(code.type == 0xB && code.privilegeLevel == 0)
        #expect(code.limitInBytes == 0xFFFF_FFFF)
        let tss = GDTEntry.tss32
        #expect(!tss.isCodeOrData && tss.type == 0xB && tss.limitInBytes == 0x67 && !tss.granularity4K)
        let user = GDTEntry(flags: 0x00F3, base: 0, limit: 0x100)
        #expect(user.privilegeLevel == 3)
    }

    @Test("encoding round-trips every field")
    func roundTrip() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            // Bits 8–11 of `flags` are the limit's high nibble in the descriptor, not flags.
            let entry = GDTEntry(flags: UInt16(truncatingIfNeeded: state >> 7), base: UInt32(truncatingIfNeeded: state >> 23), limit: UInt32(truncatingIfNeeded: state))
            #expect(GDTEntry(encoded: entry.encoded) == entry)
            #expect(GDTEntry(encoded: state).encoded == state)
        }
    }

    @Test("segment registers for KVM")
    func segments() {
        let long = BootGDT.segments(.longMode)
        #expect(long.code == SegmentState(base: 0, limit: 0xFFFF_FFFF, selector: 0x08, type: 0xB, present: true, dpl: 0, db: false, s: true, l: true, g: true, avl: false, unusable: false))
        #expect(long.data == SegmentState(base: 0, limit: 0xFFFF_FFFF, selector: 0x10, type: 0x3, present: true, dpl: 0, db: true, s: true, l: false, g: true, avl: false, unusable: false))
        #expect(long.tss.type == 0xB && !long.tss.s && long.tss.selector == 0x18)
        let flat = BootGDT.segments(.protectedMode32)
        #expect(flat.code.db && !flat.code.l && flat.code.limit == 0xFFFF_FFFF)
        #expect(flat.tss.limit == 0x67 && !flat.tss.g)
    }

    @Test("GDT and IDT bytes")
    func tables() {
        let bytes = BootGDT.bytes(.longMode)
        #expect(bytes.count == 32 && Int(BootGDT.limit) == bytes.count - 1)
        #expect(bytes[0..<8].allSatisfy { $0 == 0 })
        #expect(bytes.u64(8) == 0x00AF_9B00_0000_FFFF)
        #expect(bytes.u64(16) == 0x00CF_9300_0000_FFFF)
        #expect(bytes.u64(24) == 0x008F_8B00_0000_FFFF)
        #expect(BootGDT.bytes(.protectedMode32).u64(8) == 0x00CF_9B00_0000_FFFF)
        #expect(BootGDT.idtBytes == [UInt8](repeating: 0, count: 8) && BootGDT.idtLimit == 7)
        #expect(Layout.gdtAddress + UInt64(bytes.count) <= Layout.idtAddress)
    }
}

@Suite("Boot page tables")
struct BootPageTableTests {
    /// Walks the tables like the MMU does for a 2 MiB mapping: nil if not present.
    func translate(_ virtual: UInt64, in memory: [UInt64: [UInt8]]) -> UInt64? {
        func entry(_ table: UInt64, _ index: UInt64) -> UInt64? {
            guard let bytes = memory[table & ~0xFFF] else { return nil }
            let value = bytes.u64(Int(index * 8))
            return value & BootPageTables.present != 0 ? value : nil
        }
        guard let pml4e = entry(BootPageTables.cr3, (virtual >> 39) & 0x1FF),
            let pdpte = entry(pml4e & 0x000F_FFFF_FFFF_F000, (virtual >> 30) & 0x1FF),
            let pde = entry(pdpte & 0x000F_FFFF_FFFF_F000, (virtual >> 21) & 0x1FF)
        else { return nil }
        #expect(pde & BootPageTables.pageSize != 0 && pde & BootPageTables.writable != 0)
        return (pde & 0x000F_FFFF_FFE0_0000) | (virtual & 0x1F_FFFF)
    }

    @Test("PML4, PDPT and four page directories at the layout addresses")
    func layout() {
        let writes = BootPageTables.identityMap()
        #expect(writes.count == 2 + Layout.pageDirectoryCount)
        #expect(writes.map(\.address) == [Layout.pml4Address, Layout.pdptAddress] + (0..<Layout.pageDirectoryCount).map { Layout.pageDirectoriesAddress + UInt64($0) * 0x1000 })
        #expect(writes.allSatisfy { $0.bytes.count == 4096 })
        #expect(writes[0].bytes.u64(0) == Layout.pdptAddress | 3)
        #expect(writes[0].bytes[8...].allSatisfy { $0 == 0 })
        for i in 0..<Layout.pageDirectoryCount {
            #expect(writes[1].bytes.u64(i * 8) == (Layout.pageDirectoriesAddress + UInt64(i) * 0x1000) | 3)
        }
        #expect(writes[1].bytes[(Layout.pageDirectoryCount * 8)...].allSatisfy { $0 == 0 })
        #expect(writes[2].bytes.u64(0) == 0x83)
        #expect(writes[2].bytes.u64(8) == 0x20_0083)
        #expect(writes[5].bytes.u64(511 * 8) == 0xFFE0_0083)
        #expect(BootPageTables.mappedSize == 4 << 30)
        // The tables do not overlap each other or the zero page/command line.
        let end = writes.map { $0.address + 4096 }.max() ?? 0
        #expect(end <= Layout.multibootInfoAddress)
    }

    @Test("0–4 GiB translate to themselves; above is unmapped", arguments: [
        UInt64(0), 0x1000, 0x1F_FFFF, 0x20_0000, 0x10_0000, 0x1234_5678, 0xBFFF_FFFF, 0xFEE0_0000, 0xFFFF_FFFF,
    ])
    func identity(address: UInt64) {
        var memory: [UInt64: [UInt8]] = [:]
        for write in BootPageTables.identityMap() { memory[write.address] = write.bytes }
        #expect(translate(address, in: memory) == address)
        #expect(translate(0x1_0000_0000, in: memory) == nil)
        #expect(translate(0x80_0000_0000, in: memory) == nil)
    }
}

@Suite("Boot MSRs and control registers")
struct BootRegisterTests {
    @Test("the boot MSR list")
    func msrs() {
        let entries = BootMSRs.entries()
        #expect(Set(entries.map(\.index)).count == entries.count)
        let values = Dictionary(uniqueKeysWithValues: entries.map { ($0.index, $0.value) })
        for index: UInt32 in [0x174, 0x175, 0x176, 0xC000_0081, 0xC000_0083, 0xC000_0102, 0xC000_0084, 0xC000_0082, 0x10] {
            #expect(values[index] == 0, "MSR 0x\(String(index, radix: 16))")
        }
        #expect(values[0x1A0] == 1, "IA32_MISC_ENABLE fast strings")
        #expect(values[0x2FF] == 0x806, "MTRRdefType: enabled, write-back")
        #expect(entries.count == 11)
    }

    @Test("control register bits and boot values")
    func controlRegisters() {
        #expect(CR0.pe == 1 && CR0.et == 0x10 && CR0.pg == 0x8000_0000 && CR0.cd == 0x4000_0000 && CR0.wp == 0x1_0000)
        #expect(CR4.pae == 0x20 && CR4.osxsave == 0x4_0000 && CR4.la57 == 0x1000 && CR4.smap == 0x20_0000)
        #expect(EFER.lme == 0x100 && EFER.lma == 0x400 && EFER.nxe == 0x800 && EFER.sce == 1)
        #expect(BootControlRegisters.longMode == BootControlRegisters(cr0: 0x8000_0011, cr3: 0x9000, cr4: 0x20, efer: 0x500))
        #expect(BootControlRegisters.protectedMode32 == BootControlRegisters(cr0: 0x11, cr3: 0, cr4: 0, efer: 0))
        #expect(BootControlRegisters.forMode(.longMode) == .longMode)
        #expect(RFLAGS.reserved == 2)
        #expect(BootFPU.controlWord == 0x37F && BootFPU.mxcsr == 0x1F80)
    }
}
