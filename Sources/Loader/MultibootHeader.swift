/// A multiboot v1 header (Multiboot Specification 0.6.96, section 3.1).
///
/// Layout: magic (0), flags (4), checksum (8); with flags bit 16 the address fields header_addr
/// (12), load_addr (16), load_end_addr (20), bss_end_addr (24), entry_addr (28); with flags bit 2
/// the graphics fields mode_type (32), width (36), height (40), depth (44). The header must be
/// 32-bit aligned and lie entirely within the first 8192 bytes of the image.
public struct MultibootHeader: Sendable, Equatable {
    /// The address fields (flags bit 16), all physical addresses.
    public struct AddressFields: Sendable, Equatable {
        public var headerAddress: UInt32
        public var loadAddress: UInt32
        public var loadEndAddress: UInt32
        public var bssEndAddress: UInt32
        public var entryAddress: UInt32
    }

    /// The preferred video mode (flags bit 2).
    public struct VideoFields: Sendable, Equatable {
        public var modeType: UInt32
        public var width: UInt32
        public var height: UInt32
        public var depth: UInt32
    }

    /// Header magic, 0x1BADB002.
    public static let magic: UInt32 = 0x1BAD_B002
    /// What the boot loader puts in eax, 0x2BADB002.
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002
    /// The header must lie within this many bytes from the start of the image.
    public static let searchLimit = 8192
    /// Flags bit 0: modules must be page (4 KiB) aligned.
    public static let pageAlignModulesFlag: UInt32 = 1 << 0
    /// Flags bit 1: memory information (`mem_*`) must be passed.
    public static let memoryInformationFlag: UInt32 = 1 << 1
    /// Flags bit 2: video mode information is requested.
    public static let videoModeFlag: UInt32 = 1 << 2
    /// Flags bit 16: the address fields are valid and override the executable's headers.
    public static let addressFieldsFlag: UInt32 = 1 << 16
    /// Bits 0–15 are requirements; of those Skiff knows 0, 1 and 2.
    public static let unknownRequiredFlags: UInt32 = 0xFFF8

    /// File offset of the magic.
    public let fileOffset: UInt64
    /// The header's flags word.
    public let flags: UInt32
    /// Present when flags bit 16 is set.
    public let addresses: AddressFields?
    /// Present when flags bit 2 is set.
    public let video: VideoFields?

    /// The first 4-byte aligned header in the first 8192 bytes whose checksum is right (magic +
    /// flags + checksum = 0 mod 2^32), or nil. A magic with a wrong checksum is skipped, as QEMU
    /// and GRUB do. A header whose flagged fields run past 8192 bytes or the file is an error.
    public static func find(in image: [UInt8]) throws(LoaderError) -> MultibootHeader? {
        let limit = min(image.count, searchLimit)
        var offset = 0
        while offset + 12 <= limit {
            defer { offset += 4 }
            guard image.loadLE(UInt32.self, at: offset) == magic else { continue }
            let flags = image.loadLE(UInt32.self, at: offset + 4)
            let checksum = image.loadLE(UInt32.self, at: offset + 8)
            guard magic &+ flags &+ checksum == 0 else { continue }
            return try MultibootHeader(image, offset: offset, flags: flags)
        }
        return nil
    }

    private init(_ image: [UInt8], offset: Int, flags: UInt32) throws(LoaderError) {
        let length = flags & Self.videoModeFlag != 0 ? 48 : (flags & Self.addressFieldsFlag != 0 ? 32 : 12)
        guard offset + length <= Self.searchLimit else {
            throw .malformed(
                "multiboot header at \(hex(offset)) with flags \(hex(flags)) is \(length) bytes long and extends past the first 8192 bytes"
            )
        }
        _ = try image.bytes(at: UInt64(offset), count: UInt64(length), "multiboot header with flags \(hex(flags))")
        fileOffset = UInt64(offset)
        self.flags = flags
        if flags & Self.addressFieldsFlag != 0 {
            addresses = AddressFields(
                headerAddress: image.loadLE(UInt32.self, at: offset + 12),
                loadAddress: image.loadLE(UInt32.self, at: offset + 16),
                loadEndAddress: image.loadLE(UInt32.self, at: offset + 20),
                bssEndAddress: image.loadLE(UInt32.self, at: offset + 24),
                entryAddress: image.loadLE(UInt32.self, at: offset + 28))
        } else {
            addresses = nil
        }
        if flags & Self.videoModeFlag != 0 {
            video = VideoFields(
                modeType: image.loadLE(UInt32.self, at: offset + 32), width: image.loadLE(UInt32.self, at: offset + 36),
                height: image.loadLE(UInt32.self, at: offset + 40), depth: image.loadLE(UInt32.self, at: offset + 44))
        } else {
            video = nil
        }
    }
}
