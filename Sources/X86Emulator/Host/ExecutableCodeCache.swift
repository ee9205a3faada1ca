#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A small W^X cache of generated host code: fixed-size slots in one slot of the process's
/// `ExecutableCodeRegion`, writable only while a slot is filled and executable otherwise.
/// Not thread-safe; its owner serializes all use (filling and running). @safe: the mapping
/// never leaves this class; what runs in it is the generator's responsibility
/// (HostSSEExecutor, checked against the host CPU).
@safe final class ExecutableCodeCache {
    /// The calling convention of every stub: four integer/pointer arguments (RDI, RSI, RDX, RCX), RAX result.
    typealias Stub = @convention(c) (UInt, UInt, UInt, UInt) -> UInt64

    static let slotSize = 128
    static let slotCount = 128

    private let base: UnsafeMutableRawPointer
    private let size: Int
    private var slotOf: [[UInt8]: Int] = [:]
    private var codeIn: [[UInt8]?]
    private var nextSlot = 0
    private var broken = false

    /// Takes a slot of the process's `ExecutableCodeRegion`, or returns nil when the host
    /// refuses executable memory (or every slot is in use).
    init?() {
        #if os(Linux) && arch(x86_64)
        size = Self.slotSize * Self.slotCount
        guard let p = unsafe ExecutableCodeRegion.shared?.takeSlot() else { return nil }
        unsafe base = p
        codeIn = Array(repeating: nil, count: Self.slotCount)
        // Fill with INT3 so a stray jump into an empty slot traps instead of running garbage.
        unsafe base.initializeMemory(as: UInt8.self, repeating: 0xCC, count: size)
        guard unsafe mprotect(base, size, PROT_READ | PROT_EXEC) == 0 else {
            unsafe ExecutableCodeRegion.shared?.returnSlot(p)
            return nil
        }
        #else
        return nil
        #endif
    }

    deinit {
        #if os(Linux) && arch(x86_64)
        unsafe ExecutableCodeRegion.shared?.returnSlot(base)
        #endif
    }

    /// The callable stub for `code` (at most `slotSize` bytes), writing it into a slot if it is not cached.
    func stub(for code: [UInt8]) -> Stub? {
        #if os(Linux) && arch(x86_64)
        guard !broken, !code.isEmpty, code.count <= Self.slotSize else { return nil }
        let slot: Int
        if let s = slotOf[code] {
            slot = s
        } else {
            slot = nextSlot
            nextSlot = (nextSlot + 1) % Self.slotCount
            if let old = codeIn[slot] { slotOf[old] = nil }
            guard unsafe mprotect(base, size, PROT_READ | PROT_WRITE) == 0 else { return nil }
            let start = unsafe base + slot * Self.slotSize
            unsafe start.initializeMemory(as: UInt8.self, repeating: 0xCC, count: Self.slotSize)
            unsafe code.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress { unsafe start.copyMemory(from: source, byteCount: bytes.count) }
            }
            guard unsafe mprotect(base, size, PROT_READ | PROT_EXEC) == 0 else {
                // Never run code from a mapping left writable.
                broken = true
                codeIn[slot] = nil
                return nil
            }
            codeIn[slot] = code
            slotOf[code] = slot
        }
        return unsafe unsafeBitCast(base + slot * Self.slotSize, to: Stub.self)
        #else
        return nil
        #endif
    }
}
