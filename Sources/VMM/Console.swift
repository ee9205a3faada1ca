#if canImport(Glibc)
import Glibc
#endif
import DeviceModel
import Dispatch
import Synchronization
import SystemExtras

/// Writes guest console output to a host file descriptor (normally stdout).
public final class FileConsoleOutput: ConsoleOutput, Sendable {
    private let fd: Int32
    private let lock = Mutex<Bool>(false)

    public init(fd: Int32 = 1) {
        self.fd = fd
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock { broken in
            guard !broken, let base = bytes.baseAddress else { return }
            var done = 0
            while done < bytes.count {
                let n = unsafe Glibc.write(fd, base + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    broken = true  // reader gone: drop output, keep the VM running
                    return
                }
                done += n
            }
        }
    }
}

/// Keeps guest console output in memory so tests and tools can wait for text.
public final class CapturedConsoleOutput: ConsoleOutput, Sendable {
    private let state = Mutex<[UInt8]>([])
    private let changed = DispatchSemaphore(value: 0)
    private let echo: FileConsoleOutput?
    /// Bytes kept at most; older output is dropped beyond this.
    public let limit: Int

    public init(echoTo fd: Int32? = nil, limit: Int = 16 << 20) {
        echo = fd.map { FileConsoleOutput(fd: $0) }
        self.limit = limit
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        state.withLock { buffer in
            unsafe buffer.append(contentsOf: bytes)
            if buffer.count > limit { buffer.removeFirst(buffer.count - limit) }
        }
        unsafe echo?.write(bytes)
        changed.signal()
    }

    /// Everything captured so far, decoded as UTF-8 (invalid bytes replaced), with the
    /// serial console's CR LF line ends turned into LF.
    public var text: String {
        var bytes = state.withLock { $0 }
        var out = 0
        for i in bytes.indices where !(bytes[i] == 0x0d && i + 1 < bytes.count && bytes[i + 1] == 0x0a) {
            bytes[out] = bytes[i]
            out += 1
        }
        bytes.removeLast(bytes.count - out)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits until the output contains `needle`, up to `timeout` seconds. Returns whether it appeared.
    public func waitFor(_ needle: String, timeout: Double) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while true {
            if text.contains(needle) { return true }
            let left = deadline - monotonicSeconds()
            if left <= 0 { return false }
            _ = changed.wait(timeout: .now() + min(left, 0.2))
        }
    }
}

/// Forwards host input (stdin) to a guest console device on its own thread.
///
/// In a terminal it switches to raw mode; Ctrl-A then `x` stops the VM (like QEMU), Ctrl-A
/// twice sends one Ctrl-A. Input is read only while the device has room, so a guest that
/// never reads cannot make the VMM buffer without bound.
@safe public final class ConsoleInputPump: Sendable {
    public typealias Sink = @Sendable (UnsafeRawBufferPointer) -> Int
    private let fd: Int32
    private let sink: Sink
    private let onQuit: @Sendable () -> Void
    private let stopEvent: EventFD
    private let terminal = Mutex<TerminalMode?>(nil)
    private let thread = Mutex<HostThread?>(nil)

    /// - Parameters:
    ///   - fd: host input (0 for stdin).
    ///   - sink: delivers bytes to the guest device, returning how many it accepted.
    ///   - onQuit: called on Ctrl-A x.
    public init(fd: Int32 = 0, sink: @escaping Sink, onQuit: @escaping @Sendable () -> Void) throws(SystemError) {
        self.fd = fd
        unsafe self.sink = unsafe sink
        self.onQuit = onQuit
        stopEvent = try EventFD()
    }

    /// Starts forwarding.
    public func start() throws(SystemError) {
        let raw = TerminalMode(rawModeFor: fd)
        terminal.withLock { $0 = raw }
        let forwarding = try HostThread.spawn(name: "console-in", role: .consoleInput) { [self] in self.loop() }
        thread.withLock { $0 = forwarding }
    }

    /// Stops forwarding and restores the terminal.
    public func stop() {
        stopEvent.signal()
        thread.withLock { $0 }?.join()
        terminal.withLock { $0 }?.restore()
    }

    private func loop() {
        // Set before this thread starts: Ctrl-A escapes only apply to a terminal.
        let interactive = terminal.withLock { $0 != nil }
        var pending: [UInt8] = []
        var escape = false
        var eof = false
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            // Deliver what is pending first; wait while the device is full.
            if !pending.isEmpty {
                let accepted = unsafe pending.withUnsafeBytes { unsafe sink($0) }
                if accepted > 0 { pending.removeFirst(min(accepted, pending.count)) }
            }
            var fds = [pollfd(fd: stopEvent.rawValue, events: Int16(POLLIN), revents: 0)]
            let waitForInput = pending.isEmpty && !eof
            if waitForInput { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let r = unsafe poll(&fds, nfds_t(fds.count), pending.isEmpty ? -1 : 10)
            if r < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { return }
            guard waitForInput, fds.count > 1, fds[1].revents != 0 else { continue }
            let n = unsafe buffer.withUnsafeMutableBytes { unsafe Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                eof = true
                continue
            }
            for b in buffer[0..<n] {
                if escape {
                    escape = false
                    if b == UInt8(ascii: "x") || b == UInt8(ascii: "X") {
                        onQuit()
                        return
                    }
                    if b == 0x01 { pending.append(0x01) }
                    continue
                }
                if b == 0x01 && interactive {
                    escape = true
                    continue
                }
                pending.append(b)
            }
        }
    }
}
