/// Byte images of KVM's plain C structs (no pointers inside), the form saved states keep them in.
///
/// The kernel ABI fixes these layouts, so a saved image is portable between hosts that run
/// the same architecture; the size is checked on the way back in.
enum RawStruct {
    /// The bytes of `value`.
    static func bytes<T>(of value: T) -> [UInt8] {
        unsafe withUnsafeBytes(of: value) { unsafe Array($0) }
    }

    /// The struct whose image is `bytes`, or nil when the size differs.
    static func load<T>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        guard bytes.count == MemoryLayout<T>.size else { return nil }
        return unsafe bytes.withUnsafeBytes { unsafe $0.loadUnaligned(as: T.self) }
    }
}
