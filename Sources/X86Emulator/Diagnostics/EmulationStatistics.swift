/// Counters of what the emulator has done, for the VMM to show.
public struct EmulationStatistics: Sendable, Equatable {
    /// Instructions by mnemonic: those completed and those that raised an exception.
    public var instructions: [String: UInt64] = [:]
    /// Exceptions injected, by vector name ("#UD", "#PF", …).
    public var exceptions: [String: UInt64] = [:]
    /// Instructions the emulator gave up on.
    public var unsupported: UInt64 = 0

    public init() {}

    /// "popcnt 12, pxor 40, …; exceptions #BP 3; unsupported 0", mnemonics sorted by count.
    public var summary: String {
        let sorted = instructions.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        var s = sorted.isEmpty ? "no instructions" : sorted.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        if !exceptions.isEmpty {
            s += "; exceptions " + exceptions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        return s + "; unsupported \(unsupported)"
    }

    mutating func record(_ r: Emulator.Recorded) {
        if let m = r.mnemonic { instructions[m, default: 0] &+= 1 }
        switch r.outcome {
        case .completed: break
        case .injectException(let e, _): exceptions[e.vector.description, default: 0] &+= 1
        case .unsupported: unsupported &+= 1
        }
    }
}
