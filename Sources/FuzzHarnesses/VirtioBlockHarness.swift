import GuestMemory
import Storage
import Virtio
import VirtioBlock

/// An in-memory disk that checks every call lies inside it and that a read-only disk is never
/// changed; what it holds is the oracle for reads.
final class CheckedMemoryDisk: BlockDevice, @unchecked Sendable {
    // @unchecked: a harness runs on one thread; the protocol asks for Sendable.
    let size: UInt64
    let isReadOnly: Bool
    var bytes: [UInt8]
    var failing = false
    /// The first rule a caller broke.
    var violation: String?

    init(size: Int, readOnly: Bool) {
        self.size = UInt64(size)
        isReadOnly = readOnly
        bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
    }

    private func check(_ offset: UInt64, _ length: UInt64, changing: Bool, _ what: String) throws {
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow || end > size { violation = violation ?? "\(what) at \(offset) + \(length) past the disk end \(size)" }
        if changing && isReadOnly { violation = violation ?? "\(what) on a read-only disk" }
        if failing { throw StorageError.outOfRange(offset: offset, length: length, size: size) }
        if overflow || end > size { throw StorageError.outOfRange(offset: offset, length: length, size: size) }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try check(offset, UInt64(buffer.count), changing: false, "read")
        for i in 0..<buffer.count { unsafe buffer[i] = bytes[Int(offset) + i] }
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        try check(offset, UInt64(buffer.count), changing: true, "write")
        for i in 0..<buffer.count { bytes[Int(offset) + i] = unsafe buffer[i] }
    }

    func flush() throws {
        if failing { throw StorageError.flushFailed(path: "memory", errno: 5) }
    }

    func discard(at offset: UInt64, length: UInt64) throws {
        try check(offset, length, changing: true, "discard")
    }

    func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {
        try check(offset, length, changing: true, "write-zeroes")
        for i in Int(offset)..<Int(offset + length) { bytes[i] = 0 }
    }

    func close() throws {}
}

/// virtio-blk requests (`BlockRequestHandler` behind a split queue, as the device's worker runs
/// them): request types, sectors, data lengths and chain shapes from the input.
///
/// Checks: no backend call outside the disk or on a read-only disk; the used length never
/// exceeds the chain's writable bytes; a read completed OK put the disk's bytes in the guest's
/// buffers; a chain without a writable byte is completed with length 0.
public enum VirtioBlockHarness {
    nonisolated(unsafe) static var ram: FuzzGuestRAM?

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        let memory = ram.memory
        var input = FuzzInput(data)
        let flags = input.u8()
        let disk = CheckedMemoryDisk(size: 512 * (1 + Int(input.u8() % 64)), readOnly: flags & 1 != 0)
        var configuration = VirtioBlockConfiguration()
        configuration.rangeCommands = flags & 2 == 0
        if flags & 4 != 0 {
            configuration.segmentsMax = UInt32(input.u8() % 8)
            configuration.segmentSizeMax = UInt32(input.u16())
            configuration.rangeSegmentsMax = UInt32(input.u8() % 20)
            configuration.rangeSectorsMax = UInt32(input.u16())
        }
        var features = VirtioFeature.version1 | VirtioBlockFeature.flush
        if flags & 8 != 0 { features |= VirtioFeature.indirectDescriptors }
        if flags & 16 != 0 { features |= VirtioFeature.eventIndex }
        if flags & 32 != 0 { features |= VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes }
        var handler = BlockRequestHandler(backend: disk, configuration: configuration, capacity: disk.size / 512,
                                          serial: Array("fuzz-serial-number!!".utf8), readOnly: disk.isReadOnly,
                                          statistics: VirtioBlockStatistics())
        handler.negotiated = features
        var driver = FuzzDriver(memory: memory, queues: 1)
        var queue = driver.queue(0, features: features)

