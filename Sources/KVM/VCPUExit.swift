/// Why `KVM_RUN` returned to user space.
///
/// Buffers point into the vCPU's shared `kvm_run` page: they are valid until the next
/// `run()`, and an `ioIn`/`mmioRead` must be filled before it.
@unsafe public enum VCPUExit {
    /// Port input: fill `data` (`count` items of `size` bytes each, for string instructions).
    case ioIn(port: UInt16, size: Int, count: Int, data: UnsafeMutableRawBufferPointer)
    /// Port output of `count` items of `size` bytes.
    case ioOut(port: UInt16, size: Int, count: Int, data: UnsafeRawBufferPointer)
    /// MMIO read of `data.count` bytes: fill `data`.
    case mmioRead(address: UInt64, data: UnsafeMutableRawBufferPointer)
    /// MMIO write.
    case mmioWrite(address: UInt64, data: UnsafeRawBufferPointer)
    /// The guest executed HLT with interrupts off (or the irqchip is in user space).
    case halt
    /// Triple fault or another condition that resets the CPU.
    case shutdown
    /// A system event (KVM_SYSTEM_EVENT_SHUTDOWN / RESET / CRASH).
    case systemEvent(type: UInt32)
    /// The hardware refused to enter the guest.
    case failEntry(hardwareReason: UInt64)
    /// KVM could not handle the exit (suberror 1 = emulation failure).
    case internalError(suberror: UInt32, data: [UInt64])
    /// `KVM_RUN` was interrupted by a signal or `immediate_exit` (a kick from another thread).
    case interrupted
    /// The guest hit a debug event.
    case debug
    /// An exit reason Skiff does not handle.
    case unknown(reason: UInt32)
}
