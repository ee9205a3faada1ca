#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Synchronization
import SystemExtras

// KVM's per-vCPU dirty rings (KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL).
//
// Protocol, from the kernel's KVM API documentation: the capability is enabled on the VM
// right after KVM_CREATE_VM and before any vCPU exists, with the ring size in bytes (a power
// of two, at most what KVM_CHECK_EXTENSION returns). Each vCPU's ring is an array of
// `struct kvm_dirty_gfn { u32 flags; u32 slot; u64 offset; }` mapped from the vCPU file at
// page KVM_DIRTY_LOG_PAGE_OFFSET. Only slots registered with KVM_MEM_LOG_DIRTY_PAGES are
// logged. An entry whose flags read DIRTY (01) names a dirty page; user space takes entries
// strictly in order, sets RESET (1X) on each, and then calls KVM_RESET_DIRTY_RINGS so KVM
// write-protects those pages again and recycles the entries. A vCPU whose ring fills up
// leaves KVM_RUN with KVM_EXIT_DIRTY_RING_FULL.
//
// The live migration keeps KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG (per slot, manual
// protection); this API stands alone.

/// Which capability turned the dirty rings on.
public enum DirtyRingCapability: Sendable, Equatable {
    /// KVM_CAP_DIRTY_LOG_RING_ACQ_REL: entry flags are handed over with acquire/release
    /// ordering (what this module always does).
    case acquireRelease
    /// KVM_CAP_DIRTY_LOG_RING, offered by hosts with x86-like store ordering.
    case plain
}

/// A memory slot as the caller registered it; ring entries are checked against it.
public struct DirtyRingSlot: Sendable, Hashable {
    /// The slot number as KVM reports it (address space in the high 16 bits, 0 here).
    public let slot: UInt32
    /// Guest physical address of the slot's first byte (page-aligned).
    public let guestAddress: UInt64
    /// Number of pages in the slot.
    public let pageCount: UInt64

    /// A slot of `pageCount` pages at `guestAddress`; refuses unaligned or wrapping ranges.
    public init(slot: UInt32, guestAddress: UInt64, pageCount: UInt64) throws(KVMError) {
        let pageSize = DirtyRing.pageSize
        guard guestAddress % pageSize == 0 else {
            throw .invalidArgument("dirty ring slot \(slot): guest address 0x\(String(guestAddress, radix: 16)) is not page-aligned")
        }
        let (bytes, overflow) = pageCount.multipliedReportingOverflow(by: pageSize)
        guard !overflow, bytes <= UInt64.max - guestAddress else {
            throw .invalidArgument("dirty ring slot \(slot): \(pageCount) pages at 0x\(String(guestAddress, radix: 16)) wrap the address space")
        }
        self.slot = slot
        self.guestAddress = guestAddress
        self.pageCount = pageCount
    }
}

/// One page a ring reported dirty, after its slot and offset were checked.
public struct DirtyRingPage: Sendable, Hashable {
    /// The slot the page belongs to.
    public let slot: UInt32
    /// Page index inside the slot.
    public let pageOffset: UInt64
    /// Guest frame number (guest physical address / page size).
    public let guestFrame: UInt64
}

/// A ring entry that did not name a page of a known slot: harvested (so the ring moves on)
/// but not reported as a page.
public struct DirtyRingRejectedEntry: Sendable, Hashable {
    /// Why the entry was refused.
    public enum Reason: Sendable, Hashable {
        /// No slot with that number was passed to `harvest`.
        case unknownSlot
        /// The page offset lies past the end of the slot.
        case offsetOutsideSlot
    }

    /// The slot field as read from the ring.
    public let slot: UInt32
    /// The offset field as read from the ring.
    public let offset: UInt64
    /// Why it was refused.
    public let reason: Reason
}

/// What one `DirtyRing.harvest` collected, in ring order.
public struct DirtyRingHarvest: Sendable {
    /// Valid dirty pages. A page may appear more than once: KVM logs it again once a reset
    /// re-protected it, and a host whose KVM emulates the guest's instructions logs every write.
    public internal(set) var pages: [DirtyRingPage] = []
    /// Entries naming no page of the given slots.
    public internal(set) var rejected: [DirtyRingRejectedEntry] = []

