/// The kind of memory access being translated.
public enum AccessKind: Sendable, Equatable {
    case read
    case write
    case execute
}

/// The outcome of translating a linear address.
public enum TranslationResult: Sendable, Equatable {
    /// The guest-physical address.
    case physical(UInt64)
    /// The access faults: inject #PF with this error code and CR2 = `address`.
    case pageFault(errorCode: UInt32, address: UInt64)
    /// A paging structure could not be read (outside guest RAM): stop the VM.
    case invalidTable(String)
}

/// Bits of the page-fault error code.
public enum PageFaultErrorCode {
    public static let present: UInt32 = 1 << 0
    public static let write: UInt32 = 1 << 1
    public static let user: UInt32 = 1 << 2
    public static let reservedBit: UInt32 = 1 << 3
    public static let instructionFetch: UInt32 = 1 << 4
    public static let protectionKey: UInt32 = 1 << 5
}

/// Walks the guest's page tables in every x86 paging mode: none, 32-bit (4 KiB and 4 MiB pages with
/// CR4.PSE), PAE, 4-level and 5-level (2 MiB and 1 GiB pages), with U/S, R/W, CR0.WP, NX
/// (EFER.NXE), SMEP, SMAP and protection keys. A walk reads at most one entry per level, so looping
/// tables only cost their levels; an entry outside guest RAM ends the walk with `.invalidTable`.
public struct PageWalker: Sendable {
    /// MAXPHYADDR: physical-address bits above this are reserved in paging entries (32…52).
    public var physicalAddressBits: Int
    /// Whether a PS bit in a PDPTE maps a 1 GiB page (otherwise it is a reserved bit).
    public var gigabytePages: Bool

    public init(physicalAddressBits: Int = 48, gigabytePages: Bool = true) {
        self.physicalAddressBits = min(max(physicalAddressBits, 32), 52)
        self.gigabytePages = gigabytePages
    }

    /// Translates `linear` for an access of `kind` at privilege `cpl` (3 = user access).
    ///
    /// With `updateAccessedDirty`, a successful walk sets the accessed bit of every entry it used
    /// and, for writes, the dirty bit of the final one, as the processor does.
    public func translate(_ linear: UInt64, access kind: AccessKind, cpl: Int, state: CPUState, memory: some GuestPhysicalMemory,
                          updateAccessedDirty: Bool = true) -> TranslationResult {
        guard state.cr0 & CR0.paging != 0 else {
            // Paging off: linear = physical (at most 32 bits wide outside long mode).
            return .physical(linear & 0xFFFF_FFFF)
        }
        let context = AccessContext(kind: kind, user: cpl == 3, state: state)
        if state.cr4 & CR4.physicalAddressExtension == 0 {
            return walk32(linear & 0xFFFF_FFFF, context, state, memory, updateAccessedDirty)
        }
        if state.efer & EFER.longModeActive == 0 {
            return walkPAE(linear & 0xFFFF_FFFF, context, state, memory, updateAccessedDirty)
        }
        let levels = state.cr4 & CR4.la57 != 0 ? 5 : 4
        return walkLong(linear, levels: levels, context, state, memory, updateAccessedDirty)
    }

    // MARK: - Access rights

    /// What is being done, and the state bits that decide whether it may be.
    struct AccessContext {
        let kind: AccessKind
        let user: Bool
        let writeProtect: Bool
        let nxEnabled: Bool
        let smep: Bool
        let smap: Bool
        let alignmentCheckFlag: Bool
        let protectionKeys: Bool
        let pkru: UInt32
        /// Whether an instruction-fetch fault sets the I/D bit (SMEP, or PAE paging with NXE).
        let reportsFetch: Bool

        init(kind: AccessKind, user: Bool, state: CPUState) {
            self.kind = kind
            self.user = user
            let pae = state.cr4 & CR4.physicalAddressExtension != 0
            writeProtect = state.cr0 & CR0.writeProtect != 0
            nxEnabled = pae && state.efer & EFER.noExecuteEnable != 0
            smep = state.cr4 & CR4.smep != 0
            smap = state.cr4 & CR4.smap != 0
            alignmentCheckFlag = state.rflags & RFlags.alignmentCheck != 0
            protectionKeys = pae && state.efer & EFER.longModeActive != 0 && state.cr4 & CR4.protectionKeys != 0
            pkru = state.pkru
            reportsFetch = smep || nxEnabled
        }

        /// The error code for a fault with `extra` bits (present, reserved, protection key).
        func errorCode(_ extra: UInt32) -> UInt32 {
            var e = extra
            if kind == .write { e |= PageFaultErrorCode.write }
            if user { e |= PageFaultErrorCode.user }
            if kind == .execute && reportsFetch { e |= PageFaultErrorCode.instructionFetch }
            return e
        }
    }

    /// Combined rights of all entries on the walk.
    struct Rights {
        var writable = true
        var userPage = true
        var executeDisabled = false
        var protectionKey: UInt32 = 0
    }

