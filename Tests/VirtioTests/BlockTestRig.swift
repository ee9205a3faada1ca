#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
import Storage
@testable import Virtio
@testable import VirtioBlock

/// A virtio-blk device on a temporary image, driven through its PCI transport by a mock
/// driver that builds requests in guest memory the way a guest driver does.
final class BlockTestRig {
    static let headerAddress: UInt64 = 0x20000
    static let statusAddress: UInt64 = 0x20100
    static let dataAddress: UInt64 = 0x30000
    static let extraAddress: UInt64 = 0x80000
    static let ramSize: UInt64 = 4 << 20
    static let features = VirtioFeature.version1 | VirtioBlockFeature.flush | VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes

    let directory: String
    let path: String
    let memory: GuestMemory
    let device: VirtioBlock
    let harness: TransportHarness
    var driver: MockDriver

    /// A raw image of `sectors` sectors filled with `Self.pattern`, or the given backend.
    init(sectors: UInt64 = 2048, readOnly: Bool = false, format: DiskFormat = .raw, features: UInt64 = BlockTestRig.features,
         configuration: VirtioBlockConfiguration = VirtioBlockConfiguration(), backend: (any BlockDevice)? = nil, serial: String = "rig-disk") throws {
        directory = "/tmp/skiff-blk-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard mkdir(directory, 0o700) == 0 else { throw RigError("mkdir \(directory) failed") }
        path = directory + "/disk.img"
        let size = sectors * 512
        switch format {
        case .raw:
            try RawImage.create(path: path, size: size)
            let file = try RawImage(path: path, readOnly: false)
            let bytes = (0..<Int(size)).map { Self.pattern($0) }
            try bytes.withUnsafeBytes { try file.write(at: 0, from: $0) }
            try file.close()
        case .qcow2:
            try QCOW2Image.create(path: path, options: QCOW2CreateOptions(size: size))
        }
        memory = try GuestMemory(ranges: [(0, Self.ramSize)])
        let disk = try backend ?? DiskImage.open(path: path, format: format, readOnly: readOnly)
        device = VirtioBlock(backend: disk, serial: serial, configuration: configuration)
        harness = try TransportHarness(device: device, memory: memory)
        driver = MockDriver(memory: memory)
        try start(features: features)
    }

    deinit {
        try? device.close()
        unlink(path)
        rmdir(directory)
    }

    struct RigError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// The byte the image holds at `offset` before any test writes.
    static func pattern(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: (offset &* 131) ^ (offset >> 9)) }

    /// Resets the device and brings it to DRIVER_OK with a fresh queue.
    func start(features: UInt64 = BlockTestRig.features) throws {
        harness.setStatus(0)
        driver = MockDriver(memory: memory)
        try memory.zero(at: driver.desc, length: 0x10000)
        harness.enableMSIX(vectors: 2)
        guard harness.negotiate(features: features) else { throw RigError("FEATURES_OK refused") }
        harness.setUpQueue(0, driver: driver, vector: 1)
        harness.setStatus(1 | 2 | 8 | 4)
        guard harness.status == 15 else { throw RigError("status \(harness.status) after DRIVER_OK") }
    }

    /// One descriptor of a request: a guest buffer and whether the device writes it.
    struct Piece {
        var address: UInt64
        var length: UInt32
        var writable: Bool
    }

    /// Header at `headerAddress` (16 bytes, or `headerLength` if shorter/longer).
    func header(type: UInt32, sector: UInt64) throws {
        try memory.store(type, at: Self.headerAddress)
        try memory.store(UInt32(0), at: Self.headerAddress + 4)
        try memory.store(sector, at: Self.headerAddress + 8)
    }

    static func headerPiece(_ length: UInt32 = 16) -> Piece { Piece(address: headerAddress, length: length, writable: false) }
    static let statusPiece = Piece(address: statusAddress, length: 1, writable: true)

    /// Publishes `pieces` as one chain (descriptors 0...), notifies, and waits for it to be used.
    /// Returns the status byte (0xEE if the device did not write it) and the used length.
    @discardableResult
    func submit(_ pieces: [Piece]) throws -> (status: UInt8, used: UInt32) {
        try memory.store(UInt8(0xee), at: Self.statusAddress)
        for (i, p) in pieces.enumerated() {
            let last = i == pieces.count - 1
            try driver.writeDescriptor(UInt16(i), address: p.address, length: p.length,
                                       flags: (p.writable ? SplitQueue.flagWrite : 0) | (last ? 0 : SplitQueue.flagNext), next: UInt16(i + 1))
        }
        let before = try driver.usedIndex()
        try driver.publish(0)
        harness.notify(0)
        let driver = self.driver
        guard try eventually(10, { try driver.usedIndex() != before }) else { throw RigError("request not completed (status 0x\(String(harness.status, radix: 16)))") }
        let element = try driver.usedElement(before)
        return (try memory.load(UInt8.self, at: Self.statusAddress), element.length)
    }

    /// A complete request: header, data pieces (`dataWritable` sets their direction), status.
    @discardableResult
    func request(type: VirtioBlockRequestType, sector: UInt64 = 0, data: [UInt32] = [], dataWritable: Bool = false) throws -> (status: UInt8, used: UInt32) {
        try header(type: type.rawValue, sector: sector)
        var pieces = [Self.headerPiece()]
        var address = Self.dataAddress
        for length in data {
            pieces.append(Piece(address: address, length: length, writable: dataWritable))
            address += UInt64(length)
        }
        pieces.append(Self.statusPiece)
        return try submit(pieces)
    }

    /// Reads `count` bytes of the image file directly.
    func fileBytes(at offset: UInt64 = 0, count: Int? = nil) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RigError("open \(path) failed") }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let n = count ?? Int(st.st_size)
        var out = [UInt8](repeating: 0, count: n)
        let got = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, off_t(offset)) }
        guard got == n else { throw RigError("short read of \(path)") }
        return out
    }

    /// Whether the device still serves a well-formed read of sector 7 correctly.
    func servesAGoodRead() throws -> Bool {
        try memory.zero(at: Self.dataAddress, length: 512)
        let r = try request(type: .read, sector: 7, data: [512], dataWritable: true)
        let expected = try fileBytes(at: 7 * 512, count: 512)
        let got = try memory.readBytes(at: Self.dataAddress, count: 512)
        return r.status == VirtioBlockStatus.ok.rawValue && r.used == 513 && got == expected
    }
}
