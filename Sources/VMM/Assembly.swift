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
    /// - Parameter linuxOptions: options added to a Linux kernel's command line (bzImage or
    ///   PVH) unless already there, e.g. `noxsave` on hosts that leak XSAVE.
    static func plan(images: BootImages, configuration: VMConfiguration, memoryMap: MemoryMap, rsdpAddress: UInt64,
                     linuxOptions: [String] = []) throws(VMError) -> BootLayout {
        do {
            var commandLine = try KernelCommandLine(configuration.commandLine)
            let kernel = try KernelImage.parse(images.kernel, memoryMap: memoryMap, format: configuration.kernelFormat)
            if kernel.isLinux {
                for option in linuxOptions { try commandLine.append(option) }
            }
            // Multiboot kernels and modules get their file names in front of their command lines,
            // as GRUB and QEMU pass them (the first word is argv[0]).
            let plan = try Loader.BootPlan(
                kernel: kernel, initrd: images.initrd.map { $0[...] },
                modules: zip(images.modules, configuration.modules).map {
                    BootModule(bytes: $0.bytes[...], commandLine: $0.commandLine, fileName: $1.path)
                },
                commandLine: commandLine, memoryMap: memoryMap, rsdpAddress: rsdpAddress == 0 ? nil : rsdpAddress,
                kernelFileName: configuration.kernelPath, initrdFileName: configuration.initrdPath)
            let entry: BootEntry
            switch plan.entryState {
            case .longMode(let rip, let rsi): entry = .longMode(rip: rip, rsi: rsi)
            case .protectedMode(let eip, let eax, let ebx): entry = .protectedMode(rip: UInt64(eip), eax: eax, ebx: ebx)
            }
            var layout = BootLayout(writes: plan.writes.map { ($0.address, $0.bytes, $0.zeroFill) }, entry: entry)
            layout.isLinux = kernel.isLinux
            return layout
        } catch {
            throw VMError("\(configuration.kernelPath): \(error.message)")
        }
    }
}

/// The firmware tables a guest reads: ACPI (RSDP, XSDT, FADT, MADT, DSDT, MCFG) in the
/// BIOS area and the Intel MP table in the EBDA.
struct PlatformTables {
    var writes: [(address: UInt64, bytes: [UInt8])]
    var rsdpAddress: UInt64

    /// Start of the 64-bit PCI window: the first 1 GiB boundary above RAM (at least 4 GiB + RAM above it).
    static func pciMMIO64Start(memoryMap: MemoryMap) -> UInt64 {
        let end = max(memoryMap.ramEnd, Layout.highRAMStart)
        return (end + (1 << 30) - 1) & ~((1 << 30) - 1)
    }

    static let pciMMIO64Size: UInt64 = 64 << 30

    static func build(vcpuCount: Int, memoryMap: MemoryMap, cpuid: [CPUIDEntry], pciSlots: [UInt8]) throws(VMError) -> PlatformTables {
        let routes = pciSlots.flatMap { slot in PCIInterruptRoute.swizzled(devices: slot...slot) }
        var bridge = PCIHostBridge(mmio64: AddressWindow(base: pciMMIO64Start(memoryMap: memoryMap), size: pciMMIO64Size),
                                   interruptRoutes: PCIInterruptRoute.swizzled())
        bridge.mmio32 = AddressWindow(base: Layout.pciMMIO32Start, size: Layout.pciMMIO32Size)
        let acpi: ACPITables
        do {
            var configuration = ACPIConfiguration(vcpuCount: vcpuCount, pciHostBridge: bridge)
            configuration.extraDevices = [
                try PlatformEvents.generationIDDevice(address: Layout.vmGenerationIDAddress),
                try PlatformEvents.powerButtonDevice(),
                try PlatformEvents.genericEventDevice([
                    .init(gsi: Layout.generationIDEventGSI, device: "\\_SB_.VGEN"),
                    .init(gsi: Layout.powerButtonEventGSI, device: "\\_SB_.PWRB"),
                ]),
            ]
            acpi = try ACPITables.build(configuration)
        } catch {
            throw VMError("cannot build ACPI tables: \(error)")
        }
        var mp = MPTableConfiguration(vcpuCount: vcpuCount, cpuid: cpuid)
        mp.pciBus = true
        mp.pciInterruptRoutes = routes
        let mpTable: MPTable
        do {
            mpTable = try MPTable.build(mp)
        } catch {
            throw VMError("cannot build the MP table: \(error)")
        }
        // The reset vector stub: Linux reboots by jumping there when no other method was tried first.
        return PlatformTables(writes: acpi.placements + [(mpTable.address, mpTable.bytes), (ResetVector.address, ResetVector.code())],
                              rsdpAddress: acpi.rsdpAddress)
    }
}

/// Guest CPUID from KVM's supported set and a template, and the boot MSRs.
enum GuestCPUID {
    static func entries(supported: [kvm_cpuid_entry2], template: CPUTemplate, vcpuIndex: Int, vcpuCount: Int, tscDeadline: Bool) throws(VMError) -> [kvm_cpuid_entry2] {
        do {
            let built = try template.entries(
                supported: supported.map(cpuidEntry), vcpuIndex: vcpuIndex, vcpuCount: vcpuCount,
                apicID: CPUTopology.apicID(ofVCPU: vcpuIndex), options: CPUIDOptions(tscDeadlineTimer: tscDeadline, brandString: "Skiff Virtual CPU"))
            return built.map(kvmEntry)
        } catch {
            throw VMError("cannot build CPUID for vCPU \(vcpuIndex): \(error)")
        }
    }

    static func cpuidEntry(_ e: kvm_cpuid_entry2) -> CPUIDEntry {
        CPUIDEntry(function: e.function, index: e.index, flags: e.flags, eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx)
    }

    static func kvmEntry(_ e: CPUIDEntry) -> kvm_cpuid_entry2 {
        var k = kvm_cpuid_entry2()
        k.function = e.function
        k.index = e.index
        k.flags = e.flags
        k.eax = e.eax
        k.ebx = e.ebx
        k.ecx = e.ecx
        k.edx = e.edx
        return k
    }

    static func bootMSRs() -> [(index: UInt32, value: UInt64)] {
        BootMSRs.entries().map { ($0.index, $0.value) }
    }
}
