/// What `skiff image info` reports; keys match `qemu-img info --output=json`.
public struct ImageInfo: Sendable, Codable, Equatable {
    public struct FormatSpecific: Sendable, Codable, Equatable {
        public struct QCOW2Data: Sendable, Codable, Equatable {
            public var compat: String
            public var lazyRefcounts: Bool
            public var refcountBits: UInt64
            public var corrupt: Bool
            public var extendedL2: Bool
            public var compressionType: String

            enum CodingKeys: String, CodingKey {
                case compat, corrupt
                case lazyRefcounts = "lazy-refcounts", refcountBits = "refcount-bits"
                case extendedL2 = "extended-l2", compressionType = "compression-type"
            }
        }
        public var type: String
        public var data: QCOW2Data
    }

    public var filename: String
    public var format: String
    public var virtualSize: UInt64
    public var actualSize: UInt64
    public var clusterSize: UInt64?
    public var backingFilename: String?
    public var fullBackingFilename: String?
    public var backingFilenameFormat: String?
    public var dirtyFlag: Bool?
    public var formatSpecific: FormatSpecific?

    enum CodingKeys: String, CodingKey {
        case filename, format
        case virtualSize = "virtual-size", actualSize = "actual-size", clusterSize = "cluster-size"
        case backingFilename = "backing-filename", fullBackingFilename = "full-backing-filename"
        case backingFilenameFormat = "backing-filename-format", dirtyFlag = "dirty-flag"
        case formatSpecific = "format-specific"
    }

    /// Inspects an image without opening its backing chain and without taking locks.
    public static func inspect(path: String, format: DiskFormat) throws -> ImageInfo {
        let file = try ImageFile.open(path: path, readOnly: true, lock: .none)
        let actual = try file.allocatedBytes()
        switch format {
        case .raw:
            var info = ImageInfo(filename: path, format: "raw", virtualSize: try file.length(), actualSize: actual)
            info.dirtyFlag = false
            return info
        case .qcow2:
            let header = try DiskImage.readHeader(file)
            var info = ImageInfo(filename: path, format: "qcow2", virtualSize: header.size, actualSize: actual)
            info.clusterSize = header.clusterSize
            info.dirtyFlag = header.isDirty
            if let backing = header.backingFile {
                info.backingFilename = backing
                info.fullBackingFilename = DiskImage.resolveBackingPath(backing, relativeTo: path)
                info.backingFilenameFormat = header.backingFormat
            }
            info.formatSpecific = FormatSpecific(type: "qcow2", data: .init(
                compat: header.version == 2 ? "0.10" : "1.1",
                lazyRefcounts: header.hasLazyRefcounts,
                refcountBits: header.refcountBits,
                corrupt: header.isCorrupt,
                extendedL2: header.incompatibleFeatures & QCOW2Header.Incompatible.extendedL2 != 0,
                compressionType: header.compressionType == 1 ? "zstd" : "zlib"))
            return info
        }
    }
}
