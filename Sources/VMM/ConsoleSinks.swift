#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import DeviceModel
import Synchronization
import SystemExtras

/// Where buffered console output goes; called on the console writer thread only, so a sink
/// may block (a slow terminal) without ever blocking a vCPU.
public protocol ConsoleSink: AnyObject, Sendable {
    /// Delivers output; returns false once the sink is gone for good (its reader closed).
    func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// Called once when the console closes.
    func close()
    /// Makes a `deliver` that is waiting for its reader give up soon (returning false): the
    /// console is closing and its reader did not take the output in time.
    func abandon()
}

extension ConsoleSink {
    public func abandon() {}
}

/// Guest console output through a bounded buffer and a writer thread that feeds the sinks
/// (terminal, log file, console socket), so a device (and the vCPU thread under it) never
/// blocks on a slow or stuck reader: a pause, a snapshot or a migration cannot wait on the
/// terminal. When the buffer is full, new output is dropped and counted.
public final class BufferedConsoleOutput: ConsoleOutput, Sendable {
    /// Default capacity: 1 MiB of output waiting for the sinks.
    public static let defaultCapacity = 1 << 20

    private struct State {
        var buffer: [UInt8] = []
        var head = 0
        var dropped: UInt64 = 0
        var closing = false
    }
    private let sinks: Mutex<[any ConsoleSink]>
    private let capacity: Int
    private let state: ConditionLock<State>
    private let thread = Mutex<HostThread?>(nil)

    /// Output to the file descriptor `fd` (normally stdout).
    public convenience init(fd: Int32 = 1, capacity: Int = BufferedConsoleOutput.defaultCapacity) throws(SystemError) {
        try self.init(sinks: [FileDescriptorSink(fd: fd)], capacity: capacity)
    }

    /// Output to `sinks`; the writer thread starts now, or with `startWriter()` when
    /// `startingWriter` is false (output is buffered meanwhile).
    public init(sinks: [any ConsoleSink], capacity: Int = BufferedConsoleOutput.defaultCapacity, startingWriter: Bool = true) throws(SystemError) {
        self.sinks = Mutex(sinks)
        self.capacity = max(capacity, 4096)
        state = ConditionLock(State())
        if startingWriter { try startWriter() }
    }

    /// Starts the writer thread (once; later calls do nothing).
    public func startWriter() throws(SystemError) {
        try thread.withLock { thread throws(SystemError) in
            guard thread == nil else { return }
            thread = try HostThread.spawn(name: "console-out", role: .consoleOutput) { [self] in self.drain() }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        state.update { s in
            guard !s.closing else { return }
            let room = capacity - (s.buffer.count - s.head)
            let take = min(room, bytes.count)
            if take > 0 { unsafe s.buffer.append(contentsOf: bytes[0..<take]) }
            s.dropped += UInt64(bytes.count - take)
        }
    }

    /// Adds a sink (e.g. a console socket that needs the VM for its input side).
    public func addSink(_ sink: any ConsoleSink) {
        sinks.withLock { $0.append(sink) }
    }

    /// Bytes dropped because the sinks did not keep up.
    public var droppedBytes: UInt64 { state.read { $0.dropped } }

    /// Delivers what is buffered (waiting at most `timeout` seconds), stops the thread and closes the sinks.
    /// A sink whose reader is stuck (a full pipe nobody reads) is abandoned after the timeout, so
    /// the monitor can still exit.
    public func close(timeout: Double = 2) {
        guard let draining = thread.withLock({ $0.take() }) else { return }
        _ = state.wait(until: { $0.head == $0.buffer.count }, timeout: timeout) { _ in () }
        state.update { $0.closing = true }
        for sink in sinks.withLock({ $0 }) { sink.abandon() }
        draining.join()
        // Dropped as well as closed: a sink may hold what holds this output (a console socket's
        // input closure holds the VM, which holds its console), and that cycle must not outlive it.
        for sink in sinks.withLock({ sinks in defer { sinks.removeAll() }; return sinks }) { sink.close() }
    }

    deinit { close(timeout: 0) }

    private func drain() {
        while true {
            let chunk: [UInt8]? = state.wait(until: { $0.head < $0.buffer.count || $0.closing }) { s in
                guard s.head < s.buffer.count else { return nil }
                return Array(s.buffer[s.head..<min(s.buffer.count, s.head + 65536)])
            } ?? nil
            guard let chunk else { return }
            let current = sinks.withLock { $0 }
            var gone: [ObjectIdentifier] = []
            unsafe chunk.withUnsafeBytes { raw in
                for sink in current where unsafe !sink.deliver(raw) { gone.append(ObjectIdentifier(sink)) }
            }
            if !gone.isEmpty { sinks.withLock { $0.removeAll { gone.contains(ObjectIdentifier($0)) } } }
            state.update { s in
                s.head += chunk.count
                // Compact once the consumed prefix is large.
                if s.head == s.buffer.count {
                    s.buffer.removeAll(keepingCapacity: true)
                    s.head = 0
                } else if s.head > 1 << 20 {
                    s.buffer.removeFirst(s.head)
                    s.head = 0
                }
            }
        }
    }
}

/// Writes console output to a file descriptor (a terminal, a pipe, a file). It waits for the
/// descriptor to be writable (poll) and writes at most `PIPE_BUF` bytes at a time, so a write
/// never blocks for long on a pipe whose reader stopped, and `abandon()` can end the wait.
public final class FileDescriptorSink: ConsoleSink, Sendable {
    private let fd: Int32
    /// Whether `close()` closes the descriptor (it was opened here).
    private let owned: Bool
    private let abandoned = Atomic<Bool>(false)
    /// Bytes per write(2): a pipe that polls writable has room for this many (PIPE_BUF).
    static let chunk = 4096

