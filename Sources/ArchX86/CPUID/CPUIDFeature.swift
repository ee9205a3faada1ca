/// One named CPUID feature bit. Names follow Linux's `/proc/cpuinfo` flags where one exists.
public struct CPUIDFeature: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let function: UInt32
    public let index: UInt32
    public let register: CPUIDRegister
    public let bit: UInt32

    public init(_ name: String, _ function: UInt32, _ index: UInt32, _ register: CPUIDRegister, _ bit: UInt32) {
        self.name = name
        self.function = function
        self.index = index
        self.register = register
        self.bit = bit
    }

    /// A feature of a leaf without subleaves.
    public init(_ name: String, _ function: UInt32, _ register: CPUIDRegister, _ bit: UInt32) {
        self.init(name, function, 0, register, bit)
    }

    /// The bit as a mask of its register.
    public var mask: UInt32 { 1 << bit }

    /// Whether the bit is set in `entries`.
    public func isSet(in entries: [CPUIDEntry]) -> Bool {
        guard let entry = entries.first(where: { $0.function == function && $0.index == index }) else { return false }
        return entry[register] & mask != 0
    }

    public var description: String {
        "\(name) (CPUID 0x\(String(function, radix: 16)).\(index) \(register.rawValue.uppercased())[\(bit)])"
    }
}

extension CPUIDFeature {
    // MARK: Leaf 1 EDX
    public static let fpu = CPUIDFeature("fpu", 1, .edx, 0)
    public static let vme = CPUIDFeature("vme", 1, .edx, 1)
    public static let de = CPUIDFeature("de", 1, .edx, 2)
    public static let pse = CPUIDFeature("pse", 1, .edx, 3)
    public static let tsc = CPUIDFeature("tsc", 1, .edx, 4)
    public static let msr = CPUIDFeature("msr", 1, .edx, 5)
    public static let pae = CPUIDFeature("pae", 1, .edx, 6)
    public static let mce = CPUIDFeature("mce", 1, .edx, 7)
    public static let cx8 = CPUIDFeature("cx8", 1, .edx, 8)
    public static let apic = CPUIDFeature("apic", 1, .edx, 9)
    public static let sep = CPUIDFeature("sep", 1, .edx, 11)
    public static let mtrr = CPUIDFeature("mtrr", 1, .edx, 12)
    public static let pge = CPUIDFeature("pge", 1, .edx, 13)
    public static let mca = CPUIDFeature("mca", 1, .edx, 14)
    public static let cmov = CPUIDFeature("cmov", 1, .edx, 15)
    public static let pat = CPUIDFeature("pat", 1, .edx, 16)
    public static let pse36 = CPUIDFeature("pse36", 1, .edx, 17)
    public static let psn = CPUIDFeature("pn", 1, .edx, 18)
    public static let clflush = CPUIDFeature("clflush", 1, .edx, 19)
    public static let ds = CPUIDFeature("dts", 1, .edx, 21)
    public static let acpi = CPUIDFeature("acpi", 1, .edx, 22)
    public static let mmx = CPUIDFeature("mmx", 1, .edx, 23)
    public static let fxsr = CPUIDFeature("fxsr", 1, .edx, 24)
    public static let sse = CPUIDFeature("sse", 1, .edx, 25)
    public static let sse2 = CPUIDFeature("sse2", 1, .edx, 26)
    public static let selfSnoop = CPUIDFeature("ss", 1, .edx, 27)
    public static let htt = CPUIDFeature("ht", 1, .edx, 28)
    public static let tm = CPUIDFeature("tm", 1, .edx, 29)
    public static let pbe = CPUIDFeature("pbe", 1, .edx, 31)

