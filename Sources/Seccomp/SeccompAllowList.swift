#if canImport(Glibc)
import Glibc
#endif
import CKVM
import CSeccomp
import CSkiffSystem
import SystemExtras

/// The system calls each thread role may make, with the reason for each (docs/seccomp.md
/// prints these lists). Anything else takes the filter's default action.
///
/// Rules were found by reading the code each thread runs and by tracing every test with
/// strace, then checked by running the test suite with the filters on.
public enum SeccompAllowList {
    /// The rules of `role` under `profile`.
    public static func rules(for role: ThreadRole, profile: SeccompProfile) -> [SyscallRule] {
        let own = productRules(for: role, profile: profile)
        return sanitizerBuild ? own + sanitizerRuntime : own
    }

    /// Whether this is a sanitizer build (scripts/sanitize.sh): its runtime makes calls of its
    /// own on every thread, which no shipped build makes.
    public static let sanitizerBuild = csystem_sanitizer_build() != 0

    /// What the AddressSanitizer and ThreadSanitizer runtimes call on any thread, added to every
    /// role in a sanitizer build only (found with `--seccomp log` under each, docs/sanitizers.md).
    static let sanitizerRuntime: [SyscallRule] = [
        SyscallRule("madvise", reason: "sanitizer runtime: returns allocator and shadow memory (any advice)"),
        SyscallRule("sigaltstack", reason: "sanitizer runtime: an alternate signal stack per thread"),
        SyscallRule("sched_getaffinity", reason: "sanitizer runtime: counts CPUs when a thread starts"),
        SyscallRule("sched_yield", reason: "sanitizer runtime: spin locks"),
        // LeakSanitizer's check at exit: the exiting thread clones a tracer task (which inherits
        // its filter) that attaches to every thread with ptrace and reads their registers.
        SyscallRule("prctl", reason: "LeakSanitizer: PR_SET_PTRACER for its tracer, PR_SET_PDEATHSIG in it"),
        SyscallRule("clone", reason: "LeakSanitizer: starts its tracer task"),
        SyscallRule("wait4", reason: "LeakSanitizer: waits for its tracer and traced threads"),
        SyscallRule("getppid", reason: "LeakSanitizer: the tracer checks its parent lives"),
        SyscallRule("ptrace", reason: "LeakSanitizer: the tracer stops every thread and reads its registers"),
        SyscallRule("rt_sigaction", reason: "LeakSanitizer: the tracer's signal handlers"),
        SyscallRule("openat", reason: "sanitizer runtime: /proc/self/task and /proc/self/maps"),
        SyscallRule("getdents64", reason: "LeakSanitizer: lists /proc/self/task"),
        SyscallRule("read", reason: "sanitizer runtime: /proc/self/maps"),
        SyscallRule("close", reason: "sanitizer runtime: the files it opened"),
        SyscallRule("lseek", reason: "sanitizer runtime: re-reads /proc files"),
        SyscallRule("kill", reason: "LeakSanitizer: ends its tracer"),
        SyscallRule("tgkill", reason: "LeakSanitizer: signals stopped threads"),
        SyscallRule("getpid", reason: "sanitizer runtime: report headers and the tracer"),
        SyscallRule("write", reason: "sanitizer runtime: reports to its log file"),
        SyscallRule("exit_group", reason: "sanitizer runtime: exits with its exit code after a report"),
    ]

    static func productRules(for role: ThreadRole, profile: SeccompProfile) -> [SyscallRule] {
        switch role {
        case .main: return common + main(profile)
        case .vcpu: return common + vcpu(profile)
        case .virtioBlock: return common + worker + block
        case .virtioNet: return common + worker + net
        case .virtioVsock: return common + worker + vsock
        case .virtioConsole: return common + worker
        case .virtioBalloon: return common + worker + balloon
        case .virtioRNG: return common + worker + rng
        case .consoleOutput: return common + consoleOutput
        case .consoleInput: return common + consoleInput
        case .consoleSocket: return common + consoleSocket
        case .control: return common + control(profile)
        case .signals: return common + signals
        case .migration: return common + migration
        case .throttle: return common + throttle
        case .spawner: return spawner(profile)
        }
    }

