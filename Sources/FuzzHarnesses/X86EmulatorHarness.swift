import X86Emulator

/// Flat guest RAM from 0 for the emulator: reads and writes outside it fail; counts data writes
/// (page-table accessed/dirty updates through `atomicOr` are not counted).
final class FlatGuestMemory: GuestPhysicalMemory {
    static let size = 1 << 20
    var bytes = [UInt8](repeating: 0, count: FlatGuestMemory.size)
    var writes = 0

    func read(_ address: UInt64, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard address <= UInt64(bytes.count), UInt64(buffer.count) <= UInt64(bytes.count) - address else { return false }
        let start = Int(address)
        unsafe bytes.withUnsafeBytes { source in
            unsafe buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + buffer.count)]))
        }
        return true
    }

    func write(_ address: UInt64, _ buffer: UnsafeRawBufferPointer) -> Bool {
        guard address <= UInt64(bytes.count), UInt64(buffer.count) <= UInt64(bytes.count) - address else { return false }
        writes += 1
        let start = Int(address)
        unsafe bytes.withUnsafeMutableBytes { target in
            unsafe UnsafeMutableRawBufferPointer(rebasing: target[start..<(start + buffer.count)]).copyMemory(from: buffer)
        }
        return true
    }

    func atomicOr(_ address: UInt64, _ bits: UInt8) -> Bool {
        guard address < UInt64(bytes.count) else { return false }
        bytes[Int(address)] |= bits
        return true
    }

    func store(_ data: [UInt8], at address: Int) {
        for (i, b) in data.enumerated() where address + i < bytes.count && address + i >= 0 { bytes[address + i] = b }
    }

    func store64(_ value: UInt64, at address: Int) {
        store((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }, at: address)
    }
}

final class FuzzPlatform: EmulatorPlatform {
    var msrs: [UInt32: UInt64] = [MSRIndex.tsc: 0x1122_3344, MSRIndex.star: 0x0023_0010_0000_0000, MSRIndex.tscAux: 1,
                                  MSRIndex.kernelGSBase: 0]
    func readMSR(_ index: UInt32) -> UInt64? { msrs[index] }
    func writeMSR(_ index: UInt32, _ value: UInt64) -> Bool {
        msrs[index] = value
        return true
    }
}

/// The x86 decoder and emulator (`Emulator.step`) on a guest-memory mock: instruction bytes,
/// registers, flags, control registers, segment state and page tables from the input, in real,
/// protected, compatibility and 64-bit mode, several steps in a row.
///
/// Checks the contract of `step`: `.unsupported` leaves the state alone; an exception other than
/// #BP/#DB changes nothing but CR2 (for #PF) and writes no memory; what completes is at most 15
/// bytes long.
public enum X86EmulatorHarness {
    nonisolated(unsafe) static var emulator: Emulator?
    nonisolated(unsafe) static var memory: FlatGuestMemory?

    // Page tables: PML4 0x1000 → PDPT 0x2000 → PD 0x3000 → PT 0x4000 (4 KiB pages over the first 2 MiB).
    static let pml4 = 0x1000, pdpt = 0x2000, pd = 0x3000, pt = 0x4000

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let emulator = unsafe Self.emulator ?? Emulator()
        unsafe Self.emulator = emulator
        let memory = unsafe Self.memory ?? FlatGuestMemory()
        unsafe Self.memory = memory
        unsafe memory.bytes.withUnsafeMutableBytes { unsafe $0.initializeMemory(as: UInt8.self, repeating: 0) }
        var input = FuzzInput(data)
        let platform = FuzzPlatform()

        // Identity map: mostly user, writable, executable; the input flips bits of some entries.
        memory.store64(UInt64(pdpt) | 0x7, at: pml4)
        memory.store64(UInt64(pd) | 0x7, at: pdpt)
        memory.store64(UInt64(pt) | 0x7, at: pd)
        for page in 0..<512 { memory.store64(UInt64(page) << 12 | 0x7, at: pt + 8 * page) }
        for _ in 0..<input.below(4) {
            let entry = [pml4, pdpt, pd, pt + 8 * input.below(512)][input.below(4)]
            memory.store64(input.u64(), at: entry)
        }

        var state = makeState(&input)
        // Memory contents: code at the fetch address, then chunks anywhere.
        let code = input.bytes(15)
        let fetch: Int
        switch state.mode {
        case .real, .virtual8086: fetch = Int((state.cs.base &+ (state.rip & 0xffff)) & 0xf_ffff)
        case .long64: fetch = Int(truncatingIfNeeded: state.rip & 0xf_ffff)
        default: fetch = Int(truncatingIfNeeded: (state.cs.base &+ (state.rip & 0xffff_ffff)) & 0xf_ffff)
        }
        memory.store(code, at: fetch)
        for _ in 0..<input.below(4) {
            let at = input.below(FlatGuestMemory.size)
            memory.store(input.bytes(Int(input.u8() % 64)), at: at)
        }

