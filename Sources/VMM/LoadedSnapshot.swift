#if canImport(Glibc)
import Glibc
#endif
import ArchX86
import CKVM
import GuestMemory
import KVM
import Snapshot
import SystemExtras

/// A snapshot read from disk and checked before anything is built from it: every section
/// decoded and validated, the memory layout matching the VM's memory size, and for a diff
/// snapshot the chain of parents back to a full one, each the one its child names.
struct LoadedSnapshot {
    let directory: String
    let configuration: SavedConfiguration
    let image: MemoryImage
    let machine: MachineState
    let devices: PlatformDevicesState
    /// The memory images to layer, the full one first and this one last.
    let chain: [(directory: String, image: MemoryImage)]

    /// Longest chain of diff snapshots followed.
    static let maxChainLength = 32

    static func load(_ path: String) throws(VMError) -> LoadedSnapshot {
        do {
            return try load(VirtualMachine.absolutePath(path), depth: 0)
        } catch let e as SnapshotError {
            throw VMError(e.description)
        } catch let e as VMError {
            throw e
        } catch {
            throw VMError("\(error)")
        }
    }

    private static func load(_ directory: String, depth: Int) throws -> LoadedSnapshot {
        guard depth < maxChainLength else { throw SnapshotError.incompatible("more than \(maxChainLength) diff snapshots in a chain") }
        let bytes = try SnapshotDirectoryReader.readState(directory)
        let state = try SnapshotState(parsing: bytes, path: directory + "/" + SnapshotDirectoryWriter.stateFileName)
        let (configuration, image, machine, devices) = (state.configuration, state.image, state.machine, state.devices)
        var chain: [(String, MemoryImage)] = []
        switch (configuration.parent, image.pages) {
        case (nil, nil):
            chain = []
        case (let parent?, _?):
            let base = try load(parent.directory, depth: depth + 1)
            guard base.configuration.snapshotID == parent.snapshotID, base.image.digest == parent.memoryDigest else {
                throw SnapshotError.incompatible("the parent snapshot \(parent.directory) is not the one this diff was taken against")
            }
            guard base.image.regions == image.regions, base.configuration.memorySize == configuration.memorySize else {
                throw SnapshotError.incompatible("the parent snapshot \(parent.directory) has another memory layout")
            }
            chain = base.chain
        default:
            throw SnapshotError.invalid(section: SnapshotSection.memory, reason: "a diff image needs a parent and a page bitmap, a full image neither")
        }
        chain.append((directory, image))
        return LoadedSnapshot(directory: directory, configuration: configuration, image: image, machine: machine, devices: devices, chain: chain)
    }

    /// Refuses a snapshot whose vCPUs used CPUID features this host cannot give them.
    func checkHost(supportedCPUID: [kvm_cpuid_entry2], tscDeadline: Bool) throws(VMError) {
        try Self.checkHost(machine, template: configuration.cpuTemplate, supportedCPUID: supportedCPUID, tscDeadline: tscDeadline)
    }

    /// Refuses a saved machine whose vCPUs used CPUID features this host cannot give: the
    /// saved table is compared with the one this host builds for the same CPU template (the
    /// template decides what a guest may see; the host decides what it can have). Only
    /// feature words are compared; bits the VMM sets from other capabilities (hypervisor,
    /// x2APIC, TSC deadline, OSXSAVE, HTT) are not host features.
    static func checkHost(_ machine: MachineState, template name: String, supportedCPUID: [kvm_cpuid_entry2], tscDeadline: Bool) throws(VMError) {
        guard let leaves = machine.vcpus.first?.cpuid else { return }
        guard let template = CPUTemplate(rawValue: name) else { throw VMError("unknown CPU template '\(name)'") }
        let available = try GuestCPUID.entries(supported: supportedCPUID, template: template, vcpuIndex: 0, vcpuCount: machine.vcpus.count,
                                               tscDeadline: tscDeadline)
        struct Word {
            let function: UInt32
            let index: UInt32
            let register: String
            let ignored: UInt32
        }
        let words = [
            Word(function: 1, index: 0, register: "ecx", ignored: (1 << 21) | (1 << 24) | (1 << 27) | (1 << 31)),
            Word(function: 1, index: 0, register: "edx", ignored: 1 << 28),
            Word(function: 7, index: 0, register: "ebx", ignored: 0),
            Word(function: 7, index: 0, register: "ecx", ignored: 0),
            Word(function: 7, index: 0, register: "edx", ignored: 0),
            Word(function: 7, index: 1, register: "eax", ignored: 0),
            Word(function: 0xd, index: 1, register: "eax", ignored: 0),
            Word(function: 0x8000_0001, index: 0, register: "ecx", ignored: 0),
            Word(function: 0x8000_0001, index: 0, register: "edx", ignored: 0),
        ]
        func find<T>(_ list: [T], _ function: UInt32, _ index: UInt32, _ fn: (T) -> (UInt32, UInt32, UInt32)) -> T? {
            list.first { let (f, i, flags) = fn($0); return f == function && (i == index || flags & 1 == 0) }
        }
        func value(_ register: String, _ eax: UInt32, _ ebx: UInt32, _ ecx: UInt32, _ edx: UInt32) -> UInt32 {
            switch register {
            case "eax": return eax
            case "ebx": return ebx
            case "ecx": return ecx
            default: return edx
            }
        }
        var missing: [String] = []
        for w in words {
            guard let saved = find(leaves, w.function, w.index, { ($0.function, $0.index, $0.flags) }) else { continue }
            let host = find(available, w.function, w.index, { ($0.function, $0.index, $0.flags) })
            let want = value(w.register, saved.eax, saved.ebx, saved.ecx, saved.edx)
            let have = host.map { value(w.register, $0.eax, $0.ebx, $0.ecx, $0.edx) } ?? 0
            let lacking = want & ~have & ~w.ignored
            if lacking != 0 { missing.append("leaf 0x\(String(w.function, radix: 16)).\(w.index) \(w.register) bits 0x\(String(lacking, radix: 16))") }
        }
        if !missing.isEmpty {
            throw VMError("this host cannot run the VM: its \(name) CPU template lacks CPUID features the VM used (\(missing.joined(separator: "; "))); the baseline CPU template suits VMs that move between unlike hosts")
        }
    }

