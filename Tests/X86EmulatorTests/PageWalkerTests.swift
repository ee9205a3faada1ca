import Testing
@testable import X86Emulator

/// Page walks in every paging mode, their faults and error codes, accessed/dirty updates and hostile tables.
@Suite struct PageWalkerTests {
    let walker = PageWalker(physicalAddressBits: 48)

    // Error-code shorthands.
    let P = PageFaultErrorCode.present
    let W = PageFaultErrorCode.write
    let U = PageFaultErrorCode.user
    let RSVD = PageFaultErrorCode.reservedBit
    let ID = PageFaultErrorCode.instructionFetch
    let PK = PageFaultErrorCode.protectionKey

    // MARK: - Paging off

    @Test func pagingOffIsIdentityWithin4GiB() {
        let memory = TestMemory(size: 0x1000)
        let state = CPUState.protected32()
        #expect(walker.translate(0x1234_5678, access: .write, cpl: 0, state: state, memory: memory) == .physical(0x1234_5678))
        #expect(walker.translate(0x1_0000_0010, access: .read, cpl: 0, state: state, memory: memory) == .physical(0x10))
    }

    // MARK: - 32-bit paging

    /// A 32-bit paging state with a page directory at 0x1000.
    func paging32(_ memory: TestMemory) -> CPUState {
        var s = CPUState.protected32()
        s.cr0 |= CR0.paging | CR0.writeProtect
        s.cr3 = 0x1000
        return s
    }

    @Test func thirtyTwoBitFourKiBPages() {
        let memory = TestMemory(size: 0x40_0000)
        var s = paging32(memory)
        // PDE 1 (0x0040_0000…) → PT at 0x2000; PTE 3 → frame 0x5000 (user, read-only).
        memory.store32(0x2000 | 0x7, at: 0x1000 + 1 * 4)
        memory.store32(0x5000 | 0x5, at: 0x2000 + 3 * 4)
        let linear: UInt64 = 0x0040_3ABC
        #expect(walker.translate(linear, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x5ABC))
        // Accessed bits set on both levels, no dirty bit.
        #expect(memory.load32(0x1000 + 4) & 0x20 != 0)
        #expect(memory.load32(0x2000 + 12) & 0x60 == 0x20)
        // User write to a read-only page.
        #expect(walker.translate(linear, access: .write, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | W | U, address: linear))
        // Supervisor write: faults with CR0.WP, allowed without.
        #expect(walker.translate(linear, access: .write, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | W, address: linear))
        s.cr0 &= ~CR0.writeProtect
        #expect(walker.translate(linear, access: .write, cpl: 0, state: s, memory: memory) == .physical(0x5ABC))
        #expect(memory.load32(0x2000 + 12) & 0x40 != 0)
        // Not present: the next PTE, and an empty PDE.
        #expect(walker.translate(0x0040_4000, access: .read, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: U, address: 0x0040_4000))
        #expect(walker.translate(0x0080_0000, access: .write, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: W, address: 0x0080_0000))
        // No NX in 32-bit paging: fetches never set I/D without SMEP.
        #expect(walker.translate(0x0080_0000, access: .execute, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: 0, address: 0x0080_0000))
        // The upper 32 bits of a linear address do not exist here.
        #expect(walker.translate(0xFFFF_FFFF_0040_3ABC, access: .read, cpl: 0, state: s, memory: memory) == .physical(0x5ABC))
    }

