import DeviceModel
import Synchronization

/// The POST diagnostic port (0x80): firmware and kernels write progress codes to it (Linux
/// also writes it as an I/O delay). The device keeps the last byte written, which reads back,
/// and can report each write to the host, e.g. to time boot stages.
///
/// Insert it with length 1. A wider write records its first (lowest) byte.
public final class PostCodePort: BusDevice {
    /// Length of the port range (0x80).
    public static let portRange: UInt64 = 1

    // State and state are internal rather than private for PostCodePort+Persist.swift.
    struct State: Sendable {
        var lastCode: UInt8?
        var writeCount: UInt64 = 0
    }

    let state = Mutex(State())
    private let onCode: (@Sendable (UInt8) -> Void)?

    /// - Parameter onCode: called for every code written, on the vCPU thread and without the
    ///   device lock; keep it cheap (Linux may write this port very often).
    public init(onCode: (@Sendable (UInt8) -> Void)? = nil) {
        self.onCode = onCode
    }

    /// The last code the guest wrote, or nil if it never wrote one.
    public var lastCode: UInt8? {
        state.withLock { $0.lastCode }
    }

    /// How many writes the guest made.
    public var writeCount: UInt64 {
        state.withLock { $0.writeCount }
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard offset == 0, unsafe !data.isEmpty else { return }
        if let code = state.withLock({ $0.lastCode }) { unsafe data[0] = code }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == 0, let code = unsafe data.first else { return }
        state.withLock { state in
            state.lastCode = code
            state.writeCount &+= 1
        }
        onCode?(code)
    }
}