    // MARK: Leaf 1 ECX
    public static let sse3 = CPUIDFeature("pni", 1, .ecx, 0)
    public static let pclmulqdq = CPUIDFeature("pclmulqdq", 1, .ecx, 1)
    public static let dtes64 = CPUIDFeature("dtes64", 1, .ecx, 2)
    public static let monitor = CPUIDFeature("monitor", 1, .ecx, 3)
    public static let dsCPL = CPUIDFeature("ds_cpl", 1, .ecx, 4)
    public static let vmx = CPUIDFeature("vmx", 1, .ecx, 5)
    public static let smx = CPUIDFeature("smx", 1, .ecx, 6)
    public static let est = CPUIDFeature("est", 1, .ecx, 7)
    public static let tm2 = CPUIDFeature("tm2", 1, .ecx, 8)
    public static let ssse3 = CPUIDFeature("ssse3", 1, .ecx, 9)
    public static let cnxtID = CPUIDFeature("cid", 1, .ecx, 10)
    public static let sdbg = CPUIDFeature("sdbg", 1, .ecx, 11)
    public static let fma = CPUIDFeature("fma", 1, .ecx, 12)
    public static let cx16 = CPUIDFeature("cx16", 1, .ecx, 13)
    public static let xtpr = CPUIDFeature("xtpr", 1, .ecx, 14)
    public static let pdcm = CPUIDFeature("pdcm", 1, .ecx, 15)
    public static let pcid = CPUIDFeature("pcid", 1, .ecx, 17)
    public static let dca = CPUIDFeature("dca", 1, .ecx, 18)
    public static let sse4_1 = CPUIDFeature("sse4_1", 1, .ecx, 19)
    public static let sse4_2 = CPUIDFeature("sse4_2", 1, .ecx, 20)
    public static let x2apic = CPUIDFeature("x2apic", 1, .ecx, 21)
    public static let movbe = CPUIDFeature("movbe", 1, .ecx, 22)
    public static let popcnt = CPUIDFeature("popcnt", 1, .ecx, 23)
    public static let tscDeadline = CPUIDFeature("tsc_deadline_timer", 1, .ecx, 24)
    public static let aes = CPUIDFeature("aes", 1, .ecx, 25)
    public static let xsave = CPUIDFeature("xsave", 1, .ecx, 26)
    public static let osxsave = CPUIDFeature("osxsave", 1, .ecx, 27)
    public static let avx = CPUIDFeature("avx", 1, .ecx, 28)
    public static let f16c = CPUIDFeature("f16c", 1, .ecx, 29)
    public static let rdrand = CPUIDFeature("rdrand", 1, .ecx, 30)
    public static let hypervisor = CPUIDFeature("hypervisor", 1, .ecx, 31)

    // MARK: Leaf 6 (thermal and power)
    public static let turboBoost = CPUIDFeature("ida", 6, .eax, 1)
    public static let arat = CPUIDFeature("arat", 6, .eax, 2)
    public static let energyPerfBias = CPUIDFeature("epb", 6, .ecx, 3)