    @Test func thirtyTwoBitFourMiBPagesWithPSE36() {
        let memory = TestMemory(size: 0x10000)
        var s = paging32(memory)
        s.cr4 |= CR4.pageSizeExtensions
        // PDE 2 → 4 MiB page at 0x12_0040_0000 (bits 39:32 = 0x12 in PDE bits 20:13).
        memory.store32(0x0040_0000 | (0x12 << 13) | 0x83, at: 0x1000 + 2 * 4)
        #expect(walker.translate(0x0089_ABCD, access: .write, cpl: 0, state: s, memory: memory) == .physical(0x12_0049_ABCD))
        #expect(memory.load32(0x1008) & 0x60 == 0x60)
        // Bit 21 is reserved in a 4 MiB PDE.
        memory.store32(0x0040_0000 | (1 << 21) | 0x83, at: 0x1000 + 2 * 4)
        #expect(walker.translate(0x0089_ABCD, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | RSVD, address: 0x0089_ABCD))
        // Without CR4.PSE the PS bit is ignored: the PDE points to a page table (at 0x400000, outside this RAM).
        s.cr4 &= ~CR4.pageSizeExtensions
        guard case .invalidTable = walker.translate(0x0089_ABCD, access: .read, cpl: 0, state: s, memory: memory) else {
            Issue.record("PS bit honoured without CR4.PSE")
            return
        }
    }

    // MARK: - PAE paging

    func paePaging(_ memory: TestMemory) -> CPUState {
        var s = CPUState.protected32()
        s.cr0 |= CR0.paging | CR0.writeProtect
        s.cr4 |= CR4.physicalAddressExtension
        s.efer = EFER.noExecuteEnable
        s.cr3 = 0x1020  // 32-byte aligned PDPT
        return s
    }