    /// Number of ring entries taken (pages and rejected entries).
    public var entryCount: Int { pages.count + rejected.count }
}

/// One vCPU's dirty ring, mapped from its vCPU file.
///
/// `harvest` may run on any thread, also while the vCPU runs; harvests of one ring are
/// serialized. After harvesting, call `VirtualMachineFD.resetDirtyRings()` before reading
/// the pages' contents, so later writes are logged again.
public final class DirtyRing: Sendable {
    /// Page size of the ring's mmap offset and of the frame numbers it reports.
    public static let pageSize: UInt64 = {
        let size = sysconf(Int32(_SC_PAGESIZE))
        return size > 0 ? UInt64(size) : 4096
    }()

    /// The KVM_RUN exit reason of a vCPU whose ring is full (seen as `VCPUExit.unknown(reason:)`):
    /// harvest and reset before running it again. If that harvest finds nothing, KVM wrote past
    /// the end of the ring before stopping the vCPU (seen where KVM emulates the guest's
    /// instructions): dirty pages were lost and the ring can no longer be trusted.
    public static let fullExitReason = UInt32(KVM_EXIT_DIRTY_RING_FULL)

    let mapping: MemoryMapping
    /// The vCPU the ring belongs to.
    public let vcpuID: UInt32
    /// Number of entries (a power of two).
    public let entryCount: UInt32
    /// Free-running index of the next entry to look at.
    private let nextIndex = Mutex<UInt32>(0)

    init(mapping: MemoryMapping, vcpuID: UInt32, entryCount: UInt32) {
        self.mapping = mapping
        self.vcpuID = vcpuID
        self.entryCount = entryCount
    }

    /// Takes every entry KVM has published since the last harvest, in order, and marks each
    /// harvested. Each entry's slot and offset are checked against `slots`; entries that name
    /// no page of them are returned in `rejected`, never as pages (if two slots share a
    /// number, the first counts).
    ///
    /// Entries a vCPU logged but has not yet flushed to the ring (hardware logging buffers)
    /// appear after that vCPU's next exit to user space.
    public func harvest(slots: [DirtyRingSlot]) -> DirtyRingHarvest {
        let entries = unsafe mapping.base.assumingMemoryBound(to: kvm_dirty_gfn.self)
        let count = entryCount
        let dirty = UInt32(CKVM_DIRTY_GFN_F_DIRTY)
        let reset = UInt32(CKVM_DIRTY_GFN_F_RESET)
        return nextIndex.withLock { index -> DirtyRingHarvest in
            var result = DirtyRingHarvest()
            // Consecutive entries mostly name the same slot: remember the last one found.
            var last: DirtyRingSlot?
            // At most one lap: an entry is only ever taken once per recycling.
            for _ in 0..<count {
                let entry = unsafe entries + Int(index & (count &- 1))
                let flags = unsafe ckvm_dirty_gfn_flags(entry)
                guard flags & dirty != 0, flags & reset == 0 else { break }
                let slot = unsafe ckvm_dirty_gfn_slot(entry)
                let offset = unsafe ckvm_dirty_gfn_offset(entry)
                unsafe ckvm_dirty_gfn_mark_harvested(entry)
                index &+= 1
                let known: DirtyRingSlot
                if let l = last, l.slot == slot {
                    known = l
                } else if let found = slots.first(where: { $0.slot == slot }) {
                    known = found
                    last = found
                } else {
                    result.rejected.append(DirtyRingRejectedEntry(slot: slot, offset: offset, reason: .unknownSlot))
                    continue
                }
                // The slot's range was checked when it was made, so the sum cannot wrap;
                // the overflow check stays for values that arrive from the ring.
                let (frame, overflow) = (known.guestAddress / Self.pageSize).addingReportingOverflow(offset)
                guard offset < known.pageCount, !overflow else {
                    result.rejected.append(DirtyRingRejectedEntry(slot: slot, offset: offset, reason: .offsetOutsideSlot))
                    continue
                }
                result.pages.append(DirtyRingPage(slot: slot, pageOffset: offset, guestFrame: frame))
            }
            return result
        }
    }
}

