import CKVM

/// Owns a `struct kvm_cpuid2` with room for `count` entries (a flexible-array struct).
@safe final class CPUIDBuffer {
    let raw: UnsafeMutableRawPointer
    let capacity: UInt32

    init(count: UInt32) {
        capacity = count
        let size = ckvm_cpuid2_size(count)
        unsafe raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        unsafe raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        unsafe raw.bindMemory(to: kvm_cpuid2.self, capacity: 1).pointee.nent = count
    }

    convenience init(entries: [kvm_cpuid_entry2]) {
        self.init(count: UInt32(entries.count))
        let base = unsafe ckvm_cpuid2_entries(raw.assumingMemoryBound(to: kvm_cpuid2.self))
        for (i, e) in entries.enumerated() { unsafe base?[i] = e }
    }

    deinit { unsafe raw.deallocate() }

    var entries: [kvm_cpuid_entry2] {
        let header = unsafe raw.assumingMemoryBound(to: kvm_cpuid2.self)
        let n = unsafe Int(min(header.pointee.nent, capacity))
        guard let base = unsafe ckvm_cpuid2_entries(header) else { return [] }
        return (0..<n).map { unsafe base[$0] }
    }
}
