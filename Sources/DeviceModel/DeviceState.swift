/// A saved device or platform state that came from a snapshot file or a migration stream,
/// i.e. from outside the process: it is checked before anything uses it.
///
/// `validate()` checks every field against the rules the live device keeps (ranges, sizes,
/// invariants between fields), so that restoring a validated state can never put the device
/// into a state it could not reach by itself. It throws the first violation it finds.
public protocol ValidatedState: Codable, Sendable, Equatable {
    func validate() throws(DeviceStateError)
}

/// A device whose state can be saved while the VM is paused and restored into a freshly
/// built device of the same configuration (Firecracker's `Persist`).
public protocol StatePersistable: AnyObject {
    associatedtype PersistedState: ValidatedState
    /// The device's state now. Call only while the VM is paused (no vCPU or worker touches it).
    func saveState() -> PersistedState
    /// Validates `state` and replaces the device's state with it; on error nothing changes.
    /// Call only on a device that is not running yet (restore) or while the VM is paused.
    func restoreState(_ state: PersistedState) throws(DeviceStateError)
}

/// Why a saved state cannot be used: which device or field, and what is wrong with it.
public struct DeviceStateError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What the state belongs to, e.g. "uart" or "virtio-blk 00:02.0 queue 0".
    public var component: String
    /// What is wrong, e.g. "divisor 0".
    public var reason: String

    public init(_ component: String, _ reason: String) {
        self.component = component
        self.reason = reason
    }

    /// The same error under a more specific name (e.g. prefixing the device's slot).
    public func within(_ outer: String) -> DeviceStateError {
        DeviceStateError(outer + " " + component, reason)
    }

    public var description: String { "\(component): \(reason)" }
}

extension DeviceStateError {
    /// Throws unless `condition` holds.
    @inline(__always)
    public static func require(_ condition: Bool, _ component: String, _ reason: @autoclosure () -> String) throws(DeviceStateError) {
        if !condition { throw DeviceStateError(component, reason()) }
    }
}
