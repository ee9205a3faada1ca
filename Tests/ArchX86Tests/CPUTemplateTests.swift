import Testing

@testable import ArchX86

extension Array where Element == CPUIDEntry {
    func leaf(_ function: UInt32, _ index: UInt32 = 0) -> CPUIDEntry? {
        first { $0.function == function && $0.index == index }
    }

    func has(_ feature: CPUIDFeature) -> Bool { feature.isSet(in: self) }
}

/// Every fixture × template × a few VM sizes.
let templateCases: [(fixture: String, template: CPUTemplate, vcpus: Int)] = CPUIDFixtures.all.flatMap { fixture in
    CPUTemplate.allCases.flatMap { template in [1, 2, 5, 64].map { (fixture.name, template, $0) } }
}

func fixture(_ name: String) -> (entries: [CPUIDEntry], vendor: CPUVendor) {
    let match = CPUIDFixtures.all.first { $0.name == name }
    return (match?.entries ?? [], match?.vendor ?? .other(""))
}

@Suite("CPUID templates")
struct CPUTemplateTests {
    @Test("fixtures name their vendor")
    func vendors() {
        for fixture in CPUIDFixtures.all {
            #expect(CPUVendor(cpuid: fixture.entries) == fixture.vendor, "\(fixture.name)")
        }
    }

    @Test("invariants of every template on every fixture", arguments: templateCases)
    func invariants(fixtureName: String, template: CPUTemplate, vcpus: Int) throws {
        let (supported, _) = fixture(fixtureName)
        for index in Set([0, vcpus - 1]) {
            let apicID = CPUTopology.apicID(ofVCPU: index)
            let out = try template.entries(supported: supported, vcpuIndex: index, vcpuCount: vcpus, apicID: apicID)

            // Sorted, unique (leaf, subleaf) keys.
            let keys = out.map { [$0.function, $0.index] }
            #expect(keys == keys.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) })
            #expect(Set(keys).count == keys.count)

            // Nothing appears that KVM did not report, except the synthesized topology subleaves.
            for entry in out where supported.leaf(entry.function, entry.index) == nil {
                #expect([0xB, 0x1F].contains(entry.function), "unexpected \(entry)")
            }

            // Feature registers are subsets of what KVM supports, apart from the documented additions.
            let synthesized = CPUTemplate.alwaysSet + [.htt]
            for word in CPUTemplate.featureRegisters {
                guard let produced = out.leaf(word.function, word.index), let available = supported.leaf(word.function, word.index) else { continue }
                let allowedExtra = synthesized.filter { $0.function == word.function && $0.index == word.index && $0.register == word.register }
                    .reduce(UInt32(0)) { $0 | $1.mask }
                let gained = produced[word.register] & ~available[word.register] & ~allowedExtra
                #expect(gained == 0, "\(template) gained bits 0x\(String(gained, radix: 16)) in leaf 0x\(String(word.function, radix: 16)) \(word.register)")
            }

            // Leaf 0 and 0x8000_0000: vendor kept, maximum leaf clamped and covering every entry.
            let leaf0 = try #require(out.leaf(0))
            let supportedLeaf0 = try #require(supported.leaf(0))
            #expect((leaf0.ebx, leaf0.ecx, leaf0.edx) == (supportedLeaf0.ebx, supportedLeaf0.ecx, supportedLeaf0.edx))
            #expect(leaf0.eax <= supportedLeaf0.eax)
            #expect(out.filter { $0.function < 0x4000_0000 }.allSatisfy { $0.function <= leaf0.eax })
            if let ext = out.leaf(0x8000_0000) {
                let supportedExt = try #require(supported.leaf(0x8000_0000))
                #expect(ext.eax <= supportedExt.eax)
                #expect(out.filter { $0.function >= 0x8000_0000 }.allSatisfy { $0.function <= ext.eax })
            }

            // Leaf 1: signature kept, APIC ID, CLFLUSH size, logical count, HTT, hypervisor.
            let leaf1 = try #require(out.leaf(1))
            #expect(leaf1.eax == supported.leaf(1)?.eax)
            #expect(leaf1.ebx >> 24 == apicID)
            #expect((leaf1.ebx >> 8) & 0xFF == 8)
            let logical = (leaf1.ebx >> 16) & 0xFF
            #expect(logical >= UInt32(vcpus) && logical.nonzeroBitCount == 1)
            #expect(out.has(.hypervisor))
            #expect(out.has(.htt) == (vcpus > 1))
            #expect(out.has(.fdpExceptionOnly) && out.has(.zeroFCSFDS))

            // Nothing on the always-cleared list survives; PMU, MONITOR and SVM leaves are empty.
            for feature in CPUTemplate.alwaysCleared {
                #expect(!out.has(feature), "\(feature) must be cleared")
            }
            for function: UInt32 in [0x5, 0xA, 0x8000_000A] {
                for entry in out where entry.function == function {
                    #expect(entry.eax == 0 && entry.ebx == 0 && entry.ecx == 0 && entry.edx == 0, "leaf 0x\(String(function, radix: 16))")
                }
            }

            // KVM signature leaf.
            let kvm = try #require(out.leaf(0x4000_0000))
            #expect(kvm.eax >= 0x4000_0001)
            #expect((kvm.ebx, kvm.ecx, kvm.edx) == (0x4B4D_564B, 0x564B_4D56, 0x4D))
            #expect(out.leaf(0x4000_0001) != nil)
        }
    }

