import Synchronization

/// Emulates, one at a time, the instructions a VMM's hypervisor could not: it fetches the bytes at
/// CS:RIP through the guest's page tables, decodes them, and either runs the instruction on `state`
/// and guest memory, or says which exception to inject, or says why it cannot.
///
/// One instance may serve every vCPU of a VM (steps are independent; the host re-execution stub
/// is used under a lock); it keeps per-mnemonic counters.
public final class Emulator: Sendable {
    public let configuration: EmulatorConfiguration
    private let walker: PageWalker
    private let host: HostSSEExecutor?
    private let stats = Mutex(EmulationStatistics())

    public init(configuration: EmulatorConfiguration = EmulatorConfiguration()) {
        self.configuration = configuration
        walker = PageWalker(physicalAddressBits: configuration.physicalAddressBits,
                            gigabytePages: configuration.guestFeatures.contains(.gigabytePages))
        host = configuration.hostReexecution ? HostSSEExecutor() : nil
    }

    /// The host CPU's features as CPUID reports them (empty if host re-execution is unavailable).
    public var hostFeatures: CPUFeatures { host?.features ?? [] }

    /// Whether allow-listed SSE forms can be re-executed here.
    public var hostReexecutionAvailable: Bool { host != nil }

    /// A copy of the counters.
    public func statistics() -> EmulationStatistics { stats.withLock { $0 } }

    /// Emulates the instruction at `state.rip`.
    ///
    /// On `.completed` and `.injectException`, `state` holds the new state (for a fault: the old one
    /// with CR2 set for #PF); on `.unsupported` it is unchanged.
    public func step(state: inout CPUState, memory: some GuestPhysicalMemory, platform: some EmulatorPlatform) -> EmulationResult {
        let result = run(&state, memory, platform)
        stats.withLock { s in s.record(result) }
        return result.outcome
    }

    /// Completes the instruction at `state.rip` only if the emulator can (no exception, no
    /// stop): for running ahead after a failing instruction. Returns the changes, or nil with
    /// `state` unchanged; only completed instructions are counted.
    public func stepIfCompletes(state: inout CPUState, memory: some GuestPhysicalMemory, platform: some EmulatorPlatform) -> StateChanges? {
        var trial = state
        let result = run(&trial, memory, platform)
        guard case .completed(let changes) = result.outcome else { return nil }
        state = trial
        stats.withLock { s in s.record(result) }
        return changes
    }

    /// A result with the mnemonic it belongs to, for the counters.
    struct Recorded {
        var outcome: EmulationResult
        var mnemonic: String?
    }