    /// Guest RAM built from the chain: the full image mapped MAP_PRIVATE (pages load lazily
    /// and stay shared with every other VM restored from it until written), then each diff's
    /// pages copied over it.
    func mapMemory() throws(VMError) -> GuestMemory {
        guard let root = chain.first else { throw VMError("snapshot has no memory image") }
        let memory: GuestMemory
        do {
            let fd = try SnapshotDirectoryReader.openMemory(root.directory, size: root.image.fileSize)
            let file = OwnedFileDescriptor(taking: fd)
            memory = try GuestMemory(mapping: file, ranges: root.image.regions.map { ($0.guestAddress, $0.size, $0.fileOffset) })
        } catch let e as SnapshotError {
            throw VMError(e.description)
        } catch let e as GuestMemoryError {
            throw .memory(e)
        } catch {
            throw VMError("\(error)")
        }
        for layer in chain.dropFirst() {
            try apply(layer.image, from: layer.directory, to: memory)
        }
        return memory
    }

    private func apply(_ image: MemoryImage, from directory: String, to memory: GuestMemory) throws(VMError) {
        guard let bitmap = image.pages else { return }
        let fd: Int32
        do {
            fd = try SnapshotDirectoryReader.openMemory(directory, size: image.fileSize)
        } catch {
            throw VMError(error.description)
        }
        defer { close(fd) }
        var page: UInt64 = 0
        for (region, target) in zip(image.regions, memory.regions) {
            let count = region.size / MemoryImage.pageSize
            for i in 0..<count {
                let bit = page + i
                guard bitmap[Int(bit >> 6)] & (1 << (bit & 63)) != 0 else { continue }
                let host = unsafe target.hostAddress + Int(i * MemoryImage.pageSize)
                var done = 0
                while done < Int(MemoryImage.pageSize) {
                    let n = unsafe pread(fd, host + done, Int(MemoryImage.pageSize) - done, off_t(region.fileOffset + i * MemoryImage.pageSize) + off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw VMError("\(directory)/memory: cannot read page \(bit)") }
                    done += n
                }
            }
            page += count
        }
    }
}

/// What a snapshot holds, for tools that act on it without restoring it (fork).
public struct SnapshotDescription: Sendable {
    public struct Disk: Sendable, Equatable {
        public var path: String
        public var format: String
        public var readOnly: Bool
    }
    public var memorySize: UInt64
    public var vcpuCount: Int
    public var disks: [Disk]
    public var networkInterfaces: [String]
    public var vsockCID: UInt32?
    public var isDiff: Bool

    /// Reads and checks the snapshot at `directory`.
    public static func read(_ directory: String) throws(VMError) -> SnapshotDescription {
        let s = try LoadedSnapshot.load(directory)
        var disks: [Disk] = []
        var taps: [String] = []
        var cid: UInt32?
        for d in s.configuration.devices {
            switch d {
            case .block(let path, let format, let readOnly, _): disks.append(Disk(path: path, format: format, readOnly: readOnly))
            case .net(let tap, _): taps.append(tap)
            case .vsock(let c, _): cid = c
            default: break
            }
        }
        return SnapshotDescription(memorySize: s.configuration.memorySize, vcpuCount: s.configuration.vcpuCount, disks: disks,
                                   networkInterfaces: taps, vsockCID: cid, isDiff: s.chain.count > 1)
    }
}