    // MARK: Leaf 7 subleaf 0 EBX
    public static let fsgsbase = CPUIDFeature("fsgsbase", 7, 0, .ebx, 0)
    public static let tscAdjust = CPUIDFeature("tsc_adjust", 7, 0, .ebx, 1)
    public static let sgx = CPUIDFeature("sgx", 7, 0, .ebx, 2)
    public static let bmi1 = CPUIDFeature("bmi1", 7, 0, .ebx, 3)
    public static let hle = CPUIDFeature("hle", 7, 0, .ebx, 4)
    public static let avx2 = CPUIDFeature("avx2", 7, 0, .ebx, 5)
    public static let fdpExceptionOnly = CPUIDFeature("fdp_excptn_only", 7, 0, .ebx, 6)
    public static let smep = CPUIDFeature("smep", 7, 0, .ebx, 7)
    public static let bmi2 = CPUIDFeature("bmi2", 7, 0, .ebx, 8)
    public static let erms = CPUIDFeature("erms", 7, 0, .ebx, 9)
    public static let invpcid = CPUIDFeature("invpcid", 7, 0, .ebx, 10)
    public static let rtm = CPUIDFeature("rtm", 7, 0, .ebx, 11)
    public static let rdtMonitoring = CPUIDFeature("cqm", 7, 0, .ebx, 12)
    public static let zeroFCSFDS = CPUIDFeature("zero_fcs_fds", 7, 0, .ebx, 13)
    public static let mpx = CPUIDFeature("mpx", 7, 0, .ebx, 14)
    public static let rdtAllocation = CPUIDFeature("rdt_a", 7, 0, .ebx, 15)
    public static let avx512f = CPUIDFeature("avx512f", 7, 0, .ebx, 16)
    public static let avx512dq = CPUIDFeature("avx512dq", 7, 0, .ebx, 17)
    public static let rdseed = CPUIDFeature("rdseed", 7, 0, .ebx, 18)
    public static let adx = CPUIDFeature("adx", 7, 0, .ebx, 19)
    public static let smap = CPUIDFeature("smap", 7, 0, .ebx, 20)
    public static let avx512ifma = CPUIDFeature("avx512ifma", 7, 0, .ebx, 21)
    public static let clflushopt = CPUIDFeature("clflushopt", 7, 0, .ebx, 23)
    public static let clwb = CPUIDFeature("clwb", 7, 0, .ebx, 24)
    public static let intelPT = CPUIDFeature("intel_pt", 7, 0, .ebx, 25)
    public static let avx512pf = CPUIDFeature("avx512pf", 7, 0, .ebx, 26)
    public static let avx512er = CPUIDFeature("avx512er", 7, 0, .ebx, 27)
    public static let avx512cd = CPUIDFeature("avx512cd", 7, 0, .ebx, 28)
    public static let sha = CPUIDFeature("sha_ni", 7, 0, .ebx, 29)
    public static let avx512bw = CPUIDFeature("avx512bw", 7, 0, .ebx, 30)
    public static let avx512vl = CPUIDFeature("avx512vl", 7, 0, .ebx, 31)

    // MARK: Leaf 7 subleaf 0 ECX
    public static let avx512vbmi = CPUIDFeature("avx512vbmi", 7, 0, .ecx, 1)
    public static let umip = CPUIDFeature("umip", 7, 0, .ecx, 2)
    public static let pku = CPUIDFeature("pku", 7, 0, .ecx, 3)
    public static let ospke = CPUIDFeature("ospke", 7, 0, .ecx, 4)
    public static let waitpkg = CPUIDFeature("waitpkg", 7, 0, .ecx, 5)
    public static let avx512vbmi2 = CPUIDFeature("avx512_vbmi2", 7, 0, .ecx, 6)
    public static let shadowStack = CPUIDFeature("shstk", 7, 0, .ecx, 7)
    public static let gfni = CPUIDFeature("gfni", 7, 0, .ecx, 8)
    public static let vaes = CPUIDFeature("vaes", 7, 0, .ecx, 9)
    public static let vpclmulqdq = CPUIDFeature("vpclmulqdq", 7, 0, .ecx, 10)
    public static let avx512vnni = CPUIDFeature("avx512_vnni", 7, 0, .ecx, 11)
    public static let avx512bitalg = CPUIDFeature("avx512_bitalg", 7, 0, .ecx, 12)
    public static let tme = CPUIDFeature("tme", 7, 0, .ecx, 13)
    public static let avx512vpopcntdq = CPUIDFeature("avx512_vpopcntdq", 7, 0, .ecx, 14)
    public static let la57 = CPUIDFeature("la57", 7, 0, .ecx, 16)
    public static let rdpid = CPUIDFeature("rdpid", 7, 0, .ecx, 22)
    public static let busLockDetect = CPUIDFeature("bus_lock_detect", 7, 0, .ecx, 24)
    public static let cldemote = CPUIDFeature("cldemote", 7, 0, .ecx, 25)
    public static let movdiri = CPUIDFeature("movdiri", 7, 0, .ecx, 27)
    public static let movdir64b = CPUIDFeature("movdir64b", 7, 0, .ecx, 28)
    public static let enqcmd = CPUIDFeature("enqcmd", 7, 0, .ecx, 29)
    public static let sgxLC = CPUIDFeature("sgx_lc", 7, 0, .ecx, 30)
    public static let pks = CPUIDFeature("pks", 7, 0, .ecx, 31)