    @Test func paeTwoMiBAndFourKiBPages() {
        let memory = TestMemory(size: 0x10000)
        var s = paePaging(memory)
        // PDPTE 1 → PD at 0x2000; PDE 0 → 2 MiB page at 0x20_0000 (NX); PDE 1 → PT at 0x3000; PTE 5 → 0x7000.
        memory.store64(0x2000 | 1, at: 0x1020 + 8)
        memory.store64(0x20_0000 | 0x87 | PTE.noExecute, at: 0x2000)
        memory.store64(0x3000 | 0x7, at: 0x2000 + 8)
        memory.store64(0x7000 | 0x7, at: 0x3000 + 5 * 8)
        #expect(walker.translate(0x4012_3456, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x32_3456))
        #expect(walker.translate(0x4020_5010, access: .write, cpl: 3, state: s, memory: memory) == .physical(0x7010))
        // NX page: instruction fetch faults with I/D.
        #expect(walker.translate(0x4012_3456, access: .execute, cpl: 3, state: s, memory: memory)
            == .pageFault(errorCode: P | U | ID, address: 0x4012_3456))
        // Without EFER.NXE, bit 63 is reserved.
        s.efer = 0
        #expect(walker.translate(0x4012_3456, access: .read, cpl: 0, state: s, memory: memory)
            == .pageFault(errorCode: P | RSVD, address: 0x4012_3456))
        // A PDPTE that is not present, and one with reserved bits.
        #expect(walker.translate(0x0000_1000, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: 0, address: 0x1000))
        memory.store64(0x2000 | 1 | 0x2, at: 0x1020)
        #expect(walker.translate(0x0000_1000, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | RSVD, address: 0x1000))
    }

    // MARK: - 4-level and 5-level paging

    @Test func fourLevelPageSizes() {
        let memory = TestMemory(size: 16 << 20)
        let tables = LongModeTables(memory: memory)
        let s = CPUState.long64(cr3: tables.root)
        tables.map(0x7F00_0000_1000, to: 0x44_5000, flags: PTE.urw)
        tables.map(0x7F00_0040_0000, to: 0x60_0000, flags: PTE.urw, size: 0x20_0000)
        tables.map(0x7F80_4000_0000, to: 0x8000_0000, flags: PTE.rw, size: 0x4000_0000)
        #expect(walker.translate(0x7F00_0000_1FFF, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x44_5FFF))
        #expect(walker.translate(0x7F00_0045_6789, access: .write, cpl: 3, state: s, memory: memory) == .physical(0x65_6789))
        #expect(walker.translate(0x7F80_7654_3210, access: .execute, cpl: 0, state: s, memory: memory) == .physical(0xB654_3210))
        // Dirty only on the leaf, accessed everywhere on the path.
        for level in 2...4 {
            let e = memory.load64(tables.entryAddress(0x7F00_0045_6789, level: level))
            #expect(e & PTE.accessed != 0)
            #expect(e & PTE.dirty == (level == 2 ? PTE.dirty : 0))
        }
        // The 1 GiB page is supervisor-only.
        #expect(walker.translate(0x7F80_7654_3210, access: .read, cpl: 3, state: s, memory: memory)
            == .pageFault(errorCode: P | U, address: 0x7F80_7654_3210))
        // Without 1 GiB page support its PS bit is reserved.
        let small = PageWalker(physicalAddressBits: 48, gigabytePages: false)
        #expect(small.translate(0x7F80_7654_3210, access: .read, cpl: 0, state: s, memory: memory)
            == .pageFault(errorCode: P | RSVD, address: 0x7F80_7654_3210))
    }

    @Test func fourLevelReservedBits() {
        let memory = TestMemory(size: 16 << 20)
        let tables = LongModeTables(memory: memory)
        let s = CPUState.long64(cr3: tables.root)
        tables.map(0x1000, to: 0x5000)
        // An address bit above MAXPHYADDR (48) in the PTE.
        let pte = tables.entryAddress(0x1000, level: 1)
        memory.store64(memory.load64(pte) | 1 << 50, at: pte)
        #expect(walker.translate(0x1000, access: .write, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | W | U | RSVD, address: 0x1000))
        // The same bit is fine with MAXPHYADDR 52 (but the frame is then outside RAM: that is the caller's problem).
        #expect(PageWalker(physicalAddressBits: 52).translate(0x1000, access: .read, cpl: 0, state: s, memory: memory) == .physical(1 << 50 | 0x5000))
        // PS in a PML4 entry is reserved.
        let pml4e = tables.entryAddress(0x1000, level: 4)
        memory.store64(memory.load64(pml4e) | PTE.pageSize, at: pml4e)
        #expect(walker.translate(0x1000, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | RSVD, address: 0x1000))
        // Reserved bits 20:13 of a 2 MiB page.
        tables.map(0x4000_0000, to: 0x20_0000, size: 0x20_0000)
        let pde = tables.entryAddress(0x4000_0000, level: 2)
        memory.store64(memory.load64(pde) | 1 << 13, at: pde)
        #expect(walker.translate(0x4000_0000, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | RSVD, address: 0x4000_0000))
    }

    @Test func fiveLevelPaging() {
        let memory = TestMemory(size: 16 << 20)
        let tables = LongModeTables(memory: memory, levels: 5)
        var s = CPUState.long64(cr3: tables.root)
        s.cr4 |= CR4.la57
        let linear: UInt64 = 0x00AB_CDEF_1234_5000  // needs bits above 47
        tables.map(linear, to: 0x77_7000)
        #expect(walker.translate(linear | 0x123, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x77_7123))
        #expect(memory.load64(tables.entryAddress(linear, level: 5)) & PTE.accessed != 0)
        // The same tables read as 4-level give a different (unmapped) result.
        s.cr4 &= ~CR4.la57
        #expect(walker.translate(linear, access: .read, cpl: 3, state: s, memory: memory) != .physical(0x77_7000))
    }

    // MARK: - Protection

    @Test func supervisorAndUserProtection() {
        let memory = TestMemory(size: 16 << 20)
        let tables = LongModeTables(memory: memory)
        var s = CPUState.long64(cr3: tables.root)
        tables.map(0x1000, to: 0x5000, flags: PTE.urw)                    // user page
        tables.map(0x2000, to: 0x6000, flags: PTE.rw)                     // supervisor page
        tables.map(0x3000, to: 0x7000, flags: PTE.urw | PTE.noExecute)    // user, no-execute
        tables.map(0x4000, to: 0x8000, flags: PTE.present | PTE.user)     // user, read-only
        // User access to a supervisor page.
        #expect(walker.translate(0x2000, access: .read, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | U, address: 0x2000))
        #expect(walker.translate(0x2000, access: .execute, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | U | ID, address: 0x2000))
        // NX.
        #expect(walker.translate(0x3000, access: .execute, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | ID, address: 0x3000))
        // SMEP: supervisor fetch from a user page.
        #expect(walker.translate(0x1000, access: .execute, cpl: 0, state: s, memory: memory) == .physical(0x5000))
        s.cr4 |= CR4.smep
        #expect(walker.translate(0x1000, access: .execute, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | ID, address: 0x1000))
        #expect(walker.translate(0x1000, access: .execute, cpl: 3, state: s, memory: memory) == .physical(0x5000))
        // SMAP: supervisor data access to a user page unless RFLAGS.AC.
        s.cr4 |= CR4.smap
        #expect(walker.translate(0x1000, access: .read, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P, address: 0x1000))
        #expect(walker.translate(0x1000, access: .write, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | W, address: 0x1000))
        s.rflags |= RFlags.alignmentCheck
        #expect(walker.translate(0x1000, access: .write, cpl: 0, state: s, memory: memory) == .physical(0x5000))
        // With AC set, CR0.WP still protects read-only user pages from supervisor writes.
        #expect(walker.translate(0x4000, access: .write, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | W, address: 0x4000))
        s.cr0 &= ~CR0.writeProtect
        #expect(walker.translate(0x4000, access: .write, cpl: 0, state: s, memory: memory) == .physical(0x8000))
        // A user write to a read-only user page faults regardless of WP.
        #expect(walker.translate(0x4000, access: .write, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | W | U, address: 0x4000))
    }

    @Test func protectionKeys() {
        let memory = TestMemory(size: 16 << 20)
        let tables = LongModeTables(memory: memory)
        var s = CPUState.long64(cr3: tables.root)
        s.cr4 |= CR4.protectionKeys
        tables.map(0x1000, to: 0x5000, flags: PTE.urw | 3 << 59)  // key 3
        tables.map(0x2000, to: 0x6000, flags: PTE.rw | 3 << 59)   // supervisor page: keys do not apply
        s.pkru = 1 << 6  // AD for key 3
        #expect(walker.translate(0x1000, access: .read, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | U | PK, address: 0x1000))
        #expect(walker.translate(0x1000, access: .execute, cpl: 3, state: s, memory: memory) == .physical(0x5000))
        #expect(walker.translate(0x2000, access: .read, cpl: 0, state: s, memory: memory) == .physical(0x6000))
        s.pkru = 1 << 7  // WD for key 3
        #expect(walker.translate(0x1000, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x5000))
        #expect(walker.translate(0x1000, access: .write, cpl: 3, state: s, memory: memory) == .pageFault(errorCode: P | W | U | PK, address: 0x1000))
        // Supervisor writes to user pages obey WD only with CR0.WP.
        #expect(walker.translate(0x1000, access: .write, cpl: 0, state: s, memory: memory) == .pageFault(errorCode: P | W | PK, address: 0x1000))
        s.cr0 &= ~CR0.writeProtect
        #expect(walker.translate(0x1000, access: .write, cpl: 0, state: s, memory: memory) == .physical(0x5000))
        // Without CR4.PKE keys are ignored.
        s.cr4 &= ~CR4.protectionKeys
        s.pkru = ~0
        #expect(walker.translate(0x1000, access: .write, cpl: 3, state: s, memory: memory) == .physical(0x5000))
    }

    // MARK: - Hostile tables

    @Test func tablesOutsideRAMStopTheWalk() {
        let memory = TestMemory(size: 0x10000)
        var s = CPUState.long64(cr3: 0x4000_0000)  // CR3 beyond RAM
        guard case .invalidTable = walker.translate(0x1000, access: .read, cpl: 0, state: s, memory: memory) else {
            Issue.record("CR3 outside RAM was walked")
            return
        }
        // A PML4 entry pointing past the end of RAM.
        s.cr3 = 0x1000
        memory.store64(0xFFFF_F000 | 3, at: 0x1000)
        guard case .invalidTable(let why) = walker.translate(0x10, access: .read, cpl: 0, state: s, memory: memory) else {
            Issue.record("entry outside RAM was followed")
            return
        }
        #expect(why.contains("outside guest RAM"))
    }

    @Test func loopingTablesEndAfterTheirLevels() {
        let memory = TestMemory(size: 0x10000)
        // PML4[0] points at the PML4 itself: every level reads the same table.
        memory.store64(0x1000 | 0x7, at: 0x1000)
        let s = CPUState.long64(cr3: 0x1000)
        // Four reads of the same entry: the last is the leaf and maps frame 0x1000.
        #expect(walker.translate(0x123, access: .read, cpl: 3, state: s, memory: memory) == .physical(0x1123))
        // 32-bit paging with the directory pointing at itself.
        var s32 = CPUState.protected32()
        s32.cr0 |= CR0.paging
        s32.cr3 = 0x2000
        memory.store32(0x2000 | 0x7, at: 0x2000)
        #expect(walker.translate(0x456, access: .read, cpl: 0, state: s32, memory: memory) == .physical(0x2456))
    }

    /// Random tables, random addresses, every mode: the walk always ends in one of its three results
    /// and never reads more than one entry per level.
    @Test func randomTablesNeverTrap() {
        var rng = SeededGenerator(seed: 0x5EED_0001)
        let memory = TestMemory(size: 0x20000)
        var outcomes = [0, 0, 0]
        for round in 0..<4000 {
            // Fill the table pages with random entries, biased towards present and in-RAM.
            if round % 50 == 0 {
                for i in stride(from: 0, to: 0x20000, by: 8) {
                    var e = rng.next()
                    // Mostly present entries with in-RAM frames; some wholly random ones (outside RAM, reserved bits).
                    if e & 0x7 != 0 { e = (e & 0x1F000) | (e & 0x8000_0000_0000_01FF) | 1 }
                    memory.store64(e, at: UInt64(i))
                }
            }
            var s: CPUState
            switch round % 4 {
            case 0:
                s = CPUState.long64(cr3: rng.next() & 0x1F000)
            case 1:
                s = CPUState.long64(cr3: rng.next() & 0x1F000)
                s.cr4 |= CR4.la57 | CR4.smep | CR4.smap | CR4.protectionKeys
                s.pkru = UInt32(truncatingIfNeeded: rng.next())
            case 2:
                s = CPUState.protected32()
                s.cr0 |= CR0.paging
                s.cr4 |= CR4.physicalAddressExtension
                s.efer = rng.next() & 1 == 0 ? EFER.noExecuteEnable : 0
                s.cr3 = rng.next() & 0x1FFE0
            default:
                s = CPUState.protected32()
                s.cr0 |= CR0.paging
                s.cr4 |= rng.next() & 1 == 0 ? CR4.pageSizeExtensions : 0
                s.cr3 = rng.next() & 0x1F000
            }
            let kinds: [AccessKind] = [.read, .write, .execute]
            let result = PageWalker(physicalAddressBits: Int(rng.next() % 21) + 32)
                .translate(rng.next(), access: kinds[Int(rng.next() % 3)], cpl: rng.next() & 1 == 0 ? 0 : 3, state: s, memory: memory)
            switch result {
            case .physical: outcomes[0] += 1
            case .pageFault: outcomes[1] += 1
            case .invalidTable: outcomes[2] += 1
            }
        }
        // All three outcomes occur, so the random tables exercise real walks.
        #expect(outcomes.allSatisfy { $0 > 10 }, "\(outcomes)")
    }
}
