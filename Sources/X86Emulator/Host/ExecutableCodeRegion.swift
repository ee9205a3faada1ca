#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// The one address range where the emulation assist's generated code lives: reserved once
/// per process, aligned to its size, and handed out in fixed slots (one per code cache).
///
/// Keeping executable memory in a known range lets a seccomp filter allow
/// `mprotect(PROT_READ|PROT_EXEC)` on exactly these slots and nowhere else (docs/seccomp.md).
public final class ExecutableCodeRegion: Sendable {
    /// Bytes per slot: one `ExecutableCodeCache`.
    public static let slotSize = ExecutableCodeCache.slotSize * ExecutableCodeCache.slotCount
    /// Bytes in the region (a power of two; the region is aligned to it).
    public static let size = 4 << 20

    /// The process's region, reserved on first use; nil if the host refuses the mapping.
    public static let shared: ExecutableCodeRegion? = ExecutableCodeRegion()

    /// The region's first byte.
    public let base: UInt
    private let free: Mutex<[Int]>

    private init?() {
        #if os(Linux) && arch(x86_64)
        // Reserve twice the size, keep the aligned half: PROT_NONE until a slot is taken.
        let span = 2 * Self.size
        guard let p = unsafe mmap(nil, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), unsafe p != MAP_FAILED else { return nil }
        let start = UInt(bitPattern: p)
        let aligned = (start + UInt(Self.size) - 1) & ~(UInt(Self.size) - 1)
        if aligned > start { unsafe munmap(p, Int(aligned - start)) }
        let end = start + UInt(span), alignedEnd = aligned + UInt(Self.size)
        if end > alignedEnd, let tail = unsafe UnsafeMutableRawPointer(bitPattern: alignedEnd) { unsafe munmap(tail, Int(end - alignedEnd)) }
        base = aligned
        free = Mutex(Array((0..<(Self.size / Self.slotSize)).reversed()))
        #else
        return nil
        #endif
    }

    /// A slot's memory, readable and writable, or nil when every slot is taken.
    func takeSlot() -> UnsafeMutableRawPointer? {
        guard let index = free.withLock({ $0.popLast() }), let slot = unsafe UnsafeMutableRawPointer(bitPattern: base + UInt(index * Self.slotSize)) else { return nil }
        guard unsafe mprotect(slot, Self.slotSize, PROT_READ | PROT_WRITE) == 0 else {
            free.withLock { $0.append(index) }
            return nil
        }
        return unsafe slot
    }

    /// Gives a slot back (inaccessible again).
    func returnSlot(_ slot: UnsafeMutableRawPointer) {
        let offset = UInt(bitPattern: slot) - base
        _ = unsafe mprotect(slot, Self.slotSize, PROT_NONE)
        free.withLock { $0.append(Int(offset) / Self.slotSize) }
    }
}
