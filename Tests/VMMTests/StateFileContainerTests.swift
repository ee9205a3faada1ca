import BinaryCoding
import Snapshot
import Testing

/// The state file's container on its own (no VM needed).
struct StateFileContainerTests {
    /// A two-section file; `edit` changes its bytes, then the trailer checksum is made right again.
    static func file(_ edit: (inout [UInt8]) -> Void = { _ in }) throws -> [UInt8] {
        var file = StateFile()
        try file.add("memory", [UInt64(1), 2, 3])
        try file.add("devices", "state")
        var bytes = file.serialized()
        edit(&bytes)
        let trailer = bytes.count - 16
        let crc = CRC64.checksum(Array(bytes[0..<trailer]))
        for i in 0..<8 { bytes[trailer + 8 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt64(i))) }
        return bytes
    }

    /// Found by the snapshot-state fuzz target: bytes after the NUL that ends a section name
    /// were dropped, so two different files read as the same state.
    @Test func aSectionNameMustBeNULPadded() throws {
        let good = try Self.file()
        let parsed = try StateFile(parsing: good, path: "state", known: ["memory", "devices"])
        #expect(parsed.serialized() == good)
        // "memory\0" then 0xff in the padding of the first section's name field (offset 16).
        let padded = try Self.file { $0[16 + 8] = 0xff }
        #expect(throws: SnapshotError.sections("a section name is not NUL-padded")) {
            try StateFile(parsing: padded, path: "state", known: ["memory", "devices"])
        }
    }
}
