import Synchronization

/// Inputs and outputs of one re-executed SSE instruction.
struct HostExecution: Sendable, Equatable {
    var xmm: XMMRegisters
    var mxcsr: UInt32
    /// A copy of the guest's memory operand (at most 16 bytes); the host instruction sees it at [RDI].
    var memory: [UInt8]
    /// RAX, RCX, RDX as the host instruction sees them (an explicit GPR operand is re-encoded as RAX).
    var rax: UInt64 = 0
    var rcx: UInt64 = 0
    var rdx: UInt64 = 0
    /// RFLAGS right after the instruction (output).
    var rflags: UInt64 = 0
}

/// Runs re-encoded, allow-listed SSE instructions on the host CPU with the guest's XMM registers and
/// MXCSR loaded (FXRSTOR from a 512-byte image), then saves them back (FXSAVE). The host's own
/// FPU/SSE state is saved before and restored after, inside the same generated stub.
///
/// Only code built by `SSEEncoder` from `SSEAllowList` forms is ever placed in the stub.
final class HostSSEExecutor: Sendable {
    /// Host CPU features (CPUID), to refuse forms the host cannot run.
    let features: CPUFeatures
    /// The host's MXCSR_MASK: MXCSR bits FXRSTOR accepts.
    let mxcsrMask: UInt32
    /// "AuthenticAMD", "GenuineIntel", …
    let vendor: String
    private let resources: Mutex<ExecutorResources>

    /// Sets up executable memory and probes the host CPU; nil if executable memory is unavailable.
    init?() {
        guard let r = ExecutorResources() else { return nil }
        guard let leaf0 = r.cpuid(0, 0), let leaf1 = r.cpuid(1, 0) else { return nil }
        let leaf7 = leaf0.eax >= 7 ? r.cpuid(7, 0) : nil
        let maxExtended = r.cpuid(0x8000_0000, 0)?.eax ?? 0
        let extended = maxExtended >= 0x8000_0001 ? r.cpuid(0x8000_0001, 0) : nil
        features = CPUFeatures(leaf1ECX: leaf1.ecx, leaf1EDX: leaf1.edx, leaf7EBX: leaf7?.ebx ?? 0, leaf7ECX: leaf7?.ecx ?? 0,
                               extendedECX: extended?.ecx ?? 0, extendedEDX: extended?.edx ?? 0)
        var vendorBytes: [UInt8] = []
        for word in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
            for i in 0..<4 { vendorBytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt32(i)))) }
        }
        vendor = String(decoding: vendorBytes, as: UTF8.self)
        guard let mask = r.hostMXCSRMask() else { return nil }
        mxcsrMask = mask
        resources = Mutex(r)
    }

    /// Runs `instruction` (from `SSEEncoder`) with `io` as the register, MXCSR and memory state.
    /// Returns false if the stub could not be prepared.
    func run(_ instruction: [UInt8], _ io: inout HostExecution) -> Bool {
        guard io.mxcsr & ~mxcsrMask == 0, io.memory.count <= ExecutorResources.memoryBufferSize else { return false }
        let input = io
        let output: HostExecution? = resources.withLock { r in r.execute(instruction, input) }
        guard let output else { return false }
        io = output
        return true
    }

    /// The complete stub around `instruction`: save host state, load guest state and RAX/RCX/RDX,
    /// run, store RAX/RCX/RDX and RFLAGS, save guest state, restore host state.
    ///
    /// Arguments: RDI = memory operand buffer, RSI = guest FXSAVE image, RDX = three 64-bit slots
    /// (RAX, RCX, RDX), RCX = host FXSAVE area. Returns RFLAGS.
    static func stub(around instruction: [UInt8]) -> [UInt8] {
        let prologue: [UInt8] = [
            0x48, 0x0F, 0xAE, 0x01,       // fxsave64 [rcx]
            0x48, 0x0F, 0xAE, 0x0E,       // fxrstor64 [rsi]
            0x49, 0x89, 0xC8,             // mov r8, rcx
            0x49, 0x89, 0xD1,             // mov r9, rdx
            0x48, 0x8B, 0x02,             // mov rax, [rdx]
            0x48, 0x8B, 0x4A, 0x08,       // mov rcx, [rdx+8]
            0x48, 0x8B, 0x52, 0x10,       // mov rdx, [rdx+16]
        ]
        let epilogue: [UInt8] = [
            0x49, 0x89, 0x01,             // mov [r9], rax
            0x49, 0x89, 0x49, 0x08,       // mov [r9+8], rcx
            0x49, 0x89, 0x51, 0x10,       // mov [r9+16], rdx
            0x9C,                         // pushfq
            0x58,                         // pop rax
            0x48, 0x0F, 0xAE, 0x06,       // fxsave64 [rsi]
            0x49, 0x0F, 0xAE, 0x08,       // fxrstor64 [r8]
            0xC3,                         // ret
        ]
        return prologue + instruction + epilogue
    }
}

/// The executor's code cache and aligned buffers; used only under the executor's lock. @safe:
/// the buffers are allocated here, freed in deinit, and never handed out.
@safe final class ExecutorResources {
    static let memoryBufferSize = 64
    private static let areaSize = 512

    private let cache: ExecutableCodeCache
    private let hostArea: UnsafeMutableRawPointer
    private let guestArea: UnsafeMutableRawPointer
    private let memoryBuffer: UnsafeMutableRawPointer
    private let slots: UnsafeMutableRawPointer

