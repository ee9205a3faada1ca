import DeviceModel
import Testing

@testable import PCI

/// SplitMix64: a small seeded generator so a failing run can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// The configuration a device model's constructor builds: vendor 0x1234 device 0x11e8, a 64 KiB
/// 32-bit memory BAR 0, a 1 MiB prefetchable 64-bit BAR 2/3, a 256-byte I/O BAR 4, an MSI-X
/// capability at 0x40 (5 vectors, table and PBA in BAR 0) and a vendor capability at 0x4C
/// whose byte 0x50 is writable.
func makeLayout(bar0: UInt64 = 0xc000_0000, bar2: UInt64 = 0x100_0000_0000, bar4: UInt64 = 0x6000) -> PCIConfiguration {
    var c = PCIConfiguration(vendor: 0x1234, device: 0x11e8, classCode: 0xff_00_00, revision: 2,
                             subsystemVendor: 0x1af4, subsystem: 0x1100, interruptPin: 1)
    c.addBAR(index: 0, size: 0x10000, kind: .memory32, address: bar0)
    c.addBAR(index: 2, size: 0x10_0000, kind: .memory64(prefetchable: true), address: bar2)
    c.addBAR(index: 4, size: 0x100, kind: .io, address: bar4)
    let cap = MSIXState.capabilityBody(vectorCount: 5, tableBAR: 0, tableOffset: 0x8000, pbaBAR: 0, pbaOffset: 0xc000)
    c.addCapability(id: MSIXState.capabilityID, body: cap.body, writableMask: cap.writable)
    c.addCapability(id: 0x09, body: [8, 0x5a, 0, 0, 0, 0], writableMask: [0, 0, 0xff, 0, 0, 0])
    return c
}

/// Every configuration read a guest can make: each offset at sizes 1, 2 and 4.
func everyRead(_ c: PCIConfiguration) -> [UInt32] {
    [1, 2, 4].flatMap { size in (0..<PCIConfiguration.size).map { c.read(offset: $0, size: size) } }
}

/// Expects `body` to throw a `DeviceStateError` for `component` whose reason starts with `field`.
func expectRefused(
    component: String, field: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(DeviceStateError) -> Void
) {
    do {
        try body()
        Issue.record("accepted a state with a bad \(field)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.component == component, sourceLocation: sourceLocation)
        #expect(error.reason.hasPrefix(field), "reason: \(error.reason)", sourceLocation: sourceLocation)
    }
}

/// A named change that makes a saved state unusable, for parameterised refusal tests.
struct Corruption<State: Sendable>: Sendable, CustomTestStringConvertible {
    let field: String
    let note: String
    let apply: @Sendable (inout State) -> Void

    init(_ field: String, _ note: String, _ apply: @escaping @Sendable (inout State) -> Void) {
        self.field = field
        self.note = note
        self.apply = apply
    }

    func applied(to state: State) -> State {
        var copy = state
        apply(&copy)
        return copy
    }

    var testDescription: String { "\(field): \(note)" }
}

extension PCIConfigurationState {
    /// Rewrites the BAR registers in `space` from `bars`, so a test can change a BAR and keep
    /// the state consistent in itself.
    mutating func encodeBARs() {
        for bar in bars {
            let type: UInt64
            switch bar.kind {
            case .memory32: type = 0
            case .memory64: type = 0b100
            case .prefetchableMemory64: type = 0b1100
            case .io: type = 1
            }
            let value = bar.address | type
            let register = 0x10 + 4 * Int(bar.slot)
            let count = bar.kind == .memory64 || bar.kind == .prefetchableMemory64 ? 8 : 4
            for i in 0..<count where register + i < space.count {
                space[register + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
            }
        }
    }
}
