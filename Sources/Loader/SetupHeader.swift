/// The Linux/x86 real-mode kernel header ("setup header") of a bzImage.
///
/// Offsets are those of Documentation/arch/x86/boot.rst ("The Real-Mode Kernel Header"); the
/// header starts at file offset 0x1F1 and ends at `0x202 + byte at 0x201` (the jump at 0x200
/// doubles as its length). The same bytes go to offset 0x1F1 of the zero page.
public struct SetupHeader: Sendable, Equatable {
    /// Where the header starts, in the image and in `struct boot_params`.
    public static let offset = 0x1F1
    /// "HdrS" read as a little-endian 32-bit value, at 0x202.
    public static let signature: UInt32 = 0x5372_6448
    /// 0xAA55 at 0x1FE.
    public static let bootFlagValue: UInt16 = 0xAA55
    /// Oldest protocol accepted: 2.12 introduced `xloadflags` and with it `XLF_KERNEL_64`, the only
    /// way a kernel says that its 64-bit entry at load address + 0x200 exists. 2.12 also implies
    /// `cmdline_size` (2.06), `pref_address` and `init_size` (2.10), which placement relies on.
    public static let minimumVersion: UInt16 = 0x020C
    /// `loadflags` bit 0: the protected-mode kernel loads at 0x100000.
    public static let loadedHigh: UInt8 = 0x01
    /// `xloadflags` bit 0: the kernel has the 64-bit entry point at +0x200.
    public static let kernel64: UInt16 = 0x0001
    /// `xloadflags` bit 1: kernel, boot_params, command line and ramdisk may be above 4 GiB.
    public static let canBeLoadedAbove4G: UInt16 = 0x0002

    /// File bytes 0x1F1 ..< 0x202 + byte[0x201], copied as is into the zero page.
    public let rawBytes: [UInt8]
    /// `setup_sects` (0x1F1) with 0 replaced by 4, as the protocol says.
    public let setupSectors: Int
    /// `syssize` (0x1F4): protected-mode code size in 16-byte paragraphs.
    public let systemSize: UInt32
    /// `version` (0x206), e.g. 0x020F for 2.15.
    public let version: UInt16
    /// `loadflags` (0x211).
    public let loadFlags: UInt8
    /// `initrd_addr_max` (0x22C): highest address the initrd may occupy (inclusive).
    public let initrdAddressMax: UInt32
    /// `kernel_alignment` (0x230).
    public let kernelAlignment: UInt32
    /// `relocatable_kernel` (0x234) is non-zero.
    public let isRelocatable: Bool
    /// `min_alignment` (0x235), a power of two exponent.
    public let minimumAlignmentShift: UInt8
    /// `xloadflags` (0x236).
    public let extendedLoadFlags: UInt16
    /// `cmdline_size` (0x238): longest command line without its terminating NUL.
    public let commandLineSize: UInt32
    /// `payload_offset` (0x248), relative to the protected-mode code.
    public let payloadOffset: UInt32
    /// `payload_length` (0x24C).
    public let payloadLength: UInt32
    /// `pref_address` (0x258).
    public let preferredAddress: UInt64
    /// `init_size` (0x260): memory the kernel needs from its runtime start before it reads the
    /// memory map.
    public let initSize: UInt32
    /// The version string `kernel_version` (0x20E) points to, when present and printable.
    public let kernelVersion: String?

    /// Offset of the protected-mode kernel in the file: `(setup_sects + 1) * 512`.
    public var protectedModeOffset: Int { (setupSectors + 1) * 512 }

    /// Longest command line (bytes, without the NUL) the kernel accepts: `cmdline_size` from 2.06,
    /// 255 before.
    public var commandLineLimit: Int {
        version >= 0x0206 ? Int(commandLineSize) : 255
    }

    /// Highest byte the initrd may occupy: `initrd_addr_max` from 2.03, 0x37FFFFFF before.
    public var initrdHighestAddress: UInt64 {
        version >= 0x0203 ? UInt64(initrdAddressMax) : 0x37FF_FFFF
    }

    /// Whether the image carries "HdrS" at 0x202 (cheap detection, no validation).
    static func hasSignature(_ image: [UInt8]) -> Bool {
        image.hasBytes(at: 0x202, count: 4) && image.loadLE(UInt32.self, at: 0x202) == signature
    }

