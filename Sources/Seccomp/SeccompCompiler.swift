#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import CSkiffSystem

/// Compiles allow-lists to classic BPF with libseccomp. Runs before any thread is confined
/// (compiling allocates, creates a memfd and writes to it); installing a compiled program
/// later is a single seccomp(2) call.
enum SeccompCompiler {
    /// A compiled filter: `sock_filter` instructions (8 bytes each).
    struct Program: Sendable {
        let bytes: [UInt8]
        var instructionCount: Int { bytes.count / 8 }
    }

    /// Calls a rule may also make that fail at once with an errno instead of taking the
    /// default action (clone3, whose flags sit in memory a filter cannot read, so glibc falls
    /// back to clone(2), whose flags it can).
    struct Refusal {
        let name: String
        let errno: Int32
        /// Argument checks; empty: every call of `name`.
        var checks: [ArgumentCheck] = []
    }

    static func comparisons(_ checks: [ArgumentCheck]) -> [scmp_arg_cmp] {
        checks.map { check -> scmp_arg_cmp in
            switch check {
            case .equals32(let index, let value):
                return scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: 0xffff_ffff, datum_b: value & 0xffff_ffff)
            case .masked(let index, let mask, let value):
                return scmp_arg_cmp(arg: index, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value & mask)
            }
        }
    }

    static func compile(_ rules: [SyscallRule], refusals: [Refusal] = [], action: SeccompAction) throws(SeccompError) -> Program {
        let defaultAction: UInt32
        switch action {
        case .killProcess: defaultAction = cseccomp_action_kill_process()
        case .log: defaultAction = cseccomp_action_log()
        case .trapAndRecord: defaultAction = cseccomp_action_trap()
        }
        guard let context = unsafe seccomp_init(defaultAction) else { throw SeccompError("seccomp_init failed") }
        defer { unsafe seccomp_release(context) }
        // A call made through another ABI (int 0x80, x32) takes the default action too.
        guard unsafe seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, defaultAction) == 0,
              unsafe seccomp_attr_set(context, SCMP_FLTATR_CTL_NNP, 0) == 0 else {
            throw SeccompError("cannot set the filter attributes")
        }
        // A binary search over system call numbers rather than a linear chain.
        _ = unsafe seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for rule in merged(rules) {
            let number = try resolve(rule.name)
            var comparisons = comparisons(rule.checks)
            let r = unsafe comparisons.withUnsafeMutableBufferPointer { buffer in
                unsafe seccomp_rule_add_array(context, cseccomp_action_allow(), number, UInt32(buffer.count), buffer.baseAddress)
            }
            guard r == 0 else {
                throw SeccompError(unsafe "cannot add the rule \(rule.label): \(String(cString: strerror(-r)))")
            }
        }
        for refusal in refusals {
            let number = try resolve(refusal.name)
            var comparisons = comparisons(refusal.checks)
            let r = unsafe comparisons.withUnsafeMutableBufferPointer { buffer in
                unsafe seccomp_rule_add_array(context, cseccomp_action_errno(UInt16(refusal.errno)), number, UInt32(buffer.count), buffer.baseAddress)
            }
            guard r == 0 else { throw SeccompError(unsafe "cannot refuse \(refusal.name): \(String(cString: strerror(-r)))") }
        }
        return unsafe try export(context)
    }

    /// The system call number of `name` on this architecture.
    static func resolve(_ name: String) throws(SeccompError) -> Int32 {
        let number = unsafe seccomp_syscall_resolve_name(name)
        guard number >= 0 else { throw SeccompError("unknown system call \(name)") }
        return number
    }

    /// The rules without duplicates; a call allowed without checks makes its checked forms
    /// redundant (libseccomp refuses some such mixtures).
    static func merged(_ rules: [SyscallRule]) -> [SyscallRule] {
        let unconditional = Set(rules.filter { $0.checks.isEmpty }.map(\.name))
        var seen = Set<SyscallRule>()
        var out: [SyscallRule] = []
        for rule in rules {
            if !rule.checks.isEmpty && unconditional.contains(rule.name) { continue }
            if seen.insert(rule).inserted { out.append(rule) }
        }
        return out
    }

    private static func export(_ context: scmp_filter_ctx) throws(SeccompError) -> Program {
        let fd = unsafe csystem_memfd_create("skiff-seccomp", UInt32(MFD_CLOEXEC))
        guard fd >= 0 else { throw SeccompError(unsafe "memfd_create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let r = unsafe seccomp_export_bpf(context, fd)
        guard r == 0 else { throw SeccompError(unsafe "seccomp_export_bpf: \(String(cString: strerror(-r)))") }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, size % 8 == 0, size / 8 <= 4096 else { throw SeccompError("the compiled filter has an unusable size (\(size) bytes)") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let read = unsafe bytes.withUnsafeMutableBytes { unsafe pread(fd, $0.baseAddress, $0.count, 0) }
        guard read == Int(size) else { throw SeccompError("cannot read the compiled filter back") }
        return Program(bytes: bytes)
    }
}