    /// The error code if `rights` forbid the access, else nil.
    static func check(_ rights: Rights, _ c: AccessContext) -> UInt32? {
        let p = PageFaultErrorCode.present
        switch c.kind {
        case .execute:
            if rights.executeDisabled { return c.errorCode(p) }
            if c.user { return rights.userPage ? nil : c.errorCode(p) }
            if rights.userPage && c.smep { return c.errorCode(p) }
            return nil
        case .read, .write:
            let write = c.kind == .write
            if c.user {
                if !rights.userPage { return c.errorCode(p) }
                if write && !rights.writable { return c.errorCode(p) }
            } else {
                if rights.userPage && c.smap && !c.alignmentCheckFlag { return c.errorCode(p) }
                if write && !rights.writable && c.writeProtect { return c.errorCode(p) }
            }
            if c.protectionKeys && rights.userPage {
                let ad = c.pkru >> (2 * rights.protectionKey) & 1 != 0
                let wd = c.pkru >> (2 * rights.protectionKey + 1) & 1 != 0
                if ad || (write && wd && (c.user || c.writeProtect)) {
                    return c.errorCode(p | PageFaultErrorCode.protectionKey)
                }
            }
            return nil
        }
    }

    // MARK: - 4-level and 5-level paging

    private func walkLong(_ linear: UInt64, levels: Int, _ c: AccessContext, _ state: CPUState, _ memory: some GuestPhysicalMemory,
                          _ updateAD: Bool) -> TranslationResult {
        let addressMask = physicalMask & ~0xFFF
        let xdReserved: UInt64 = c.nxEnabled ? 0 : 1 << 63
        // Bits 51:MAXPHYADDR of an entry's address field are reserved.
        let highReserved = (UInt64(1) << 52 - 1) & ~physicalMask
        var table = state.cr3 & addressMask
        var rights = Rights()
        var visited: [UInt64] = []
        var level = levels
        while level >= 1 {
            let shift = UInt64(12 + 9 * (level - 1))
            let entryAddress = table | ((linear >> shift) & 0x1FF) << 3
            guard let entry = memory.readUInt64(entryAddress) else {
                return .invalidTable("level-\(level) paging entry at \(hex(entryAddress)) is outside guest RAM")
            }
            if entry & 1 == 0 { return .pageFault(errorCode: c.errorCode(0), address: linear) }
            let pageSize = entry & 0x80 != 0
            var reserved = highReserved | xdReserved
            if level >= 4 && pageSize { reserved |= 0x80 }
            if level == 3 && pageSize { reserved |= gigabytePages ? 0x3FFF_E000 : 0x80 }
            if level == 2 && pageSize { reserved |= 0x1F_E000 }
            if entry & reserved != 0 {
                return .pageFault(errorCode: c.errorCode(PageFaultErrorCode.present | PageFaultErrorCode.reservedBit), address: linear)
            }
            rights.writable = rights.writable && entry & 2 != 0
            rights.userPage = rights.userPage && entry & 4 != 0
            rights.executeDisabled = rights.executeDisabled || (c.nxEnabled && entry >> 63 != 0)
            visited.append(entryAddress)
            if level == 1 || (level <= 3 && pageSize) {
                rights.protectionKey = UInt32(truncatingIfNeeded: (entry >> 59) & 0xF)
                if let e = Self.check(rights, c) { return .pageFault(errorCode: e, address: linear) }
                let offsetMask = (UInt64(1) << shift) - 1
                let physical = (entry & addressMask & ~offsetMask) | (linear & offsetMask)
                if updateAD, let failure = setAccessedDirty(visited, dirty: c.kind == .write, memory) { return failure }
                return .physical(physical)
            }
            table = entry & addressMask
            level -= 1
        }
        return .invalidTable("paging walk ended without a leaf")
    }

    // MARK: - PAE paging

