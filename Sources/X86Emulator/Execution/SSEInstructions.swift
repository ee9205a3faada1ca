/// Allow-listed SSE forms, re-executed on the host CPU.
extension InstructionContext {
    /// Checks the guest-visible conditions (#UD, #NM, segment and alignment #GP, #PF), copies the
    /// operands out, runs the re-encoded instruction on the host, and writes the results back.
    func executeSSE(_ form: SSEForm, _ state: inout CPUState, host: HostSSEExecutor?) -> Result<Completion, AccessFault> {
        if let f = checkSSEAvailable(state) { return .failure(f) }
        guard configuration.hostReexecution else {
            return .failure(.stop("re-executing SSE instructions on the host is disabled"))
        }
        guard let host else {
            return .failure(.stop("re-executing SSE instructions needs executable memory, which the host refused"))
        }
        guard host.features.contains(form.feature) else {
            return .failure(.stop("the host CPU lacks \(form.feature.names.joined(separator: ", ")), needed to re-execute \(form.mnemonic)"))
        }
        if form.floatingPoint && state.mxcsr & 0x1F80 != 0x1F80 {
            return .failure(.stop("\(form.mnemonic) with unmasked SIMD floating-point exceptions (MXCSR \(hex(UInt64(state.mxcsr)))) is not re-executed"))
        }
        guard state.mxcsr & ~host.mxcsrMask == 0 else {
            return .failure(.stop("guest MXCSR \(hex(UInt64(state.mxcsr))) has bits the host does not support"))
        }

        let rexW = instruction.rex?.w == true
        var io = HostExecution(xmm: state.xmm, mxcsr: state.mxcsr, memory: [])
        var storeTo: UInt64?
        if instruction.memory != nil {
            let size = form.memoryBytes(rexW: rexW)
            let kind: AccessKind = form.direction == .destination ? .write : .read
            let linear: UInt64
            switch linearAddress(state, size: size, kind: kind) {
            case .success(let l): linear = l
            case .failure(let f): return .failure(f)
            }
            if form.aligned && linear & 0xF != 0 { return .failure(.generalProtection(state)) }
            let guestMemory = linearMemory(state)
            if form.direction == .source {
                switch guestMemory.read(linear, count: size) {
                case .success(let bytes): io.memory = bytes
                case .failure(let f): return .failure(f)
                }
            } else {
                // Fault before running anything if the destination is not writable.
                if case .failure(let f) = guestMemory.translate(linear, count: size, kind: .write) { return .failure(f) }
                io.memory = [UInt8](repeating: 0, count: size)
                storeTo = linear
            }
        } else if form.rm == .gprOrMemory {
            io.rax = state.gpr[instruction.rmField]
        }
        if form.implicit != .none {
            io.rax = state.gpr[.rax]
            io.rcx = state.gpr[.rcx]
            io.rdx = state.gpr[.rdx]
        }

        let code = SSEEncoder.encode(instruction, form)
        guard host.run(code, &io) else { return .failure(.stop("could not prepare host code for \(form.mnemonic)")) }

        if let linear = storeTo {
            if case .failure(let f) = linearMemory(state).write(linear, io.memory) { return .failure(f) }
        }
        var changes: StateChanges = .registers
        if io.xmm != state.xmm || io.mxcsr != state.mxcsr { changes.insert(.fpu) }
        state.xmm = io.xmm
        state.mxcsr = io.mxcsr
        if form.reg == .gprDestination { state.gpr[instruction.regField] = io.rax }
        if form.rm == .gprOrMemory && form.direction == .destination && instruction.memory == nil {
            state.gpr[instruction.rmField] = io.rax
        }
        if form.implicit == .writesRCX || form.implicit == .readsRAXRDXWritesRCX { state.gpr[.rcx] = io.rcx }
        if form.writesFlags {
            state.rflags = (state.rflags & ~RFlags.arithmetic) | (io.rflags & RFlags.arithmetic)
        }
        return .success(.done(changes))
    }
}
