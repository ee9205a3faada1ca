import ArchX86
import Foundation
import Testing
@testable import KVM
import SystemExtras
@testable import VMM

/// Whether the dirty-ring tests run: always in CI (where a host without the ring must fail
/// them), and elsewhere only when KVM opens and offers KVM_CAP_DIRTY_LOG_RING.
enum DirtyRingAvailability {
    static let missing: String? = {
        if let reason = KVMAvailability.openError { return reason }
        do {
            let vm = try KVMSystem().createVM()
            if max(vm.dirtyRingMaximumBytes, vm.dirtyRingAcquireReleaseMaximumBytes) > 0 { return nil }
            return "this host's KVM reports neither KVM_CAP_DIRTY_LOG_RING nor KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
        } catch {
            return "\(error)"
        }
    }()

    static var shouldRun: Bool { KVMAvailability.inCI || missing == nil }
    static var skipReason: Comment { "KVM dirty ring unavailable outside CI: \(missing ?? "")" }
}

/// A few hand-assembled 32-bit instructions (protected mode, flat segments, paging off).
struct Guest32 {
    private(set) var bytes: [UInt8] = []

    private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }

    /// mov dword [address], value
    mutating func store(_ value: UInt32, at address: UInt32) { bytes += [0xc7, 0x05] + Self.le32(address) + Self.le32(value) }
    /// mov eax, [address]
    mutating func load(from address: UInt32) { bytes += [0xa1] + Self.le32(address) }
    /// mov al, value; out port, al
    mutating func out(_ value: UInt8, port: UInt8) { bytes += [0xb0, value, 0xe6, port] }
    /// hlt
    mutating func halt() { bytes += [0xf4] }
    /// Raw bytes.
    mutating func raw(_ b: [UInt8]) { bytes += b }
}

/// A bare VM from the KVM target alone: memory slots logging dirty pages, one vCPU in 32-bit
/// protected mode at `entry`, nothing else (no irqchip: HLT and port writes exit to us).
struct BareVM {
    let vm: VirtualMachineFD
    let vcpu: VCPUFD
    let memory: [(slot: DirtyRingSlot, mapping: MemoryMapping)]

    static let exitPort: UInt8 = 0xf4

    /// `beforeVCPU` runs between VM creation and the first vCPU (where the ring is enabled).
    init(slots: [(slot: UInt32, address: UInt64, pages: UInt64)], code: [UInt8], at entry: UInt64,
         beforeVCPU: (VirtualMachineFD) throws -> Void) throws {
        let kvm = try KVMSystem()
        vm = try kvm.createVM()
        try beforeVCPU(vm)
        var memory: [(slot: DirtyRingSlot, mapping: MemoryMapping)] = []
        for s in slots {
            let slot = try DirtyRingSlot(slot: s.slot, guestAddress: s.address, pageCount: s.pages)
            let mapping = try MemoryMapping.anonymous(size: Int(s.pages * DirtyRing.pageSize))
            try vm.setUserMemoryRegion(slot: s.slot, guestAddress: s.address, size: UInt64(mapping.size),
                                       hostAddress: mapping.base, logDirtyPages: true)
            memory.append((slot, mapping))
        }
        self.memory = memory
        try vm.setIdentityMapAddress(Layout.kvmIdentityMapAddress)
        try vm.setTSSAddress(Layout.kvmTSSAddress)
        vcpu = try vm.createVCPU(id: 0)
        try vcpu.setCPUID(kvm.supportedCPUID())
        try write(code, at: entry)
        let boot = BootEntry.protectedMode(rip: entry, eax: 0, ebx: 0)
        try vcpu.setSpecialRegisters(BootCPUState.specialRegisters(for: boot, base: vcpu.specialRegisters()))
        try vcpu.setRegisters(BootCPUState.registers(for: boot))
    }

    var slots: [DirtyRingSlot] { memory.map(\.slot) }

    private func host(_ address: UInt64, _ length: Int) throws -> UnsafeMutableRawPointer {
        for m in memory where address >= m.slot.guestAddress {
            let offset = address - m.slot.guestAddress
            if offset < UInt64(m.mapping.size), UInt64(length) <= UInt64(m.mapping.size) - offset {
                return m.mapping.base + Int(offset)
            }
        }
        throw KVMError.invalidArgument("0x\(String(address, radix: 16)) is not in guest RAM")
    }