    // MARK: Leaf 7 subleaf 0 EDX
    public static let fsrm = CPUIDFeature("fsrm", 7, 0, .edx, 4)
    public static let mdClear = CPUIDFeature("md_clear", 7, 0, .edx, 10)
    public static let serialize = CPUIDFeature("serialize", 7, 0, .edx, 14)
    public static let hybrid = CPUIDFeature("hybrid_cpu", 7, 0, .edx, 15)
    public static let tsxldtrk = CPUIDFeature("tsxldtrk", 7, 0, .edx, 16)
    public static let archLBR = CPUIDFeature("arch_lbr", 7, 0, .edx, 19)
    public static let ibt = CPUIDFeature("ibt", 7, 0, .edx, 20)
    public static let amxBF16 = CPUIDFeature("amx_bf16", 7, 0, .edx, 22)
    public static let avx512fp16 = CPUIDFeature("avx512_fp16", 7, 0, .edx, 23)
    public static let amxTile = CPUIDFeature("amx_tile", 7, 0, .edx, 24)
    public static let amxInt8 = CPUIDFeature("amx_int8", 7, 0, .edx, 25)
    public static let specCtrl = CPUIDFeature("spec_ctrl", 7, 0, .edx, 26)
    public static let stibp = CPUIDFeature("intel_stibp", 7, 0, .edx, 27)
    public static let flushL1D = CPUIDFeature("flush_l1d", 7, 0, .edx, 28)
    public static let archCapabilities = CPUIDFeature("arch_capabilities", 7, 0, .edx, 29)
    public static let coreCapabilities = CPUIDFeature("core_capabilities", 7, 0, .edx, 30)
    public static let ssbd = CPUIDFeature("spec_ctrl_ssbd", 7, 0, .edx, 31)

    // MARK: Leaf 0x8000_0001 ECX
    public static let lahfLM = CPUIDFeature("lahf_lm", 0x8000_0001, .ecx, 0)
    public static let cmpLegacy = CPUIDFeature("cmp_legacy", 0x8000_0001, .ecx, 1)
    public static let svm = CPUIDFeature("svm", 0x8000_0001, .ecx, 2)
    public static let extAPICSpace = CPUIDFeature("extapic", 0x8000_0001, .ecx, 3)
    public static let cr8Legacy = CPUIDFeature("cr8_legacy", 0x8000_0001, .ecx, 4)
    public static let abm = CPUIDFeature("abm", 0x8000_0001, .ecx, 5)
    public static let sse4a = CPUIDFeature("sse4a", 0x8000_0001, .ecx, 6)
    public static let misalignSSE = CPUIDFeature("misalignsse", 0x8000_0001, .ecx, 7)
    public static let prefetchw = CPUIDFeature("3dnowprefetch", 0x8000_0001, .ecx, 8)
    public static let osvw = CPUIDFeature("osvw", 0x8000_0001, .ecx, 9)
    public static let ibs = CPUIDFeature("ibs", 0x8000_0001, .ecx, 10)
    public static let xop = CPUIDFeature("xop", 0x8000_0001, .ecx, 11)
    public static let skinit = CPUIDFeature("skinit", 0x8000_0001, .ecx, 12)
    public static let wdt = CPUIDFeature("wdt", 0x8000_0001, .ecx, 13)
    public static let lwp = CPUIDFeature("lwp", 0x8000_0001, .ecx, 15)
    public static let fma4 = CPUIDFeature("fma4", 0x8000_0001, .ecx, 16)
    public static let tbm = CPUIDFeature("tbm", 0x8000_0001, .ecx, 21)
    public static let topologyExtensions = CPUIDFeature("topoext", 0x8000_0001, .ecx, 22)
    public static let perfctrCore = CPUIDFeature("perfctr_core", 0x8000_0001, .ecx, 23)
    public static let perfctrNB = CPUIDFeature("perfctr_nb", 0x8000_0001, .ecx, 24)
    public static let perfctrLLC = CPUIDFeature("perfctr_llc", 0x8000_0001, .ecx, 28)
    public static let mwaitx = CPUIDFeature("mwaitx", 0x8000_0001, .ecx, 29)

