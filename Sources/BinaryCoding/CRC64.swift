/// CRC-64/XZ (also called CRC-64/GO-ECMA): the ECMA-182 polynomial, reflected, initial value
/// and final XOR all ones. The checksum of the ASCII bytes "123456789" is 0x995DC9BBDF1939FA.
///
/// Table-driven, eight bytes per step (slicing-by-8).
public enum CRC64 {
    /// The checksum of `bytes`. With `seed` the checksum of preceding data, this continues it:
    /// `checksum(b, seed: checksum(a))` is the checksum of `a` followed by `b`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var hasher = Hasher(seed: seed)
        unsafe hasher.update(bytes)
        return hasher.value
    }

    /// The checksum of `bytes`, continuing `seed` (see the other overload).
    public static func checksum(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        unsafe bytes.withUnsafeBytes { unsafe checksum($0, seed: seed) }
    }

    /// A checksum computed over data given in pieces.
    public struct Hasher: Sendable {
        /// The CRC register (the checksum, inverted).
        private var register: UInt64

        /// Starts a checksum, continuing `seed` (the checksum of preceding data) if given.
        public init(seed: UInt64 = 0) {
            register = ~seed
        }

        /// The checksum of everything given so far.
        public var value: UInt64 { ~register }

        /// Adds `bytes` to the checksum.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            register = unsafe CRC64.update(register, with: bytes)
        }

        /// Adds `bytes` to the checksum.
        public mutating func update(_ bytes: [UInt8]) {
            unsafe bytes.withUnsafeBytes { unsafe update($0) }
        }
    }

    /// The ECMA-182 polynomial 0x42F0E1EBA9EA3693, bit-reversed.
    private static let reflectedPolynomial: UInt64 = 0xC96C_5795_D787_0F42

    /// Eight 256-entry tables, one after the other: table k gives the register change for a
    /// byte followed by k zero bytes.
    private static let tables: [UInt64] = {
        var tables = [UInt64](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt64(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1 }
            tables[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(k - 1) * 256 + byte]
                tables[k * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    private static func update(_ register: UInt64, with bytes: UnsafeRawBufferPointer) -> UInt64 {
        unsafe tables.withUnsafeBufferPointer { table in
            var crc = register
            var offset = 0
            while bytes.count - offset >= 8 {
                unsafe crc ^= UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                crc = unsafe table[7 * 256 + Int(crc & 0xFF)] ^ table[6 * 256 + Int((crc >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((crc >> 16) & 0xFF)] ^ table[4 * 256 + Int((crc >> 24) & 0xFF)]
                    ^ table[3 * 256 + Int((crc >> 32) & 0xFF)] ^ table[2 * 256 + Int((crc >> 40) & 0xFF)]
                    ^ table[1 * 256 + Int((crc >> 48) & 0xFF)] ^ table[Int(crc >> 56)]
                offset += 8
            }
            while offset < bytes.count {
                crc = unsafe table[Int((crc ^ UInt64(bytes[offset])) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
            return crc
        }
    }
}
