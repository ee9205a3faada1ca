import Synchronization

/// Frame and drop counts of one virtio-net device, updated by its worker thread.
public final class VirtioNetCounters: Sendable {
    /// Frames (and their bytes, header excluded) handed to the guest.
    public let rxFrames = Atomic<UInt64>(0)
    public let rxBytes = Atomic<UInt64>(0)
    /// Frames (and bytes) the guest sent that the backend took.
    public let txFrames = Atomic<UInt64>(0)
    public let txBytes = Atomic<UInt64>(0)
    /// Received frames dropped because no buffer (or all of the queue's buffers together) could hold them.
    public let rxDroppedTooLarge = Atomic<UInt64>(0)
    /// Received frames shorter than the virtio-net header.
    public let rxDroppedMalformed = Atomic<UInt64>(0)
    /// Receive buffers the driver offered without any device-writable space (returned empty).
    public let rxBadBuffers = Atomic<UInt64>(0)
    /// Backend read errors other than "no frame waiting".
    public let rxErrors = Atomic<UInt64>(0)
    /// Transmit chains shorter than the header or longer than 64 KiB plus the header.
    public let txDroppedMalformed = Atomic<UInt64>(0)
    /// Frames dropped because the VM paused while the backend could not take them.
    public let txDroppedAtPause = Atomic<UInt64>(0)
    /// Frames the backend refused (e.g. EINVAL for a bad GSO header, EIO while the link is down).
    public let txErrors = Atomic<UInt64>(0)
    /// Times reception paused because the driver had no receive buffers.
    public let rxStalls = Atomic<UInt64>(0)
    /// Times transmission paused until the backend became writable.
    public let txBlocked = Atomic<UInt64>(0)
    /// Times a rate limiter held back a received frame / a frame to send.
    public let rxThrottled = Atomic<UInt64>(0)
    public let txThrottled = Atomic<UInt64>(0)
    /// Queue errors that put the device into DEVICE_NEEDS_RESET.
    public let queueErrors = Atomic<UInt64>(0)
    /// Times the worker woke up (a busy loop shows here first).
    public let wakeups = Atomic<UInt64>(0)

    public init() {}
}