    /// Output to `fd`, which stays open.
    public init(fd: Int32) {
        self.fd = fd
        owned = false
    }

    /// Output to the file at `path`, created (mode 0644 before the umask) or truncated, and
    /// closed with the console.
    public init(creating path: String) throws(SystemError) {
        let raw = unsafe csystem_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard raw >= 0 else { throw SystemError("open \(path)", code: errno) }
        fd = raw
        owned = true
    }

    public func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var done = 0
        while done < bytes.count {
            // Wait until writable, checking every 100 ms whether the console gave up on us.
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = unsafe poll(&p, 1, 100)
            if abandoned.load(ordering: .relaxed) { return false }
            if ready == 0 || (ready < 0 && errno == EINTR) { continue }
            if ready < 0 || p.revents & Int16(POLLERR | POLLNVAL) != 0 { return false }
            let n = unsafe Glibc.write(fd, base + done, min(bytes.count - done, Self.chunk))
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return false  // reader gone: drop output, keep the VM running
            }
            done += n
        }
        return true
    }

    public func abandon() {
        abandoned.store(true, ordering: .relaxed)
    }

    public func close() {
        if owned { Glibc.close(fd) }
    }
}

/// Appends console output to a log file kept bounded: when it would pass `limit` bytes it is
/// renamed to `path.1` (replacing the previous one) and a new file starts, so `path.1` then
/// `path` hold the most recent output, at most `limit` bytes each.
public final class RotatingLogSink: ConsoleSink, @unchecked Sendable {
    // @unchecked: the descriptor and size change on the console thread only.
    public let path: String
    public let limit: Int
    private var fd: Int32
    private var size: Int

    public init(path: String, limit: Int) throws(SystemError) {
        self.path = path
        self.limit = max(limit, 4096)
        fd = -1
        size = 0
        try open()
    }

    private func open() throws(SystemError) {
        let raw = unsafe csystem_open_append(path)
        guard raw >= 0 else { throw SystemError("open \(path)", code: -raw) }
        fd = raw
        var st = stat()
        size = unsafe fstat(raw, &st) == 0 ? Int(st.st_size) : 0
    }

    public func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard fd >= 0, let base = bytes.baseAddress else { return fd >= 0 }
        if size > 0 && size + bytes.count > limit {
            Glibc.close(fd)
            fd = -1
            _ = unsafe rename(path, path + ".1")
            do { try open() } catch { return false }
        }
        var done = 0
        while done < bytes.count {
            let n = unsafe Glibc.write(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        size += bytes.count
        return true
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
