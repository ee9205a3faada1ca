/// FWAIT, LDMXCSR and STMXCSR.
extension InstructionContext {
    /// FWAIT: #NM when CR0.MP and CR0.TS are both set; #MF when an unmasked x87 exception is pending
    /// (FSW.ES) and CR0.NE is set; otherwise nothing.
    func executeFWAIT(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if state.cr0 & CR0.monitorCoprocessor != 0 && state.cr0 & CR0.taskSwitched != 0 { return .failure(.deviceNotAvailable) }
        if state.fsw & 0x80 != 0 {
            guard state.cr0 & CR0.numericError != 0 else {
                return .failure(.stop("FWAIT with a pending x87 exception and CR0.NE clear needs the external FERR# interrupt"))
            }
            return .failure(.exception(ExceptionInjection(vector: .x87FloatingPoint)))
        }
        return .success(.done(.registers))
    }

    /// #UD / #NM checks shared by every SSE instruction: CR0.EM or no CR4.OSFXSR → #UD; CR0.TS → #NM.
    func checkSSEAvailable(_ state: CPUState) -> AccessFault? {
        if state.cr0 & CR0.emulation != 0 || state.cr4 & CR4.osfxsr == 0 { return .invalidOpcode }
        if state.cr0 & CR0.taskSwitched != 0 { return .deviceNotAvailable }
        return nil
    }

    /// LDMXCSR m32: MXCSR = m32; reserved bits set → #GP(0).
    func executeLDMXCSR(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if let f = checkSSEAvailable(state) { return .failure(f) }
        let value: UInt32
        switch readMemoryOperand(state, size: 4) {
        case .success(let bytes): value = UInt32(truncatingIfNeeded: littleEndian(bytes))
        case .failure(let f): return .failure(f)
        }
        guard value & ~configuration.mxcsrMask == 0 else { return .failure(.generalProtection(state)) }
        state.mxcsr = value
        return .success(.done([.registers, .fpu]))
    }

    /// STMXCSR m32.
    func executeSTMXCSR(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if let f = checkSSEAvailable(state) { return .failure(f) }
        if case .failure(let f) = writeMemoryOperand(state, littleEndianBytes(UInt64(state.mxcsr), count: 4)) { return .failure(f) }
        return .success(.done(.registers))
    }
}
