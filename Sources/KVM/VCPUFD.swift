#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SystemExtras

/// One virtual CPU: its registers and the `KVM_RUN` loop.
///
/// A vCPU is driven by one thread; only `kick` may be called from elsewhere.
public final class VCPUFD: Sendable {
    let fd: OwnedFileDescriptor
    let runMapping: MemoryMapping
    /// The vCPU index, which is also its APIC ID.
    public let id: UInt32

    init(fd: OwnedFileDescriptor, run: MemoryMapping, id: UInt32) {
        self.fd = fd
        self.runMapping = run
        self.id = id
    }

    private var runArea: UnsafeMutablePointer<kvm_run> { unsafe runMapping.base.assumingMemoryBound(to: kvm_run.self) }

    /// Sets or clears `immediate_exit`, which makes the next or current `KVM_RUN` return EINTR.
    /// Safe to call from any thread.
    public func setImmediateExit(_ on: Bool) {
        unsafe ckvm_run_set_immediate_exit(runArea, on ? 1 : 0)
    }

    /// Runs the guest until the next exit.
    public func run() throws(KVMError) -> VCPUExit {
        let r = ckvm_ioctl_val(fd.rawValue, CKVM_RUN, 0)
        if r < 0 {
            let code = errno
            if code == EINTR || code == EAGAIN { return unsafe .interrupted }
            throw .ioctl(SystemError("KVM_RUN", code: code))
        }
        let base = unsafe runMapping.base
        let limit = runMapping.size
        switch unsafe Int32(ckvm_run_exit_reason(runArea)) {
        case KVM_EXIT_IO:
            let size = unsafe Int(ckvm_run_io_size(runArea))
            let count = unsafe Int(ckvm_run_io_count(runArea))
            let offset = unsafe Int(ckvm_run_io_data_offset(runArea))
            let port = unsafe ckvm_run_io_port(runArea)
            // KVM fills these; still make sure the data lies inside the shared page.
            let length = size * count
            guard offset >= 0, length >= 0, offset <= limit, length <= limit - offset else {
                return unsafe .unknown(reason: UInt32(KVM_EXIT_IO))
            }
            let buffer = unsafe UnsafeMutableRawBufferPointer(start: base + offset, count: length)
            if unsafe ckvm_run_io_direction(runArea) == UInt8(KVM_EXIT_IO_IN) {
                return unsafe .ioIn(port: port, size: size, count: count, data: buffer)
            }
            return unsafe .ioOut(port: port, size: size, count: count, data: UnsafeRawBufferPointer(buffer))
        case KVM_EXIT_MMIO:
            let len = unsafe min(Int(ckvm_run_mmio_len(runArea)), 8)
            guard let data = unsafe ckvm_run_mmio_data(runArea) else { return unsafe .unknown(reason: UInt32(KVM_EXIT_MMIO)) }
            let buffer = unsafe UnsafeMutableRawBufferPointer(start: data, count: len)
            let address = unsafe ckvm_run_mmio_phys_addr(runArea)
            if unsafe ckvm_run_mmio_is_write(runArea) != 0 {
                return unsafe .mmioWrite(address: address, data: UnsafeRawBufferPointer(buffer))
            }
            return unsafe .mmioRead(address: address, data: buffer)
        case KVM_EXIT_HLT:
            return unsafe .halt
        case KVM_EXIT_SHUTDOWN:
            return unsafe .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return unsafe .systemEvent(type: ckvm_run_system_event_type(runArea))
        case KVM_EXIT_FAIL_ENTRY:
            return unsafe .failEntry(hardwareReason: ckvm_run_fail_entry_reason(runArea))
        case KVM_EXIT_INTERNAL_ERROR:
            let n = unsafe min(ckvm_run_internal_ndata(runArea), 16)
            return unsafe .internalError(suberror: ckvm_run_internal_suberror(runArea), data: (0..<n).map { unsafe ckvm_run_internal_data(runArea, $0) })
        case KVM_EXIT_INTR:
            return unsafe .interrupted
        case KVM_EXIT_DEBUG:
            return unsafe .debug
        default:
            return unsafe .unknown(reason: ckvm_run_exit_reason(runArea))
        }
    }

    // MARK: Registers

