/// Builds per-vCPU CPUID tables from KVM's supported set: applies a template, then normalizes
/// topology and the fields that must describe the VM rather than the host.
struct CPUIDBuilder {
    let template: CPUTemplate
    let supported: CPUIDTable
    let vcpuCount: Int
    let options: CPUIDOptions
    let vendor: CPUVendor

    // Ranges and well-known leaves.
    static let hypervisorBase: UInt32 = 0x4000_0000
    static let extendedBase: UInt32 = 0x8000_0000
    /// "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
    static let kvmSignature: (ebx: UInt32, ecx: UInt32, edx: UInt32) = (0x4B4D_564B, 0x564B_4D56, 0x0000_004D)

    init(template: CPUTemplate, supported: [CPUIDEntry], vcpuCount: Int, options: CPUIDOptions) throws(CPUIDError) {
        guard CPUTopology.isValidVCPUCount(vcpuCount) else { throw .invalidVCPUCount(vcpuCount) }
        if let brand = options.brandString {
            guard brand.utf8.count <= 47, brand.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw .invalidBrandString(brand) }
        }
        let table = try CPUIDTable(supported)
        guard let leaf0 = table[0] else { throw .missingLeaf(0) }
        guard table[1] != nil else { throw .missingLeaf(1) }
        self.template = template
        self.supported = table
        self.vcpuCount = vcpuCount
        self.options = options
        self.vendor = CPUVendor(leaf0: leaf0)
    }

    func entries(vcpuIndex: Int, apicID: UInt32) throws(CPUIDError) -> [CPUIDEntry] {
        guard (0..<vcpuCount).contains(vcpuIndex) else { throw .invalidVCPUIndex(index: vcpuIndex, count: vcpuCount) }
        guard apicID <= 0xFE else { throw .invalidAPICID(apicID) }
        var table = supported
        let limits = clampLeafRanges(&table)
        applyTemplate(&table)
        applyCommonFeatureRules(&table)
        normalizeTopology(&table, vcpuIndex: vcpuIndex, apicID: apicID, maxBasic: limits.maxBasic)
        normalizeIdentity(&table, limits: limits)
        disableUnsupportedFunctions(&table)
        return table.sorted
    }

    // MARK: - Ranges

    struct LeafLimits {
        let maxBasic: UInt32
        let maxExtended: UInt32?
        let maxHypervisor: UInt32?
    }

    /// Clamps the maximum leaves to what KVM reports and the template covers, and drops entries beyond them.
    func clampLeafRanges(_ table: inout CPUIDTable) -> LeafLimits {
        let maxBasic = min(table[0]?.eax ?? 0, template.maximumBasicLeaf ?? .max)
        let maxExtended = table[Self.extendedBase].map { min($0.eax, template.maximumExtendedLeaf ?? .max) }
        // Old hosts report 0 in 0x4000_0000 EAX, meaning 0x4000_0001.
        let maxHypervisor = table[Self.hypervisorBase].map {
            min($0.eax == 0 ? Self.hypervisorBase + 1 : $0.eax, template.maximumHypervisorLeaf ?? .max)
        }
        let keepsOtherRanges = template == .host
        table.removeAll { entry in
            let f = entry.function
            if f < Self.hypervisorBase { return f > maxBasic }
            if f < Self.hypervisorBase + 0x100 { return maxHypervisor.map { f > $0 } ?? true }
            if f >= Self.extendedBase && f < Self.extendedBase + 0x1000_0000 { return maxExtended.map { f > $0 } ?? true }
            return !keepsOtherRanges
        }
        return LeafLimits(maxBasic: maxBasic, maxExtended: maxExtended, maxHypervisor: maxHypervisor)
    }

    // MARK: - Template

    func applyTemplate(_ table: inout CPUIDTable) {
        guard template == .baseline else { return }
        for (key, entry) in table.entries {
            let kept = CPUTemplate.baselineLeaves.contains { $0.function == key.function && ($0.index == nil || $0.index == key.index) }
            if !kept { table[entry.function, entry.index] = entry.zeroed }
        }
        for word in CPUTemplate.featureRegisters {
            let allowed = CPUTemplate.baselineFeatures
                .filter { $0.function == word.function && $0.index == word.index && $0.register == word.register }
                .reduce(UInt32(0)) { $0 | $1.mask }
            table.update(function: word.function, index: word.index) { $0[word.register] &= allowed }
        }
        for word in CPUTemplate.baselineClearedRegisters {
            table.update(function: word.function, index: word.index) { $0[word.register] = 0 }
        }
    }

    func applyCommonFeatureRules(_ table: inout CPUIDTable) {
        for feature in CPUTemplate.alwaysCleared {
            table.update(function: feature.function, index: feature.index) { $0[feature.register] &= ~feature.mask }
        }
        for feature in CPUTemplate.alwaysSet {
            table.update(function: feature.function, index: feature.index) { $0[feature.register] |= feature.mask }
        }
        if options.tscDeadlineTimer {
            table.update(function: 1) { $0.ecx |= CPUIDFeature.tscDeadline.mask }
        }
        let htt = CPUIDFeature.htt.mask
        table.update(function: 1) { $0.edx = vcpuCount > 1 ? $0.edx | htt : $0.edx & ~htt }

        // CmpLegacy (AMD): HTT counts cores, not threads. Only where KVM reports it.
        let cmpLegacy = CPUIDFeature.cmpLegacy.mask
        let hostHasCmpLegacy = (supported[Self.extendedBase + 1]?.ecx ?? 0) & cmpLegacy != 0
        table.update(function: Self.extendedBase + 1) {
            $0.ecx = (vendor == .amd && vcpuCount > 1 && hostHasCmpLegacy) ? $0.ecx | cmpLegacy : $0.ecx & ~cmpLegacy
        }
        // IA32_ARCH_CAPABILITIES does not exist on AMD hardware; KVM reports it anyway.
        if vendor == .amd {
            table.update(function: 7, index: 0) { $0.edx &= ~CPUIDFeature.archCapabilities.mask }
        }
    }

    // MARK: - Topology: one package, vcpuCount cores, one thread per core

    func normalizeTopology(_ table: inout CPUIDTable, vcpuIndex: Int, apicID: UInt32, maxBasic: UInt32) {
        let count = UInt32(vcpuCount)
        let coreBits = UInt32(CPUTopology.coreIDBits(vcpuCount: vcpuCount))

        table.update(function: 1) {
            let logicalIDs = min(255, UInt32(1) << coreBits)
            let clflushLineSize: UInt32 = 8  // in 8-byte units: 64 bytes
            $0.ebx = (apicID << 24) | (logicalIDs << 16) | (clflushLineSize << 8) | ($0.ebx & 0xFF)
        }

        // Intel deterministic cache parameters: L1/L2 private to a core, L3 shared by all.
        table.updateAll(function: 4) { entry in
            guard entry.eax & 0x1F != 0 else { return }
            entry.eax = Self.withCacheSharing(entry.eax, count: count)
            entry.eax = (entry.eax & ~(0x3F << 26)) | (min(count - 1, 63) << 26)
        }

        if maxBasic >= 0xB {
            table.replace(function: 0xB, with: Self.extendedTopology(function: 0xB, count: count, coreBits: coreBits, x2apicID: apicID))
        }
        if maxBasic >= 0x1F && supported.contains(function: 0x1F) {
            table.replace(function: 0x1F, with: Self.extendedTopology(function: 0x1F, count: count, coreBits: coreBits, x2apicID: apicID))
        }

        guard vendor == .amd else { return }
        // NC (cores - 1) and ApicIdCoreIdSize, consistent with leaf 0xB.
        table.update(function: Self.extendedBase + 8) { $0.ecx = (coreBits << 12) | (count - 1) }
        table.updateAll(function: Self.extendedBase + 0x1D) { entry in
            guard entry.eax & 0x1F != 0 else { return }
            entry.eax = Self.withCacheSharing(entry.eax, count: count)
        }
        table.update(function: Self.extendedBase + 0x1E) {
            $0.eax = apicID  // extended APIC ID
            $0.ebx = UInt32(truncatingIfNeeded: vcpuIndex) & 0xFF  // core ID; one thread per core
            $0.ecx = 0  // node 0 of one node per package
            $0.edx = 0
        }
    }

    /// Sets EAX[25:14] (logical processors sharing the cache, minus one) of a leaf 4 / 0x8000_001D entry.
    static func withCacheSharing(_ eax: UInt32, count: UInt32) -> UInt32 {
        let level = (eax >> 5) & 0x7
        let sharing: UInt32
        switch level {
        case 1, 2: sharing = 0
        case 3: sharing = count - 1
        default: return eax
        }
        return (eax & ~(0xFFF << 14)) | (sharing << 14)
    }

    /// Leaf 0xB / 0x1F: an SMT level of one thread, a core level spanning the package, and the
    /// terminating invalid level. EDX is the x2APIC ID in every subleaf.
    static func extendedTopology(function: UInt32, count: UInt32, coreBits: UInt32, x2apicID: UInt32) -> [CPUIDEntry] {
        let smtLevel: UInt32 = 1
        let coreLevel: UInt32 = 2
        return [
            CPUIDEntry(function: function, index: 0, flags: CPUIDEntry.significantIndex, eax: 0, ebx: 1, ecx: (smtLevel << 8) | 0, edx: x2apicID),
            CPUIDEntry(function: function, index: 1, flags: CPUIDEntry.significantIndex, eax: coreBits, ebx: count, ecx: (coreLevel << 8) | 1, edx: x2apicID),
            CPUIDEntry(function: function, index: 2, flags: CPUIDEntry.significantIndex, eax: 0, ebx: 0, ecx: 2, edx: x2apicID),
        ]
    }

    // MARK: - Identity leaves

    func normalizeIdentity(_ table: inout CPUIDTable, limits: LeafLimits) {
        table.update(function: 0) { $0.eax = limits.maxBasic }
        if let maxExtended = limits.maxExtended {
            table.update(function: Self.extendedBase) { $0.eax = maxExtended }
        }
        if let maxHypervisor = limits.maxHypervisor {
            table.update(function: Self.hypervisorBase) {
                $0.eax = maxHypervisor
                ($0.ebx, $0.ecx, $0.edx) = Self.kvmSignature
            }
        }
        if let brand = options.brandString {
            var bytes = Array(brand.utf8)
            bytes += Array(repeating: 0, count: 48 - bytes.count)
            for leaf in 0..<3 {
                table.update(function: Self.extendedBase + 2 + UInt32(leaf)) { entry in
                    for (i, register) in [CPUIDRegister.eax, .ebx, .ecx, .edx].enumerated() {
                        let offset = leaf * 16 + i * 4
                        entry[register] = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
                    }
                }
            }
        }
    }

    // MARK: - Leaves of disabled functions

    /// Zeroes the leaves describing features the VM does not have: MONITOR/MWAIT (5), the PMU
    /// (0xA, 0x8000_0022), SGX (0x12), hybrid core types (0x1A), SVM (0x8000_000A) and AMD's
    /// extended topology (0x8000_0026, not normalized here).
    func disableUnsupportedFunctions(_ table: inout CPUIDTable) {
        for function: UInt32 in [0x5, 0xA, 0x12, 0x1A, 0x8000_000A, 0x8000_0022, 0x8000_0026] {
            table.zero(function: function)
        }
    }
}