    @Test("baseline drops CX16, the XSAVE family and the rest of its deny list", arguments: CPUIDFixtures.all.map(\.name))
    func baselineDenyList(fixtureName: String) throws {
        let (supported, _) = fixture(fixtureName)
        let out = try CPUTemplate.baseline.entries(supported: supported, vcpuIndex: 0, vcpuCount: 2, apicID: 0)
        let denied: [CPUIDFeature] = [
            .cx16, .xsave, .osxsave, .avx, .avx2, .avx512f, .avx512bw, .avx512vl, .fma, .f16c, .aes, .pclmulqdq, .movbe,
            .pcid, .rdrand, .rdseed, .smep, .smap, .fsgsbase, .invpcid, .pku, .umip, .la57, .rdpid, .bmi1, .bmi2, .adx,
            .sha, .vaes, .vpclmulqdq, .gfni, .clflushopt, .clwb, .tscAdjust, .rtm, .hle, .amxTile, .serialize, .movdiri,
            .abm, .sse4a, .prefetchw, .topologyExtensions, .mmxExt, .fxsrOpt, .page1GB, .invariantTSC, .clzero, .wbnoinvd,
            .selfSnoop, .kvmMSIExtDestID,
        ]
        for feature in denied {
            #expect(!out.has(feature), "baseline must clear \(feature)")
        }
        #expect(try #require(out.leaf(0)).eax <= 0xD)
        #expect(try #require(out.leaf(0x8000_0000)).eax <= 0x8000_0008)
        #expect(try #require(out.leaf(0x4000_0000)).eax == 0x4000_0001)
        for entry in out where entry.function == 0xD || (entry.function == 7 && entry.index > 0) {
            #expect(entry == entry.zeroed, "\(entry) must be zero")
        }
        #expect(out.leaf(7)?.eax == 0)
        #expect(out.leaf(0x1F) == nil && out.leaf(0x8000_001E) == nil && out.leaf(0x8000_001D, 0) == nil)
        #expect(out.leaf(0x8000_0007).map { $0 == $0.zeroed } ?? true)
    }

