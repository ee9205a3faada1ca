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
    static func mode(_ entry: BootEntry) -> BootGDT.Mode {
        if case .longMode = entry { return .longMode }
        return .protectedMode32
    }

    /// The GDT, IDT and (for long mode) identity-map page tables to write into guest RAM.
    static func tables(for entry: BootEntry) -> [(address: UInt64, bytes: [UInt8])] {
        var writes: [(address: UInt64, bytes: [UInt8])] = [
            (Layout.gdtAddress, BootGDT.bytes(mode(entry))),
            (Layout.idtAddress, BootGDT.idtBytes),
        ]
        if case .longMode = entry { writes += BootPageTables.identityMap() }
        return writes
    }

    /// The special registers for `entry`, starting from the vCPU's current ones (APIC base, etc.).
    static func specialRegisters(for entry: BootEntry, base: kvm_sregs) -> kvm_sregs {
        var s = base
        let m = mode(entry)
        let segments = BootGDT.segments(m)
        let code = kvmSegment(segments.code)
        let data = kvmSegment(segments.data)
        s.cs = code
        s.ds = data
        s.es = data
        s.fs = data
        s.gs = data
        s.ss = data
        s.tr = kvmSegment(segments.tss)
        s.gdt.base = Layout.gdtAddress
        s.gdt.limit = BootGDT.limit
        s.idt.base = Layout.idtAddress
        s.idt.limit = BootGDT.idtLimit
        let control = BootControlRegisters.forMode(m)
        s.cr0 = control.cr0
        s.cr3 = control.cr3
        s.cr4 = control.cr4
        s.efer = control.efer
        return s
    }

    /// The general registers for `entry`.
    static func registers(for entry: BootEntry) -> kvm_regs {
        var r = kvm_regs()
        r.rflags = RFLAGS.reserved
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

    static func kvmSegment(_ s: SegmentState) -> kvm_segment {
        var k = kvm_segment()
        k.base = s.base
        k.limit = s.limit
        k.selector = s.selector
        k.type = s.type
        k.present = s.present ? 1 : 0
        k.dpl = s.dpl
        k.db = s.db ? 1 : 0
        k.s = s.s ? 1 : 0
        k.l = s.l ? 1 : 0
        k.g = s.g ? 1 : 0
        k.avl = s.avl ? 1 : 0
        k.unusable = s.unusable ? 1 : 0
        return k
    }
}
