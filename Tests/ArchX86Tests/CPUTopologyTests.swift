import Testing

@testable import ArchX86

@Suite("CPUID topology")
struct CPUTopologyTests {
    static let counts = [1, 2, 3, 4, 8, 13, 64, 128, 129, 254]

    @Test("core-ID bits are ceil(log2(count))")
    func coreBits() {
        #expect([1, 2, 3, 4, 5, 8, 9, 128, 129, 254].map { CPUTopology.coreIDBits(vcpuCount: $0) } == [0, 1, 2, 2, 3, 3, 4, 7, 8, 8])
    }

    @Test("leaves 0xB and 0x1F describe one package of single-thread cores", arguments: counts)
    func extendedTopology(vcpus: Int) throws {
        let bits = UInt32(CPUTopology.coreIDBits(vcpuCount: vcpus))
        for template in CPUTemplate.allCases {
            for index in Set([0, vcpus / 2, vcpus - 1]) {
                let apicID = CPUTopology.apicID(ofVCPU: index)
                let out = try template.entries(supported: CPUIDFixtures.intelXeon, vcpuIndex: index, vcpuCount: vcpus, apicID: apicID)
                let functions: [UInt32] = template == .host ? [0xB, 0x1F] : [0xB]
                for function in functions {
                    let levels = out.filter { $0.function == function }
                    #expect(levels.count == 3)
                    #expect(levels.allSatisfy { $0.flags == CPUIDEntry.significantIndex && $0.edx == apicID })
                    #expect(levels[0].eax == 0 && levels[0].ebx == 1 && levels[0].ecx == 0x100)
                    #expect(levels[1].eax == bits && levels[1].ebx == UInt32(vcpus) && levels[1].ecx == 0x201)
                    #expect(levels[2].ebx == 0 && levels[2].ecx == 2, "terminating level: type 0, subleaf 2")
                    #expect(apicID >> levels[1].eax == 0, "every vCPU is in package 0")
                }
                #expect((out.leaf(1)?.ebx ?? 0) >> 24 == apicID)
                // Leaf 4: L1 and L2 private, L3 shared by all vCPUs; cores per package.
                for cache in out.filter({ $0.function == 4 && $0.eax & 0x1F != 0 }) {
                    let level = (cache.eax >> 5) & 7
                    let sharing = (cache.eax >> 14) & 0xFFF
                    #expect(sharing == (level == 3 ? UInt32(vcpus - 1) : 0))
                    #expect(cache.eax >> 26 == min(UInt32(vcpus - 1), 63))
                }
            }
        }
    }

    @Test("AMD: NC and APIC-ID size, cache sharing, extended APIC ID", arguments: counts)
    func amdTopology(vcpus: Int) throws {
        let bits = UInt32(CPUTopology.coreIDBits(vcpuCount: vcpus))
        for index in Set([0, vcpus - 1]) {
            let apicID = CPUTopology.apicID(ofVCPU: index)
            let out = try CPUTemplate.host.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: index, vcpuCount: vcpus, apicID: apicID)
            #expect(out.leaf(0x8000_0008)?.ecx == (bits << 12) | UInt32(vcpus - 1))
            let extended = try #require(out.leaf(0x8000_001E))
            #expect(extended.eax == apicID)
            #expect(extended.ebx == UInt32(index), "core ID, one thread per core")
            #expect(extended.ecx == 0 && extended.edx == 0)
            for cache in out.filter({ $0.function == 0x8000_001D && $0.eax & 0x1F != 0 }) {
                let level = (cache.eax >> 5) & 7
                #expect((cache.eax >> 14) & 0xFFF == (level == 3 ? UInt32(vcpus - 1) : 0))
            }
            #expect(out.filter { $0.function == 0xB }.count == 3)
            #expect(out.leaf(0xB, 1)?.eax == bits, "leaf 0xB agrees with ApicIdCoreIdSize")
        }
    }

    @Test("every vCPU of a VM gets a distinct APIC ID in every place it appears")
    func distinctIDs() throws {
        let vcpus = 6
        var seen: Set<UInt32> = []
        for index in 0..<vcpus {
            let apicID = CPUTopology.apicID(ofVCPU: index)
            let out = try CPUTemplate.host.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: index, vcpuCount: vcpus, apicID: apicID)
            let ids = [try #require(out.leaf(1)).ebx >> 24, try #require(out.leaf(0xB)).edx, try #require(out.leaf(0x8000_001E)).eax]
            #expect(Set(ids).count == 1)
            seen.insert(ids[0])
        }
        #expect(seen == Set((0..<vcpus).map { UInt32($0) }))
    }
}
