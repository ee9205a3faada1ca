import GuestMemory
import SystemExtras

/// virtio device IDs (virtio 1.x §5).
public enum VirtioDeviceType: UInt16, Sendable {
    case net = 1
    case block = 2
    case console = 3
    case entropy = 4
    case balloon = 5
    case vsock = 19
}

/// Feature bits every Skiff device understands (virtio 1.x §6).
public enum VirtioFeature {
    public static let indirectDescriptors: UInt64 = 1 << 28
    public static let eventIndex: UInt64 = 1 << 29
    public static let version1: UInt64 = 1 << 32
}

/// The device-specific half of a virtio device; the transport does feature negotiation,
/// status, queue setup and interrupts, then hands the device an activation.
public protocol VirtioDevice: AnyObject, Sendable {
    var deviceType: VirtioDeviceType { get }
    /// Device feature bits (transport bits such as VERSION_1 are added by the transport).
    var deviceFeatures: UInt64 { get }
    /// Maximum size of each queue (powers of two).
    var queueMaxSizes: [UInt16] { get }
    /// Reads device configuration space at `offset`; unknown bytes read as zero.
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer)
    /// Writes device configuration space.
    func writeConfig(offset: Int, from data: UnsafeRawBufferPointer)
    /// Starts serving the queues after DRIVER_OK (or, with `activation.startPaused`, takes
    /// them over without serving until `resume()`: a restored device).
    func activate(_ activation: VirtioActivation) throws(VirtioDeviceError)
    /// Stops serving and drops driver state; returns once the device no longer touches guest memory.
    func reset()
    /// Quiesces an active device: requests already taken are completed and their completions
    /// published, then its worker stops; it takes nothing new and does not touch guest
    /// memory until `resume()`. No effect when the device is not active.
    func pause()
    /// Serves again after `pause()` or a paused activation; no effect when not active.
    func resume()
    /// The device's queues with its current positions, while it is active and paused.
    func pausedQueues() -> [SplitQueue]?
}

/// Why a device could not start.
public struct VirtioDeviceError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a device gets when the driver sets DRIVER_OK.
public struct VirtioActivation: Sendable {
    public let memory: GuestMemory
    /// Features both sides agreed on.
    public let features: UInt64
    /// The queues as the driver configured them (`ready` tells which are enabled).
    public let queues: [SplitQueue]
    /// One eventfd per queue, signalled when the driver notifies that queue.
    public let notifiers: [EventFD]
    /// Raises the device's interrupts.
    public let interrupt: VirtioInterrupt
    /// Take the queues over without serving them until `resume()` (snapshot restore).
    public var startPaused: Bool

    public init(memory: GuestMemory, features: UInt64, queues: [SplitQueue], notifiers: [EventFD], interrupt: VirtioInterrupt,
                startPaused: Bool = false) {
        self.memory = memory
        self.features = features
        self.queues = queues
        self.notifiers = notifiers
        self.interrupt = interrupt
        self.startPaused = startPaused
    }

    public func has(_ feature: UInt64) -> Bool { features & feature == feature }
}

/// Interrupt delivery for one device: MSI-X vectors when enabled, else INTx with the ISR.
public protocol VirtioInterrupt: AnyObject, Sendable {
    /// The driver should look at queue `index`'s used ring.
    func signalQueue(_ index: Int)
    /// The device configuration changed.
    func signalConfigChange()
    /// The driver broke a queue: set DEVICE_NEEDS_RESET and tell the driver (§2.1.2).
    func deviceBroken()
}
