#if canImport(Glibc)
import Glibc
#endif
import ArchX86
import CSkiffSystem
import DeviceModel
import GuestMemory

/// The VM Generation ID: 16 random bytes at `Layout.vmGenerationIDAddress` that change
/// whenever the VM may be running a second time from the same state (snapshot restore,
/// fork), so the guest reseeds its random number generators and drops cached secrets.
/// A change is announced through the Generic Event Device interrupt.
struct GenerationID {
    /// The current ID as 16 bytes (little-endian GUID layout as stored in guest memory).
    private(set) var bytes: [UInt8]

    /// A fresh random ID.
    static func random() -> GenerationID {
        var b = [UInt8](repeating: 0, count: 16)
        unsafe b.withUnsafeMutableBytes { buf in
            var filled = 0
            while filled < 16 {
                let n = unsafe getrandom(buf.baseAddress.map { unsafe $0 + filled }, 16 - filled, 0)
                if n <= 0 { break }
                filled += n
            }
        }
        return GenerationID(bytes: b)
    }

    /// The ID as 32 hex digits.
    var hex: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Writes the ID into guest memory.
    func install(in memory: GuestMemory) throws(VMError) {
        do {
            try memory.write(bytes, at: Layout.vmGenerationIDAddress)
        } catch {
            throw VMError("cannot write the VM generation ID: \(error)")
        }
    }

    /// Tells the guest the ID changed (one edge on the GED interrupt).
    static func announce(on line: any InterruptLine) {
        line.pulse()
    }
}
