import BinaryCoding
import Testing

struct CRC64Tests {
    /// Bit-at-a-time CRC-64/XZ, straight from the definition.
    static func reference(_ bytes: [UInt8]) -> UInt64 {
        var crc = UInt64.max
        for byte in bytes {
            crc ^= UInt64(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xC96C_5795_D787_0F42 : crc >> 1 }
        }
        return ~crc
    }

    @Test func checkValue() {
        #expect(CRC64.checksum(Array("123456789".utf8)) == 0x995D_C9BB_DF19_39FA)
        #expect(Self.reference(Array("123456789".utf8)) == 0x995D_C9BB_DF19_39FA)
    }

    @Test func emptyInput() {
        #expect(CRC64.checksum([]) == 0)
        #expect(CRC64.checksum([], seed: 0x1234) == 0x1234)
        #expect(CRC64.Hasher().value == 0)
    }

    @Test func matchesTheBitwiseDefinitionAtEveryLengthAndAlignment() {
        var random = SeededGenerator(seed: 64)
        let data = (0..<400).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        for length in 0...70 {
            for start in 0..<8 {
                let slice = Array(data[start..<(start + length)])
                let fromSlice = data.withUnsafeBytes { CRC64.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)])) }
                #expect(fromSlice == Self.reference(slice), "length \(length) at \(start)")
            }
        }
        #expect(CRC64.checksum(data) == Self.reference(data))
    }

    @Test func incrementalEqualsOneShotOverRandomSplits() {
        var random = SeededGenerator(seed: 0xC4C)
        let data = (0..<5000).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        let whole = CRC64.checksum(data)
        for _ in 0..<200 {
            var hasher = CRC64.Hasher()
            var offset = 0
            while offset < data.count {
                let end = min(data.count, offset + Int.random(in: 0...300, using: &random))
                hasher.update(Array(data[offset..<end]))
                offset = end
            }
            #expect(hasher.value == whole)
        }
    }

    @Test func seedContinuesAChecksum() {
        let first = Array("snapshot header".utf8)
        let second = [UInt8](repeating: 0xA5, count: 1000)
        #expect(CRC64.checksum(second, seed: CRC64.checksum(first)) == CRC64.checksum(first + second))
        var hasher = CRC64.Hasher(seed: CRC64.checksum(first))
        second.withUnsafeBytes { hasher.update($0) }
        #expect(hasher.value == CRC64.checksum(first + second))
    }
}