extension VirtualMachineFD {
    /// The largest ring KVM_CAP_DIRTY_LOG_RING allows per vCPU, in bytes (0 = not available).
    public var dirtyRingMaximumBytes: Int { Int(checkExtension(KVM_CAP_DIRTY_LOG_RING)) }

    /// The largest ring KVM_CAP_DIRTY_LOG_RING_ACQ_REL allows per vCPU, in bytes (0 = not available).
    public var dirtyRingAcquireReleaseMaximumBytes: Int { Int(checkExtension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL)) }

    /// Turns on per-vCPU dirty rings of `entries` entries (16 bytes each), preferring
    /// KVM_CAP_DIRTY_LOG_RING_ACQ_REL when the host offers it.
    ///
    /// Call right after the VM is created: KVM refuses it once any vCPU exists. The ring must
    /// be a power of two in bytes, at least one page and at most the host's limit. With the
    /// rings on, KVM logs writes to slots registered with `logDirtyPages: true` into the
    /// ring of the vCPU that wrote, and the per-slot bitmap (`fetchDirtyLog`) is not kept.
    public func enableDirtyRing(entries: Int) throws(KVMError) -> DirtyRingCapability {
        guard CKVM_DIRTY_LOG_PAGE_OFFSET > 0 else {
            throw .missingCapability(name: "KVM_CAP_DIRTY_LOG_RING (no dirty ring on this architecture)")
        }
        let acquireRelease = dirtyRingAcquireReleaseMaximumBytes
        let plain = dirtyRingMaximumBytes
        let capability: DirtyRingCapability = acquireRelease > 0 ? .acquireRelease : .plain
        let limit = acquireRelease > 0 ? acquireRelease : plain
        guard limit > 0 else { throw .missingCapability(name: "KVM_CAP_DIRTY_LOG_RING (per-vCPU dirty rings)") }
        guard entries > 0, entries & (entries - 1) == 0, let count = UInt32(exactly: entries) else {
            throw .invalidArgument("a dirty ring of \(entries) entries: the entry count must be a power of two")
        }
        let (bytes, overflow) = entries.multipliedReportingOverflow(by: ckvm_dirty_gfn_size())
        guard !overflow, UInt64(bytes) >= DirtyRing.pageSize, bytes <= limit else {
            throw .invalidArgument("a dirty ring of \(entries) entries: its size must lie between one page and \(limit) bytes")
        }
        guard dirtyRingEntries.load(ordering: .acquiring) == 0 else {
            throw .invalidArgument("the dirty ring is already enabled on this VM")
        }
        let cap = capability == .acquireRelease ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL : KVM_CAP_DIRTY_LOG_RING
        try enableCapability(UInt32(cap), arguments: [UInt64(bytes)])
        dirtyRingEntries.store(count, ordering: .releasing)
        return capability
    }

    /// Maps the dirty ring of `vcpu`, which must be a vCPU of this VM created after
    /// `enableDirtyRing`.
    public func dirtyRing(of vcpu: VCPUFD) throws(KVMError) -> DirtyRing {
        let count = dirtyRingEntries.load(ordering: .acquiring)
        guard count > 0 else { throw .invalidArgument("the dirty ring is not enabled on this VM") }
        let (offset, overflow) = UInt64(CKVM_DIRTY_LOG_PAGE_OFFSET).multipliedReportingOverflow(by: DirtyRing.pageSize)
        guard !overflow, let fileOffset = Int64(exactly: offset) else {
            throw .invalidArgument("dirty ring offset out of range")
        }
        let mapping: MemoryMapping
        do {
            mapping = try MemoryMapping.file(vcpu.fd.rawValue, size: Int(count) * ckvm_dirty_gfn_size(), offset: fileOffset)
        } catch {
            throw .ioctl(error)
        }
        return DirtyRing(mapping: mapping, vcpuID: vcpu.id, entryCount: count)
    }

    /// KVM_RESET_DIRTY_RINGS: recycles every harvested entry of every vCPU ring and
    /// write-protects their pages again, so the next write to them is logged. Returns the
    /// number of entries KVM reset.
    @discardableResult
    public func resetDirtyRings() throws(KVMError) -> Int {
        Int(try ioctlValue(fd.rawValue, CKVM_RESET_DIRTY_RINGS, "KVM_RESET_DIRTY_RINGS"))
    }
}
