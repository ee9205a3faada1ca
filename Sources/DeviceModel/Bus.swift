import Synchronization

/// An address space (port I/O or MMIO) with devices at non-overlapping ranges.
///
/// Reads nobody claims return all ones and writes nobody claims are dropped, as on a PC.
/// Lookups are lock-free after setup apart from a short read lock on the range table.
public final class Bus: Sendable {
    /// One device's address range.
    public struct Range: Sendable, Equatable {
        public let base: UInt64
        public let length: UInt64
        public init(base: UInt64, length: UInt64) {
            self.base = base
            self.length = length
        }
        /// Whether `address ..< address + size` lies wholly inside this range.
        public func contains(_ address: UInt64, size: UInt64) -> Bool {
            guard address >= base else { return false }
            let offset = address - base
            guard offset < length else { return false }
            return size <= length - offset
        }
    }

    /// Errors from inserting a device.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case emptyRange(base: UInt64)
        case overflow(base: UInt64, length: UInt64)
        case overlap(base: UInt64, length: UInt64)

        public var description: String {
            switch self {
            case .emptyRange(let base): return "device range at 0x\(String(base, radix: 16)) is empty"
            case .overflow(let base, let length):
                return "device range 0x\(String(base, radix: 16)) + 0x\(String(length, radix: 16)) wraps the address space"
            case .overlap(let base, let length):
                return "device range 0x\(String(base, radix: 16)) + 0x\(String(length, radix: 16)) overlaps another device"
            }
        }
    }

    private struct Entry: Sendable {
        let range: Range
        let device: any BusDevice
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    /// Places `device` at `base ..< base + length`.
    public func insert(_ device: any BusDevice, base: UInt64, length: UInt64) throws(Error) {
        guard length > 0 else { throw .emptyRange(base: base) }
        let (last, overflow) = base.addingReportingOverflow(length - 1)
        guard !overflow else { throw .overflow(base: base, length: length) }
        let result: Error? = entries.withLock { list in
            for e in list where e.range.base <= last && base <= e.range.base + (e.range.length - 1) {
                return .overlap(base: base, length: length)
            }
            let index = list.firstIndex { $0.range.base > base } ?? list.endIndex
            list.insert(Entry(range: Range(base: base, length: length), device: device), at: index)
            return nil
        }
        if let result { throw result }
    }

    /// Removes the device at exactly `base`, returning whether one was there.
    @discardableResult
    public func remove(base: UInt64) -> Bool {
        entries.withLock { list in
            guard let i = list.firstIndex(where: { $0.range.base == base }) else { return false }
            list.remove(at: i)
            return true
        }
    }

    private func lookup(_ address: UInt64, size: Int) -> (any BusDevice, UInt64)? {
        entries.withLock { list -> (any BusDevice, UInt64)? in
            // Binary search for the last range starting at or below `address`.
            var low = 0
            var high = list.count
            while low < high {
                let mid = (low + high) / 2
                if list[mid].range.base <= address { low = mid + 1 } else { high = mid }
            }
            guard low > 0 else { return nil }
            let e = list[low - 1]
            guard e.range.contains(address, size: UInt64(size)) else { return nil }
            return (e.device, address - e.range.base)
        }
    }

    /// Dispatches a read; returns false (and fills `data` with 0xff) when nobody claims it.
    @discardableResult
    public func read(address: UInt64, into data: UnsafeMutableRawBufferPointer) -> Bool {
        for i in data.indices { unsafe data[i] = 0xff }
        guard let (device, offset) = lookup(address, size: data.count) else { return false }
        unsafe device.read(offset: offset, into: data)
        return true
    }

    /// Dispatches a write; returns false when nobody claims it (the write is dropped).
    @discardableResult
    public func write(address: UInt64, from data: UnsafeRawBufferPointer) -> Bool {
        guard let (device, offset) = lookup(address, size: data.count) else { return false }
        unsafe device.write(offset: offset, from: data)
        return true
    }
}
