import GuestMemory
import Storage
import Virtio

/// Executes one virtio-blk request (a validated descriptor chain) against a `BlockDevice`.
///
/// Every field comes from the guest and is checked before any I/O: header length, request
/// type, buffer directions, data length (multiple of 512, at most `requestBytesMax`), sector
/// ranges (no ×512 overflow, nothing past the capacity), range-command segments and flags,
/// the GET_ID buffer. A bad request gets IOERR or UNSUPP as the spec says and touches
/// nothing; the device then serves the next one. Data moves between the backend and guest
/// RAM through host pointers, without a copy. (`package` for the fuzz harnesses.)
package struct BlockRequestHandler: Sendable {
    var backend: any BlockDevice
    let configuration: VirtioBlockConfiguration
    /// Capacity in 512-byte sectors.
    let capacity: UInt64
    /// The GET_ID string, already padded or cut to 20 bytes.
    let serial: [UInt8]
    let readOnly: Bool
    let statistics: VirtioBlockStatistics

    /// What the driver accepted (DISCARD / WRITE_ZEROES need it).
    package var negotiated: UInt64 = 0

    package init(backend: any BlockDevice, configuration: VirtioBlockConfiguration, capacity: UInt64, serial: [UInt8],
                 readOnly: Bool, statistics: VirtioBlockStatistics) {
        self.backend = backend
        self.configuration = configuration
        self.capacity = capacity
        self.serial = serial
        self.readOnly = readOnly
        self.statistics = statistics
    }

    private typealias Status = VirtioBlockStatus

    /// Handles `chain` and returns the used length (bytes written to the driver's buffers,
    /// status byte included; 0 when the chain has no writable byte to put a status in).
    package func handle(_ chain: DescriptorChain, memory: GuestMemory) -> UInt32 {
        statistics.count(\.requests)
        guard let split = StatusSplit(chain) else {
            // Nowhere to report: complete it untouched so the driver gets the buffer back.
            statistics.count(\.malformed)
            return 0
        }
        let (status, written) = execute(chain: split.dataChain, memory: memory)
        if status != .ok { statistics.count(status == .unsupported ? \.unsupported : \.ioErrors) }
        do {
            try memory.store(status.rawValue, at: split.statusAddress)
        } catch {
            return written
        }
        return written &+ 1
    }

    /// Runs the request; returns its status and how many data bytes went to the driver.
    private func execute(chain: DescriptorChain, memory: GuestMemory) -> (Status, UInt32) {
        var reader = ChainReader(memory: memory, chain: chain)
        guard chain.readableLength >= VirtioBlockLayout.headerSize,
              let rawType = reader.read(UInt32.self), reader.skip(4), let sector = reader.read(UInt64.self)
        else { return (.ioError, 0) }
        let dataOut = chain.readableLength - VirtioBlockLayout.headerSize
        let dataIn = chain.writableLength
        guard let type = VirtioBlockRequestType(rawValue: rawType) else { return (.unsupported, 0) }
        switch type {
        case .read:
            statistics.count(\.reads)
            guard dataOut == 0 else { return (.ioError, 0) }
            guard let offset = dataRange(sector: sector, length: dataIn) else { return (.ioError, 0) }
            var writer = ChainWriter(memory: memory, chain: chain)
            guard let segments = writer.segments(count: dataIn) else { return (.ioError, 0) }
            let done = unsafe transfer(segments, at: offset, memory: memory, intoGuest: true) { pointer, position in
                try unsafe backend.read(at: position, into: pointer)
            }
            statistics.add(\.bytesRead, done)
            return (done == dataIn ? .ok : .ioError, UInt32(truncatingIfNeeded: done))
        case .write:
            statistics.count(\.writes)
            guard !readOnly else { return (.ioError, 0) }
            guard dataIn == 0 else { return (.ioError, 0) }
            guard let offset = dataRange(sector: sector, length: dataOut) else { return (.ioError, 0) }
            guard let segments = reader.segments(count: dataOut) else { return (.ioError, 0) }
            let done = unsafe transfer(segments, at: offset, memory: memory, intoGuest: false) { pointer, position in
                try unsafe backend.write(at: position, from: UnsafeRawBufferPointer(pointer))
            }
            statistics.add(\.bytesWritten, done)
            return (done == dataOut ? .ok : .ioError, 0)
        case .flush:
            do {
                try backend.flush()
                statistics.count(\.flushes)
                return (.ok, 0)
            } catch {
                return (.ioError, 0)
            }
        case .getID:
            guard dataOut == 0, dataIn >= UInt64(VirtioBlockLayout.idSize) else { return (.ioError, 0) }
            var writer = ChainWriter(memory: memory, chain: chain)
            let ok = unsafe serial.withUnsafeBytes { unsafe writer.write($0) }
            return (ok ? .ok : .ioError, writer.written)
        case .discard, .writeZeroes:
            let feature = type == .discard ? VirtioBlockFeature.discard : VirtioBlockFeature.writeZeroes
            guard configuration.rangeCommands, negotiated & feature != 0 else { return (.unsupported, 0) }
            return (ranges(type, reader: &reader, dataOut: dataOut, dataIn: dataIn), 0)
        case .getLifetime, .secureErase:
            return (.unsupported, 0)
        }
    }

    /// Byte offset of `length` bytes at `sector`, or nil unless the length is a multiple of
    /// 512, within the per-request limit, and the range lies inside the disk.
    private func dataRange(sector: UInt64, length: UInt64) -> UInt64? {
        guard length % VirtioBlockLayout.sectorSize == 0, length <= configuration.requestBytesMax else { return nil }
        return sectorRange(sector: sector, sectors: length / VirtioBlockLayout.sectorSize)
    }

    /// Byte offset of `sectors` sectors at `sector`, or nil if the start is at or past the
    /// capacity, the multiplication overflows, or the range crosses the end.
    private func sectorRange(sector: UInt64, sectors: UInt64) -> UInt64? {
        guard sector < capacity else { return nil }
        let (end, overflow) = sector.addingReportingOverflow(sectors)
        guard !overflow, end <= capacity else { return nil }
        let (offset, mulOverflow) = sector.multipliedReportingOverflow(by: VirtioBlockLayout.sectorSize)
        return mulOverflow ? nil : offset
    }

    /// Moves data segment by segment; returns the bytes done before the first failure.
    private func transfer(_ segments: [(address: UInt64, length: UInt32)], at offset: UInt64, memory: GuestMemory, intoGuest: Bool,
                          _ io: (UnsafeMutableRawBufferPointer, UInt64) throws -> Void) -> UInt64 {
        var position = offset
        var done: UInt64 = 0
        for s in segments {
            do {
                try unsafe memory.withHostPointer(at: s.address, length: UInt64(s.length), writing: intoGuest) { pointer in
                    try unsafe io(pointer, position)
                }
            } catch {
                return done
            }
            position += UInt64(s.length)
            done += UInt64(s.length)
        }
        return done
    }

    /// DISCARD or WRITE_ZEROES: every segment is read and checked (flags first, then
    /// counts and ranges) before any of them is executed.
    private func ranges(_ type: VirtioBlockRequestType, reader: inout ChainReader, dataOut: UInt64, dataIn: UInt64) -> Status {
        guard !readOnly else { return .ioError }
        guard dataIn == 0, dataOut > 0, dataOut % VirtioBlockLayout.rangeSegmentSize == 0 else { return .ioError }
        let count = dataOut / VirtioBlockLayout.rangeSegmentSize
        guard count <= UInt64(configuration.rangeSegmentsMax) else { return .unsupported }
        var segments: [(sector: UInt64, sectors: UInt32, flags: UInt32)] = []
        segments.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let sector = reader.read(UInt64.self), let sectors = reader.read(UInt32.self), let flags = reader.read(UInt32.self)
            else { return .ioError }
            segments.append((sector, sectors, flags))
        }
        let allowedFlags = type == .writeZeroes ? VirtioBlockLayout.unmapFlag : 0
        guard segments.allSatisfy({ $0.flags & ~allowedFlags == 0 }) else { return .unsupported }
        var planned: [(offset: UInt64, length: UInt64, unmap: Bool)] = []
        for s in segments {
            guard s.sectors <= configuration.rangeSectorsMax,
                  let offset = sectorRange(sector: s.sector, sectors: UInt64(s.sectors)) else { return .ioError }
            planned.append((offset, UInt64(s.sectors) * VirtioBlockLayout.sectorSize, s.flags & VirtioBlockLayout.unmapFlag != 0))
        }
        do {
            for p in planned where p.length > 0 {
                if type == .discard {
                    try backend.discard(at: p.offset, length: p.length)
                } else {
                    try backend.writeZeroes(at: p.offset, length: p.length, unmap: p.unmap)
                }
            }
        } catch {
            return .ioError
        }
        statistics.count(type == .discard ? \.discards : \.writeZeroes)
        return .ok
    }
}

/// A chain split into its data part and the status byte (the last writable byte).
struct StatusSplit {
    let statusAddress: UInt64
    let dataChain: DescriptorChain

    init?(_ chain: DescriptorChain) {
        guard let last = chain.writable.lastIndex(where: { $0.length > 0 }) else { return nil }
        let buffer = chain.writable[last]
        let (address, overflow) = buffer.address.addingReportingOverflow(UInt64(buffer.length - 1))
        guard !overflow else { return nil }
        statusAddress = address
        var writable = Array(chain.writable[..<last])
        if buffer.length > 1 { writable.append(VirtioBuffer(address: buffer.address, length: buffer.length - 1)) }
        dataChain = DescriptorChain(head: chain.head, readable: chain.readable, writable: writable)
    }
}
