import ArchX86
import CKVM
import DeviceModel

// Bring-up stand-ins for the loader, platform tables, CPUID templates and legacy devices;
// each is replaced when its target lands.

enum BootAssembly {
    static func plan(images: BootImages, configuration: VMConfiguration, memoryMap: MemoryMap, rsdpAddress: UInt64) throws(VMError) -> BootPlan {
        throw VMError("kernel loading is not wired yet")
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

final class PlatformDevices: @unchecked Sendable {
    static func install(on machine: Machine, console: any ConsoleOutput, configuration: VMConfiguration) throws(VMError) -> PlatformDevices {
        PlatformDevices()
    }
    func sendConsoleInput(_ bytes: UnsafeRawBufferPointer) -> Int { bytes.count }
}