    @Test("baseline keeps its allow-list where KVM supports it")
    func baselineKeeps() throws {
        let intel = try CPUTemplate.baseline.entries(supported: CPUIDFixtures.intelXeon, vcpuIndex: 0, vcpuCount: 1, apicID: 0)
        for feature: CPUIDFeature in [
            .fpu, .tsc, .msr, .pae, .cx8, .apic, .sep, .cmov, .pat, .clflush, .mmx, .fxsr, .sse, .sse2, .sse3, .ssse3,
            .sse4_1, .sse4_2, .popcnt, .x2apic, .tscDeadline, .arat, .erms, .fsrm, .mdClear, .specCtrl, .stibp, .flushL1D,
            .archCapabilities, .ssbd, .lahfLM, .syscall, .nx, .rdtscp, .lm, .kvmClock2, .kvmPVUnhalt, .kvmClockStable,
        ] {
            #expect(intel.has(feature), "baseline should keep \(feature)")
        }
        // The nested capture lacks SSE3, SSSE3 and POPCNT: the baseline does not add them.
        let nested = try CPUTemplate.baseline.entries(supported: CPUIDFixtures.nestedAMDEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0)
        #expect(!nested.has(.sse3) && !nested.has(.ssse3) && !nested.has(.popcnt))
        #expect(nested.has(.x2apic) && nested.has(.tscDeadline) && nested.has(.lm))
    }