        var steps = 0
        while !input.isAtEnd && steps < 64 {
            steps += 1
            switch input.u8() % 8 {
            case 0:
                ram.scribble(&input)
            case 1:
                disk.failing = input.bool()
            case 2:
                // A random chain.
                let parts = FuzzDriver.randomParts(&input, maxCount: 6)
                driver.publish(queue: 0, parts: parts, contents: input.bytes(Int(input.u8())), indirect: input.u8() & 3 == 0, input: &input)
            default:
                // A well-shaped request: header, data, status.
                let types: [UInt32] = [0, 1, 4, 8, 11, 13, 10, 14]
                let type = input.u8() & 0x80 != 0 ? input.u32() : types[input.below(types.count)]
                let sector = input.bool() ? UInt64(input.u8() % 80) : input.u64()
                // type (le32), reserved (le32), sector (le64).
                let header = (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) } + [0, 0, 0, 0]
                    + (0..<8).map { UInt8(truncatingIfNeeded: sector >> (8 * UInt64($0))) }
                var parts = [FuzzDriver.Part(address: FuzzDriver.dataStart + UInt64(input.below(64)) * 16, length: 16, writable: false)]
                let dataWritable = type == 0 || type == 8 ? !input.u8().isMultiple(of: 16) : input.u8().isMultiple(of: 16)
                for _ in 0..<input.below(4) {
                    parts.append(FuzzDriver.Part(address: FuzzDriver.dataStart + 0x2000 + UInt64(input.below(0x4000)) * 4,
                                                 length: input.bool() ? UInt32(1 + input.below(8)) * 512 : FuzzDriver.bufferLength(&input),
                                                 writable: dataWritable))
                }
                if !input.u8().isMultiple(of: 32) {
                    parts.append(FuzzDriver.Part(address: FuzzDriver.dataStart + 0x1_8000 + UInt64(input.below(256)), length: 1, writable: true))
                }
                let payload = header + input.bytes(Int(input.u16() % 2048))
                driver.publish(queue: 0, parts: parts, contents: payload, indirect: features & VirtioFeature.indirectDescriptors != 0 && input.bool(), input: &input)
            }
            if input.u8() & 1 == 0 {
                try serve(&queue, handler: handler, disk: disk, memory: memory)
            }
        }
        try serve(&queue, handler: handler, disk: disk, memory: memory)
        if let violation = disk.violation { throw FuzzInvariantViolation(violation) }
    }

    /// What the device's worker does on a notification: pop, execute, complete, until empty or broken.
    static func serve(_ queue: inout SplitQueue, handler: BlockRequestHandler, disk: CheckedMemoryDisk,
                      memory: GuestMemory) throws(FuzzInvariantViolation) {
        for _ in 0..<Int(FuzzDriver.queueSize) {
            let chain: DescriptorChain
            do {
                guard let c = try queue.pop(memory: memory) else { return }
                chain = c
            } catch {
                return
            }
            let snapshot = disk.bytes
            let used = handler.handle(chain, memory: memory)
            if let violation = disk.violation { throw FuzzInvariantViolation(violation) }
            try require(UInt64(used) <= chain.writableLength, "used length \(used) > writable \(chain.writableLength)")
            if chain.writable.allSatisfy({ $0.length == 0 }) {
                try require(used == 0, "used \(used) for a chain without a writable byte")
            }
            try checkRead(chain, used: used, snapshot: snapshot, disk: disk, memory: memory)
            try? queue.pushUsed(head: chain.head, length: used, memory: memory)
        }
    }

    /// A read that completed OK copied exactly the disk's bytes into the data buffers.
    static func checkRead(_ chain: DescriptorChain, used: UInt32, snapshot: [UInt8], disk: CheckedMemoryDisk,
                          memory: GuestMemory) throws(FuzzInvariantViolation) {
        guard let first = chain.readable.first, first.length >= 16, used > 0,
              let header = try? memory.readBytes(at: first.address, count: 16),
              header[0] == 0, header[1] == 0, header[2] == 0, header[3] == 0,
              let last = chain.writable.last(where: { $0.length > 0 }),
              let status = try? memory.load(UInt8.self, at: last.address + UInt64(last.length - 1)), status == 0
        else { return }
        // Buffers that overlap each other or the header may have been overwritten since: only
        // check chains whose pieces are disjoint.
        let pieces = chain.readable + chain.writable
        for (i, a) in pieces.enumerated() {
            for b in pieces[(i + 1)...] where a.address < b.address + UInt64(b.length) && b.address < a.address + UInt64(a.length) {
                return
            }
        }
        var sector: UInt64 = 0
        for i in 0..<8 { sector |= UInt64(header[8 + i]) << (8 * UInt64(i)) }
        var offset = Int(sector * 512)
        var left = Int(used) - 1
        for b in chain.writable where left > 0 {
            let n = min(Int(b.length), left)
            guard let got = try? memory.readBytes(at: b.address, count: n) else { return }
            try require(offset + n <= snapshot.count && got == Array(snapshot[offset..<(offset + n)]),
                        "read of sector \(sector) returned bytes that are not the disk's")
            offset += n
            left -= n
        }
    }
}
