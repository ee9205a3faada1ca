import CSkiffSystem
import GuestMemory
import Synchronization
import SystemExtras
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// The worker-thread half of virtio-vsock: relays guest vsock streams to host AF_UNIX
/// streams. Only the device's worker thread calls `handle`, and the device stops that thread
/// before dropping the muxer, so its state needs no lock.
///
/// The worker watches four backends: the listening socket (0), an epoll set of host sockets
/// to read (1; unwatched while the guest has no receive buffers), an epoll set of host
/// sockets with pending output (2), and a timer for connect and close timeouts (3).
@safe package final class VsockMuxer: @unchecked Sendable {
    // @unchecked: the ring and connection state is used by the worker thread only (or while it is stopped).
    static let hostCID: UInt64 = 2
    static let maxPayload = 64 * 1024
    static let packetsPerWakeup = 64
    static let connectLineLimit = 32
    enum Backend {
        static let listener = 0
        static let reads = 1
        static let writes = 2
        static let timer = 3
    }

    private let memory: GuestMemory
    private let interrupt: any VirtioInterrupt
    private let guestCID: UInt64
    private let socketPath: String
    private let listenerFD: Int32
    private let limits: VsockLimits
    private let counters: VsockCounters
    /// Connections at most: `limits.maxConnections`, lowered to leave `limits.descriptorReserve`
    /// descriptors under the open-files limit.
    let connectionCap: Int
    private var rx: SplitQueue
    private var tx: SplitQueue
    private let rxNotifier: EventFD
    private let txNotifier: EventFD

    let readSet: Epoll
    let writeSet: Epoll
    let timer: TimerFD
    private let worker = Mutex<VirtioWorker?>(nil)
    private var watched: [UInt32] = [0, 0, 0, EPOLLIN.rawValue]
    private var timerRunning = false

    private var connections: [UInt64: VsockConnection] = [:]
    /// Bytes in all connections' `pending` queues (bounded by `limits.maxPendingBytes`).
    private var pendingBytes = 0

    private func adjustPending(_ delta: Int) {
        pendingBytes += delta
        counters.pendingBytes.add(delta, ordering: .relaxed)
    }
    private var byKey: [VsockConnectionKey: UInt64] = [:]
    private var nextID: UInt64 = 1
    private var nextLocalPort: UInt32 = 1 << 30
    /// Connections owing control packets, and connections with host data to read, in turn order.
    private var controlQueue: [UInt64] = []
    private var dataQueue: [UInt64] = []
    /// RST packets for connections that do not exist (bounded by `limits.maxQueuedResets`).
    private var strayResets: [VsockHeader] = []
    /// A receive chain taken from the ring but not used.
    private var spareRx: DescriptorChain?
    private var rxStarved = false
    private var broken = false
    private var listenerPausedUntil: Double?
    private var rxPushed = false
    private var txPushed = false
    /// Header room followed by one packet's payload.
    private let scratch: UnsafeMutableRawBufferPointer

    package init(activation a: VirtioActivation, guestCID: UInt64, socketPath: String, listenerFD: Int32,
         limits: VsockLimits, counters: VsockCounters) throws(SystemError) {
        memory = a.memory
        interrupt = a.interrupt
        self.guestCID = guestCID
        self.socketPath = socketPath
        self.listenerFD = listenerFD
        self.limits = limits
        self.counters = counters
        connectionCap = Self.connectionCap(limits: limits, openFiles: Self.openFilesLimit(), openNow: Self.openDescriptorCount())
        counters.connectionCap.store(connectionCap, ordering: .relaxed)
        rx = a.queues[VirtioVsock.rxQueue]
        tx = a.queues[VirtioVsock.txQueue]
        rxNotifier = a.notifiers[VirtioVsock.rxQueue]
        txNotifier = a.notifiers[VirtioVsock.txQueue]
        readSet = try Epoll()
        writeSet = try Epoll()
        timer = try TimerFD()
        unsafe scratch = .allocate(byteCount: VsockHeader.size + Self.maxPayload, alignment: 16)
    }

    /// The connection cap for an open-files limit of `openFiles` (nil: unknown or unlimited)
    /// with `openNow` descriptors in use (nil: unknown, counted as zero).
    static func connectionCap(limits: VsockLimits, openFiles: Int?, openNow: Int?) -> Int {
        guard let openFiles else { return max(0, limits.maxConnections) }
        let room = openFiles - (openNow ?? 0) - limits.descriptorReserve
        return max(0, min(limits.maxConnections, room))
    }

    /// The soft RLIMIT_NOFILE, or nil when unlimited or unknown.
    static func openFilesLimit() -> Int? {
        var r = rlimit()
        guard unsafe getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0, r.rlim_cur != rlim_t.max else { return nil }  // RLIM_INFINITY
        return Int(clamping: r.rlim_cur)
    }

    /// Descriptors this process has open (entries of /proc/self/fd), or nil if unreadable.
    static func openDescriptorCount() -> Int? {
        guard let dir = unsafe opendir("/proc/self/fd") else { return nil }
        defer { unsafe closedir(dir) }
        var n = 0
        while unsafe readdir(dir) != nil { n += 1 }
        return max(0, n - 3)  // ".", ".." and the directory's own descriptor
    }

    deinit {
        unsafe scratch.deallocate()
        counters.connections.subtract(connections.count, ordering: .relaxed)
        counters.pendingBytes.subtract(pendingBytes, ordering: .relaxed)
    }

    /// The backends the worker watches, in `Backend` order, all unwatched until `attach`.
    var backends: [(fd: Int32, events: UInt32)] {
        [(listenerFD, 0), (readSet.fd.rawValue, 0), (writeSet.fd.rawValue, 0), (timer.fd.rawValue, EPOLLIN.rawValue)]
    }

    /// Gives the muxer its (new) worker, which watches only the timer at first.
    func attach(_ w: VirtioWorker) {
        worker.withLock { $0 = w }
        watched = [0, 0, 0, EPOLLIN.rawValue]
    }

    func release() { worker.withLock { $0 = nil } }

    /// The receive and transmit queues with their positions (worker stopped).
    var queues: [SplitQueue] { [rx, tx] }

    /// The receive chain taken but not used (worker stopped).
    var heldReceiveHead: UInt16? { spareRx?.head }

    /// Re-reads the receive chain held at snapshot time (worker not started).
    func restoreHeldReceiveChain(_ head: UInt16?) throws(VirtioDeviceError) {
        guard let head else {
            spareRx = nil
            return
        }
        do {
            spareRx = try rx.chain(head: head, memory: memory)
        } catch {
            throw VirtioDeviceError("virtio-vsock: held receive chain: \(error)")
        }
    }


    // MARK: Event dispatch

    package func handle(_ source: VirtioWorker.Source, events: UInt32) {
        counters.wakeups.add(1, ordering: .relaxed)
        rxPushed = false
        txPushed = false
        if case .backend(Backend.timer) = source {
            timer.consume()
            if !broken { expireDeadlines() }
        }
        if !broken {
            switch source {
            case .queue(VirtioVsock.txQueue): processTx()
            case .backend(Backend.listener): acceptConnections()
            case .backend(Backend.reads): hostReadable()
            case .backend(Backend.writes): hostWritable()
            default: break
            }
            if !broken { pumpRx() }
        }
        if rxPushed && rx.needsNotification(memory: memory) { interrupt.signalQueue(VirtioVsock.rxQueue) }
        if txPushed && tx.needsNotification(memory: memory) { interrupt.signalQueue(VirtioVsock.txQueue) }
        updateWatch()
        updateTimer()
    }

    private func updateWatch() {
        let desired: [UInt32] = [
            !broken && listenerPausedUntil == nil ? EPOLLIN.rawValue : 0,
            !broken && !rxStarved ? EPOLLIN.rawValue : 0,
            !broken ? EPOLLIN.rawValue : 0,
            EPOLLIN.rawValue,
        ]
        guard desired != watched, let w = worker.withLock({ $0 }) else { return }
        for i in 0..<desired.count where desired[i] != watched[i] {
            w.watchBackend(i, fd: backends[i].fd, events: desired[i])
        }
        watched = desired
    }

    /// Runs the timer (four ticks a second) only while some connection has a deadline.
    private func updateTimer() {
        let needed = listenerPausedUntil != nil || connections.values.contains { $0.deadline != nil }
        guard needed != timerRunning else { return }
        timer.setPeriodic(needed ? 0.25 : 0)
        timerRunning = needed
    }

    /// Stops using the queues and tells the driver (DEVICE_NEEDS_RESET).
    func markBroken() {
        broken = true
        counters.queueErrors.add(1, ordering: .relaxed)
        interrupt.deviceBroken()
    }

    // MARK: Connection bookkeeping

    private func register(_ c: VsockConnection) {
        connections[c.id] = c
        if let key = c.key { byKey[key] = c.id }
        counters.connections.add(1, ordering: .relaxed)
    }

    private func newID() -> UInt64 {
        defer { nextID &+= 1 }
        return nextID
    }

    /// Removes `c`; with `notifyGuest`, queues an RST for its ports. Its socket closes with it.
    private func reset(_ c: VsockConnection, notifyGuest: Bool) {
        guard connections[c.id] != nil else { return }
        if c.inReadSet { readSet.remove(c.socket.rawValue) }
        if c.inWriteSet { writeSet.remove(c.socket.rawValue) }
        c.inReadSet = false
        c.inWriteSet = false
        connections[c.id] = nil
        adjustPending(-c.pending.count)
        if let key = c.key, byKey[key] == c.id { byKey[key] = nil }
        counters.connections.subtract(1, ordering: .relaxed)
        if notifyGuest, let key = c.key, c.state != .awaitingConnectLine {
            queueReset(srcPort: key.localPort, dstPort: key.peerPort)
        }
    }

    private func queueReset(srcPort: UInt32, dstPort: UInt32) {
        guard strayResets.count < limits.maxQueuedResets else {
            counters.droppedResets.add(1, ordering: .relaxed)
            return
        }
        strayResets.append(VsockHeader(srcCID: Self.hostCID, dstCID: guestCID, srcPort: srcPort, dstPort: dstPort, op: VsockHeader.opReset))
    }

    /// Answers a guest packet that matches no usable connection with an RST (never an RST to an RST).
    private func replyReset(to h: VsockHeader) {
        guard h.op != VsockHeader.opReset else { return }
        queueReset(srcPort: h.dstPort, dstPort: h.srcPort)
    }

    private func owe(_ c: VsockConnection, _ what: VsockConnection.Owed) {
        c.owed.insert(what)
        if !c.queuedForControl {
            c.queuedForControl = true
            controlQueue.append(c.id)
        }
    }

    /// Keeps `c` in the read set exactly while its host socket should be read.
    private func updateReadInterest(_ c: VsockConnection) {
        let want: Bool
        switch c.state {
        case .awaitingConnectLine: want = true
        case .connecting: want = false
        case .established: want = c.wantsHostData
        }
        guard want != c.inReadSet else { return }
        if want {
            do {
                try readSet.add(c.socket.rawValue, token: c.id, events: EPOLLIN.rawValue)
            } catch {
                reset(c, notifyGuest: true)
                return
            }
        } else {
            readSet.remove(c.socket.rawValue)
        }
        c.inReadSet = want
    }

    private func updateWriteInterest(_ c: VsockConnection) {
        let want = !c.pending.isEmpty
        guard want != c.inWriteSet else { return }
        if want {
            do {
                try writeSet.add(c.socket.rawValue, token: c.id, events: EPOLLOUT.rawValue)
            } catch {
                reset(c, notifyGuest: true)
                return
            }
        } else {
            writeSet.remove(c.socket.rawValue)
        }
        c.inWriteSet = want
    }

    /// Queues a credit update when the guest believes fewer than the threshold bytes are free.
    private func creditCheck(_ c: VsockConnection) {
        guard c.state == .established, c.fwdCount != c.lastSentFwdCount else { return }
        let seenInFlight = Int(c.rxCount &- c.lastSentFwdCount)
        let seenFree = limits.bufferSize - min(seenInFlight, limits.bufferSize)
        if seenFree < limits.creditUpdateThreshold { owe(c, .creditUpdate) }
    }

    private func expireDeadlines() {
        let now = monotonicSeconds()
        if let until = listenerPausedUntil, until <= now { listenerPausedUntil = nil }
        for c in Array(connections.values) {
            guard let d = c.deadline, d <= now else { continue }
            counters.timeouts.add(1, ordering: .relaxed)
            reset(c, notifyGuest: true)
        }
    }

    // MARK: Host side

    private func acceptConnections() {
        for _ in 0..<64 {
            switch UnixSocket.accept(listenerFD) {
            case .success(let fd):
                guard connections.count < connectionCap else {
                    counters.refused.add(1, ordering: .relaxed)
                    continue  // `fd` closes here
                }
                let c = VsockConnection(id: newID(), socket: fd, key: nil, state: .awaitingConnectLine, bufferCapacity: limits.bufferSize)
                c.deadline = monotonicSeconds() + limits.connectTimeout
                register(c)
                updateReadInterest(c)
            case .failure(let e):
                if e.code == EAGAIN || e.code == EWOULDBLOCK { return }
                if e.code == ECONNABORTED || e.code == EPROTO { continue }
                // Out of descriptors or memory: stop accepting for a second instead of spinning.
                counters.acceptErrors.add(1, ordering: .relaxed)
                listenerPausedUntil = monotonicSeconds() + 1
                return
            }
        }
    }

    private func hostReadable() {
        let ready = (try? readSet.wait(maxEvents: 64, timeoutMilliseconds: 0)) ?? []
        for (token, events) in ready {
            guard let c = connections[token] else { continue }
            if events & EPOLLHUP.rawValue != 0 { c.hostHangup = true }
            switch c.state {
            case .awaitingConnectLine:
                readConnectLine(c)
            case .established:
                if !c.queuedForData {
                    c.queuedForData = true
                    dataQueue.append(c.id)
                }
            case .connecting:
                break
            }
        }
    }

    private func hostWritable() {
        let ready = (try? writeSet.wait(maxEvents: 64, timeoutMilliseconds: 0)) ?? []
        for (token, _) in ready {
            guard let c = connections[token] else { continue }
            flush(c)
        }
    }

    /// Reads the `CONNECT <port>\n` line without consuming any byte after it.
    private func readConnectLine(_ c: VsockConnection) {
        let want = Self.connectLineLimit - c.connectLine.count
        var peek = [UInt8](repeating: 0, count: want)
        let n = unsafe peek.withUnsafeMutableBytes { unsafe recv(c.socket.rawValue, $0.baseAddress, want, Int32(MSG_PEEK)) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
        guard n > 0 else {
            reset(c, notifyGuest: false)
            return
        }
        let newline = peek[0..<n].firstIndex(of: 0x0a)
        let take = newline.map { $0 + 1 } ?? n
        var sink = [UInt8](repeating: 0, count: take)
        let consumed = unsafe sink.withUnsafeMutableBytes { unsafe recv(c.socket.rawValue, $0.baseAddress, take, 0) }
        guard consumed == take else {
            reset(c, notifyGuest: false)
            return
        }
        c.connectLine.append(contentsOf: peek[0..<(newline ?? n)])
        guard newline != nil else {
            if c.connectLine.count >= Self.connectLineLimit - 1 {
                counters.badConnectLines.add(1, ordering: .relaxed)
                reset(c, notifyGuest: false)
            }
            return
        }
        guard let port = Self.parseConnectLine(c.connectLine) else {
            counters.badConnectLines.add(1, ordering: .relaxed)
            reset(c, notifyGuest: false)
            return
        }
        let key = VsockConnectionKey(localPort: allocateLocalPort(peerPort: port), peerPort: port)
        c.key = key
        byKey[key] = c.id
        c.state = .connecting
        c.deadline = monotonicSeconds() + limits.connectTimeout
        updateReadInterest(c)
        owe(c, .request)
    }

    /// The port of `CONNECT <decimal port>` (nil for anything else).
    static func parseConnectLine(_ line: [UInt8]) -> UInt32? {
        let prefix = Array("CONNECT ".utf8)
        guard line.count > prefix.count, line.count <= prefix.count + 10, Array(line[0..<prefix.count]) == prefix else { return nil }
        let digits = line[prefix.count...]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt32(String(decoding: digits, as: UTF8.self))
    }

    private func allocateLocalPort(peerPort: UInt32) -> UInt32 {
        while true {
            let p = nextLocalPort
            nextLocalPort = nextLocalPort == UInt32.max ? 1 << 30 : nextLocalPort + 1
            if byKey[VsockConnectionKey(localPort: p, peerPort: peerPort)] == nil { return p }
        }
    }

    /// Writes what `c` holds for the host; finishes a pending half or full close once empty.
    private func flush(_ c: VsockConnection) {
        var failed = false
        var written = 0
        unsafe c.pending.drain { bytes in
            let n = unsafe Self.writeSome(c.socket.rawValue, bytes)
            if n < 0 {
                failed = true
                return 0
            }
            written += n
            return n
        }
        c.fwdCount &+= UInt32(written)
        adjustPending(-written)
        counters.bytesToHost.add(UInt64(written), ordering: .relaxed)
        if failed {
            reset(c, notifyGuest: true)
            return
        }
        afterFlush(c)
    }

    private func afterFlush(_ c: VsockConnection) {
        updateWriteInterest(c)
        guard connections[c.id] != nil, c.pending.isEmpty else {
            creditCheck(c)
            return
        }
        if c.resetAfterFlush {
            reset(c, notifyGuest: true)
            return
        }
        if c.shutWriteAfterFlush && !c.didShutWrite {
            c.didShutWrite = true
            _ = shutdown(c.socket.rawValue, Int32(SHUT_WR))
        }
        creditCheck(c)
    }

    /// write(2) once; bytes written, 0 if it would block, -1 on a failure (EPIPE, ECONNRESET...).
    private static func writeSome(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        while true {
            let n = unsafe send(fd, base, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            return -1
        }
    }

    private func hostEOF(_ c: VsockConnection) {
        c.hostReadClosed = true
        updateReadInterest(c)
        c.shutdownFlags = VsockHeader.shutdownSend | (c.hostHangup ? VsockHeader.shutdownReceive : 0)
        owe(c, .shutdown)
        if c.hostHangup { c.deadline = monotonicSeconds() + limits.shutdownTimeout }
    }

    // MARK: Guest packets (transmit queue)

    private func processTx() {
        do {
            var n = 0
            var rechecked = false
            while true {
                guard let chain = try tx.pop(memory: memory) else {
                    // As in virtio-net: re-check after a full fence so a packet added without a
                    // notification (the driver read the old avail_event) is not left behind.
                    atomicMemoryFence(ordering: .sequentiallyConsistent)
                    if !rechecked, try tx.hasPending(memory: memory) {
                        rechecked = true  // once: a driver flipping avail.idx must not keep the worker here
                        continue
                    }
                    return
                }
                handleGuestPacket(chain)
                try tx.pushUsed(head: chain.head, length: 0, memory: memory)
                txPushed = true
                n += 1
                if n >= Self.packetsPerWakeup {
                    txNotifier.signal()
                    return
                }
            }
        } catch {
            markBroken()
        }
    }

    private func handleGuestPacket(_ chain: DescriptorChain) {
        var reader = ChainReader(memory: memory, chain: chain)
        let available = chain.readableLength
        guard available >= UInt64(VsockHeader.size) else {
            counters.badPackets.add(1, ordering: .relaxed)
            return
        }
        guard unsafe reader.read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<VsockHeader.size])),
              let h = unsafe VsockHeader(bytes: UnsafeRawBufferPointer(rebasing: scratch[0..<VsockHeader.size])) else {
            counters.badPackets.add(1, ordering: .relaxed)
            return
        }
        guard h.srcCID == guestCID, h.dstCID == Self.hostCID else {
            counters.badPackets.add(1, ordering: .relaxed)
            return
        }
        let key = VsockConnectionKey(localPort: h.dstPort, peerPort: h.srcPort)
        let c = byKey[key].flatMap { connections[$0] }
        guard h.type == VsockHeader.typeStream,
              Int(h.length) <= Self.maxPayload, UInt64(h.length) <= available - UInt64(VsockHeader.size) else {
            counters.badPackets.add(1, ordering: .relaxed)
            if let c { reset(c, notifyGuest: true) } else { replyReset(to: h) }
            return
        }
        if let c, c.state != .connecting || h.op == VsockHeader.opResponse {
            c.updatePeerCredit(from: h)
        }
        switch h.op {
        case VsockHeader.opRequest:
            if let c { reset(c, notifyGuest: true) } else { openGuestInitiated(key, h) }
        case VsockHeader.opResponse:
            guard let c, c.state == .connecting else { return rejectPacket(h, c) }
            establish(c)
        case VsockHeader.opReset:
            if let c { reset(c, notifyGuest: false) }
        case VsockHeader.opShutdown:
            guard let c, c.state == .established else { return rejectPacket(h, c) }
            guestShutdown(c, flags: h.flags)
        case VsockHeader.opReadWrite:
            guard let c, c.state == .established, !c.guestSendClosed else { return rejectPacket(h, c) }
            receive(c, length: Int(h.length), reader: &reader)
        case VsockHeader.opCreditUpdate:
            guard let c else { return replyReset(to: h) }
            updateReadInterest(c)
        case VsockHeader.opCreditRequest:
            guard let c, c.state == .established else { return rejectPacket(h, c) }
            owe(c, .creditUpdate)
        default:
            counters.unknownOps.add(1, ordering: .relaxed)
            rejectPacket(h, c)
        }
        if let c, connections[c.id] != nil { updateReadInterest(c) }
    }

    private func rejectPacket(_ h: VsockHeader, _ c: VsockConnection?) {
        if let c { reset(c, notifyGuest: true) } else { replyReset(to: h) }
    }

    private func openGuestInitiated(_ key: VsockConnectionKey, _ h: VsockHeader) {
        guard connections.count < connectionCap else {
            counters.refused.add(1, ordering: .relaxed)
            return replyReset(to: h)
        }
        guard let fd = UnixSocket.connect(path: "\(socketPath)_\(key.localPort)") else {
            counters.connectFailures.add(1, ordering: .relaxed)
            return replyReset(to: h)
        }
        let c = VsockConnection(id: newID(), socket: fd, key: key, state: .established, bufferCapacity: limits.bufferSize)
        c.updatePeerCredit(from: h)
        register(c)
        counters.established.add(1, ordering: .relaxed)
        owe(c, .response)
        updateReadInterest(c)
    }

    /// The guest accepted a host-initiated connection: tell the host `OK <port>` and start relaying.
    private func establish(_ c: VsockConnection) {
        guard let key = c.key else { return reset(c, notifyGuest: false) }
        let ack = Array("OK \(key.localPort)\n".utf8)
        // The host has not been sent anything yet, so this short write fits its socket buffer.
        let n = unsafe ack.withUnsafeBytes { unsafe Self.writeSome(c.socket.rawValue, $0) }
        guard n == ack.count else { return reset(c, notifyGuest: true) }
        c.state = .established
        c.deadline = nil
        counters.established.add(1, ordering: .relaxed)
        updateReadInterest(c)
    }

    private func guestShutdown(_ c: VsockConnection, flags: UInt32) {
        if flags & VsockHeader.shutdownReceive != 0 { c.guestReceiveClosed = true }
        if flags & VsockHeader.shutdownSend != 0 {
            c.guestSendClosed = true
            c.shutWriteAfterFlush = true
        }
        if c.guestReceiveClosed && c.guestSendClosed {
            c.resetAfterFlush = true
            c.deadline = monotonicSeconds() + limits.shutdownTimeout
        }
        updateReadInterest(c)
        if c.pending.isEmpty { afterFlush(c) }
    }

    /// Takes `length` payload bytes for the host, within the credit the connection advertised.
    private func receive(_ c: VsockConnection, length: Int, reader: inout ChainReader) {
        guard length > 0 else { return }
        let inFlight = Int(c.rxCount &+ UInt32(length) &- c.fwdCount)
        guard inFlight <= limits.bufferSize, length <= c.pending.freeSpace else {
            counters.creditViolations.add(1, ordering: .relaxed)
            return reset(c, notifyGuest: true)
        }
        let payload = unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[VsockHeader.size..<(VsockHeader.size + length)])
        guard unsafe reader.read(into: payload) else {
            counters.badPackets.add(1, ordering: .relaxed)
            return reset(c, notifyGuest: true)
        }
        c.rxCount &+= UInt32(length)
        var offset = 0
        if c.pending.isEmpty {
            let n = unsafe Self.writeSome(c.socket.rawValue, UnsafeRawBufferPointer(payload))
            guard n >= 0 else { return reset(c, notifyGuest: true) }
            offset = n
            c.fwdCount &+= UInt32(n)
            counters.bytesToHost.add(UInt64(n), ordering: .relaxed)
        }
        if offset < length {
            guard pendingBytes + (length - offset) <= limits.maxPendingBytes else {
                counters.budgetResets.add(1, ordering: .relaxed)
                return reset(c, notifyGuest: true)
            }
            // Fits: the credit check above bounds what is in flight by the buffer size.
            if unsafe c.pending.append(UnsafeRawBufferPointer(rebasing: payload[offset...])) { adjustPending(length - offset) }
        }
        afterFlush(c)
    }

    // MARK: Device-to-guest packets (receive queue)

    private enum Work {
        case stray
        case control(VsockConnection)
        case data(VsockConnection)
    }

    /// Fills receive buffers with owed packets, then host data, until one runs out.
    private func pumpRx() {
        do {
            if rxStarved, try spareRx != nil || rx.hasPending(memory: memory) { rxStarved = false }
            var budget = Self.packetsPerWakeup
            while true {
                guard let work = nextWork() else { return }
                guard budget > 0 else {
                    rxNotifier.signal()  // more to do: come back after the other sources
                    return
                }
                budget -= 1
                guard let chain = try takeRxChain() else {
                    if !rxStarved {
                        rxStarved = true
                        counters.rxStalls.add(1, ordering: .relaxed)
                    }
                    rx.setNotifications(true, memory: memory)
                    atomicMemoryFence(ordering: .sequentiallyConsistent)
                    guard try rx.hasPending(memory: memory) else { return }
                    continue
                }
                rxStarved = false
                switch work {
                case .stray:
                    try deliver(strayResets.removeFirst(), payload: 0, into: chain)
                case .control(let c):
                    try deliver(controlPacket(c), payload: 0, into: chain, for: c)
                case .data(let c):
                    try relayHostData(c, into: chain)
                }
            }
        } catch {
            markBroken()
        }
    }

    private func nextWork() -> Work? {
        if !strayResets.isEmpty { return .stray }
        while let id = controlQueue.first {
            if let c = connections[id], !c.owed.isEmpty { return .control(c) }
            controlQueue.removeFirst()
            connections[id]?.queuedForControl = false
        }
        while let id = dataQueue.first {
            guard let c = connections[id] else {
                dataQueue.removeFirst()
                continue
            }
            if c.wantsHostData { return .data(c) }
            dataQueue.removeFirst()
            c.queuedForData = false
            if c.state == .established && c.peerCredit == 0 && !c.creditRequested && !c.hostReadClosed && !c.guestReceiveClosed {
                owe(c, .creditRequest)
            }
            updateReadInterest(c)
            if !controlQueue.isEmpty { return nextWork() }
        }
        return nil
    }

    private func takeRxChain() throws(VirtqueueError) -> DescriptorChain? {
        if let s = spareRx {
            spareRx = nil
            return s
        }
        // Skip (return empty) buffers too small for a header and one payload byte, a bounded number per call.
        for _ in 0..<Int(rx.size) {
            guard let c = try rx.pop(memory: memory) else { return nil }
            if c.writableLength <= UInt64(VsockHeader.size) {
                counters.rxBadBuffers.add(1, ordering: .relaxed)
                try rx.pushUsed(head: c.head, length: 0, memory: memory)
                rxPushed = true
                continue
            }
            return c
        }
        return nil
    }

    /// The next control packet `c` owes (request, response, shutdown, credit update, credit request).
    private func controlPacket(_ c: VsockConnection) -> VsockHeader {
        var h = VsockHeader(srcCID: Self.hostCID, dstCID: guestCID, srcPort: c.key?.localPort ?? 0, dstPort: c.key?.peerPort ?? 0)
        for item in [VsockConnection.Owed.request, .response, .shutdown, .creditUpdate, .creditRequest] where c.owed.contains(item) {
            c.owed.remove(item)
            switch item {
            case .request: h.op = VsockHeader.opRequest
            case .response: h.op = VsockHeader.opResponse
            case .shutdown:
                h.op = VsockHeader.opShutdown
                h.flags = c.shutdownFlags
            case .creditUpdate: h.op = VsockHeader.opCreditUpdate
            default:
                h.op = VsockHeader.opCreditRequest
                c.creditRequested = true
            }
            break
        }
        return h
    }

    /// Writes a packet into `chain`; for a connection's packet, stamps its buffer and fwd_cnt.
    private func deliver(_ header: VsockHeader, payload: Int, into chain: DescriptorChain, for c: VsockConnection? = nil) throws(VirtqueueError) {
        var h = header
        h.length = UInt32(payload)
        if let c {
            h.bufAlloc = UInt32(limits.bufferSize)
            h.fwdCnt = c.fwdCount
            c.lastSentFwdCount = c.fwdCount
            c.owed.remove(.creditUpdate)  // every packet carries the credit
        }
        let bytes = h.bytes
        for i in 0..<VsockHeader.size { unsafe scratch[i] = bytes[i] }
        var writer = ChainWriter(memory: memory, chain: chain)
        unsafe writer.write(UnsafeRawBufferPointer(rebasing: scratch[0..<(VsockHeader.size + payload)]))
        try rx.pushUsed(head: chain.head, length: writer.written, memory: memory)
        rxPushed = true
    }

    /// Reads host data for `c` into one packet, within the guest's credit and the buffer's room.
    private func relayHostData(_ c: VsockConnection, into chain: DescriptorChain) throws(VirtqueueError) {
        let room = Int(min(chain.writableLength - UInt64(VsockHeader.size), UInt64(Self.maxPayload)))
        let limit = min(room, Int(c.peerCredit))
        guard limit > 0, let base = unsafe scratch.baseAddress else {
            spareRx = chain
            dataQueue.removeFirst()
            c.queuedForData = false
            return
        }
        let n = unsafe read(c.socket.rawValue, base + VsockHeader.size, limit)
        let readError = n < 0 ? errno : 0
        if n > 0 {
            c.txCount &+= UInt32(n)
            counters.bytesToGuest.add(UInt64(n), ordering: .relaxed)
            try deliver(VsockHeader(srcCID: Self.hostCID, dstCID: guestCID, srcPort: c.key?.localPort ?? 0, dstPort: c.key?.peerPort ?? 0,
                                    op: VsockHeader.opReadWrite),
                        payload: n, into: chain, for: c)
            // Round robin: the connection goes to the back of the line.
            dataQueue.removeFirst()
            dataQueue.append(c.id)
            return
        }
        spareRx = chain
        dataQueue.removeFirst()
        c.queuedForData = false
        if n == 0 {
            hostEOF(c)
        } else if readError != EAGAIN && readError != EWOULDBLOCK && readError != EINTR {
            reset(c, notifyGuest: true)
        }
    }
}