    // MARK: Leaf 0x8000_0001 EDX
    public static let syscall = CPUIDFeature("syscall", 0x8000_0001, .edx, 11)
    public static let nx = CPUIDFeature("nx", 0x8000_0001, .edx, 20)
    public static let mmxExt = CPUIDFeature("mmxext", 0x8000_0001, .edx, 22)
    public static let fxsrOpt = CPUIDFeature("fxsr_opt", 0x8000_0001, .edx, 25)
    public static let page1GB = CPUIDFeature("pdpe1gb", 0x8000_0001, .edx, 26)
    public static let rdtscp = CPUIDFeature("rdtscp", 0x8000_0001, .edx, 27)
    public static let lm = CPUIDFeature("lm", 0x8000_0001, .edx, 29)
    public static let amd3DNowExt = CPUIDFeature("3dnowext", 0x8000_0001, .edx, 30)
    public static let amd3DNow = CPUIDFeature("3dnow", 0x8000_0001, .edx, 31)

    // MARK: Leaf 0x8000_0007 EDX and 0x8000_0008 EBX
    public static let invariantTSC = CPUIDFeature("constant_tsc", 0x8000_0007, .edx, 8)
    public static let clzero = CPUIDFeature("clzero", 0x8000_0008, .ebx, 0)
    public static let irperf = CPUIDFeature("irperf", 0x8000_0008, .ebx, 1)
    public static let xsaveErrPtr = CPUIDFeature("xsaveerptr", 0x8000_0008, .ebx, 2)
    public static let wbnoinvd = CPUIDFeature("wbnoinvd", 0x8000_0008, .ebx, 9)
    public static let amdIBPB = CPUIDFeature("ibpb", 0x8000_0008, .ebx, 12)
    public static let amdIBRS = CPUIDFeature("ibrs", 0x8000_0008, .ebx, 14)
    public static let amdSTIBP = CPUIDFeature("stibp", 0x8000_0008, .ebx, 15)
    public static let amdSSBD = CPUIDFeature("ssbd", 0x8000_0008, .ebx, 24)
    public static let virtSSBD = CPUIDFeature("virt_ssbd", 0x8000_0008, .ebx, 25)

    // MARK: Leaf 0x4000_0001 EAX (KVM paravirtual features)
    public static let kvmClock = CPUIDFeature("kvm_clocksource", 0x4000_0001, .eax, 0)
    public static let kvmNopIODelay = CPUIDFeature("kvm_nop_io_delay", 0x4000_0001, .eax, 1)
    public static let kvmClock2 = CPUIDFeature("kvm_clocksource2", 0x4000_0001, .eax, 3)
    public static let kvmAsyncPF = CPUIDFeature("kvm_async_pf", 0x4000_0001, .eax, 4)
    public static let kvmStealTime = CPUIDFeature("kvm_steal_time", 0x4000_0001, .eax, 5)
    public static let kvmPVEOI = CPUIDFeature("kvm_pv_eoi", 0x4000_0001, .eax, 6)
    public static let kvmPVUnhalt = CPUIDFeature("kvm_pv_unhalt", 0x4000_0001, .eax, 7)
    public static let kvmPVTLBFlush = CPUIDFeature("kvm_pv_tlb_flush", 0x4000_0001, .eax, 9)
    public static let kvmAsyncPFVMExit = CPUIDFeature("kvm_async_pf_vmexit", 0x4000_0001, .eax, 10)
    public static let kvmPVSendIPI = CPUIDFeature("kvm_pv_send_ipi", 0x4000_0001, .eax, 11)
    public static let kvmPollControl = CPUIDFeature("kvm_poll_control", 0x4000_0001, .eax, 12)
    public static let kvmPVSchedYield = CPUIDFeature("kvm_pv_sched_yield", 0x4000_0001, .eax, 13)
    public static let kvmAsyncPFInt = CPUIDFeature("kvm_async_pf_int", 0x4000_0001, .eax, 14)
    public static let kvmMSIExtDestID = CPUIDFeature("kvm_msi_ext_dest_id", 0x4000_0001, .eax, 15)
    public static let kvmMapGPARange = CPUIDFeature("kvm_hc_map_gpa_range", 0x4000_0001, .eax, 16)
    public static let kvmMigrationControl = CPUIDFeature("kvm_migration_control", 0x4000_0001, .eax, 17)
    public static let kvmClockStable = CPUIDFeature("kvm_clocksource_stable", 0x4000_0001, .eax, 24)

