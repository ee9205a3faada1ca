#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SystemExtras

/// Everything KVM holds for one vCPU, captured while the vCPU is parked outside `KVM_RUN`:
/// registers, system registers, XSAVE area (x87/SSE/AVX), XCRs, debug registers, local APIC,
/// pending events, MP state, every saveable MSR, the CPUID table and the TSC frequency.
///
/// The `kvm_*` structs are kept as their byte images (`RawStruct`): the kernel ABI fixes
/// their layout. `validate()` checks sizes and the values Skiff relies on before a restore;
/// KVM checks the rest when the state is set.
public struct VCPUState: Codable, Sendable, Equatable {
    /// One model-specific register.
    public struct MSR: Codable, Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public init(index: UInt32, value: UInt64) {
            self.index = index
            self.value = value
        }
    }

    /// One CPUID leaf as set with KVM_SET_CPUID2.
    public struct CPUIDLeaf: Codable, Sendable, Equatable {
        public var function: UInt32
        public var index: UInt32
        public var flags: UInt32
        public var eax: UInt32
        public var ebx: UInt32
        public var ecx: UInt32
        public var edx: UInt32

        public init(_ e: kvm_cpuid_entry2) {
            function = e.function
            index = e.index
            flags = e.flags
            eax = e.eax
            ebx = e.ebx
            ecx = e.ecx
            edx = e.edx
        }

        public var entry: kvm_cpuid_entry2 {
            var e = kvm_cpuid_entry2()
            e.function = function
            e.index = index
            e.flags = flags
            e.eax = eax
            e.ebx = ebx
            e.ecx = ecx
            e.edx = edx
            return e
        }
    }

    /// The vCPU index (its APIC ID).
    public var id: UInt32
    public var registers: [UInt8]
    public var specialRegisters: [UInt8]
    /// The XSAVE area (KVM_GET_XSAVE2; its size is what KVM_CAP_XSAVE2 reports, at least 4096).
    public var xsave: [UInt8]
    public var xcrs: [UInt8]
    public var debugRegisters: [UInt8]
    public var lapic: [UInt8]
    public var events: [UInt8]
    public var mpState: UInt32
    public var msrs: [MSR]
    public var cpuid: [CPUIDLeaf]
    /// Guest TSC frequency in kHz (0 when the host could not tell).
    public var tscKHz: UInt32

    /// Most MSRs and CPUID leaves a state may carry.
    public static let maxMSRs = 4096
    public static let maxCPUIDLeaves = 512
    /// Largest XSAVE area accepted (AMX makes it ~11 KiB today).
    public static let maxXSAVESize = 64 * 1024
    /// Highest KVM_MP_STATE_* value (KVM_MP_STATE_AP_RESET_HOLD).
    public static let maxMPState: UInt32 = 10

    /// Checks sizes, counts and uniqueness; the first problem is thrown.
    public func validate() throws(KVMError) {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws(KVMError) {
            if !ok { throw .invalidState("vCPU \(id): \(what())") }
        }
        try check(registers.count == MemoryLayout<kvm_regs>.size, "registers are \(registers.count) bytes")
        try check(specialRegisters.count == MemoryLayout<kvm_sregs>.size, "special registers are \(specialRegisters.count) bytes")
        try check(xsave.count >= MemoryLayout<kvm_xsave>.size && xsave.count <= Self.maxXSAVESize && xsave.count % 4 == 0,
                  "XSAVE area is \(xsave.count) bytes")
        try check(xcrs.count == MemoryLayout<kvm_xcrs>.size, "XCRs are \(xcrs.count) bytes")
        try check(debugRegisters.count == MemoryLayout<kvm_debugregs>.size, "debug registers are \(debugRegisters.count) bytes")
        try check(lapic.count == MemoryLayout<kvm_lapic_state>.size, "local APIC is \(lapic.count) bytes")
        try check(events.count == MemoryLayout<kvm_vcpu_events>.size, "events are \(events.count) bytes")
        try check(mpState <= Self.maxMPState, "MP state \(mpState)")
        try check(msrs.count <= Self.maxMSRs, "\(msrs.count) MSRs")
        try check(Set(msrs.map(\.index)).count == msrs.count, "an MSR appears twice")
        try check(!cpuid.isEmpty && cpuid.count <= Self.maxCPUIDLeaves, "\(cpuid.count) CPUID leaves")
        if let x = RawStruct.load(kvm_xcrs.self, from: xcrs) {
            try check(x.nr_xcrs <= UInt32(KVM_MAX_XCRS), "\(x.nr_xcrs) XCRs")
        }
    }
}

/// MSRs restored after all others: KVM arms the TSC-deadline timer relative to the TSC,
/// so IA32_TSC must already hold its saved value (Firecracker orders them the same way).
let deferredMSRs: Set<UInt32> = [0x6e0]  // IA32_TSC_DEADLINE

