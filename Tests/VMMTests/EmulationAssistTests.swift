import Foundation
import Testing
@testable import VMM

/// The emulation assist on real KVM: a guest full of instructions an emulating KVM lacks
/// passes with the assist on; with it off, such a host stops the VM with a clear message.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct EmulationAssistTests {
    @Test func assistGuestPassesWithTheAssist() throws {
        let run = try GuestKit.boot("assist.elf") { $0.emulationAssist = .on }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        for line in ["assist int3 ok", "assist bitcount ok", "assist sse ok", "assist ud2 ok", "assist fetch-fault ok"] {
            #expect(run.output.contains(line))
        }
        #expect(run.output.contains("assist clac ok") || run.output.contains("assist clac ud"))
        // Where the host needed help, the counters name what was completed.
        let summary = run.vm.emulationSummary
        if !summary.isEmpty {
            #expect(summary.contains("int3"), "\(summary)")
            #expect(summary.contains("unsupported 0"), "\(summary)")
        }
    }

    @Test func withoutTheAssistAnEmulatingHostStopsWithRIPAndBytes() throws {
        let run = try GuestKit.boot("assist.elf") { $0.emulationAssist = .off }
        switch run.outcome {
        case GuestKit.passStatus:
            break  // a host that runs every instruction itself
        case .failed(let message):
            #expect(message.contains("KVM_EXIT_INTERNAL_ERROR (emulation failure)"))
            #expect(message.contains("RIP 0x"))
            #expect(message.contains("(64-bit mode)"))
            #expect(message.contains("bytes at RIP: "))
        default:
            Issue.record("unexpected outcome \(run.outcome): \(run.output)")
        }
    }

    @Test func cpuidProbeReadsBackWhatTheGuestSees() throws {
        let run = try GuestKit.boot("hello.elf") { $0.emulationAssist = .auto }
        let probe = try #require(run.vm.probe)
        let leaf1 = try #require(probe.observed.first { $0.function == 1 })
        // Skiff sets the hypervisor bit in every template.
        #expect(leaf1.ecx & (1 << 31) != 0)
        // Every leaked feature is named, and XSAVE leaking implies noxsave would be added for Linux.
        #expect(probe.leaked.isEmpty == probe.leakedFeatureNames.isEmpty)
        #expect(run.vm.addedKernelOptions.isEmpty)  // multiboot guests keep their command line
    }

    @Test func linuxGetsNoxsaveOnlyWhenXSAVELeaks() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.vmlinux)
        let vm = try VirtualMachine(configuration: VMConfiguration(kernelPath: kernel, commandLine: "console=ttyS0", memorySize: 256 << 20),
                                    console: CapturedConsoleOutput())
        let probe = try #require(vm.probe)
        #expect(vm.addedKernelOptions == (probe.xsaveLeaks ? ["noxsave"] : []))
        vm.stop()
    }
}