        for _ in 0..<(1 + input.below(4)) {
            let before = state
            let bytesBefore = memory.writes
            let fetched = (0..<15).map { i in fetch + i < FlatGuestMemory.size ? memory.bytes[fetch + i] : 0 }
            let result = emulator.step(state: &state, memory: memory, platform: platform)
            try checkContract(result, before: before, after: state, code: fetched, wroteMemory: memory.writes != bytesBefore)
            guard case .completed = result else { return }
        }
    }

    static func makeState(_ input: inout FuzzInput) -> CPUState {
        var s: CPUState
        switch input.u8() % 6 {
        case 0:
            s = CPUState()
            s.cs = .realMode(selector: input.u16(), code: true)
            s.rip = UInt64(input.u16())
        case 1:
            s = CPUState.protected32(cpl: input.u8() & 3)
            s.rip = UInt64(input.u32() & 0xf_ffff)
        case 2:
            s = CPUState.long64(cr3: UInt64(pml4), cpl: input.bool() ? 3 : 0)
            s.cs.long = false
            s.cs.defaultBig = input.bool()
            s.rip = UInt64(input.u32() & 0xf_ffff)
        default:
            s = CPUState.long64(cr3: UInt64(pml4), cpl: input.bool() ? 3 : 0)
            s.rip = input.u8() & 7 == 0 ? input.u64() : UInt64(input.u32() & 0xf_ffff)
        }
        for i in 0..<16 {
            s.gpr[i] = input.u8() & 3 == 0 ? input.u64() : UInt64(input.u32() % UInt32(FlatGuestMemory.size))
        }
        s.rflags = RFlags.reserved1 | (input.u64() & (RFlags.arithmetic | RFlags.direction | RFlags.alignmentCheck | RFlags.trap | RFlags.interrupt))
        let tweaks = input.u8()
        if tweaks & 1 != 0 { s.cr0 ^= UInt64(1) << (input.u8() % 32) }
        if tweaks & 2 != 0 { s.cr4 ^= UInt64(1) << (input.u8() % 24) }
        if tweaks & 4 != 0 { s.efer ^= UInt64(1) << (input.u8() % 12) }
        if tweaks & 8 != 0 { s.mxcsr = input.u32() }
        if tweaks & 16 != 0 {
            s.fcw = input.u16()
            s.fsw = input.u16()
            s.ftwx = input.u8()
        }
        if tweaks & 32 != 0 {
            let segment = SegmentRegister(selector: input.u16(), base: UInt64(input.u32()), limit: input.u32(), type: input.u8(),
                                          present: input.bool(), dpl: input.u8(), defaultBig: input.bool(), codeOrData: input.bool(),
                                          long: input.bool(), granularity: input.bool(), unusable: input.u8() & 3 == 0)
            switch input.u8() % 6 {
            case 0: s.ds = segment
            case 1: s.es = segment
            case 2: s.ss = segment
            case 3: s.fs = segment
            case 4: s.gs = segment
            default: s.cs = segment
            }
        }
        if tweaks & 64 != 0 {
            s.gdtBase = UInt64(input.u32() % UInt32(FlatGuestMemory.size))
            s.gdtLimit = input.u16()
        }
        if tweaks & 128 != 0 {
            for i in 0..<16 { s.xmm[i] = XMMValue(low: input.u64(), high: input.u64()) }
        }
        return s
    }

    static func checkContract(_ result: EmulationResult, before: CPUState, after: CPUState, code: [UInt8],
                              wroteMemory: Bool) throws(FuzzInvariantViolation) {
        switch result {
        case .unsupported(let u):
            try require(after == before, "unsupported (\(u.reason)) changed the state; code \(code)")
            try require(u.bytes.count <= 15, "unsupported with \(u.bytes.count) bytes")
            try require(!wroteMemory, "unsupported (\(u.reason)) wrote memory; code \(code)")
        case .injectException(let e, _) where e.vector != .breakpoint && e.vector != .debug:
            var expected = before
            if e.vector == .pageFault, let address = e.payload { expected.cr2 = address }
            try require(after == expected, "\(e) changed more than CR2; code \(code)")
            try require(!wroteMemory, "\(e) wrote memory; code \(code)")
        case .completed, .injectException:
            guard case .success(let instruction) = Decoder.decode(code, mode: before.mode) else {
                // The emulator may have fetched across a page boundary into bytes the harness did
                // not place; only a decodable prefix of the placed bytes is checked.
                return
            }
            try require(instruction.length <= 15, "\(instruction.length)-byte instruction")
        }
    }
}
