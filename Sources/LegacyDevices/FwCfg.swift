import DeviceModel
import Synchronization

/// QEMU's firmware configuration device, legacy I/O interface (docs/specs/fw_cfg.rst in QEMU).
///
/// Insert it at 0x510 with length `FwCfg.portRange` (2). A 16-bit little-endian write at
/// offset 0 (port 0x510) selects an item and resets the data offset; 8-bit reads (port 0x511,
/// or 0x510 as QEMU's combined region also allows) return the item's next byte, and 0 past its
/// end or for an unknown selector. Selector bit 14 (the old write channel) is masked off, so
/// 0x4000 | k reads item k; data writes are ignored (QEMU ≥ 2.4); bit 15 selects the
/// architecture-specific table, which is empty here. No DMA interface (ID bit 1 clear).
///
/// Items: 0x0000 signature "QEMU", 0x0001 ID (1: traditional interface), 0x0003 RAM size
/// (u64 LE), 0x0005 CPU count (u16 LE), 0x000F max CPUs (u16 LE), 0x0019 file directory
/// (big-endian count, then 64-byte entries: size BE u32, select BE u16, reserved u16,
/// name[56] NUL-terminated), sorted by name; files get selectors from 0x0020 on.
public final class FwCfg: BusDevice {
    /// Length of the port range (0x510–0x511).
    public static let portRange: UInt64 = 2
    /// Offset of the 16-bit selector register (0x510).
    public static let selectorOffset: UInt64 = 0
    /// Offset of the 8-bit data register (0x511).
    public static let dataOffset: UInt64 = 1

    /// Well-known selector keys.
    public enum Key {
        public static let signature: UInt16 = 0x0000
        public static let id: UInt16 = 0x0001
        public static let ramSize: UInt16 = 0x0003
        public static let cpuCount: UInt16 = 0x0005
        public static let maxCPUs: UInt16 = 0x000f
        public static let fileDirectory: UInt16 = 0x0019
        /// First selector given to a named file.
        public static let firstFile: UInt16 = 0x0020
        /// Selectors are 14 bits plus the architecture bit; files stay below this.
        static let fileLimit: UInt16 = 0x4000
        static let writeChannel: UInt16 = 0x4000
    }

    /// Why a file could not be added.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case emptyName
        case nameTooLong(String)
        case duplicateName(String)
        case tooManyFiles
        case fileTooLarge(String, size: Int)
        case reservedSelector(UInt16)

