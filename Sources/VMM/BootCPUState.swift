import ArchX86
import CKVM
import GuestMemory
import KVM

/// The CPU mode and registers a kernel expects at its entry point.
public enum BootEntry: Sendable, Equatable {
    /// 64-bit long mode with the boot identity map; `rsi` holds the zero page (Linux 64-bit boot protocol).
    case longMode(rip: UInt64, rsi: UInt64)
    /// 32-bit protected mode, paging off, flat segments (PVH: ebx = start info; multiboot: eax = magic, ebx = info).
    case protectedMode(rip: UInt64, eax: UInt32, ebx: UInt32)
}

/// Sets up the boot vCPU: GDT, IDT, page tables in guest memory; segment, control and general registers.
enum BootCPUState {
    static let codeSelector: UInt16 = 0x08
    static let dataSelector: UInt16 = 0x10
    static let tssSelector: UInt16 = 0x18

    /// Writes the GDT, an empty IDT and (for long mode) the identity-map page tables.
    static func writeTables(for entry: BootEntry, into memory: GuestMemory) throws(GuestMemoryError) {
        let longMode: Bool
        if case .longMode = entry { longMode = true } else { longMode = false }
        let gdt: [UInt64] = [
            0,
            GDTEntry.encode(flags: longMode ? 0xa09b : 0xc09b, base: 0, limit: 0xfffff),
            GDTEntry.encode(flags: 0xc093, base: 0, limit: 0xfffff),
            GDTEntry.encode(flags: 0x808b, base: 0, limit: 0x67),
        ]
        for (i, e) in gdt.enumerated() { try memory.store(e, at: Layout.gdtAddress + UInt64(i * 8)) }
        try memory.store(UInt64(0), at: Layout.idtAddress)
        if longMode {
            for write in BootPageTables.identityMap() { try memory.write(write.bytes, at: write.address) }
        }
    }

    /// The special registers for `entry`, starting from the vCPU's current ones.
    static func specialRegisters(for entry: BootEntry, base: kvm_sregs) -> kvm_sregs {
        var s = base
        let longMode: Bool
        if case .longMode = entry { longMode = true } else { longMode = false }
        let code = segment(selector: codeSelector, flags: longMode ? 0xa09b : 0xc09b, limit: 0xfffff)
        let data = segment(selector: dataSelector, flags: 0xc093, limit: 0xfffff)
        s.cs = code
        s.ds = data
        s.es = data
        s.fs = data
        s.gs = data
        s.ss = data
        s.tr = segment(selector: tssSelector, flags: 0x808b, limit: 0x67)
        s.gdt.base = Layout.gdtAddress
        s.gdt.limit = UInt16(4 * 8 - 1)
        s.idt.base = Layout.idtAddress
        s.idt.limit = 7
        s.cr0 = ControlRegisters.cr0PE | ControlRegisters.cr0ET
        s.cr4 = 0
        s.efer = 0
        if longMode {
            s.cr3 = Layout.pml4Address
            s.cr4 |= ControlRegisters.cr4PAE
            s.cr0 |= ControlRegisters.cr0PG
            s.efer |= ControlRegisters.eferLME | ControlRegisters.eferLMA
        }
        return s
    }

    /// The general registers for `entry`.
    static func registers(for entry: BootEntry) -> kvm_regs {
        var r = kvm_regs()
        r.rflags = 0x2
        r.rsp = Layout.bootStackPointer
        r.rbp = Layout.bootStackPointer
        switch entry {
        case .longMode(let rip, let rsi):
            r.rip = rip
            r.rsi = rsi
        case .protectedMode(let rip, let eax, let ebx):
            r.rip = rip
            r.rax = UInt64(eax)
            r.rbx = UInt64(ebx)
        }
        return r
    }

    /// A kvm_segment matching the descriptor `GDTEntry.encode(flags:base:0,limit:)`.
    static func segment(selector: UInt16, flags: UInt16, limit: UInt32) -> kvm_segment {
        var seg = kvm_segment()
        seg.base = 0
        let g = (flags >> 15) & 1
        seg.limit = g == 1 ? (limit << 12) | 0xfff : limit
        seg.selector = selector
        seg.type = UInt8(flags & 0xf)
        seg.present = UInt8((flags >> 7) & 1)
        seg.dpl = UInt8((flags >> 5) & 3)
        seg.db = UInt8((flags >> 14) & 1)
        seg.s = UInt8((flags >> 4) & 1)
        seg.l = UInt8((flags >> 13) & 1)
        seg.g = UInt8(g)
        seg.avl = UInt8((flags >> 12) & 1)
        seg.unusable = seg.present == 0 ? 1 : 0
        return seg
    }
}
