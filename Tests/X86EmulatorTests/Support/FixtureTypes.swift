/// One instruction as GNU as encoded it and objdump printed it (Intel syntax).
struct AssembledInstruction: Sendable, CustomStringConvertible {
    let source: String
    let bytes: [UInt8]
    let objdump: String

    var description: String { source }
}

/// One SSE instruction to run both through the emulator and natively through a `cx86_sse` oracle op.
struct SSEOracleCase: Sendable, CustomStringConvertible {
    let op: Int
    let source: String
    let bytes: [UInt8]
    /// The XMM register the oracle's `dst` operand stands for (input and, mostly, output).
    let xmmDestination: Int
    /// The XMM register of the `src` operand, if it is a register.
    let xmmSource: Int?
    /// The `src` operand is memory at [rdx+rsi*2+0x30].
    let memory: Bool
    /// The general-purpose register operand, if any.
    let gpr: Int?
    let immediate: Int?

    init(op: Int, source: String, bytes: [UInt8], xmmDestination: Int, xmmSource: Int?, memory: Bool, gpr: Int?, immediate: Int?) {
        self.op = op
        self.source = source
        self.bytes = bytes
        self.xmmDestination = xmmDestination
        self.xmmSource = xmmSource
        self.memory = memory
        self.gpr = gpr
        self.immediate = immediate
    }

    var description: String { source }
}

/// A whole assembled program: `entry` at offset 0 wraps `block` (offsets of its first instruction and of its final RET).
struct AssembledProgram: Sendable {
    let bytes: [UInt8]
    let block: Int
    let blockEnd: Int
}