    init?() {
        guard let c = ExecutableCodeCache() else { return nil }
        cache = c
        unsafe hostArea = UnsafeMutableRawPointer.allocate(byteCount: Self.areaSize, alignment: 64)
        unsafe guestArea = UnsafeMutableRawPointer.allocate(byteCount: Self.areaSize, alignment: 64)
        unsafe memoryBuffer = UnsafeMutableRawPointer.allocate(byteCount: Self.memoryBufferSize, alignment: 64)
        unsafe slots = UnsafeMutableRawPointer.allocate(byteCount: 24, alignment: 8)
        unsafe hostArea.initializeMemory(as: UInt8.self, repeating: 0, count: Self.areaSize)
        unsafe guestArea.initializeMemory(as: UInt8.self, repeating: 0, count: Self.areaSize)
        unsafe memoryBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.memoryBufferSize)
        unsafe slots.initializeMemory(as: UInt8.self, repeating: 0, count: 24)
    }

    deinit {
        unsafe hostArea.deallocate()
        unsafe guestArea.deallocate()
        unsafe memoryBuffer.deallocate()
        unsafe slots.deallocate()
    }

    /// CPUID(leaf, subleaf) on the host.
    func cpuid(_ leaf: UInt32, _ subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32)? {
        let code: [UInt8] = [
            0x49, 0x89, 0xD0,             // mov r8, rdx
            0x53,                         // push rbx
            0x89, 0xF8,                   // mov eax, edi
            0x89, 0xF1,                   // mov ecx, esi
            0x0F, 0xA2,                   // cpuid
            0x41, 0x89, 0x00,             // mov [r8], eax
            0x41, 0x89, 0x58, 0x04,       // mov [r8+4], ebx
            0x41, 0x89, 0x48, 0x08,       // mov [r8+8], ecx
            0x41, 0x89, 0x50, 0x0C,       // mov [r8+12], edx
            0x5B,                         // pop rbx
            0xC3,                         // ret
        ]
        guard let stub = cache.stub(for: code) else { return nil }
        _ = unsafe stub(UInt(leaf), UInt(subleaf), UInt(bitPattern: slots), 0)
        return unsafe (slots.load(as: UInt32.self), slots.load(fromByteOffset: 4, as: UInt32.self),
                slots.load(fromByteOffset: 8, as: UInt32.self), slots.load(fromByteOffset: 12, as: UInt32.self))
    }

    /// MXCSR_MASK from an FXSAVE of the host state (0 there means the default 0xFFBF).
    func hostMXCSRMask() -> UInt32? {
        let code: [UInt8] = [0x48, 0x0F, 0xAE, 0x07, 0xC3]  // fxsave64 [rdi]; ret
        guard let stub = cache.stub(for: code) else { return nil }
        _ = unsafe stub(UInt(bitPattern: hostArea), 0, 0, 0)
        let mask = unsafe hostArea.load(fromByteOffset: 28, as: UInt32.self)
        return mask == 0 ? 0xFFBF : mask
    }

    /// Builds the guest image, runs the stub and reads the results back.
    func execute(_ instruction: [UInt8], _ input: HostExecution) -> HostExecution? {
        guard let stub = cache.stub(for: HostSSEExecutor.stub(around: instruction)) else { return nil }
        // A fresh x87 state (FCW 0x037F: all x87 exceptions masked, empty tags) plus the guest's SSE state.
        unsafe guestArea.initializeMemory(as: UInt8.self, repeating: 0, count: Self.areaSize)
        unsafe guestArea.storeBytes(of: UInt16(0x037F), toByteOffset: 0, as: UInt16.self)
        unsafe guestArea.storeBytes(of: input.mxcsr, toByteOffset: 24, as: UInt32.self)
        for i in 0..<16 {
            unsafe guestArea.storeBytes(of: input.xmm[i].low, toByteOffset: 160 + 16 * i, as: UInt64.self)
            unsafe guestArea.storeBytes(of: input.xmm[i].high, toByteOffset: 168 + 16 * i, as: UInt64.self)
        }
        unsafe memoryBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.memoryBufferSize)
        for (i, b) in input.memory.prefix(Self.memoryBufferSize).enumerated() {
            unsafe memoryBuffer.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
        }
        unsafe slots.storeBytes(of: input.rax, toByteOffset: 0, as: UInt64.self)
        unsafe slots.storeBytes(of: input.rcx, toByteOffset: 8, as: UInt64.self)
        unsafe slots.storeBytes(of: input.rdx, toByteOffset: 16, as: UInt64.self)

        let flags = unsafe stub(UInt(bitPattern: memoryBuffer), UInt(bitPattern: guestArea), UInt(bitPattern: slots), UInt(bitPattern: hostArea))

        var out = input
        out.rflags = flags
        out.mxcsr = unsafe guestArea.load(fromByteOffset: 24, as: UInt32.self)
        for i in 0..<16 {
            out.xmm[i] = unsafe XMMValue(low: guestArea.load(fromByteOffset: 160 + 16 * i, as: UInt64.self),
                                  high: guestArea.load(fromByteOffset: 168 + 16 * i, as: UInt64.self))
        }
        out.memory = (0..<input.memory.count).map { unsafe memoryBuffer.load(fromByteOffset: $0, as: UInt8.self) }
        out.rax = unsafe slots.load(fromByteOffset: 0, as: UInt64.self)
        out.rcx = unsafe slots.load(fromByteOffset: 8, as: UInt64.self)
        out.rdx = unsafe slots.load(fromByteOffset: 16, as: UInt64.self)
        return out
    }
}