    private func run(_ state: inout CPUState, _ memory: some GuestPhysicalMemory, _ platform: some EmulatorPlatform) -> Recorded {
        let original = state
        let mode = state.mode
        let fetched = InstructionFetcher.fetch(state: state, memory: memory, walker: walker)

        func unsupported(_ reason: String, _ bytes: [UInt8], _ decoded: DecodedInstruction? = nil) -> Recorded {
            state = original
            let text = decoded.map { Disassembler.describe($0) }
            return Recorded(outcome: .unsupported(UnsupportedInstruction(reason: reason, bytes: bytes, rip: original.rip, mode: mode,
                                                                          disassembly: text)), mnemonic: nil)
        }
        func fault(_ f: AccessFault, _ bytes: [UInt8], _ decoded: DecodedInstruction?, _ mnemonic: String?) -> Recorded {
            switch f {
            case .stop(let why):
                return unsupported(why, bytes, decoded)
            case .exception(let e):
                state = original
                var changes: StateChanges = []
                if e.vector == .pageFault, let address = e.payload {
                    state.cr2 = address
                    changes.insert(.specialRegisters)
                }
                return Recorded(outcome: .injectException(e, changes: changes), mnemonic: mnemonic)
            }
        }

        let instruction: DecodedInstruction
        switch Decoder.decode(fetched.bytes, mode: mode) {
        case .success(let d):
            instruction = d
        case .failure(.truncated):
            if let stop = fetched.stop { return fault(stop, fetched.bytes, nil, nil) }
            return unsupported("instruction bytes ran out", fetched.bytes)
        case .failure(.tooLong):
            return fault(.generalProtection(state), fetched.bytes, nil, nil)
        case .failure(.invalidOpcode):
            return fault(.invalidOpcode, fetched.bytes, nil, nil)
        case .failure(.unsupportedEncoding(let what)):
            return unsupported("\(what) (not emulated)", fetched.bytes)
        }

        if instruction.prefixes.lock && !LockRules.accepts(instruction) {
            return fault(.invalidOpcode, instruction.bytes, instruction, nil)
        }
        let form: InstructionForm
        switch InstructionTable.lookup(instruction) {
        case .form(let f): form = f
        case .invalidShape: return fault(.invalidOpcode, instruction.bytes, instruction, nil)
        case .unknown: return unsupported("no emulation for this instruction", instruction.bytes, instruction)
        }
        if let needed = form.feature, !configuration.guestFeatures.contains(needed) {
            return fault(.invalidOpcode, instruction.bytes, instruction, form.mnemonic)
        }

        let context = InstructionContext(instruction: instruction, memory: memory, platform: platform, walker: walker,
                                         configuration: configuration)
        var work = state
        let outcome = dispatch(form.operation, context, &work)
        switch outcome {
        case .failure(let f):
            return fault(f, instruction.bytes, instruction, form.mnemonic)
        case .success(let completion):
            var changes: StateChanges
            var trap: ExceptionInjection?
            switch completion {
            case .done(let c):
                changes = c
                work.rip = context.nextRIP(original)
            case .trap(let e, let c):
                changes = c
                trap = e
                work.rip = context.nextRIP(original)
            case .jumped(let c):
                changes = c
            }
            changes.insert(.registers)
            work.rflags &= ~RFlags.resume
            if trap == nil && original.rflags & RFlags.trap != 0 {
                // Single-stepping: a debug trap after the instruction, DR6.BS set.
                trap = ExceptionInjection(vector: .debug, payload: 0x4000)
            }
            state = work
            if let trap { return Recorded(outcome: .injectException(trap, changes: changes), mnemonic: form.mnemonic) }
            return Recorded(outcome: .completed(changes: changes), mnemonic: form.mnemonic)
        }
    }

    private func dispatch<M, P>(_ operation: Operation, _ c: InstructionContext<M, P>, _ state: inout CPUState) -> Result<Completion, AccessFault> {
        switch operation {
        case .int3:
            return .success(.trap(ExceptionInjection(vector: .breakpoint), .registers))
        case .clac:
            return c.executeAlignmentFlag(set: false, &state)
        case .stac:
            return c.executeAlignmentFlag(set: true, &state)
        case .popcnt:
            return c.executeBitCount(.popcnt, &state)
        case .lzcnt:
            return c.executeBitCount(.lzcnt, &state)
        case .tzcnt:
            return c.executeBitCount(.tzcnt, &state)
        case .fwait:
            return c.executeFWAIT(&state)
        case .fnclex:
            return c.executeFNCLEX(&state)
        case .fninit:
            return c.executeFNINIT(&state)
        case .emms:
            return c.executeEMMS(&state)
        case .fild32:
            return c.executeFILD32(&state)
        case .verifySegment(let write):
            return c.executeVerifySegment(write: write, &state)
        case .fxsave:
            return c.executeFXSAVE(&state)
        case .fxrstor:
            return c.executeFXRSTOR(&state)
        case .ldmxcsr:
            return c.executeLDMXCSR(&state)
        case .stmxcsr:
            return c.executeSTMXCSR(&state)
        case .nop:
            return .success(.done(.registers))
        case .undefined:
            return .failure(.invalidOpcode)
        case .rdtscp:
            return c.executeRDTSCP(&state)
        case .rdpid:
            return c.executeRDPID(&state)
        case .readSegmentBase(let s):
            return c.executeSegmentBase(s, write: false, &state)
        case .writeSegmentBase(let s):
            return c.executeSegmentBase(s, write: true, &state)
        case .swapgs:
            return c.executeSwapGS(&state)
        case .sysret:
            return c.executeSYSRET(&state)
        case .xgetbv:
            return c.executeXGETBV(&state)
        case .sse(let form):
            return c.executeSSE(form, &state, host: host)
        }
    }
}