    /// Writes from the host (not logged by KVM).
    func write(_ bytes: [UInt8], at address: UInt64) throws {
        let p = try host(address, bytes.count)
        UnsafeMutableRawBufferPointer(start: p, count: bytes.count).copyBytes(from: bytes)
    }

    func read32(_ address: UInt64) throws -> UInt32 {
        try host(address, 4).loadUnaligned(as: UInt32.self)
    }

    /// What stopped the guest.
    enum Stop: Equatable { case port(UInt8), halt, dirtyRingFull }

    /// Runs until a byte is written to the exit port, the guest halts or its dirty ring fills.
    func run() throws -> Stop {
        while true {
            switch try vcpu.run() {
            case .interrupted: continue
            case .halt: return .halt
            case .unknown(let reason) where reason == DirtyRing.fullExitReason: return .dirtyRingFull
            case .ioOut(let port, 1, 1, let data) where port == UInt16(Self.exitPort):
                return .port(data.first ?? 0)
            case let other:
                let regs = try vcpu.registers()
                throw KVMError.invalidArgument("unexpected exit \(other) at RIP 0x\(String(regs.rip, radix: 16))")
            }
        }
    }
}

/// KVM's per-vCPU dirty ring on this host: a tiny guest writes known pages, the ring must
/// report exactly those (checked against the slots), and nothing more after a harvest.
@Suite(.enabled(if: DirtyRingAvailability.shouldRun, DirtyRingAvailability.skipReason), .serialized)
struct DirtyRingTests {
    static let codeAddress: UInt64 = 0x1000
    /// Slot 0 at 0 (1 MiB) and slot 3 at 4 MiB (2 MiB): frames are counted from each slot's start.
    static let slots: [(slot: UInt32, address: UInt64, pages: UInt64)] = [(0, 0, 256), (3, 0x40_0000, 512)]

    static func frames(_ addresses: [UInt64]) -> Set<UInt64> { Set(addresses.map { $0 / DirtyRing.pageSize }) }

    /// How many entries name each frame.
    static func counts(_ harvest: DirtyRingHarvest) -> [UInt64: Int] {
        harvest.pages.reduce(into: [:]) { $0[$1.guestFrame, default: 0] += 1 }
    }

