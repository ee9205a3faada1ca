/// Why a guest memory access (or an instruction) could not complete.
enum AccessFault: Error, Equatable {
    /// Deliver this exception to the guest.
    case exception(ExceptionInjection)
    /// Stop the VM: the access hit something the emulator cannot handle (page table or data outside RAM).
    case stop(String)

    static func generalProtection(_ state: CPUState, code: UInt32 = 0) -> AccessFault {
        .exception(ExceptionInjection(vector: .generalProtection, errorCode: errorCode(state, code)))
    }

    static func stackFault(_ state: CPUState, code: UInt32 = 0) -> AccessFault {
        .exception(ExceptionInjection(vector: .stackFault, errorCode: errorCode(state, code)))
    }

    static let invalidOpcode = AccessFault.exception(ExceptionInjection(vector: .invalidOpcode))
    static let deviceNotAvailable = AccessFault.exception(ExceptionInjection(vector: .deviceNotAvailable))

    static func alignmentCheck(_ state: CPUState) -> AccessFault {
        .exception(ExceptionInjection(vector: .alignmentCheck, errorCode: errorCode(state, 0)))
    }

    static func pageFault(errorCode: UInt32, address: UInt64) -> AccessFault {
        .exception(ExceptionInjection(vector: .pageFault, errorCode: errorCode, payload: address))
    }

    /// Real mode delivers exceptions without error codes.
    private static func errorCode(_ state: CPUState, _ code: UInt32) -> UInt32? {
        state.cr0 & CR0.protectionEnable == 0 ? nil : code
    }
}
