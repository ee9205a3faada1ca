/// The virtio-vsock packet header (`struct virtio_vsock_hdr`, virtio 1.x §5.10.6): 44 bytes,
/// little-endian, in front of every packet on the receive and transmit queues.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44

    public var srcCID: UInt64 = 0
    public var dstCID: UInt64 = 0
    public var srcPort: UInt32 = 0
    public var dstPort: UInt32 = 0
    /// Payload bytes following the header.
    public var length: UInt32 = 0
    public var type: UInt16 = VsockHeader.typeStream
    public var op: UInt16 = 0
    public var flags: UInt32 = 0
    /// The sender's receive buffer size for this connection.
    public var bufAlloc: UInt32 = 0
    /// Bytes the sender has consumed from its receive buffer so far (wrapping).
    public var fwdCnt: UInt32 = 0

    public static let typeStream: UInt16 = 1

    // Operations (§5.10.6).
    public static let opRequest: UInt16 = 1
    public static let opResponse: UInt16 = 2
    public static let opReset: UInt16 = 3
    public static let opShutdown: UInt16 = 4
    public static let opReadWrite: UInt16 = 5
    public static let opCreditUpdate: UInt16 = 6
    public static let opCreditRequest: UInt16 = 7

    /// SHUTDOWN flags: the sender will receive no more data / send no more data.
    public static let shutdownReceive: UInt32 = 1
    public static let shutdownSend: UInt32 = 2

    public init(srcCID: UInt64 = 0, dstCID: UInt64 = 0, srcPort: UInt32 = 0, dstPort: UInt32 = 0, length: UInt32 = 0,
                type: UInt16 = VsockHeader.typeStream, op: UInt16 = 0, flags: UInt32 = 0, bufAlloc: UInt32 = 0, fwdCnt: UInt32 = 0) {
        self.srcCID = srcCID
        self.dstCID = dstCID
        self.srcPort = srcPort
        self.dstPort = dstPort
        self.length = length
        self.type = type
        self.op = op
        self.flags = flags
        self.bufAlloc = bufAlloc
        self.fwdCnt = fwdCnt
    }

    /// Decodes 44 bytes; nil if `bytes` is shorter.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var v = T.zero
            for i in 0..<MemoryLayout<T>.size { unsafe v |= T(bytes[offset + i]) << (8 * i) }
            return v
        }
        srcCID = le(0, UInt64.self)
        dstCID = le(8, UInt64.self)
        srcPort = le(16, UInt32.self)
        dstPort = le(20, UInt32.self)
        length = le(24, UInt32.self)
        type = le(28, UInt16.self)
        op = le(30, UInt16.self)
        flags = le(32, UInt32.self)
        bufAlloc = le(36, UInt32.self)
        fwdCnt = le(40, UInt32.self)
    }

    /// The 44 encoded bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        func put<T: FixedWidthInteger>(_ v: T) {
            for i in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
        }
        put(srcCID)
        put(dstCID)
        put(srcPort)
        put(dstPort)
        put(length)
        put(type)
        put(op)
        put(flags)
        put(bufAlloc)
        put(fwdCnt)
        return out
    }
}