    /// Every expected frame reported, nothing else but `tolerated`; names a few of the differences.
    static func expectFrames(_ reported: Set<UInt64>, _ expected: Set<UInt64>, _ tolerated: Set<UInt64>, _ what: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let missing = expected.subtracting(reported).sorted()
        let extra = reported.subtracting(expected).subtracting(tolerated).sorted()
        #expect(missing.isEmpty && extra.isEmpty,
                "\(what): \(missing.count) written pages not reported (\(missing.prefix(8))), \(extra.count) unwritten pages reported (\(extra.prefix(8)))",
                sourceLocation: sourceLocation)
    }

    @Test func ringReportsExactlyThePagesTheGuestWrote() throws {
        // Phase 1 writes five pages once each in two slots (the first and last page of
        // slot 3 among them), one page three times, and reads two other pages; phase 2
        // writes three pages once each, one of them already written in phase 1, and reads a
        // page written in phase 1.
        let phase1: [(address: UInt64, value: UInt32)] = [
            (0x5000, 0xd1a7_0001), (0x9ffc, 0xd1a7_0002), (0x40_0000, 0xd1a7_0003), (0x40_1800, 0xd1a7_0004), (0x5f_f000, 0xd1a7_0005),
        ]
        let phase2: [(address: UInt64, value: UInt32)] = [(0x7000, 0xd1a7_0011), (0x40_3000, 0xd1a7_0012), (0x5f_f008, 0xd1a7_0013)]
        var guest = Guest32()
        for w in phase1 { guest.store(w.value, at: UInt32(w.address)) }
        let thrice: UInt64 = 0xb000
        for i in UInt32(0)..<3 { guest.store(0xd1a7_0100 + i, at: UInt32(thrice) + 4 * i) }
        guest.load(from: 0xc000)  // never touched by anyone
        guest.load(from: 0x40_2000)  // written by the host before the run
        guest.out(1, port: BareVM.exitPort)
        for w in phase2 { guest.store(w.value, at: UInt32(w.address)) }
        guest.load(from: 0x5000)
        guest.out(2, port: BareVM.exitPort)
        guest.halt()

        var capability: DirtyRingCapability?
        let machine = try BareVM(slots: Self.slots, code: guest.bytes, at: Self.codeAddress) { vm in
            let limit = max(vm.dirtyRingMaximumBytes, vm.dirtyRingAcquireReleaseMaximumBytes)
            try #require(limit > 0, "this host's KVM has no dirty ring: KVM_CHECK_EXTENSION(KVM_CAP_DIRTY_LOG_RING) = 0")
            print("dirty ring: KVM_CAP_DIRTY_LOG_RING max \(vm.dirtyRingMaximumBytes) bytes, ACQ_REL max \(vm.dirtyRingAcquireReleaseMaximumBytes) bytes")
            capability = try vm.enableDirtyRing(entries: 4096)
        }
        print("dirty ring: enabled with \(String(describing: capability))")
        try machine.write([0x5a, 0x5a, 0x5a, 0x5a], at: 0x40_2000)
        let ring = try machine.vm.dirtyRing(of: machine.vcpu)
        #expect(ring.entryCount == 4096)
        let slots = machine.slots
        // The code page is fetched, never written; a host may still report it, nothing else.
        let tolerated = Self.frames([Self.codeAddress])

        // Nothing before the guest ran.
        #expect(ring.harvest(slots: slots).entryCount == 0)

        #expect(try machine.run() == .port(1))
        for w in phase1 { #expect(try machine.read32(w.address) == w.value) }
        for i in UInt64(0)..<3 { #expect(try machine.read32(thrice + 4 * i) == 0xd1a7_0100 + UInt32(i)) }
        let first = ring.harvest(slots: slots)
        print("dirty ring: phase 1 reported frames \(first.pages.map { "0x" + String($0.guestFrame, radix: 16) })")
        #expect(first.rejected.isEmpty, "\(first.rejected)")
        let counts1 = Self.counts(first)
        Self.expectFrames(Set(counts1.keys), Self.frames(phase1.map(\.address) + [thrice]), tolerated, "phase 1")
        // A page written once is reported once.
        for frame in Self.frames(phase1.map(\.address)) { #expect(counts1[frame] == 1, "frame 0x\(String(frame, radix: 16))") }
        // A page written three times: once per write-protection cycle, or once per write
        // where KVM's instruction emulator performed (and logged) each write.
        let thriceCount = counts1[thrice / DirtyRing.pageSize] ?? 0
        #expect(thriceCount == 1 || thriceCount == 3)
        print("dirty ring: a page written 3 times in one round was reported \(thriceCount) time(s)")
        // Slot and offset agree with the frame.
        #expect(first.pages.contains(DirtyRingPage(slot: 3, pageOffset: 511, guestFrame: 0x5ff)))
        #expect(first.pages.contains(DirtyRingPage(slot: 0, pageOffset: 9, guestFrame: 9)))
        // Harvesting again without guest activity, before and after the reset, yields nothing.
        #expect(ring.harvest(slots: slots).entryCount == 0)
        #expect(try machine.vm.resetDirtyRings() == first.entryCount)
        #expect(ring.harvest(slots: slots).entryCount == 0)
        #expect(try machine.vm.resetDirtyRings() == 0)

        #expect(try machine.run() == .port(2))
        for w in phase2 { #expect(try machine.read32(w.address) == w.value) }
        let second = ring.harvest(slots: slots)
        print("dirty ring: phase 2 reported frames \(second.pages.map { "0x" + String($0.guestFrame, radix: 16) }.sorted())")
        #expect(second.rejected.isEmpty, "\(second.rejected)")
        let counts2 = Self.counts(second)
        Self.expectFrames(Set(counts2.keys), Self.frames(phase2.map(\.address)), tolerated, "phase 2")
        for frame in Self.frames(phase2.map(\.address)) { #expect(counts2[frame] == 1, "frame 0x\(String(frame, radix: 16))") }
        #expect(ring.harvest(slots: slots).entryCount == 0)
        #expect(try machine.vm.resetDirtyRings() == second.entryCount)

        // From the last port write to HLT the guest writes nothing.
        #expect(try machine.run() == .halt)
        #expect(ring.harvest(slots: slots).entryCount == 0)
        #expect(try machine.vm.resetDirtyRings() == 0)
    }

    @Test func ringIsRefusedOnceAVCPUExistsAndReplacesTheBitmap() throws {
        let kvm = try KVMSystem()
        func refusedByKVM(_ error: any Error, _ code: Int32) -> Bool {
            guard case .ioctl(let e) = error as? KVMError else { return false }
            return e.code == code
        }
        func refusedBeforeKVM(_ error: any Error) -> Bool {
            guard case .invalidArgument = error as? KVMError else { return false }
            return true
        }
        // KVM itself refuses the ring once a vCPU exists.
        let late = try kvm.createVM()
        _ = try late.createVCPU(id: 0)
        #expect { _ = try late.enableDirtyRing(entries: 4096) } throws: { refusedByKVM($0, EINVAL) }

        let vm = try kvm.createVM()
        // Sizes KVM would refuse never reach it: not a power of two, past the host's limit, none.
        #expect { _ = try vm.enableDirtyRing(entries: 1000) } throws: { refusedBeforeKVM($0) }
        #expect { _ = try vm.enableDirtyRing(entries: 1 << 40) } throws: { refusedBeforeKVM($0) }
        #expect { _ = try vm.enableDirtyRing(entries: 0) } throws: { refusedBeforeKVM($0) }
        _ = try vm.enableDirtyRing(entries: 4096)
        #expect { _ = try vm.enableDirtyRing(entries: 4096) } throws: { refusedBeforeKVM($0) }
        let mapping = try MemoryMapping.anonymous(size: 1 << 20)
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: 1 << 20, hostAddress: mapping.base, logDirtyPages: true)
        // With rings on, KVM keeps no per-slot bitmap to fetch (ENXIO, not a missing slot).
        var bitmap = [UInt64](repeating: 0, count: 4)
        #expect {
            try vm.fetchDirtyLog(slot: 0, into: &bitmap)
        } throws: { refusedByKVM($0, ENXIO) }
    }

    /// Cost of taking dirty pages: a guest loop writes 2,048 pages per round; each round is
    /// harvested from the ring and reset, and, on a second VM, fetched (and scanned into a
    /// list of frames) and cleared through the bitmap with manual protection. Both must report
    /// every page every round; the times are printed (per 1,000 pages, fastest and median
    /// round), not asserted.
    /// A guest that writes one word into each of `pages` pages from 1 MiB on, writes 1 to the
    /// exit port, and starts over; with the slot that holds it and the frames it writes.
    static func loopGuest(pages: UInt32) -> (code: [UInt8], layout: [(slot: UInt32, address: UInt64, pages: UInt64)], written: Set<UInt64>) {
        let data: UInt32 = 0x10_0000
        // start: mov edi, data; mov ecx, pages
        // loop:  mov [edi], ecx; add edi, 4096; dec ecx; jnz loop
        //        mov al, 1; out 0xf4, al; jmp start
        var guest = Guest32()
        guest.raw([0xbf] + withUnsafeBytes(of: data.littleEndian, Array.init))
        guest.raw([0xb9] + withUnsafeBytes(of: pages.littleEndian, Array.init))
        guest.raw([0x89, 0x0f, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, 0x49, 0x75, 0xf5])
        guest.out(1, port: BareVM.exitPort)
        guest.raw([0xeb, 0xe5])
        let first = UInt64(data) / DirtyRing.pageSize
        return (guest.bytes, [(0, 0, first + UInt64(pages))], Set((0..<UInt64(pages)).map { first + $0 }))
    }

    /// A ring smaller than what the guest dirties stops the vCPU (KVM_EXIT_DIRTY_RING_FULL)
    /// until it is harvested and reset, and no page is lost across the stops: KVM must stop
    /// the vCPU before the ring overflows (it asks for the exit at the ring's soft limit,
    /// size minus reserved entries).
    @Test func fullRingStopsTheVCPUUntilHarvestedAndReset() throws {
        // Where KVM emulates every guest instruction (the kvm_pvm module), its emulator pushes
        // entries past the ring's soft limit (a kernel WARNING in kvm_dirty_ring_push) and a full
        // ring loses pages on most runs. That is the host's defect, and why migration keeps the
        // bitmap (docs/migration.md): recorded there as a known, intermittent issue; on any
        // other host this test fails on a lost page.
        try withKnownIssue("this host's KVM overflows a full dirty ring", isIntermittent: true) {
            try fullRingCheck()
        } when: {
            FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")
        }
    }

    func fullRingCheck() throws {
        let pages: UInt32 = 2048
        let entries = 1024
        let (code, layout, written) = Self.loopGuest(pages: pages)
        let machine = try BareVM(slots: layout, code: code, at: Self.codeAddress) { vm in
            _ = try vm.enableDirtyRing(entries: entries)
        }
        let ring = try machine.vm.dirtyRing(of: machine.vcpu)
        var reported = Set<UInt64>(), stops: [Int] = []
        while true {
            let stop = try machine.run()
            let harvest = ring.harvest(slots: machine.slots)
            #expect(harvest.rejected.isEmpty)
            reported.formUnion(harvest.pages.map(\.guestFrame))
            #expect(try machine.vm.resetDirtyRings() == harvest.entryCount)
            if stop == .port(1) { break }
            try #require(stop == .dirtyRingFull)
            stops.append(harvest.entryCount)
            // A vCPU stopped for a full ring whose published entries were all taken: KVM's
            // count and the ring disagree, which happens once the ring wrapped over entries
            // nobody harvested.
            try #require(harvest.entryCount > 0,
                         "KVM reports the ring full with nothing in it after \(stops.count) stop(s): the ring overflowed (entries overwritten before the vCPU stopped)")
            try #require(stops.count < 64, "the guest never finished")
        }
        print("dirty ring: \(pages) pages through a \(entries)-entry ring: ring-full stops harvesting \(stops) entries")
        let missing = written.subtracting(reported).count
        #expect(missing == 0,
                "\(missing) of \(pages) written pages never reported: the ring overflowed before the vCPU stopped (stops harvested \(stops) entries)")
        Self.expectFrames(reported, written, Self.frames([Self.codeAddress]), "across ring-full stops")
        // Each stop leaves room for at most `entries`, so 2,048 logged pages need two stops.
        #expect(stops.count >= 2)
    }

    @Test func harvestCostPerThousandPages() throws {
        let pages: UInt32 = 2048
        let rounds = 16
        let (code, layout, expected) = Self.loopGuest(pages: pages)
        let slotPages = layout[0].pages
        let tolerated = Self.frames([Self.codeAddress])
        let clock = ContinuousClock()
        func microsecondsPerThousand(_ d: Duration, _ n: Int) -> Double {
            let us = Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
            return n > 0 ? us * 1000 / Double(n) : 0
        }
        func summary(_ values: [Double]) -> String {
            let sorted = values.sorted()
            guard let fastest = sorted.first else { return "-" }
            return String(format: "%.1f µs (median %.1f µs)", fastest, sorted[sorted.count / 2])
        }

        let machine = try BareVM(slots: layout, code: code, at: Self.codeAddress) { vm in
            _ = try vm.enableDirtyRing(entries: 4096)
        }
        let ring = try machine.vm.dirtyRing(of: machine.vcpu)
        var harvestTimes: [Double] = [], resetTimes: [Double] = []
        for round in 0..<rounds {
            #expect(try machine.run() == .port(1))
            let start = clock.now
            let harvest = ring.harvest(slots: machine.slots)
            let harvested = clock.now
            let reset = try machine.vm.resetDirtyRings()
            let done = clock.now
            harvestTimes.append(microsecondsPerThousand(harvested - start, harvest.pages.count))
            resetTimes.append(microsecondsPerThousand(done - harvested, harvest.pages.count))
            #expect(harvest.rejected.isEmpty)
            #expect(reset == harvest.entryCount)
            Self.expectFrames(Set(harvest.pages.map(\.guestFrame)), expected, tolerated, "ring round \(round)")
        }

        let bitmapVM = try BareVM(slots: layout, code: code, at: Self.codeAddress) { vm in
            try vm.enableManualDirtyLogProtect()
        }
        let words = (Int(slotPages) + 63) / 64
        var fetchTimes: [Double] = [], clearTimes: [Double] = []
        for round in 0..<rounds {
            #expect(try bitmapVM.run() == .port(1))
            var bitmap = [UInt64](repeating: 0, count: words)
            let start = clock.now
            try bitmapVM.vm.fetchDirtyLog(slot: 0, into: &bitmap)
            var frames: [UInt64] = []
            for (w, word) in bitmap.enumerated() where word != 0 {
                for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { frames.append(UInt64(w * 64 + bit)) }
            }
            let fetched = clock.now
            try bitmapVM.vm.clearDirtyLog(slot: 0, firstPage: 0, pages: UInt32(slotPages), bitmap: &bitmap)
            let done = clock.now
            fetchTimes.append(microsecondsPerThousand(fetched - start, frames.count))
            clearTimes.append(microsecondsPerThousand(done - fetched, frames.count))
            Self.expectFrames(Set(frames), expected, tolerated, "bitmap round \(round)")
        }

        print("dirty ring, \(rounds) rounds of \(pages) pages, per 1000 pages: harvest \(summary(harvestTimes)), KVM_RESET_DIRTY_RINGS \(summary(resetTimes))")
        print("dirty bitmap, \(rounds) rounds of \(pages) pages in a \(slotPages)-page slot, per 1000 pages: KVM_GET_DIRTY_LOG + scan \(summary(fetchTimes)), KVM_CLEAR_DIRTY_LOG \(summary(clearTimes))")
    }
}

