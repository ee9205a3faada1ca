import CKVM

/// Owns a `struct kvm_cpuid2` with room for `count` entries (a flexible-array struct).
final class CPUIDBuffer {
    let raw: UnsafeMutableRawPointer
    let capacity: UInt32

    init(count: UInt32) {
        capacity = count
        let size = ckvm_cpuid2_size(count)
        raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.bindMemory(to: kvm_cpuid2.self, capacity: 1).pointee.nent = count
    }

    convenience init(entries: [kvm_cpuid_entry2]) {
        self.init(count: UInt32(entries.count))
        let base = ckvm_cpuid2_entries(raw.assumingMemoryBound(to: kvm_cpuid2.self))
        for (i, e) in entries.enumerated() { base?[i] = e }
    }

    deinit { raw.deallocate() }

    var entries: [kvm_cpuid_entry2] {
        let header = raw.assumingMemoryBound(to: kvm_cpuid2.self)
        let n = Int(min(header.pointee.nent, capacity))
        guard let base = ckvm_cpuid2_entries(header) else { return [] }
        return (0..<n).map { base[$0] }
    }
}
