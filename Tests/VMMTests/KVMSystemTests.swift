import Testing
@testable import KVM

struct KVMSystemTests {
    @Test func missingDeviceNamesTheFix() {
        #expect {
            _ = try KVMSystem(path: "/nonexistent/kvm")
        } throws: { error in
            let text = "\(error)"
            return text.contains("/nonexistent/kvm does not exist") && text.contains("modprobe")
        }
    }

    @Test func aFileThatIsNotKVMIsRefusedWithOneLine() {
        #expect {
            _ = try KVMSystem(path: "/dev/null")
        } throws: { error in
            let text = "\(error)"
            return text.contains("KVM_GET_API_VERSION") && !text.contains("\n")
        }
    }

    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func realKVMHasWhatSkiffNeeds() throws {
        let kvm = try KVMSystem()
        #expect(kvm.vcpuMmapSize >= 4096)
        #expect(kvm.maxVCPUs >= 1)
        let cpuid = try kvm.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        #expect(try !kvm.msrIndexList().isEmpty)
    }
}