    /// Calls refused with an errno rather than the default action.
    static func refusals(for role: ThreadRole, profile: SeccompProfile = SeccompProfile()) -> [SeccompCompiler.Refusal] {
        var refusals: [SeccompCompiler.Refusal] = []
        // clone3 passes its flags in memory, out of a filter's reach; ENOSYS makes glibc
        // fall back to clone(2), whose flags the spawner's rule checks.
        if role == .spawner { refusals.append(.init(name: "clone3", errno: ENOSYS)) }
        // glibc's malloc reads /proc/sys/vm/overcommit_memory the first time it shrinks a
        // thread's heap (any thread, after freeing a lot): refused, it shrinks with
        // MADV_DONTNEED, which every thread may. Roles that may open files read-only keep that.
        let overcommitRead = [ArgumentCheck.equals32(index: 2, value: openFlags(O_RDONLY | O_CLOEXEC))]
        let opens = rules(for: role, profile: profile).filter { $0.name == "openat" }
        if !opens.contains(where: { $0.checks.isEmpty || $0.checks == overcommitRead }) {
            refusals.append(.init(name: "openat", errno: EACCES, checks: overcommitRead))
        }
        return refusals
    }

    /// The name of system call `number` on this architecture.
    public static func name(ofSystemCall number: Int32) -> String {
        guard let raw = unsafe seccomp_syscall_resolve_num_arch(UInt32(SCMP_ARCH_NATIVE), number) else { return "syscall \(number)" }
        defer { unsafe free(raw) }
        return unsafe String(cString: raw)
    }

    // MARK: Argument values

    static let kickSignal = UInt64(csystem_sigrtmin())
    static let protExec = UInt64(PROT_EXEC)
    static let mapTypeAndAnonymous: UInt64 = 0x0f | UInt64(MAP_ANONYMOUS)
    static let privateAnonymous = UInt64(MAP_PRIVATE | MAP_ANONYMOUS)
    static let socketTypeMask: UInt64 = 0x0f
    // From <linux/futex.h>, <linux/sched.h>, <linux/prctl.h>, <linux/seccomp.h>,
    // <asm-generic/ioctls.h> and <linux/sockios.h>, which the Glibc module does not export.
    static let FUTEX_WAIT: UInt64 = 0, FUTEX_WAKE: UInt64 = 1, FUTEX_LOCK_PI: UInt64 = 6, FUTEX_UNLOCK_PI: UInt64 = 7
    static let FUTEX_TRYLOCK_PI: UInt64 = 8, FUTEX_WAIT_BITSET: UInt64 = 9, FUTEX_WAKE_BITSET: UInt64 = 10
    /// FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME: bits that only modify the operation.
    static let futexModifiers: UInt64 = 128 | 256
    /// pthread_create's clone flags: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
    /// CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID.
    static let threadCloneFlags: UInt64 = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x80000 | 0x100000 | 0x200000
    static let PR_SET_NAME: UInt64 = 15
    static let SECCOMP_SET_MODE_FILTER: UInt64 = 1
    static let TCGETS: UInt = 0x5401, TCSETS: UInt = 0x5402, SIOCGIFINDEX: UInt = 0x8933
    static let MADV_REMOVE: UInt64 = 9, MADV_MERGEABLE: UInt64 = 12
    static let EPOLL_CTL_MOD: UInt64 = 3
    static let F_OFD_SETLK: UInt64 = 37
    static let AT_SYMLINK_NOFOLLOW_FLAG = UInt64(AT_SYMLINK_NOFOLLOW)
    /// AT_EMPTY_PATH (<fcntl.h>, _GNU_SOURCE).
    static let AT_EMPTY_PATH_FLAG: UInt64 = 0x1000
    static func openFlags(_ flags: Int32) -> UInt64 { UInt64(UInt32(bitPattern: flags)) }

    // MARK: Every thread

