import BinaryCoding
import Snapshot
import VMM

/// The snapshot state file as a restore reads it: `StateFile`'s container (magic, version,
/// sections with lengths and checksums, trailer), then every section decoded and validated
/// (`SnapshotState`: configuration, memory image, vCPUs and in-kernel devices, platform and
/// virtio devices).
///
/// Input: a mode byte, then the file. With mode bit 0 set the harness first recomputes each
/// section's checksum and the trailer's (as far as the section headers lead), so mutations of
/// a real file get past the checksums to the decoders and validating constructors.
///
/// Properties: the container refuses with a `SnapshotError` and the checked state with a
/// `SnapshotError` or `VMError` (nothing else, no trap); a file the container accepts is
/// canonical (written again it is the same bytes); a state that passes every check, written
/// again as a snapshot writes it, reads back equal.
enum SnapshotStateHarness {
    static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        var input = FuzzInput(data)
        let mode = input.u8()
        var bytes = input.rest()
        if mode & 1 != 0 { repairChecksums(&bytes) }

        let file: StateFile
        do {
            file = try StateFile(parsing: bytes, path: "state", known: ["configuration", "memory", "machine", "devices"])
        } catch {
            // Typed: a SnapshotError. The checked parse must refuse the same file too.
            do {
                _ = try SnapshotState(parsing: bytes, path: "state")
                throw FuzzInvariantViolation("the state was accepted although its container was refused (\(error))")
            } catch let violation as FuzzInvariantViolation {
                throw violation
            } catch {}
            return
        }
        let written = file.serialized()
        try require(written == bytes, "an accepted state file is not canonical: written again it is \(written.count) bytes, read \(bytes.count)")

        let state: SnapshotState
        do {
            state = try SnapshotState(parsing: bytes, path: "state")
        } catch is SnapshotError {
            return
        } catch is VMError {
            return
        } catch {
            throw FuzzInvariantViolation("refused with an untyped error: \(type(of: error)): \(error)")
        }
        let again: [UInt8]
        do {
            again = try state.serialized()
        } catch {
            throw FuzzInvariantViolation("an accepted state cannot be written again: \(error)")
        }
        do {
            let reread = try SnapshotState(parsing: again, path: "state")
            try require(reread == state, "a state written again reads back different")
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            throw FuzzInvariantViolation("a state written again is refused: \(error)")
        }
    }

    /// Sets each section's CRC-64 to its payload's and the trailer's to the file's, as far as
    /// the section headers stay within the file.
    static func repairChecksums(_ bytes: inout [UInt8]) {
        guard bytes.count >= 32 else { return }
        let trailerStart = bytes.count - 16
        let count = Int(read32(bytes, 12))
        var offset = 16
        for _ in 0..<min(count, 64) {
            guard trailerStart - offset >= 32 else { break }
            let length = read64(bytes, offset + 16)
            let payloadStart = offset + 32
            guard length <= UInt64(trailerStart - payloadStart) else { break }
            let end = payloadStart + Int(length)
            let crc = CRC64.checksum(Array(bytes[payloadStart..<end]))
            write64(&bytes, offset + 24, crc)
            offset = end
        }
        write64(&bytes, trailerStart + 8, CRC64.checksum(Array(bytes[0..<trailerStart])))
    }

    static func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }

    static func read64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }

    static func write64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
        for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
}
