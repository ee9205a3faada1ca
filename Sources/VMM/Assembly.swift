import ArchX86
import CKVM
import DeviceModel
import LegacyDevices
import Loader

// Bring-up stand-ins for the loader, platform tables, CPUID templates and legacy devices;
// each is replaced when its target lands.

/// Turns the configuration's kernel, initrd, modules and command line into guest-RAM writes
/// and an entry state, through the Loader.
enum BootAssembly {
    static func plan(images: BootImages, configuration: VMConfiguration, memoryMap: MemoryMap, rsdpAddress: UInt64) throws(VMError) -> BootLayout {
        do {
            let commandLine = try KernelCommandLine(configuration.commandLine)
            let plan = try Loader.BootPlan(
                kernelImage: images.kernel, format: configuration.kernelFormat, initrd: images.initrd.map { $0[...] },
                modules: images.modules.map { BootModule(bytes: $0.bytes[...], commandLine: $0.commandLine) },
                commandLine: commandLine, memoryMap: memoryMap, rsdpAddress: rsdpAddress == 0 ? nil : rsdpAddress)
            let entry: BootEntry
            switch plan.entryState {
            case .longMode(let rip, let rsi): entry = .longMode(rip: rip, rsi: rsi)
            case .protectedMode(let eip, let eax, let ebx): entry = .protectedMode(rip: UInt64(eip), eax: eax, ebx: ebx)
            }
            return BootLayout(writes: plan.writes.map { ($0.address, $0.bytes, $0.zeroFill) }, entry: entry)
        } catch {
            throw VMError("\(configuration.kernelPath): \(error.message)")
        }
    }
}

struct PlatformTables {
    var writes: [(address: UInt64, bytes: [UInt8])]
    var rsdpAddress: UInt64
    static func build(vcpuCount: Int, memoryMap: MemoryMap) throws(VMError) -> PlatformTables {
        PlatformTables(writes: [], rsdpAddress: 0)
    }
}

enum GuestCPUID {
    static func entries(supported: [kvm_cpuid_entry2], template: CPUTemplateName, vcpuIndex: Int, vcpuCount: Int) -> [kvm_cpuid_entry2] {
        supported
    }
    static func bootMSRs() -> [(index: UInt32, value: UInt64)] { [] }
}