    /// What any thread of the monitor does: allocate, synchronize, end, report errors.
    static let common: [SyscallRule] = [
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_WAIT))], label: "futex FUTEX_WAIT",
                    reason: "waits in locks, condition variables and semaphores"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_WAKE))], label: "futex FUTEX_WAKE",
                    reason: "wakes waiters of locks, condition variables and semaphores"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_WAIT_BITSET))], label: "futex FUTEX_WAIT_BITSET",
                    reason: "timed waits of condition variables (glibc)"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_WAKE_BITSET))], label: "futex FUTEX_WAKE_BITSET",
                    reason: "the wake side of bitset waits"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_LOCK_PI))], label: "futex FUTEX_LOCK_PI",
                    reason: "Swift's Mutex on Linux is a priority-inheriting futex: contended lock"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_UNLOCK_PI))], label: "futex FUTEX_UNLOCK_PI",
                    reason: "Swift's Mutex: unlock with waiters"),
        SyscallRule("futex", [.masked(index: 1, mask: ~futexModifiers & 0xffff_ffff, value: (FUTEX_TRYLOCK_PI))], label: "futex FUTEX_TRYLOCK_PI",
                    reason: "Swift's Mutex: try-lock after a contended fast path"),
        SyscallRule("gettid", reason: "Swift's Mutex records its owner's thread ID"),
        SyscallRule("brk", reason: "malloc grows its main arena"),
        SyscallRule("mmap", [.masked(index: 2, mask: protExec, value: 0), .masked(index: 3, mask: mapTypeAndAnonymous, value: privateAnonymous)],
                    label: "mmap private anonymous, not executable", reason: "malloc arenas and large allocations (never PROT_EXEC, never a file)"),
        SyscallRule("mprotect", [.masked(index: 2, mask: protExec, value: 0)], label: "mprotect, not executable",
                    reason: "malloc makes reserved arena space usable (never PROT_EXEC)"),
        SyscallRule("munmap", reason: "frees large allocations"),
        SyscallRule("mremap", reason: "realloc moves large allocations"),
        SyscallRule("madvise", [.equals32(index: 2, value: UInt64(MADV_DONTNEED))], label: "madvise MADV_DONTNEED",
                    reason: "glibc releases a finished thread's stack and trims arenas"),
        SyscallRule("rt_sigprocmask", reason: "glibc masks signals around thread start and exit"),
        SyscallRule("rt_sigreturn", reason: "returns from a signal handler (the vCPU kick, SIGSYS in tests)"),
        SyscallRule("write", [.equals32(index: 0, value: 2)], label: "write to stderr", reason: "log lines and runtime error messages"),
        SyscallRule("clock_gettime", reason: "time where the vDSO cannot answer"),
        SyscallRule("exit", reason: "the thread ends"),
        SyscallRule("exit_group", reason: "the process ends (an unrecoverable error on this thread)"),
    ]

    // MARK: Building blocks

    static func kvm(_ request: UInt, _ name: String, _ reason: String) -> SyscallRule { .ioctl(request, name, reason) }

    static let eventWrite = SyscallRule("write", [.equals32(index: 2, value: 8)], label: "write 8 bytes",
                                        reason: "signals an eventfd (queue notifier, irqfd, a worker's stop event)")
    static let eventRead = SyscallRule("read", [.equals32(index: 2, value: 8)], label: "read 8 bytes", reason: "consumes an eventfd or a timerfd")
    static let kick = [
        SyscallRule("tgkill", [.equals32(index: 2, value: kickSignal)], label: "tgkill SIGRTMIN", reason: "kicks vCPU threads out of KVM_RUN"),
        SyscallRule("getpid", reason: "tgkill's process ID"),
    ]
    static let irqLine = kvm(CKVM_IRQ_LINE, "KVM_IRQ_LINE", "raises and lowers legacy interrupt lines (INTx, UART, i8042, RTC, ACPI events)")
    static let sleep = [
        SyscallRule("nanosleep", reason: "short waits"),
        SyscallRule("clock_nanosleep", reason: "short waits (glibc's nanosleep)"),
    ]
    static let poll = [
        SyscallRule("poll", reason: "waits on its descriptors"),
        SyscallRule("ppoll", reason: "waits on its descriptors (poll through ppoll)"),
    ]
    static let close = SyscallRule("close", reason: "closes descriptors it created or accepted")
    static let acceptClient = [
        SyscallRule("accept", reason: "accepts a client of its unix socket"),
        SyscallRule("accept4", reason: "accepts a client of its unix socket"),
        SyscallRule("fcntl", [.equals32(index: 1, value: UInt64(F_SETFD))], label: "fcntl F_SETFD", reason: "marks an accepted client close-on-exec"),
        SyscallRule("recvfrom", reason: "reads a client"),
        SyscallRule("sendto", reason: "writes to a client"),
    ]

    /// Device activation and reset, which happen on a vCPU thread (the driver's writes) and
    /// on the control thread (resume re-creates paused workers): epoll, eventfds, timerfds.
    static let workerSetup = [
        SyscallRule("epoll_create1", reason: "a device worker's epoll set (device activation)"),
        SyscallRule("epoll_ctl", reason: "adds notifiers and backends to a worker's epoll set"),
        SyscallRule("eventfd2", reason: "a worker's stop event"),
        SyscallRule("timerfd_create", reason: "a rate limiter's timer"),
        SyscallRule("timerfd_settime", reason: "a paused or reset virtio-net device fires its timer once, so that the resumed worker retries"),
        SyscallRule("close", reason: "releases a stopped worker's descriptors"),
        // The vsock device sizes its connection cap from the open-files limit and the descriptors open.
        SyscallRule("prlimit64", [.masked(index: 0, mask: ~0, value: 0), .masked(index: 2, mask: ~0, value: 0)],
                    label: "prlimit64 of this process, reading only", reason: "vsock activation: the open-files limit (getrlimit)"),
        SyscallRule("openat", [.equals32(index: 2, value: openFlags(O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY))],
                    label: "openat O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY", reason: "vsock activation: opendir(/proc/self/fd) counts open descriptors"),
        SyscallRule("getdents64", reason: "vsock activation: reads /proc/self/fd"),
        SyscallRule("fstat", reason: "vsock activation: opendir checks its descriptor"),
        SyscallRule("newfstatat", [.equals32(index: 3, value: AT_EMPTY_PATH_FLAG)], label: "newfstatat AT_EMPTY_PATH",
                    reason: "vsock activation: opendir checks its descriptor (fstat)"),
    ]

    /// Pausing and continuing the vCPUs and devices, and saving their state (snapshot, migration).
    static let saveState: [SyscallRule] = kick + [
        kvm(CKVM_GET_REGS, "KVM_GET_REGS", "saves vCPU registers"),
        kvm(CKVM_GET_SREGS, "KVM_GET_SREGS", "saves vCPU segment and control registers"),
        kvm(CKVM_GET_XSAVE, "KVM_GET_XSAVE", "saves FPU and vector state (older KVM)"),
        kvm(CKVM_GET_XSAVE2, "KVM_GET_XSAVE2", "saves FPU and vector state"),
        kvm(CKVM_GET_XCRS, "KVM_GET_XCRS", "saves XCR0"),
        kvm(CKVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", "saves debug registers"),
        kvm(CKVM_GET_LAPIC, "KVM_GET_LAPIC", "saves the local APIC"),
        kvm(CKVM_GET_MSRS, "KVM_GET_MSRS", "saves MSRs"),
        kvm(CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", "saves pending exceptions and interrupts"),
        kvm(CKVM_GET_MP_STATE, "KVM_GET_MP_STATE", "saves the vCPU run state (halted, waiting for SIPI)"),
        kvm(CKVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ", "records the guest TSC frequency"),
        kvm(CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", "saves the PIC and IOAPIC"),
        kvm(CKVM_GET_PIT2, "KVM_GET_PIT2", "saves the PIT"),
        kvm(CKVM_GET_CLOCK, "KVM_GET_CLOCK", "saves kvmclock"),
        kvm(CKVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION", "the XSAVE size to save (KVM_CAP_XSAVE2)"),
        kvm(CKVM_KVMCLOCK_CTRL, "KVM_KVMCLOCK_CTRL", "tells the guest its clock was paused (resume)"),
        eventWrite,
        irqLine,
    ] + workerSetup

    /// Dirty-page logging (diff snapshots, migration).
    static let dirtyLog = [
        kvm(CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", "turns dirty logging on and off for a RAM slot"),
        kvm(CKVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", "fetches the pages written since the last fetch"),
        kvm(CKVM_CLEAR_DIRTY_LOG, "KVM_CLEAR_DIRTY_LOG", "write-protects fetched pages again (manual protection)"),
    ]

    // MARK: Roles

    static func main(_ profile: SeccompProfile) -> [SyscallRule] {
        var rules = kick + [
            SyscallRule("rt_sigaction", [.equals32(index: 0, value: kickSignal)], label: "rt_sigaction SIGRTMIN",
                        reason: "installs the vCPU kick's no-op handler before starting vCPUs"),
            SyscallRule("close", reason: "closes the descriptors of an ended machine and its devices"),
            SyscallRule("fdatasync", reason: "flushes disks when the VM ends"),
            SyscallRule("fsync", reason: "flushes disks when the VM ends"),
            SyscallRule("pwrite64", reason: "a qcow2 image's header and metadata when it closes"),
            SyscallRule("pread64", reason: "qcow2 metadata when it closes"),
            SyscallRule("write", [.equals32(index: 0, value: 1)], label: "write to stdout", reason: "flushes stdio at exit"),
            eventWrite,
            irqLine,
            .ioctl(TCGETS, "TCGETS", "reads the terminal mode before restoring it"),
            .ioctl(TCSETS, "TCSETS", "restores the terminal mode when the VM ends"),
            SyscallRule("unlink", reason: "removes the control and console sockets when the VM ends"),
            SyscallRule("ftruncate", reason: "a qcow2 image drops unused tail clusters when it closes"),
            SyscallRule("fcntl", [.equals32(index: 1, value: F_OFD_SETLK)], label: "fcntl F_OFD_SETLK", reason: "unlocks disk images when they close"),
            SyscallRule("newfstatat", [.equals32(index: 3, value: AT_SYMLINK_NOFOLLOW_FLAG)], label: "newfstatat AT_SYMLINK_NOFOLLOW",
                        reason: "lstat: removes the vsock socket only if it is still the one it created"),
            SyscallRule("lstat", reason: "removes the vsock socket only if it is still the one it created (older glibc)"),
        ] + sleep + workerSetup
        if profile.network {
            rules.append(.ioctl((CKVM_TUNSETOFFLOAD), "TUNSETOFFLOAD", "turns a TAP's offloads off when its device resets"))
        }
        if profile.mainRebuildsMachines { rules += rebuild(profile) }
        return rules
    }

    /// What building a new machine after a guest reset takes (`--on-reboot restart`): open the
    /// boot files and disks again, map guest RAM, create and program the KVM VM, open TAPs and
    /// the vsock socket.
    static func rebuild(_ profile: SeccompProfile) -> [SyscallRule] {
        var rules = [
            SyscallRule("openat", reason: "reopens the kernel, initrd, disks, /dev/net/tun"),
            SyscallRule("open", reason: "reopens boot files and disks"),
            SyscallRule("newfstatat", reason: "sizes of boot files and disks"),
            SyscallRule("fstat", reason: "sizes of boot files and disks"),
            SyscallRule("lstat", reason: "checks the vsock socket path"),
            SyscallRule("read", reason: "reads the boot files"),
            SyscallRule("lseek", reason: "image sizes"),
            SyscallRule("fcntl", reason: "locks disk images (OFD locks), non-blocking TAPs"),
            SyscallRule("flock", reason: "locks disk images"),
            SyscallRule("mmap", [.masked(index: 2, mask: protExec, value: 0)], label: "mmap, not executable",
                        reason: "guest RAM (anonymous or memfd) and the vCPUs' kvm_run pages"),
            SyscallRule("madvise", [.equals32(index: 2, value: MADV_MERGEABLE)], label: "madvise MADV_MERGEABLE", reason: "offers guest RAM to KSM"),
            SyscallRule("memfd_create", reason: "guest RAM as a memfd"),
            SyscallRule("ftruncate", reason: "sizes a memfd"),
            SyscallRule("getrandom", reason: "MAC addresses, the VM generation ID"),
            SyscallRule("umask", reason: "creates the vsock socket owner-only"),
            SyscallRule("socket", [.equals32(index: 0, value: UInt64(AF_UNIX))], label: "socket AF_UNIX", reason: "the vsock socket; interface lookups"),
            SyscallRule("bind", reason: "the vsock socket"),
            SyscallRule("listen", reason: "the vsock socket"),
            SyscallRule("unlink", reason: "a stale vsock socket"),
            .ioctl(SIOCGIFINDEX, "SIOCGIFINDEX", "whether a TAP interface exists"),
            kvm(CKVM_CREATE_VM, "KVM_CREATE_VM", "the new boot's VM"),
            kvm(CKVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION", "capabilities of the new VM"),
            kvm(CKVM_ENABLE_CAP, "KVM_ENABLE_CAP", "dirty-log protection, emulation-failure exits"),
            kvm(CKVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", "size of kvm_run"),
            kvm(CKVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST", "MSRs a snapshot can save"),
            kvm(CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", "guest RAM slots"),
            kvm(CKVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", "the TSS pages"),
            kvm(CKVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", "the identity-map page"),
            kvm(CKVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", "PIC, IOAPIC and LAPICs"),
            kvm(CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", "the PIT"),
            kvm(CKVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", "the interrupt routing table"),
            kvm(CKVM_IRQFD, "KVM_IRQFD", "MSI-X vectors as irqfds"),
            kvm(CKVM_IOEVENTFD, "KVM_IOEVENTFD", "queue notifications as ioeventfds"),
            kvm(CKVM_CREATE_VCPU, "KVM_CREATE_VCPU", "the vCPUs"),
            kvm(CKVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ", "the new vCPUs' TSC frequency, read once before they run"),
            kvm(CKVM_SET_CPUID2, "KVM_SET_CPUID2", "CPUID of each vCPU"),
            kvm(CKVM_SET_MSRS, "KVM_SET_MSRS", "boot MSRs"),
            kvm(CKVM_SET_FPU, "KVM_SET_FPU", "boot FPU state"),
            kvm(CKVM_GET_LAPIC, "KVM_GET_LAPIC", "LINT0/LINT1 set-up"),
            kvm(CKVM_SET_LAPIC, "KVM_SET_LAPIC", "LINT0/LINT1 set-up"),
            kvm(CKVM_GET_SREGS, "KVM_GET_SREGS", "boot registers"),
            kvm(CKVM_SET_SREGS, "KVM_SET_SREGS", "boot registers"),
            kvm(CKVM_SET_REGS, "KVM_SET_REGS", "boot registers"),
        ] + workerSetup
        if profile.network {
            rules += [
                .ioctl((CKVM_TUNSETIFF), "TUNSETIFF", "attaches to the TAP interface"),
                .ioctl((CKVM_TUNSETVNETHDRSZ), "TUNSETVNETHDRSZ", "the TAP's virtio-net header size"),
                .ioctl((CKVM_TUNSETOFFLOAD), "TUNSETOFFLOAD", "probes and resets the TAP's offloads"),
            ]
        }
        if let region = profile.executableRegion { rules.append(executableCode(region)) }
        return rules
    }

    /// The emulation assist runs some guest SSE instructions natively from a small W^X code
    /// cache: only pages of its reserved region may become executable, one 16 KiB slot at a time.
    static func executableCode(_ region: SeccompProfile.ExecutableRegion) -> SyscallRule {
        let slotMask = ~(region.size - 1) | (region.slotSize - 1)
        return SyscallRule("mprotect", [.masked(index: 0, mask: slotMask, value: region.base),
                                        .equals32(index: 1, value: region.slotSize),
                                        .equals32(index: 2, value: UInt64(PROT_READ | PROT_EXEC))],
                           label: "mprotect PROT_READ|PROT_EXEC of an emulation-assist code slot",
                           reason: "the emulation assist's W^X code cache (native SSE re-execution)")
    }

    static func vcpu(_ profile: SeccompProfile) -> [SyscallRule] {
        var rules = kick + [
            kvm(CKVM_RUN, "KVM_RUN", "runs the guest"),
            irqLine,
            kvm(CKVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING", "the guest programs an MSI-X vector"),
            kvm(CKVM_IOEVENTFD, "KVM_IOEVENTFD", "the guest maps a virtio BAR: queue notifiers move with it"),
            kvm(CKVM_GET_REGS, "KVM_GET_REGS", "emulation assist; the state in an error message"),
            kvm(CKVM_SET_REGS, "KVM_SET_REGS", "emulation assist"),
            kvm(CKVM_GET_SREGS, "KVM_GET_SREGS", "emulation assist; the state in an error message"),
            kvm(CKVM_SET_SREGS, "KVM_SET_SREGS", "emulation assist"),
            kvm(CKVM_GET_FPU, "KVM_GET_FPU", "emulation assist (SSE operands)"),
            kvm(CKVM_SET_FPU, "KVM_SET_FPU", "emulation assist (SSE results)"),
            kvm(CKVM_GET_MSRS, "KVM_GET_MSRS", "emulation assist (e.g. EFER, syscall MSRs)"),
            kvm(CKVM_SET_MSRS, "KVM_SET_MSRS", "emulation assist"),
            kvm(CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", "emulation assist (injecting exceptions)"),
            kvm(CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", "emulation assist (injecting exceptions)"),
            kvm(CKVM_TRANSLATE, "KVM_TRANSLATE", "emulation assist; the code bytes in an error message"),
            eventWrite,
            eventRead,
        ] + sleep + workerSetup
        if profile.network {
            rules.append(.ioctl((CKVM_TUNSETOFFLOAD), "TUNSETOFFLOAD", "the guest's virtio-net driver picks its offloads (activation, reset)"))
        }
        if let region = profile.executableRegion { rules.append(executableCode(region)) }
        return rules
    }

    /// Every device worker: wait in epoll, consume notifiers, raise interrupts.
    static let worker = [
        SyscallRule("epoll_wait", reason: "waits for queue notifications and backend events"),
        SyscallRule("epoll_pwait", reason: "waits for queue notifications and backend events (epoll_wait through epoll_pwait)"),
        eventRead,
        eventWrite,
        irqLine,
    ]

    static let block = [
        SyscallRule("pread64", reason: "reads the disk image"),
        SyscallRule("pwrite64", reason: "writes the disk image"),
        SyscallRule("preadv", reason: "reads the disk image"),
        SyscallRule("pwritev", reason: "writes the disk image"),
        SyscallRule("fdatasync", reason: "FLUSH requests"),
        SyscallRule("fsync", reason: "FLUSH requests"),
        SyscallRule("fallocate", reason: "DISCARD and WRITE_ZEROES (punch holes, zero ranges)"),
        SyscallRule("ftruncate", reason: "a qcow2 image grows or drops its tail"),
        SyscallRule("fstat", reason: "the image size"),
        SyscallRule("newfstatat", reason: "the image size (fstat through newfstatat)"),
        SyscallRule("lseek", reason: "allocated ranges of the image"),
        SyscallRule("timerfd_settime", reason: "arms the rate limiter's timer"),
    ]

    static let net = [
        SyscallRule("read", reason: "receives frames from the TAP"),
        SyscallRule("write", reason: "sends frames to the TAP"),
        SyscallRule("readv", reason: "receives frames from the TAP"),
        SyscallRule("writev", reason: "sends frames to the TAP"),
        SyscallRule("epoll_ctl", [.equals32(index: 1, value: EPOLL_CTL_MOD)], label: "epoll_ctl EPOLL_CTL_MOD",
                    reason: "watches the TAP for room while output is blocked"),
        SyscallRule("timerfd_settime", reason: "arms the rate limiter's timer"),
    ]

    static let vsock = [
        SyscallRule("socket", [.equals32(index: 0, value: UInt64(AF_UNIX)), .masked(index: 1, mask: socketTypeMask, value: UInt64(SOCK_STREAM.rawValue))],
                    label: "socket AF_UNIX SOCK_STREAM", reason: "connects guest connections to host sockets PATH_port"),
        SyscallRule("connect", reason: "connects to a host listener"),
        SyscallRule("accept4", reason: "accepts host connections on the vsock socket"),
        SyscallRule("accept", reason: "accepts host connections on the vsock socket"),
        SyscallRule("recvfrom", reason: "reads a host connection"),
        SyscallRule("sendto", reason: "writes to a host connection"),
        SyscallRule("read", reason: "reads a host connection"),
        SyscallRule("write", reason: "writes to a host connection"),
        SyscallRule("shutdown", reason: "half-closes a host connection (guest shutdown)"),
        SyscallRule("close", reason: "closes a host connection"),
        SyscallRule("epoll_ctl", reason: "watches host connections"),
        SyscallRule("fcntl", reason: "host connections non-blocking and close-on-exec"),
        SyscallRule("getsockopt", reason: "the result of a non-blocking connect"),
        SyscallRule("timerfd_settime", reason: "retries and timeouts"),
    ]

    static let balloon = [
        SyscallRule("madvise", [.equals32(index: 2, value: MADV_REMOVE)], label: "madvise MADV_REMOVE",
                    reason: "gives inflated pages of memfd-backed RAM back"),
        SyscallRule("fallocate", reason: "gives inflated pages of a memfd back (hole punching)"),
    ]

    static let rng = [SyscallRule("getrandom", reason: "fills the guest's buffers")]

    static let consoleOutput = poll + [
        SyscallRule("write", reason: "guest output to stdout and the console log"),
        SyscallRule("sendto", reason: "guest output to console-socket clients"),
        SyscallRule("openat", [.equals32(index: 2, value: openFlags(O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC))],
                    label: "openat O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC", reason: "starts a new console log after rotating it"),
        SyscallRule("rename", reason: "rotates the console log to FILE.1"),
        SyscallRule("fstat", reason: "the size of the reopened console log"),
        SyscallRule("newfstatat", reason: "the size of the reopened console log"),
        SyscallRule("close", reason: "closes the rotated console log; dropped clients"),
    ]

    static let consoleInput = poll + kick + [
        SyscallRule("read", [.equals32(index: 0, value: 0)], label: "read stdin", reason: "console input"),
        eventWrite,
        irqLine,
    ]

    static let consoleSocket = poll + acceptClient + kick + [close, eventWrite, irqLine]

    static func control(_ profile: SeccompProfile) -> [SyscallRule] {
        poll + acceptClient + sleep + saveState + dirtyLog + [
            close,
            SyscallRule("mkdir", reason: "a snapshot's directory"),
            SyscallRule("openat", [.equals32(index: 2, value: openFlags(O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC))],
                        label: "openat O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC", reason: "creates a snapshot's files"),
            SyscallRule("openat", [.equals32(index: 2, value: openFlags(O_RDONLY | O_CLOEXEC | O_DIRECTORY))],
                        label: "openat O_RDONLY|O_CLOEXEC|O_DIRECTORY", reason: "syncs a snapshot's directory"),
            SyscallRule("write", reason: "writes a snapshot's state file"),
            SyscallRule("pwrite64", reason: "writes guest RAM into a snapshot's memory file"),
            SyscallRule("pread64", reason: "reads /proc/self/pagemap (opened with guest RAM): what a restored VM changed, for a diff snapshot"),
            SyscallRule("ftruncate", reason: "sizes a snapshot's memory file (sparse)"),
            SyscallRule("fsync", reason: "makes a snapshot durable before it is renamed into place"),
            SyscallRule("fdatasync", reason: "flushes disks before a snapshot"),
            SyscallRule("rename", reason: "publishes a snapshot atomically"),
            SyscallRule("newfstatat", reason: "checks a snapshot's target path"),
            SyscallRule("fstat", reason: "checks a snapshot's target path"),
            SyscallRule("getrandom", reason: "a snapshot's random identity"),
        ]
    }

    static let signals = kick + [
        SyscallRule("rt_sigtimedwait", reason: "sigwait for SIGTERM, SIGINT and SIGHUP"),
    ]

    static let migration = poll + sleep + saveState + dirtyLog + [
        SyscallRule("socket", [.masked(index: 1, mask: socketTypeMask, value: UInt64(SOCK_STREAM.rawValue))], label: "socket SOCK_STREAM",
                    reason: "the connection to the target (TCP or unix)"),
        SyscallRule("connect", reason: "connects to the target"),
        SyscallRule("setsockopt", reason: "TCP_NODELAY on the connection"),
        SyscallRule("getsockopt", reason: "the result of a non-blocking connect"),
        SyscallRule("sendto", reason: "sends the VM"),
        SyscallRule("recvfrom", reason: "the target's replies"),
        SyscallRule("read", reason: "the target's replies; the base snapshot's memory file"),
        SyscallRule("fcntl", [.equals32(index: 1, value: UInt64(F_GETFL))], label: "fcntl F_GETFL", reason: "makes the connection non-blocking"),
        SyscallRule("fcntl", [.equals32(index: 1, value: UInt64(F_SETFL))], label: "fcntl F_SETFL", reason: "makes the connection non-blocking"),
        SyscallRule("eventfd2", reason: "the connection's cancel event"),
        SyscallRule("close", reason: "closes the connection and files it read"),
        SyscallRule("shutdown", reason: "ends the connection"),
        SyscallRule("openat", [.equals32(index: 2, value: openFlags(O_RDONLY | O_CLOEXEC))], label: "openat O_RDONLY|O_CLOEXEC",
                    reason: "reads the base snapshot's memory file and disks it copies"),
        SyscallRule("pread64", reason: "reads the base snapshot's memory file and disks it copies"),
        SyscallRule("fcntl", [.equals32(index: 1, value: F_OFD_SETLK)], label: "fcntl F_OFD_SETLK",
                    reason: "locks the disks it copies while it reads them, and unlocks them"),
        SyscallRule("lseek", reason: "allocated ranges of disks it copies"),
        SyscallRule("fstat", reason: "sizes of files it reads"),
        SyscallRule("newfstatat", reason: "sizes of files it reads"),
        SyscallRule("fdatasync", reason: "flushes disks before the switch-over"),
        SyscallRule("getrandom", reason: "the migration's random identity"),
    ]

    static let throttle = sleep + kick

    /// The spawner creates every thread once threads are confined: its filter is the union of
    /// every role's (a new thread starts with it, then narrows itself to its role) plus what
    /// creating a thread takes.
    static func spawner(_ profile: SeccompProfile) -> [SyscallRule] {
        var rules: [SyscallRule] = []
        // The main thread is not created by the spawner.
        for role in ThreadRole.allCases where role != .spawner && role != .main {
            rules += productRules(for: role, profile: profile)
        }
        rules += [
            SyscallRule("clone", [.equals32(index: 0, value: threadCloneFlags)], label: "clone (a thread)", reason: "creates a thread, with exactly pthread_create's flags"),
            SyscallRule("mmap", [.masked(index: 2, mask: protExec, value: 0), .masked(index: 3, mask: mapTypeAndAnonymous, value: privateAnonymous)],
                        label: "mmap private anonymous, not executable", reason: "new threads' stacks"),
            SyscallRule("mprotect", [.masked(index: 2, mask: protExec, value: 0)], label: "mprotect, not executable", reason: "stack guard pages"),
            SyscallRule("set_robust_list", reason: "a new thread registers its robust futex list (glibc)"),
            SyscallRule("rseq", reason: "a new thread registers restartable sequences (glibc)"),
            SyscallRule("prctl", [.equals32(index: 0, value: PR_SET_NAME)], label: "prctl PR_SET_NAME", reason: "a new thread names itself"),
            SyscallRule("seccomp", [.equals32(index: 0, value: SECCOMP_SET_MODE_FILTER)], label: "seccomp SECCOMP_SET_MODE_FILTER",
                        reason: "a new thread installs its role's filter"),
        ]
        return rules
    }
}
