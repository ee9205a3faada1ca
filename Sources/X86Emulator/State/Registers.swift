/// A general-purpose register in x86 encoding order (the number ModRM, SIB and REX select).
///
/// Note that KVM's `kvm_regs` lists them in a different order (rax, rbx, rcx, rdx, rsi, rdi,
/// rsp, rbp, r8…r15); see `GPR.kvmRegsOrder`.
public enum GPR: Int, Sendable, CaseIterable {
    case rax = 0, rcx, rdx, rbx, rsp, rbp, rsi, rdi
    case r8, r9, r10, r11, r12, r13, r14, r15

    /// The registers in the field order of KVM's `struct kvm_regs` (rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8…r15).
    public static let kvmRegsOrder: [GPR] = [.rax, .rbx, .rcx, .rdx, .rsi, .rdi, .rsp, .rbp, .r8, .r9, .r10, .r11, .r12, .r13, .r14, .r15]
}

/// The sixteen 64-bit general-purpose registers, indexed in x86 encoding order.
///
/// Always holds exactly sixteen values; an index is reduced modulo 16, so no subscript can trap.
public struct GeneralPurposeRegisters: Sendable, Equatable {
    private var values: [UInt64]

    /// All registers zero.
    public init() { values = Array(repeating: 0, count: 16) }

    /// Registers from `values` in encoding order; missing entries are zero, extra ones ignored.
    public init(_ values: [UInt64]) {
        var v = Array(values.prefix(16))
        while v.count < 16 { v.append(0) }
        self.values = v
    }

    /// Register `index & 15`.
    public subscript(index: Int) -> UInt64 {
        get { values[index & 15] }
        set { values[index & 15] = newValue }
    }

    /// A register by name.
    public subscript(register: GPR) -> UInt64 {
        get { values[register.rawValue] }
        set { values[register.rawValue] = newValue }
    }

    /// The sixteen values in encoding order.
    public var all: [UInt64] { values }
}

/// One 128-bit XMM register as two little-endian 64-bit halves (bytes 0–7 in `low`).
public struct XMMValue: Sendable, Equatable, Hashable {
    /// Bits 63:0.
    public var low: UInt64
    /// Bits 127:64.
    public var high: UInt64

    /// A value from its two halves.
    public init(low: UInt64 = 0, high: UInt64 = 0) {
        self.low = low
        self.high = high
    }

    /// From 16 little-endian bytes (as in `kvm_fpu.xmm[i]` or an FXSAVE image); short input is zero-padded.
    public init<C: Collection<UInt8>>(bytes: C) {
        var lo: UInt64 = 0
        var hi: UInt64 = 0
        for (i, b) in bytes.prefix(16).enumerated() {
            if i < 8 {
                lo |= UInt64(b) << UInt64(8 * i)
            } else {
                hi |= UInt64(b) << UInt64(8 * (i - 8))
            }
        }
        low = lo
        high = hi
    }

    /// The 16 little-endian bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: low >> UInt64(8 * i))) }
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: high >> UInt64(8 * i))) }
        return out
    }
}

/// The sixteen XMM registers; an index is reduced modulo 16.
public struct XMMRegisters: Sendable, Equatable {
    private var values: [XMMValue]

    /// All registers zero.
    public init() { values = Array(repeating: XMMValue(), count: 16) }

    /// Registers from `values`; missing entries are zero, extra ones ignored.
    public init(_ values: [XMMValue]) {
        var v = Array(values.prefix(16))
        while v.count < 16 { v.append(XMMValue()) }
        self.values = v
    }

    /// Register `index & 15`.
    public subscript(index: Int) -> XMMValue {
        get { values[index & 15] }
        set { values[index & 15] = newValue }
    }

    /// The sixteen values.
    public var all: [XMMValue] { values }
}

/// The eight x87 data registers in stack order (ST(0) first), 10 bytes each; indices wrap, so no
/// subscript can trap.
public struct X87Registers: Sendable, Equatable {
    private var values: [[UInt8]]

    /// All registers zero.
    public init() { values = Array(repeating: [UInt8](repeating: 0, count: 10), count: 8) }

    /// ST(i): its 10 bytes (64-bit significand little-endian, then sign and 15-bit exponent).
    public subscript(index: Int) -> [UInt8] {
        get { values[index & 7] }
        set {
            var v = Array(newValue.prefix(10))
            while v.count < 10 { v.append(0) }
            values[index & 7] = v
        }
    }

    /// Pushes `value` as the new ST(0); ST(7) falls off.
    mutating func push(_ value: [UInt8]) {
        values.removeLast()
        values.insert([UInt8](repeating: 0, count: 10), at: 0)
        self[0] = value
    }
}