    private func walkPAE(_ linear: UInt64, _ c: AccessContext, _ state: CPUState, _ memory: some GuestPhysicalMemory,
                         _ updateAD: Bool) -> TranslationResult {
        let addressMask = physicalMask & ~0xFFF
        let highReserved = (UInt64(1) << 52 - 1) & ~physicalMask
        let xdReserved: UInt64 = c.nxEnabled ? 0 : 1 << 63
        let pdptAddress = (state.cr3 & 0xFFFF_FFE0) | ((linear >> 30) & 3) << 3
        guard let pdpte = memory.readUInt64(pdptAddress) else {
            return .invalidTable("PAE page-directory-pointer entry at \(hex(pdptAddress)) is outside guest RAM")
        }
        if pdpte & 1 == 0 { return .pageFault(errorCode: c.errorCode(0), address: linear) }
        // PDPTEs have no access-rights bits; bits 2:1, 8:5 and 63 are reserved.
        if pdpte & (highReserved | 0x1E6 | 1 << 63) != 0 {
            return .pageFault(errorCode: c.errorCode(PageFaultErrorCode.present | PageFaultErrorCode.reservedBit), address: linear)
        }
        var rights = Rights()
        var visited: [UInt64] = []
        var table = pdpte & addressMask
        for level in [2, 1] {
            let shift = UInt64(12 + 9 * (level - 1))
            let entryAddress = table | ((linear >> shift) & 0x1FF) << 3
            guard let entry = memory.readUInt64(entryAddress) else {
                return .invalidTable("PAE level-\(level) paging entry at \(hex(entryAddress)) is outside guest RAM")
            }
            if entry & 1 == 0 { return .pageFault(errorCode: c.errorCode(0), address: linear) }
            let pageSize = level == 2 && entry & 0x80 != 0
            var reserved = highReserved | xdReserved
            if pageSize { reserved |= 0x1F_E000 }
            if entry & reserved != 0 {
                return .pageFault(errorCode: c.errorCode(PageFaultErrorCode.present | PageFaultErrorCode.reservedBit), address: linear)
            }
            rights.writable = rights.writable && entry & 2 != 0
            rights.userPage = rights.userPage && entry & 4 != 0
            rights.executeDisabled = rights.executeDisabled || (c.nxEnabled && entry >> 63 != 0)
            visited.append(entryAddress)
            if level == 1 || pageSize {
                if let e = Self.check(rights, c) { return .pageFault(errorCode: e, address: linear) }
                let offsetMask = (UInt64(1) << shift) - 1
                let physical = (entry & addressMask & ~offsetMask) | (linear & offsetMask)
                if updateAD, let failure = setAccessedDirty(visited, dirty: c.kind == .write, memory) { return failure }
                return .physical(physical)
            }
            table = entry & addressMask
        }
        return .invalidTable("PAE paging walk ended without a leaf")
    }

    // MARK: - 32-bit paging

    private func walk32(_ linear: UInt64, _ c: AccessContext, _ state: CPUState, _ memory: some GuestPhysicalMemory,
                        _ updateAD: Bool) -> TranslationResult {
        let pdeAddress = (state.cr3 & 0xFFFF_F000) | ((linear >> 22) & 0x3FF) << 2
        guard let pde32 = memory.readUInt32(pdeAddress) else {
            return .invalidTable("page-directory entry at \(hex(pdeAddress)) is outside guest RAM")
        }
        let pde = UInt64(pde32)
        if pde & 1 == 0 { return .pageFault(errorCode: c.errorCode(0), address: linear) }
        var rights = Rights()
        rights.writable = pde & 2 != 0
        rights.userPage = pde & 4 != 0
        if state.cr4 & CR4.pageSizeExtensions != 0 && pde & 0x80 != 0 {
            // 4 MiB page; bits 20:13 hold physical bits 39:32 (PSE-36), bit 21 is reserved.
            let highBits = min(physicalAddressBits, 40) - 32
            let reserved: UInt64 = (1 << 21) | (((1 << 8) - 1) & ~((1 << UInt64(highBits)) - 1)) << 13
            if pde & reserved != 0 {
                return .pageFault(errorCode: c.errorCode(PageFaultErrorCode.present | PageFaultErrorCode.reservedBit), address: linear)
            }
            if let e = Self.check(rights, c) { return .pageFault(errorCode: e, address: linear) }
            let physical = (pde & 0xFFC0_0000) | ((pde >> 13) & 0xFF) << 32 | (linear & 0x3F_FFFF)
            if updateAD, let failure = setAccessedDirty([pdeAddress], dirty: c.kind == .write, memory) { return failure }
            return .physical(physical)
        }
        let pteAddress = (pde & 0xFFFF_F000) | ((linear >> 12) & 0x3FF) << 2
        guard let pte32 = memory.readUInt32(pteAddress) else {
            return .invalidTable("page-table entry at \(hex(pteAddress)) is outside guest RAM")
        }
        let pte = UInt64(pte32)
        if pte & 1 == 0 { return .pageFault(errorCode: c.errorCode(0), address: linear) }
        rights.writable = rights.writable && pte & 2 != 0
        rights.userPage = rights.userPage && pte & 4 != 0
        if let e = Self.check(rights, c) { return .pageFault(errorCode: e, address: linear) }
        if updateAD, let failure = setAccessedDirty([pdeAddress, pteAddress], dirty: c.kind == .write, memory) { return failure }
        return .physical((pte & 0xFFFF_F000) | (linear & 0xFFF))
    }

    // MARK: - Helpers

    /// Bits MAXPHYADDR-1:0.
    private var physicalMask: UInt64 { (UInt64(1) << UInt64(physicalAddressBits)) - 1 }

    /// Sets the accessed bit (0x20) of each entry and the dirty bit (0x40) of the last for writes.
    private func setAccessedDirty(_ entries: [UInt64], dirty: Bool, _ memory: some GuestPhysicalMemory) -> TranslationResult? {
        for (i, address) in entries.enumerated() {
            let bits: UInt8 = (dirty && i == entries.count - 1) ? 0x60 : 0x20
            if !memory.atomicOr(address, bits) {
                return .invalidTable("cannot set accessed/dirty bits of paging entry at \(hex(address))")
            }
        }
        return nil
    }
}
