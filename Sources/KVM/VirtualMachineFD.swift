#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Synchronization
import SystemExtras

/// A KVM virtual machine file descriptor: memory slots, irqchip, PIT, interrupts and vCPUs.
///
/// Interrupt and eventfd calls may come from any thread.
public final class VirtualMachineFD: Sendable {
    let fd: OwnedFileDescriptor
    /// The system the VM was created from.
    public let system: KVMSystem
    /// Entries per vCPU dirty ring once `enableDirtyRing` succeeded (0 = no rings).
    let dirtyRingEntries = Atomic<UInt32>(0)

    init(fd: OwnedFileDescriptor, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    public var rawValue: Int32 { fd.rawValue }

    /// Maps `size` bytes at `hostAddress` into guest physical memory at `guestAddress`.
    ///
    /// - Warning: KVM reads and writes that host memory for as long as the slot exists; the
    ///   caller keeps the mapping alive and page-aligned.
    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64, hostAddress: UnsafeMutableRawPointer?, logDirtyPages: Bool = false) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: logDirtyPages ? UInt32(KVM_MEM_LOG_DIRTY_PAGES) : 0, guest_phys_addr: guestAddress,
            memory_size: size, userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        try ioctlInOut(fd.rawValue, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &region)
    }

    /// Sets the three-page region KVM uses for the real-mode TSS (Intel).
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        _ = try ioctlValue(fd.rawValue, CKVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", UInt(address))
    }

    /// Sets the page KVM uses for the real-mode identity map (Intel).
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var a = address
        try ioctlInOut(fd.rawValue, CKVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &a)
    }

    /// Creates the in-kernel PIC pair, IOAPIC and per-vCPU local APICs.
    /// KVM_ENABLE_CAP on the VM: turns on capability `capability` with `arguments` (up to four).
    public func enableCapability(_ capability: UInt32, arguments: [UInt64] = []) throws(KVMError) {
        var c = kvm_enable_cap()
        c.cap = capability
        unsafe withUnsafeMutableBytes(of: &c.args) { raw in
            for (i, v) in arguments.prefix(4).enumerated() { unsafe raw.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) }
        }
        try ioctlInOut(fd.rawValue, CKVM_ENABLE_CAP, "KVM_ENABLE_CAP", &c)
    }

    public func createIRQChip() throws(KVMError) {
        _ = try ioctlValue(fd.rawValue, CKVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP")
    }

    /// Creates the in-kernel i8254 PIT (speaker port left to user space).
    public func createPIT2() throws(KVMError) {
        var config = kvm_pit_config()
        config.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try ioctlInOut(fd.rawValue, CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", &config)
    }

    /// Drives interrupt line `gsi` of the in-kernel irqchip to `level`.
    public func setIRQLine(_ gsi: UInt32, level: Bool) throws(KVMError) {
        var irq = kvm_irq_level()
        irq.irq = gsi
        irq.level = level ? 1 : 0
        try ioctlInOut(fd.rawValue, CKVM_IRQ_LINE, "KVM_IRQ_LINE", &irq)
    }

    /// Makes a write to `eventFD` inject GSI `gsi` (KVM_IRQFD), optionally with a resample fd for level-triggered lines.
    public func registerIRQFD(_ eventFD: Int32, gsi: UInt32, resampleFD: Int32? = nil) throws(KVMError) {
        var req = kvm_irqfd()
        req.fd = UInt32(bitPattern: eventFD)
        req.gsi = gsi
        if let resampleFD {
            req.flags = UInt32(KVM_IRQFD_FLAG_RESAMPLE)
            req.resamplefd = UInt32(bitPattern: resampleFD)
        }
        try ioctlInOut(fd.rawValue, CKVM_IRQFD, "KVM_IRQFD", &req)
    }

    /// Removes an irqfd registration.
    public func unregisterIRQFD(_ eventFD: Int32, gsi: UInt32) throws(KVMError) {
        var req = kvm_irqfd()
        req.fd = UInt32(bitPattern: eventFD)
        req.gsi = gsi
        req.flags = UInt32(KVM_IRQFD_FLAG_DEASSIGN)
        try ioctlInOut(fd.rawValue, CKVM_IRQFD, "KVM_IRQFD deassign", &req)
    }

    /// Address space of an ioeventfd.
    public enum IOEventSpace: Sendable { case pio, mmio }

    /// Makes guest writes of `length` bytes at `address` signal `eventFD` without an exit to user space.
    public func registerIOEventFD(_ eventFD: Int32, space: IOEventSpace, address: UInt64, length: UInt32, datamatch: UInt64? = nil, deassign: Bool = false) throws(KVMError) {
        var req = kvm_ioeventfd()
        req.addr = address
        req.len = length
        req.fd = eventFD
        var flags: Int32 = 0
        if space == .pio { flags |= Int32(1 << Int(kvm_ioeventfd_flag_nr_pio)) }
        if let datamatch {
            flags |= Int32(1 << Int(kvm_ioeventfd_flag_nr_datamatch))
            req.datamatch = datamatch
        }
        if deassign { flags |= Int32(1 << Int(kvm_ioeventfd_flag_nr_deassign)) }
        req.flags = UInt32(flags)
        try ioctlInOut(fd.rawValue, CKVM_IOEVENTFD, "KVM_IOEVENTFD", &req)
    }

    /// One entry of the GSI routing table.
    public enum GSIRoute: Equatable, Sendable {
        case irqchip(gsi: UInt32, chip: UInt32, pin: UInt32)
        case msi(gsi: UInt32, addressLow: UInt32, addressHigh: UInt32, data: UInt32)
    }

    /// Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING).
    public func setGSIRouting(_ routes: [GSIRoute]) throws(KVMError) {
        let size = ckvm_irq_routing_size(UInt32(routes.count))
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { unsafe raw.deallocate() }
        unsafe raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let table = unsafe raw.bindMemory(to: kvm_irq_routing.self, capacity: 1)
        unsafe table.pointee.nr = UInt32(routes.count)
        guard let entries = unsafe ckvm_irq_routing_entries(table) else { return }
        for (i, route) in routes.enumerated() {
            switch route {
            case .irqchip(let gsi, let chip, let pin): unsafe ckvm_routing_set_irqchip(entries + i, gsi, chip, pin)
            case .msi(let gsi, let lo, let hi, let data): unsafe ckvm_routing_set_msi(entries + i, gsi, lo, hi, data)
            }
        }
        _ = unsafe try ioctlPointer(fd.rawValue, CKVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", raw)
    }

    /// Reads and clears the dirty-page bitmap of `slot` (one bit per 4 KiB page).
    public func dirtyLog(slot: UInt32, pages: Int) throws(KVMError) -> [UInt64] {
        var bitmap = [UInt64](repeating: 0, count: (pages + 63) / 64)
        var failure: KVMError?
        unsafe bitmap.withUnsafeMutableBytes { buf in
            var log = unsafe kvm_dirty_log()
            unsafe log.slot = slot
            unsafe log.dirty_bitmap = buf.baseAddress
            do { unsafe try ioctlInOut(fd.rawValue, CKVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", &log) } catch let e as KVMError { failure = e } catch {}
        }
        if let failure { throw failure }
        return bitmap
    }

    /// The guest's kvmclock state.
    public func clock() throws(KVMError) -> kvm_clock_data {
        var data = kvm_clock_data()
        try ioctlInOut(fd.rawValue, CKVM_GET_CLOCK, "KVM_GET_CLOCK", &data)
        return data
    }

    /// Restores the guest's kvmclock.
    public func setClock(_ data: kvm_clock_data) throws(KVMError) {
        var d = data
        d.flags = 0
        try ioctlInOut(fd.rawValue, CKVM_SET_CLOCK, "KVM_SET_CLOCK", &d)
    }

    /// Reads one in-kernel irqchip (0, 1 = PICs, 2 = IOAPIC).
    public func irqChip(_ id: UInt32) throws(KVMError) -> kvm_irqchip {
        var chip = kvm_irqchip()
        chip.chip_id = id
        try ioctlInOut(fd.rawValue, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
        return chip
    }

    /// Restores one in-kernel irqchip.
    public func setIRQChip(_ chip: kvm_irqchip) throws(KVMError) {
        var c = chip
        try ioctlInOut(fd.rawValue, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", &c)
    }

    /// Reads the in-kernel PIT.
    public func pit() throws(KVMError) -> kvm_pit_state2 {
        var s = kvm_pit_state2()
        try ioctlInOut(fd.rawValue, CKVM_GET_PIT2, "KVM_GET_PIT2", &s)
        return s
    }

    /// Restores the in-kernel PIT.
    public func setPIT(_ state: kvm_pit_state2) throws(KVMError) {
        var s = state
        try ioctlInOut(fd.rawValue, CKVM_SET_PIT2, "KVM_SET_PIT2", &s)
    }

    /// Creates vCPU `id` (its APIC ID) and maps its `kvm_run` area.
    public func createVCPU(id: UInt32) throws(KVMError) -> VCPUFD {
        let raw = try ioctlValue(fd.rawValue, CKVM_CREATE_VCPU, "KVM_CREATE_VCPU", UInt(id))
        let owned = OwnedFileDescriptor(taking: raw)
        let mapping: MemoryMapping
        do {
            mapping = try MemoryMapping.file(raw, size: system.vcpuMmapSize)
        } catch {
            throw .ioctl(error)
        }
        return VCPUFD(fd: owned, run: mapping, id: id)
    }
}

// MARK: Dirty-page tracking

extension VirtualMachineFD {
    /// Whether KVM_CLEAR_DIRTY_LOG with manual protection is available.
    public var supportsManualDirtyLogProtect: Bool {
        checkExtension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) & Int32(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0
    }

    /// Switches KVM_GET_DIRTY_LOG to report without write-protecting again: pages stay
    /// writable until `clearDirtyLog` re-protects exactly the ranges the caller has copied,
    /// which keeps the vCPUs from faulting on every page at each migration round.
    /// Must be called before any slot enables dirty logging.
    public func enableManualDirtyLogProtect() throws(KVMError) {
        try enableCapability(UInt32(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2), arguments: [UInt64(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)])
    }

    /// Fetches the dirty bitmap of `slot` into `bitmap` (one bit per 4 KiB page, at least
    /// `(pages + 63) / 64` words). Without manual protection this also clears KVM's log.
    public func fetchDirtyLog(slot: UInt32, into bitmap: inout [UInt64]) throws(KVMError) {
        var failure: KVMError?
        unsafe bitmap.withUnsafeMutableBytes { buf in
            var log = unsafe kvm_dirty_log()
            unsafe ckvm_dirty_log_set(&log, slot, buf.baseAddress)
            do { unsafe try ioctlInOut(fd.rawValue, CKVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", &log) } catch let e as KVMError { failure = e } catch {}
        }
        if let failure { throw failure }
    }

    /// Re-protects the pages set in `bitmap` (relative to `firstPage`, a multiple of 64) so
    /// the next write to them is logged again (manual protection mode).
    public func clearDirtyLog(slot: UInt32, firstPage: UInt64, pages: UInt32, bitmap: inout [UInt64]) throws(KVMError) {
        guard pages > 0 else { return }
        var failure: KVMError?
        unsafe bitmap.withUnsafeMutableBytes { buf in
            var log = unsafe kvm_clear_dirty_log()
            unsafe ckvm_clear_dirty_log_set(&log, slot, firstPage, pages, buf.baseAddress)
            do { unsafe try ioctlInOut(fd.rawValue, CKVM_CLEAR_DIRTY_LOG, "KVM_CLEAR_DIRTY_LOG", &log) } catch let e as KVMError { failure = e } catch {}
        }
        if let failure { throw failure }
    }
}