    @Test("host keeps what KVM supports but removes nesting, PMU, waits and dynamic bits")
    func hostTemplate() throws {
        let intel = try CPUTemplate.host.entries(supported: CPUIDFixtures.intelXeon, vcpuIndex: 0, vcpuCount: 4, apicID: 0)
        for feature: CPUIDFeature in [.cx16, .xsave, .avx, .avx2, .avx512f, .amxTile, .smep, .smap, .fsgsbase, .pku, .la57, .invariantTSC, .pcid] {
            #expect(intel.has(feature), "host should keep \(feature)")
        }
        #expect(!intel.has(.vmx) && !intel.has(.pdcm) && !intel.has(.waitpkg) && !intel.has(.osxsave))
        #expect(intel.leaf(0)?.eax == 0x1F)
        #expect(intel.leaf(7, 1) == CPUIDFixtures.intelXeon.leaf(7, 1))
        for index: UInt32 in [0, 1, 2, 5, 6, 7, 9] {
            #expect(intel.leaf(0xD, index) == CPUIDFixtures.intelXeon.leaf(0xD, index), "XSAVE leaf passes through")
        }
        #expect(intel.leaf(0xA) == CPUIDEntry(function: 0xA))

        let amd = try CPUTemplate.host.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 4, apicID: 0)
        #expect(!amd.has(.svm) && !amd.has(.perfctrCore))
        #expect(amd.has(.topologyExtensions) && amd.has(.avx2) && amd.has(.cx16))
        #expect(amd.leaf(0x8000_000A) == CPUIDEntry(function: 0x8000_000A))
        #expect(amd.leaf(5) == CPUIDEntry(function: 5))
    }

    @Test("ARCH_CAPABILITIES is hidden on AMD, where KVM reports it without hardware support")
    func archCapabilities() throws {
        for template in CPUTemplate.allCases {
            let amd = try template.entries(supported: CPUIDFixtures.nestedAMDEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0)
            #expect(CPUIDFixtures.nestedAMDEPYC.has(.archCapabilities))
            #expect(!amd.has(.archCapabilities))
            let intel = try template.entries(supported: CPUIDFixtures.intelXeon, vcpuIndex: 0, vcpuCount: 1, apicID: 0)
            #expect(intel.has(.archCapabilities))
        }
    }

    @Test("CmpLegacy only on AMD with several vCPUs")
    func cmpLegacy() throws {
        for template in CPUTemplate.allCases {
            #expect(try template.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 2, apicID: 0).has(.cmpLegacy))
            #expect(!(try template.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0).has(.cmpLegacy)))
            var fakeIntel = CPUIDFixtures.intelXeon
            if let i = fakeIntel.firstIndex(where: { $0.function == 0x8000_0001 }) { fakeIntel[i].ecx |= CPUIDFeature.cmpLegacy.mask }
            #expect(!(try template.entries(supported: fakeIntel, vcpuIndex: 0, vcpuCount: 2, apicID: 0).has(.cmpLegacy)))
        }
    }

    @Test("CX16: cleared by baseline, kept by host on the nested capture that supports it")
    func cx16OnNestedHost() throws {
        #expect(CPUIDFixtures.nestedAMDEPYC.has(.cx16))
        #expect(!(try CPUTemplate.baseline.entries(supported: CPUIDFixtures.nestedAMDEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0).has(.cx16)))
        #expect(try CPUTemplate.host.entries(supported: CPUIDFixtures.nestedAMDEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0).has(.cx16))
    }

    @Test("hybrid core types are hidden and leaf 0x1A zeroed")
    func hybrid() throws {
        var supported = CPUIDFixtures.intelXeon
        if let i = supported.firstIndex(where: { $0.function == 7 && $0.index == 0 }) { supported[i].edx |= CPUIDFeature.hybrid.mask }
        supported.append(CPUIDEntry(function: 0x1A, eax: 0x2000_0000))
        let out = try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 2, apicID: 0)
        #expect(!out.has(.hybrid))
        #expect(out.leaf(0x1A) == CPUIDEntry(function: 0x1A))
    }

    @Test("options: TSC deadline from the capability, brand string")
    func options() throws {
        #expect(!CPUIDFixtures.amdEPYC.has(.tscDeadline))
        for template in CPUTemplate.allCases {
            #expect(!(try template.entries(supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0).has(.tscDeadline)))
            let withCap = try template.entries(
                supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0, options: CPUIDOptions(tscDeadlineTimer: true))
            #expect(withCap.has(.tscDeadline))
        }
        let brand = "Skiff Virtual CPU @ 2.00GHz"
        let out = try CPUTemplate.baseline.entries(
            supported: CPUIDFixtures.amdEPYC, vcpuIndex: 0, vcpuCount: 1, apicID: 0, options: CPUIDOptions(brandString: brand))
        var bytes: [UInt8] = []
        for function: UInt32 in 0x8000_0002...0x8000_0004 {
            let entry = try #require(out.leaf(function))
            for value in [entry.eax, entry.ebx, entry.ecx, entry.edx] {
                for shift: UInt32 in [0, 8, 16, 24] { bytes.append(UInt8((value >> shift) & 0xFF)) }
            }
        }
        #expect(bytes.count == 48)
        #expect(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) == brand)
        #expect(bytes.dropFirst(brand.utf8.count).allSatisfy { $0 == 0 })
    }

    @Test("invalid inputs are errors")
    func errors() {
        let supported = CPUIDFixtures.intelXeon
        #expect(throws: CPUIDError.invalidVCPUCount(0)) { try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 0, apicID: 0) }
        #expect(throws: CPUIDError.invalidVCPUCount(255)) { try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 255, apicID: 0) }
        #expect(throws: CPUIDError.invalidVCPUIndex(index: 2, count: 2)) { try CPUTemplate.host.entries(supported: supported, vcpuIndex: 2, vcpuCount: 2, apicID: 2) }
        #expect(throws: CPUIDError.invalidVCPUIndex(index: -1, count: 2)) { try CPUTemplate.host.entries(supported: supported, vcpuIndex: -1, vcpuCount: 2, apicID: 0) }
        #expect(throws: CPUIDError.invalidAPICID(255)) { try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 2, apicID: 255) }
        #expect(throws: CPUIDError.missingLeaf(0)) { try CPUTemplate.host.entries(supported: Array(supported.dropFirst()), vcpuIndex: 0, vcpuCount: 1, apicID: 0) }
        #expect(throws: CPUIDError.missingLeaf(1)) { try CPUTemplate.host.entries(supported: supported.filter { $0.function != 1 }, vcpuIndex: 0, vcpuCount: 1, apicID: 0) }
        #expect(throws: CPUIDError.duplicateEntry(function: 6, index: 0)) {
            try CPUTemplate.host.entries(supported: supported + [CPUIDEntry(function: 6)], vcpuIndex: 0, vcpuCount: 1, apicID: 0)
        }
        #expect(throws: CPUIDError.self) {
            try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 1, apicID: 0, options: CPUIDOptions(brandString: String(repeating: "x", count: 48)))
        }
        #expect(throws: CPUIDError.self) {
            try CPUTemplate.host.entries(supported: supported, vcpuIndex: 0, vcpuCount: 1, apicID: 0, options: CPUIDOptions(brandString: "caf\u{E9}"))
        }
    }
}