    /// Every feature named above, in leaf order.
    public static let all: [CPUIDFeature] = [
        fpu, vme, de, pse, tsc, msr, pae, mce, cx8, apic, sep, mtrr, pge, mca, cmov, pat, pse36, psn, clflush, ds, acpi,
        mmx, fxsr, sse, sse2, selfSnoop, htt, tm, pbe,
        sse3, pclmulqdq, dtes64, monitor, dsCPL, vmx, smx, est, tm2, ssse3, cnxtID, sdbg, fma, cx16, xtpr, pdcm, pcid, dca,
        sse4_1, sse4_2, x2apic, movbe, popcnt, tscDeadline, aes, xsave, osxsave, avx, f16c, rdrand, hypervisor,
        turboBoost, arat, energyPerfBias,
        fsgsbase, tscAdjust, sgx, bmi1, hle, avx2, fdpExceptionOnly, smep, bmi2, erms, invpcid, rtm, rdtMonitoring, zeroFCSFDS,
        mpx, rdtAllocation, avx512f, avx512dq, rdseed, adx, smap, avx512ifma, clflushopt, clwb, intelPT, avx512pf, avx512er,
        avx512cd, sha, avx512bw, avx512vl,
        avx512vbmi, umip, pku, ospke, waitpkg, avx512vbmi2, shadowStack, gfni, vaes, vpclmulqdq, avx512vnni, avx512bitalg, tme,
        avx512vpopcntdq, la57, rdpid, busLockDetect, cldemote, movdiri, movdir64b, enqcmd, sgxLC, pks,
        fsrm, mdClear, serialize, hybrid, tsxldtrk, archLBR, ibt, amxBF16, avx512fp16, amxTile, amxInt8, specCtrl, stibp,
        flushL1D, archCapabilities, coreCapabilities, ssbd,
        lahfLM, cmpLegacy, svm, extAPICSpace, cr8Legacy, abm, sse4a, misalignSSE, prefetchw, osvw, ibs, xop, skinit, wdt, lwp,
        fma4, tbm, topologyExtensions, perfctrCore, perfctrNB, perfctrLLC, mwaitx,
        syscall, nx, mmxExt, fxsrOpt, page1GB, rdtscp, lm, amd3DNowExt, amd3DNow,
        invariantTSC, clzero, irperf, xsaveErrPtr, wbnoinvd, amdIBPB, amdIBRS, amdSTIBP, amdSSBD, virtSSBD,
        kvmClock, kvmNopIODelay, kvmClock2, kvmAsyncPF, kvmStealTime, kvmPVEOI, kvmPVUnhalt, kvmPVTLBFlush, kvmAsyncPFVMExit,
        kvmPVSendIPI, kvmPollControl, kvmPVSchedYield, kvmAsyncPFInt, kvmMSIExtDestID, kvmMapGPARange, kvmMigrationControl,
        kvmClockStable,
    ]
}
