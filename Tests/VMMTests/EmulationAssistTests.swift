import Foundation
import Testing
@testable import VMM

/// The emulation assist on real KVM: a guest full of instructions an emulating KVM lacks
/// passes with the assist on; with it off, such a host stops the VM with a clear message.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct EmulationAssistTests {
    /// Whether SMAP is in the CPUID the guest really sees (the probe reads it back): clac/stac
    /// then work, else they raise #UD.
    static func guestSeesSMAP(_ vm: VirtualMachine) throws -> Bool {
        let probe = try #require(vm.probe)
        let leaf7 = try #require(probe.observed.first { $0.function == 7 && $0.index == 0 })
        return leaf7.ebx & (1 << 20) != 0
    }

    @Test func assistGuestPassesWithTheAssist() throws {
        let run = try GuestKit.boot("assist.elf") { $0.emulationAssist = .on }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        for line in ["assist int3 ok", "assist bitcount ok", "assist sse ok", "assist ud2 ok", "assist fetch-fault ok"] {
            #expect(run.output.contains(line))
        }
        // One outcome, decided by what CPUID shows the guest.
        let expected = try Self.guestSeesSMAP(run.vm) ? "assist clac ok" : "assist clac ud"
        #expect(run.output.contains(expected), "\(run.output)")
        // The counters say exactly whether this host needed the assist.
        let assisted = run.vm.lastExitCounts["emulation-assist", default: 0]
        let summary = run.vm.emulationSummary
        if assisted > 0 {
            #expect(summary.contains("int3"), "\(summary)")
            #expect(summary.contains("unsupported 0"), "\(summary)")
        } else {
            #expect(summary.isEmpty, "no assist exits but a summary: \(summary)")
        }
    }

    /// A host whose KVM stops on the guest's instructions (it needed the assist above) stops the
    /// VM with RIP and bytes when the assist is off; a host that needed none runs the guest to a pass.
    @Test func withoutTheAssistAnEmulatingHostStopsWithRIPAndBytes() throws {
        let assisted = try GuestKit.boot("assist.elf") { $0.emulationAssist = .on }
        let hostNeedsAssist = assisted.vm.lastExitCounts["emulation-assist", default: 0] > 0
        let run = try GuestKit.boot("assist.elf") { $0.emulationAssist = .off }
        if hostNeedsAssist {
            guard case .failed(let message) = run.outcome else {
                Issue.record("this host needed the assist, yet without it the outcome was \(run.outcome): \(run.output)")
                return
            }
            #expect(message.contains("KVM_EXIT_INTERNAL_ERROR (emulation failure)"))
            #expect(message.contains("RIP 0x"))
            #expect(message.contains("(64-bit mode)"))
            #expect(message.contains("bytes at RIP: "))
        } else {
            #expect(run.outcome == GuestKit.passStatus, "this host needed no assist: \(run.outcome) \(run.output)")
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