extension VCPUFD {
    /// The XSAVE area, `size` bytes (`VirtualMachineFD.xsaveSize`): KVM_GET_XSAVE2 where the
    /// host has it, else the 4 KiB KVM_GET_XSAVE.
    public func xsave(size: Int) throws(KVMError) -> [UInt8] {
        var area = [UInt8](repeating: 0, count: max(size, MemoryLayout<kvm_xsave>.size))
        let code = unsafe area.withUnsafeMutableBytes { raw -> Int32 in
            if unsafe ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_XSAVE2, raw.baseAddress) >= 0 { return 0 }
            let e = errno
            guard e == ENOTTY || e == EINVAL, raw.count == MemoryLayout<kvm_xsave>.size else { return e }
            return unsafe ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_XSAVE, raw.baseAddress) >= 0 ? 0 : errno
        }
        guard code == 0 else { throw .ioctl(SystemError("KVM_GET_XSAVE2", code: code)) }
        return area
    }

    /// Restores the XSAVE area (KVM_SET_XSAVE reads as many bytes as KVM_CAP_XSAVE2 says).
    public func setXSAVE(_ area: [UInt8]) throws(KVMError) {
        var copy = area
        let code = unsafe copy.withUnsafeMutableBytes { raw in unsafe ckvm_ioctl_ptr(fd.rawValue, CKVM_SET_XSAVE, raw.baseAddress) >= 0 ? 0 : errno }
        guard code == 0 else { throw .ioctl(SystemError("KVM_SET_XSAVE", code: code)) }
    }

    /// Tells the guest's kvmclock it was paused (so it does not report soft lockups); a
    /// guest that does not use kvmclock makes this fail with EINVAL, which is ignored.
    public func notifyClockPaused() {
        _ = ckvm_ioctl_val(fd.rawValue, CKVM_KVMCLOCK_CTRL, 0)
    }

    /// Sets the guest TSC frequency (needs KVM_CAP_TSC_CONTROL).
    public func setTSCKHz(_ khz: UInt32) throws(KVMError) {
        _ = try ioctlValue(fd.rawValue, CKVM_SET_TSC_KHZ, "KVM_SET_TSC_KHZ", UInt(khz))
    }

    /// Reads every MSR in `indices` that KVM can read; MSRs KVM refuses on this vCPU are skipped.
    public func readableMSRs(_ indices: [UInt32]) throws(KVMError) -> [VCPUState.MSR] {
        var out: [VCPUState.MSR] = []
        var rest = indices[...]
        while !rest.isEmpty {
            let batch = Array(rest.prefix(256))
            let got = try msrs(batch)
            out += got.map { VCPUState.MSR(index: $0.index, value: $0.value) }
            // KVM stops at the first MSR it cannot read: skip that one and go on.
            let consumed = got.count < batch.count ? got.count + 1 : got.count
            rest = rest.dropFirst(consumed)
        }
        return out
    }

    /// Captures the whole vCPU state. Call on a vCPU that is not in `KVM_RUN`, with every other
    /// vCPU of the VM stopped too, after completing any pending I/O (`KVM_RUN` with
    /// immediate_exit set). The order follows KVM's rules: MP state first (it may accept
    /// pending INIT/SIPI into the LAPIC), events last.
    ///
    /// `cpuid` is the table the VMM set on this vCPU: KVM_GET_CPUID2 may report more than
    /// that on hosts whose KVM leaks host features, and the saved table is the VM's contract.
    public func saveState(msrIndices: [UInt32], xsaveSize: Int, cpuid table: [kvm_cpuid_entry2]) throws(KVMError) -> VCPUState {
        let mp = try mpState()
        let regs = RawStruct.bytes(of: try registers())
        let sregs = RawStruct.bytes(of: try specialRegisters())
        let xsaveArea = try xsave(size: xsaveSize)
        let xcrBytes = RawStruct.bytes(of: try xcrs())
        let debug = RawStruct.bytes(of: try debugRegisters())
        let apic = RawStruct.bytes(of: try lapic())
        let khz = (try? tscKHz()) ?? 0
        let leaves = table.map(VCPUState.CPUIDLeaf.init)
        let saved = try readableMSRs(msrIndices)
        let ev = RawStruct.bytes(of: try events())
        return VCPUState(id: id, registers: regs, specialRegisters: sregs, xsave: xsaveArea, xcrs: xcrBytes, debugRegisters: debug,
                         lapic: apic, events: ev, mpState: mp, msrs: saved, cpuid: leaves, tscKHz: khz)
    }

    /// Restores a validated state onto a fresh vCPU, in the order KVM needs: CPUID, MP state,
    /// registers (which clear pending exceptions), special registers (APIC base), XSAVE, XCRs,
    /// debug registers, LAPIC (before MSRs: the TSC deadline needs it), MSRs with the TSC
    /// deadline last, events (pending exceptions and interrupts) last of all.
    public func restoreState(_ state: VCPUState) throws(KVMError) {
        try state.validate()
        guard let regs = RawStruct.load(kvm_regs.self, from: state.registers),
              let sregs = RawStruct.load(kvm_sregs.self, from: state.specialRegisters),
              let xcrValue = RawStruct.load(kvm_xcrs.self, from: state.xcrs),
              let debug = RawStruct.load(kvm_debugregs.self, from: state.debugRegisters),
              let apic = RawStruct.load(kvm_lapic_state.self, from: state.lapic),
              let ev = RawStruct.load(kvm_vcpu_events.self, from: state.events)
        else { throw .invalidState("vCPU \(state.id): a register image has the wrong size") }
        try setCPUID(state.cpuid.map(\.entry))
        try setMPState(state.mpState)
        try setRegisters(regs)
        try setSpecialRegisters(sregs)
        try setXSAVE(state.xsave)
        try setXCRs(xcrValue)
        try setDebugRegisters(debug)
        try setLAPIC(apic)
        let early = state.msrs.filter { !deferredMSRs.contains($0.index) }
        let late = state.msrs.filter { deferredMSRs.contains($0.index) }
        for batch in [early, late] where !batch.isEmpty {
            try setMSRs(batch.map { ($0.index, $0.value) })
        }
        try setEvents(ev)
    }
}