        public var description: String {
            switch self {
            case .emptyName: return "fw_cfg file name is empty"
            case .nameTooLong(let name): return "fw_cfg file name '\(name)' is longer than 55 bytes"
            case .duplicateName(let name): return "fw_cfg file '\(name)' already exists"
            case .tooManyFiles: return "fw_cfg has no free file selector"
            case .fileTooLarge(let name, let size): return "fw_cfg file '\(name)' has \(size) bytes, more than 4 GiB"
            case .reservedSelector(let key):
                return "fw_cfg selector 0x\(String(key, radix: 16)) is the file directory or a file selector"
            }
        }
    }

    /// Longest file name, excluding the terminating NUL.
    public static let maxFileNameLength = 55

    // File, State and state are internal rather than private for FwCfg+Persist.swift.
    struct File: Sendable {
        let name: [UInt8]
        let selector: UInt16
        let size: UInt32
    }

    struct State: Sendable {
        var items: [UInt16: [UInt8]] = [:]
        /// Files sorted by name (byte order), as QEMU sorts its directory.
        var files: [File] = []
        var selected: UInt16 = 0
        var offset = 0

        mutating func select(_ key: UInt16) {
            selected = key & ~Key.writeChannel
            offset = 0
        }

        mutating func readByte() -> UInt8 {
            if selected == Key.fileDirectory && items[Key.fileDirectory] == nil {
                // Built when first read after a change, so adding n files costs O(n log n).
                items[Key.fileDirectory] = FwCfg.directory(of: files)
            }
            guard let item = items[selected], offset < item.count else { return 0 }
            let byte = item[offset]
            offset += 1
            return byte
        }

        /// Where a file named `name` goes in `files`, and whether one is already there.
        func insertionIndex(of name: [UInt8]) -> (index: Int, exists: Bool) {
            var low = 0
            var high = files.count
            while low < high {
                let mid = (low + high) / 2
                if files[mid].name.lexicographicallyPrecedes(name) { low = mid + 1 } else { high = mid }
            }
            return (low, low < files.count && files[low].name == name)
        }
    }

    let state = Mutex(State())

    /// Creates the device with the fixed items.
    ///
    /// - Parameters:
    ///   - ramSize: guest RAM in bytes (item 0x0003).
    ///   - cpuCount: vCPUs at boot (item 0x0005).
    ///   - maxCPUs: most vCPUs the machine may have (item 0x000F); `cpuCount` if nil.
    public init(ramSize: UInt64, cpuCount: UInt16, maxCPUs: UInt16? = nil) {
        state.withLock { state in
            state.items[Key.signature] = Array("QEMU".utf8)
            state.items[Key.id] = Self.littleEndian(UInt32(1))
            state.items[Key.ramSize] = Self.littleEndian(ramSize)
            state.items[Key.cpuCount] = Self.littleEndian(cpuCount)
            state.items[Key.maxCPUs] = Self.littleEndian(maxCPUs ?? cpuCount)
        }
    }

    /// Adds a named file (for example "etc/..." or "opt/org.example/...") and returns its
    /// selector. Names are ASCII by convention, 1–55 bytes of UTF-8.
    @discardableResult
    public func addFile(name: String, data: [UInt8]) throws(FwCfg.Error) -> UInt16 {
        guard !name.isEmpty else { throw .emptyName }
        guard name.utf8.count <= Self.maxFileNameLength else { throw .nameTooLong(name) }
        guard let size = UInt32(exactly: data.count) else { throw .fileTooLarge(name, size: data.count) }
        let nameBytes = Array(name.utf8)
        let result: Result<UInt16, FwCfg.Error> = state.withLock { state in
            let (index, exists) = state.insertionIndex(of: nameBytes)
            guard !exists else { return .failure(.duplicateName(name)) }
            guard state.files.count < Int(Key.fileLimit - Key.firstFile) else { return .failure(.tooManyFiles) }
            let selector = Key.firstFile + UInt16(truncatingIfNeeded: state.files.count)
            state.files.insert(File(name: nameBytes, selector: selector, size: size), at: index)
            state.items[selector] = data
            state.items[Key.fileDirectory] = nil
            return .success(selector)
        }
        return try result.get()
    }

    /// Sets or replaces a fixed item: a selector below 0x0020 other than the file directory
    /// (0x0019), or an architecture-specific one (bit 15 set, e.g. 0x8003 for QEMU's e820 table).
    /// Bit 14 of `key` is ignored.
    public func setItem(_ key: UInt16, data: [UInt8]) throws(FwCfg.Error) {
        let selector = key & ~Key.writeChannel
        guard selector & 0x8000 != 0 || (selector < Key.firstFile && selector != Key.fileDirectory) else {
            throw .reservedSelector(key)
        }
        state.withLock { $0.items[selector] = data }
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        // Only byte reads are defined on the I/O interface; wider reads stay all ones.
        guard data.count == 1 else { return }
        unsafe data[0] = state.withLock { $0.readByte() }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        // The selector is a 16-bit register at offset 0; byte writes are data writes (ignored).
        guard offset == Self.selectorOffset, data.count == 2 else { return }
        let key = unsafe UInt16(truncatingIfNeeded: ByteLanes.littleEndianValue(data))
        state.withLock { $0.select(key) }
    }

    // MARK: Encoding

    private static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    private static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        littleEndian(value).reversed()
    }

    private static func directory(of files: [File]) -> [UInt8] {
        var bytes = bigEndian(UInt32(truncatingIfNeeded: files.count))
        bytes.reserveCapacity(4 + files.count * 64)
        for file in files {
            bytes += bigEndian(file.size)
            bytes += bigEndian(file.selector)
            bytes += [0, 0]
            var name = Array(file.name.prefix(maxFileNameLength))
            name += [UInt8](repeating: 0, count: 56 - name.count)
            bytes += name
        }
        return bytes
    }
}
