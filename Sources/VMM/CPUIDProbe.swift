import ArchX86
import CKVM
import DeviceModel
import KVM
import Synchronization

/// Runs a few instructions in a throw-away VM to read back the CPUID a guest really sees.
///
/// Some hosts' KVM lets host CPUID bits through even when KVM_SET_CPUID2 cleared them (XSAVE,
/// AVX, SMEP, SMAP, FSGSBASE …). The emulation assist must then treat those instructions as
/// present, and Linux guests need `noxsave`.
public enum CPUIDProbe {
    /// The (leaf, subleaf) pairs read back.
    static let leaves: [(UInt32, UInt32)] = [(1, 0), (7, 0), (0x8000_0001, 0)]
    static let dataPort: UInt16 = 0x510
    static let loadAddress: UInt64 = 0x100000

    /// What the probe found.
    public struct Result: Sendable {
        /// Registers per leaf as the guest read them.
        public var observed: [kvm_cpuid_entry2]
        /// Bits the guest saw that the CPUID table it was given does not have, per leaf.
        public var leaked: [(function: UInt32, register: String, bits: UInt32)]

        func bit(_ function: UInt32, _ register: String, _ bit: Int) -> Bool {
            leaked.contains { $0.function == function && $0.register == register && $0.bits & (1 << UInt32(bit)) != 0 }
        }

        /// Names of the leaked feature bits, e.g. ["xsave", "avx", "smap"].
        public var leakedFeatureNames: [String] {
            CPUIDFeature.all.filter { f in
                f.index == 0 && leaked.contains { $0.function == f.function && $0.register == f.register.rawValue && $0.bits & f.mask != 0 }
            }.map(\.name)
        }

        /// XSAVE (leaf 1 ECX bit 26) or OSXSAVE (bit 27) leaked.
        public var xsaveLeaks: Bool { bit(1, "ecx", 26) || bit(1, "ecx", 27) }
    }

    /// The probe program: CPUID for each leaf, its four registers written to `dataPort`, then a write to `dataPort + 4`.
    static func program() -> [UInt8] {
        var code: [UInt8] = []
        func imm32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func imm16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
        for (leaf, sub) in leaves {
            code += [0xb8] + imm32(leaf)          // mov eax, leaf
            code += [0xb9] + imm32(sub)           // mov ecx, subleaf
            code += [0x0f, 0xa2]                  // cpuid
            code += [0x66, 0xba] + imm16(dataPort)  // mov dx, port
            code += [0xef]                        // out dx, eax
            code += [0x89, 0xd8, 0xef]            // mov eax, ebx; out dx, eax
            code += [0x89, 0xc8, 0xef]            // mov eax, ecx; out dx, eax
            code += [0x89, 0xd0, 0xef]            // mov eax, edx; out dx, eax
        }
        code += [0x66, 0xba] + imm16(dataPort + 4) + [0xee]  // mov dx, port+4; out dx, al
        code += [0xf4, 0xeb, 0xfd]                // hlt; jmp hlt
        return code
    }

    /// Collects the dwords and stops the probe machine at the end.
    final class Sink: BusDevice, Sendable {
        let values = Mutex<[UInt32]>([])
        let control: any MachineControl
        init(control: any MachineControl) { self.control = control }
        func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
        func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
            if offset == 0, data.count == 4 {
                values.withLock { unsafe $0.append(data.loadUnaligned(as: UInt32.self)) }
            } else if offset == 4 {
                control.request(.powerOff)
            }
        }
    }

    /// Runs the probe with `cpuid` set on its vCPU.
    static func run(kvm: KVMSystem, cpuid: [kvm_cpuid_entry2]) throws(VMError) -> Result {
        let plan = BootLayout(writes: [(loadAddress, program()[...], 0)], entry: .protectedMode(rip: loadAddress, eax: 0, ebx: 0))
        let machine = try Machine(kvm: kvm, memorySize: 16 << 20, vcpuCount: 1, cpuid: [cpuid], msrs: [], plan: plan, platformTables: [])
        let sink = Sink(control: machine.control)
        do {
            try machine.pio.insert(sink, base: UInt64(dataPort), length: 8)
        } catch {
            throw VMError("CPUID probe: \(error)")
        }
        let outcome = machine.run()
        let values = sink.values.withLock { $0 }
        guard outcome == .powerOff, values.count == leaves.count * 4 else {
            throw VMError("CPUID probe did not complete: \(outcome)")
        }
        var observed: [kvm_cpuid_entry2] = []
        var leaked: [(UInt32, String, UInt32)] = []
        for (i, (leaf, sub)) in leaves.enumerated() {
            var e = kvm_cpuid_entry2()
            e.function = leaf
            e.index = sub
            e.eax = values[i * 4]
            e.ebx = values[i * 4 + 1]
            e.ecx = values[i * 4 + 2]
            e.edx = values[i * 4 + 3]
            observed.append(e)
            let set = cpuid.first { $0.function == leaf && $0.index == sub } ?? kvm_cpuid_entry2()
            // Leaf 1 EBX holds the APIC ID and counts, not features: compare feature registers only.
            for (name, seen, given) in [("ebx", e.ebx, set.ebx), ("ecx", e.ecx, set.ecx), ("edx", e.edx, set.edx)] {
                if leaf == 1 && name == "ebx" { continue }
                let extra = seen & ~given
                if extra != 0 { leaked.append((leaf, name, extra)) }
            }
        }
        return Result(observed: observed, leaked: leaked)
    }
}
