import X86Emulator

/// Page-table entry bits.
enum PTE {
    static let present: UInt64 = 1
    static let writable: UInt64 = 2
    static let user: UInt64 = 4
    static let accessed: UInt64 = 0x20
    static let dirty: UInt64 = 0x40
    static let pageSize: UInt64 = 0x80
    static let noExecute: UInt64 = 1 << 63
    static let rw: UInt64 = present | writable
    static let urw: UInt64 = present | writable | user
}

/// Builds 4-level or 5-level page tables in a `TestMemory`.
struct LongModeTables {
    let memory: TestMemory
    let root: UInt64
    let levels: Int

    init(memory: TestMemory, levels: Int = 4) {
        self.memory = memory
        self.levels = levels
        root = memory.allocatePage()
    }

    /// Maps `linear` → `physical` with a page of `size` (4 KiB, 2 MiB or 1 GiB). Intermediate
    /// entries get `tableFlags`, the leaf `flags`.
    func map(_ linear: UInt64, to physical: UInt64, flags: UInt64 = PTE.urw, size: UInt64 = 0x1000, tableFlags: UInt64 = PTE.urw) {
        let leafLevel = size == 0x4000_0000 ? 3 : (size == 0x20_0000 ? 2 : 1)
        var table = root
        var level = levels
        while level > leafLevel {
            let shift = UInt64(12 + 9 * (level - 1))
            let entryAddress = table + ((linear >> shift) & 0x1FF) * 8
            var entry = memory.load64(entryAddress)
            if entry & PTE.present == 0 {
                entry = memory.allocatePage() | tableFlags
                memory.store64(entry, at: entryAddress)
            }
            table = entry & 0x000F_FFFF_FFFF_F000
            level -= 1
        }
        let shift = UInt64(12 + 9 * (leafLevel - 1))
        let entryAddress = table + ((linear >> shift) & 0x1FF) * 8
        memory.store64(physical | flags | (leafLevel > 1 ? PTE.pageSize : 0), at: entryAddress)
    }

    /// The address of the entry at `level` for `linear` (assuming the path exists).
    func entryAddress(_ linear: UInt64, level: Int) -> UInt64 {
        var table = root
        var l = levels
        while true {
            let shift = UInt64(12 + 9 * (l - 1))
            let address = table + ((linear >> shift) & 0x1FF) * 8
            if l == level { return address }
            table = memory.load64(address) & 0x000F_FFFF_FFFF_F000
            l -= 1
        }
    }
}

/// A 64-bit test machine: memory, identity-ish tables, a code page at `codeBase`.
struct LongModeMachine {
    let memory: TestMemory
    let tables: LongModeTables
    var state: CPUState
    let platform = TestPlatform()
    static let codeBase: UInt64 = 0x40_0000
    static let dataBase: UInt64 = 0x60_0000

    init(levels: Int = 4, cpl: UInt8 = 0) {
        memory = TestMemory()
        tables = LongModeTables(memory: memory, levels: levels)
        state = CPUState.long64(cr3: tables.root, cpl: cpl)
        if levels == 5 { state.cr4 |= CR4.la57 }
        // Code at 0x400000 (2 pages), data at 0x600000 (4 pages), all user-accessible.
        for i: UInt64 in 0..<2 { tables.map(Self.codeBase + i * 0x1000, to: 0x20_0000 + i * 0x1000, flags: PTE.urw) }
        for i: UInt64 in 0..<4 { tables.map(Self.dataBase + i * 0x1000, to: 0x30_0000 + i * 0x1000, flags: PTE.urw | PTE.noExecute) }
        state.rip = Self.codeBase
    }

    /// Places instruction bytes at RIP.
    func place(_ code: [UInt8], at linear: UInt64 = LongModeMachine.codeBase) {
        memory.store(code, at: 0x20_0000 + (linear - Self.codeBase))
    }

    /// The guest-physical address of a data linear address.
    func dataPhysical(_ linear: UInt64) -> UInt64 { 0x30_0000 + (linear - Self.dataBase) }
}