/// The harvest's checks on a ring filled by hand: entries naming unknown slots or offsets
/// past a slot are refused, harvesting stops at the first entry not marked dirty, and every
/// taken entry is handed back (flags RESET).
struct DirtyRingHarvestValidationTests {
    @Test func hostileEntriesAreRejectedAndHarvestStopsAtTheFirstCleanEntry() throws {
        let count = 256
        let mapping = try MemoryMapping.anonymous(size: count * 16)
        func put(_ i: Int, flags: UInt32, slot: UInt32, offset: UInt64) {
            mapping.base.storeBytes(of: flags, toByteOffset: i * 16, as: UInt32.self)
            mapping.base.storeBytes(of: slot, toByteOffset: i * 16 + 4, as: UInt32.self)
            mapping.base.storeBytes(of: offset, toByteOffset: i * 16 + 8, as: UInt64.self)
        }
        func flags(_ i: Int) -> UInt32 { mapping.base.load(fromByteOffset: i * 16, as: UInt32.self) }
        put(0, flags: 1, slot: 2, offset: 7)  // valid
        put(1, flags: 1, slot: 9, offset: 0)  // unknown slot
        put(2, flags: 1, slot: 2, offset: 16)  // one past the slot
        put(3, flags: 1, slot: 2, offset: .max)  // would wrap the frame number
        put(4, flags: 1, slot: 0x1_0002, offset: 1)  // same slot id, other address space
        put(5, flags: 3, slot: 2, offset: 1)  // already harvested: stop here
        put(6, flags: 1, slot: 2, offset: 2)  // never reached this time
        let ring = DirtyRing(mapping: mapping, vcpuID: 0, entryCount: UInt32(count))
        let slot = try DirtyRingSlot(slot: 2, guestAddress: 0x10_0000, pageCount: 16)
        let harvest = ring.harvest(slots: [slot])
        #expect(harvest.pages == [DirtyRingPage(slot: 2, pageOffset: 7, guestFrame: 0x107)])
        #expect(harvest.rejected == [
            DirtyRingRejectedEntry(slot: 9, offset: 0, reason: .unknownSlot),
            DirtyRingRejectedEntry(slot: 2, offset: 16, reason: .offsetOutsideSlot),
            DirtyRingRejectedEntry(slot: 2, offset: .max, reason: .offsetOutsideSlot),
            DirtyRingRejectedEntry(slot: 0x1_0002, offset: 1, reason: .unknownSlot),
        ])
        for i in 0..<5 { #expect(flags(i) == 2) }
        #expect(flags(5) == 3 && flags(6) == 1)
        // Nothing new until entry 5 is recycled and published again.
        #expect(ring.harvest(slots: [slot]).entryCount == 0)
        put(5, flags: 1, slot: 2, offset: 3)
        #expect(ring.harvest(slots: [slot]).pages.map(\.pageOffset) == [3, 2])
        #expect(throws: KVMError.self) { _ = try DirtyRingSlot(slot: 0, guestAddress: 0x1001, pageCount: 1) }
        #expect(throws: KVMError.self) { _ = try DirtyRingSlot(slot: 0, guestAddress: UInt64.max - 0xfff, pageCount: 2) }
    }
}