    /// Reads and checks the header of a bzImage: length, "HdrS", boot flag, version ≥ 2.12 and a
    /// header long enough to hold every field read here.
    public init(parsing image: [UInt8]) throws(LoaderError) {
        guard image.count >= 0x206 else {
            throw .truncated(
                "bzImage setup header needs the first 0x206 bytes of the file (up to 'HdrS' at 0x202) but the file is \(hex(image.count)) bytes long"
            )
        }
        guard Self.hasSignature(image) else {
            let found = image[0x202..<0x206].map { hex($0) }.joined(separator: " ")
            throw .badMagic("not a bzImage: no 'HdrS' signature at offset 0x202 (found \(found))")
        }
        let bootFlag = try image.readLE(UInt16.self, at: 0x1FE, "bzImage boot_flag")
        guard bootFlag == Self.bootFlagValue else {
            throw .badMagic("bzImage boot_flag at 0x1FE is \(hex(bootFlag)), expected 0xaa55")
        }
        let version = try image.readLE(UInt16.self, at: 0x206, "bzImage version")
        guard version >= Self.minimumVersion else {
            throw .unsupported(
                "bzImage boot protocol \(version >> 8).\(String(format2: version & 0xFF)) is older than 2.12, the first to declare the 64-bit entry (xloadflags.XLF_KERNEL_64)"
            )
        }
        guard image[0x200] == 0xEB else {
            throw .malformed(
                "bzImage jump at 0x200 is \(hex(image[0x200])), expected 0xeb (it gives the header length)")
        }
        let jump = image[0x201]
        guard jump < 0x80 else {
            throw .malformed(
                "bzImage jump at 0x200 goes backwards (offset \(hex(jump))), so the setup header has no length")
        }
        let headerEnd = 0x202 + Int(jump)
        guard headerEnd >= 0x264 else {
            throw .malformed(
                "bzImage setup header ends at \(hex(headerEnd)) (jump at 0x200), before init_size at 0x260..0x264 that protocol 2.12 has"
            )
        }
        let raw = try image.bytes(
            at: UInt64(Self.offset), count: UInt64(headerEnd - Self.offset), "bzImage setup header")
        rawBytes = Array(raw)
        self.version = version
        let sectors = Int(image[0x1F1])
        setupSectors = sectors == 0 ? 4 : sectors
        systemSize = image.loadLE(UInt32.self, at: 0x1F4)
        loadFlags = image[0x211]
        initrdAddressMax = image.loadLE(UInt32.self, at: 0x22C)
        kernelAlignment = image.loadLE(UInt32.self, at: 0x230)
        isRelocatable = image[0x234] != 0
        minimumAlignmentShift = image[0x235]
        extendedLoadFlags = image.loadLE(UInt16.self, at: 0x236)
        commandLineSize = image.loadLE(UInt32.self, at: 0x238)
        payloadOffset = image.loadLE(UInt32.self, at: 0x248)
        payloadLength = image.loadLE(UInt32.self, at: 0x24C)
        preferredAddress = image.loadLE(UInt64.self, at: 0x258)
        initSize = image.loadLE(UInt32.self, at: 0x260)
        kernelVersion = Self.versionString(
            image, pointer: image.loadLE(UInt16.self, at: 0x20E), setupSectors: setupSectors)
    }

    /// The NUL-terminated string at `pointer + 0x200`, inside the setup code, at most 256 bytes of
    /// printable ASCII; nil otherwise.
    private static func versionString(_ image: [UInt8], pointer: UInt16, setupSectors: Int) -> String? {
        guard pointer != 0 else { return nil }
        let start = Int(pointer) + 0x200
        let setupEnd = min((setupSectors + 1) * 512, image.count)
        guard start < setupEnd else { return nil }
        var text: [UInt8] = []
        var i = start
        while i < setupEnd, image[i] != 0, text.count < 256 {
            guard image[i] >= 0x20, image[i] < 0x7F else { return nil }
            text.append(image[i])
            i += 1
        }
        guard i < setupEnd, image[i] == 0 else { return nil }
        return String(decoding: text, as: UTF8.self)
    }
}

extension String {
    /// Two decimal digits, for protocol minor versions ("2.06").
    init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
