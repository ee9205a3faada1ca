import ArchX86
import Foundation
import Testing
@testable import VMM

/// The Debian cloud kernel and initramfs that scripts/setup.sh fetches and builds.
enum LinuxKernel {
    static let directory = GuestKit.root.appendingPathComponent("artifacts/kernel")
    static var bzImage: String { directory.appendingPathComponent("vmlinuz").path }
    static var vmlinux: String { directory.appendingPathComponent("vmlinux").path }
    static var initramfs: String { GuestKit.root.appendingPathComponent("artifacts/initramfs.cpio").path }

    /// A command line for this machine's KVM: `noxsave` because XSAVE leaks into guests here
    /// (see docs), an early serial console, no KASLR so the decompressor says so.
    static func commandLine(_ extra: String = "") -> String {
        "console=ttyS0 earlyprintk=serial noxsave nokaslr panic=-1 i8042.noaux" + (extra.isEmpty ? "" : " " + extra)
    }

    static func require(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw GuestKit.KitMissing(path: path) }
        return path
    }

    /// The e820 lines Linux prints for Skiff's map of a VM with `memory` bytes.
    static func expectedE820Lines(memory: UInt64) throws -> [String] {
        try MemoryMap(ramSize: memory).e820.map { "BIOS-e820: \($0)" }
    }

    /// The `BIOS-e820:` lines in `output`, without the printk timestamp.
    static func printedE820Lines(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            guard let r = line.range(of: "BIOS-e820: ") else { return nil }
            return String(line[r.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
