import DeviceModel
import Testing

@testable import LegacyDevices

/// One guest access, drawn once from a seeded generator and then made on several devices, so
/// that an original device and its restored copy see exactly the same accesses.
struct GuestAccess: Sendable {
    let offset: UInt64
    let bytes: [UInt8]
    let isWrite: Bool

    /// A random access inside `0 ..< range` of 1, 2 or 4 bytes (mostly 1), at one of the `hot`
    /// offsets half of the time.
    static func random(range: UInt64, favouring hot: [UInt64] = [], using random: inout SplitMix64) -> GuestAccess {
        let sizes = [1, 1, 1, 1, 1, 2, 4].filter { UInt64($0) <= range }
        let size = sizes.randomElement(using: &random) ?? 1
        let maxOffset = range - UInt64(size)
        var offset = UInt64.random(in: 0...maxOffset, using: &random)
        if let pick = hot.randomElement(using: &random), Bool.random(using: &random), pick <= maxOffset {
            offset = pick
        }
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
        return GuestAccess(offset: offset, bytes: bytes, isWrite: Bool.random(using: &random))
    }

    /// Makes the access; returns the bytes read (the bus's all-ones buffer for a read) or [] for a write.
    @discardableResult
    func perform(on device: any BusDevice) -> [UInt8] {
        if isWrite {
            bytes.withUnsafeBytes { device.write(offset: offset, from: $0) }
            return []
        }
        var data = [UInt8](repeating: 0xff, count: bytes.count)
        data.withUnsafeMutableBytes { device.read(offset: offset, into: $0) }
        return data
    }
}

/// Expects `device.restoreState(state)` to throw an error for `component` whose reason starts
/// with `field`, and the device's saved state to be the same afterwards.
func expectRestoreRefused<Device: StatePersistable>(
    _ device: Device, _ state: Device.PersistedState, component: String, field: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let before = device.saveState()
    do {
        try device.restoreState(state)
        Issue.record("restore accepted a state with a bad \(field)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.component == component, sourceLocation: sourceLocation)
        #expect(error.reason.hasPrefix(field), "reason: \(error.reason)", sourceLocation: sourceLocation)
    }
    #expect(device.saveState() == before, "the refused restore changed the device", sourceLocation: sourceLocation)
}

/// Expects `state.validate()` to throw for `component` with a reason that starts with `field`.
func expectInvalid<State: ValidatedState>(
    _ state: State, component: String, field: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        try state.validate()
        Issue.record("validate() accepted a state with a bad \(field)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.component == component, sourceLocation: sourceLocation)
        #expect(error.reason.hasPrefix(field), "reason: \(error.reason)", sourceLocation: sourceLocation)
    }
}

/// A named change that makes a saved state invalid, for parameterised refusal tests.
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