    public func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        try ioctlInOut(fd.rawValue, CKVM_GET_REGS, "KVM_GET_REGS", &regs)
        return regs
    }

    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var r = regs
        try ioctlInOut(fd.rawValue, CKVM_SET_REGS, "KVM_SET_REGS", &r)
    }

    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var s = kvm_sregs()
        try ioctlInOut(fd.rawValue, CKVM_GET_SREGS, "KVM_GET_SREGS", &s)
        return s
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var s = sregs
        try ioctlInOut(fd.rawValue, CKVM_SET_SREGS, "KVM_SET_SREGS", &s)
    }

    public func fpu() throws(KVMError) -> kvm_fpu {
        var f = kvm_fpu()
        try ioctlInOut(fd.rawValue, CKVM_GET_FPU, "KVM_GET_FPU", &f)
        return f
    }

    public func setFPU(_ fpu: kvm_fpu) throws(KVMError) {
        var f = fpu
        try ioctlInOut(fd.rawValue, CKVM_SET_FPU, "KVM_SET_FPU", &f)
    }

    public func lapic() throws(KVMError) -> kvm_lapic_state {
        var l = kvm_lapic_state()
        try ioctlInOut(fd.rawValue, CKVM_GET_LAPIC, "KVM_GET_LAPIC", &l)
        return l
    }

    public func setLAPIC(_ state: kvm_lapic_state) throws(KVMError) {
        var l = state
        try ioctlInOut(fd.rawValue, CKVM_SET_LAPIC, "KVM_SET_LAPIC", &l)
    }

    public func events() throws(KVMError) -> kvm_vcpu_events {
        var e = kvm_vcpu_events()
        try ioctlInOut(fd.rawValue, CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &e)
        return e
    }

    public func setEvents(_ events: kvm_vcpu_events) throws(KVMError) {
        var e = events
        try ioctlInOut(fd.rawValue, CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &e)
    }

    public func mpState() throws(KVMError) -> UInt32 {
        var s = kvm_mp_state()
        try ioctlInOut(fd.rawValue, CKVM_GET_MP_STATE, "KVM_GET_MP_STATE", &s)
        return s.mp_state
    }

    public func setMPState(_ state: UInt32) throws(KVMError) {
        var s = kvm_mp_state(mp_state: state)
        try ioctlInOut(fd.rawValue, CKVM_SET_MP_STATE, "KVM_SET_MP_STATE", &s)
    }

    /// Sets the guest-visible CPUID table.
    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(KVMError) {
        let buffer = CPUIDBuffer(entries: entries)
        _ = unsafe try ioctlPointer(fd.rawValue, CKVM_SET_CPUID2, "KVM_SET_CPUID2", buffer.raw)
    }

    /// Reads the CPUID table set on this vCPU.
    public func cpuid() throws(KVMError) -> [kvm_cpuid_entry2] {
        let buffer = CPUIDBuffer(count: 256)
        _ = unsafe try ioctlPointer(fd.rawValue, CKVM_GET_CPUID2, "KVM_GET_CPUID2", buffer.raw)
        return buffer.entries
    }

    /// Reads the given MSRs; returns (index, value) for those KVM returned.
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [(index: UInt32, value: UInt64)] {
        let buffer = MSRBuffer(entries: indices.map { ($0, 0) })
        let n = unsafe try ioctlPointer(fd.rawValue, CKVM_GET_MSRS, "KVM_GET_MSRS", buffer.raw)
        return Array(buffer.entries.prefix(Int(n)))
    }

    /// Writes MSRs; throws if KVM accepted fewer than all of them.
    public func setMSRs(_ entries: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        let buffer = MSRBuffer(entries: entries)
        let n = unsafe try ioctlPointer(fd.rawValue, CKVM_SET_MSRS, "KVM_SET_MSRS", buffer.raw)
        guard Int(n) == entries.count else {
            let bad = Int(n) < entries.count ? String(entries[Int(n)].index, radix: 16) : "?"
            throw .ioctl(SystemError("KVM_SET_MSRS: KVM refused MSR 0x\(bad)", code: EINVAL))
        }
    }

    /// Translates a guest virtual address with the vCPU's current page tables.
    public func translate(_ linear: UInt64) throws(KVMError) -> (physical: UInt64, valid: Bool, writeable: Bool) {
        var t = kvm_translation()
        t.linear_address = linear
        try ioctlInOut(fd.rawValue, CKVM_TRANSLATE, "KVM_TRANSLATE", &t)
        return (t.physical_address, t.valid != 0, t.writeable != 0)
    }

    public func xcrs() throws(KVMError) -> kvm_xcrs {
        var x = kvm_xcrs()
        try ioctlInOut(fd.rawValue, CKVM_GET_XCRS, "KVM_GET_XCRS", &x)
        return x
    }

    public func setXCRs(_ xcrs: kvm_xcrs) throws(KVMError) {
        var x = xcrs
        try ioctlInOut(fd.rawValue, CKVM_SET_XCRS, "KVM_SET_XCRS", &x)
    }

    public func debugRegisters() throws(KVMError) -> kvm_debugregs {
        var d = kvm_debugregs()
        try ioctlInOut(fd.rawValue, CKVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &d)
        return d
    }

    public func setDebugRegisters(_ regs: kvm_debugregs) throws(KVMError) {
        var d = regs
        try ioctlInOut(fd.rawValue, CKVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &d)
    }

    /// The guest TSC frequency in kHz.
    public func tscKHz() throws(KVMError) -> UInt32 {
        UInt32(try ioctlValue(fd.rawValue, CKVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ"))
    }
}

/// Owns a `struct kvm_msrs` with its entries.
@safe final class MSRBuffer {
    let raw: UnsafeMutableRawPointer
    let count: Int

    init(entries: [(index: UInt32, value: UInt64)]) {
        count = entries.count
        let size = ckvm_msrs_size(UInt32(entries.count))
        unsafe raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        unsafe raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let header = unsafe raw.bindMemory(to: kvm_msrs.self, capacity: 1)
        unsafe header.pointee.nmsrs = UInt32(entries.count)
        if let base = unsafe ckvm_msrs_entries(header) {
            for (i, e) in entries.enumerated() {
                unsafe base[i].index = e.index
                unsafe base[i].data = e.value
            }
        }
    }

    deinit { unsafe raw.deallocate() }

    var entries: [(index: UInt32, value: UInt64)] {
        guard let base = unsafe ckvm_msrs_entries(raw.assumingMemoryBound(to: kvm_msrs.self)) else { return [] }
        return (0..<count).map { unsafe (base[$0].index, base[$0].data) }
    }
}
