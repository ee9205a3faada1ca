import ArchX86

/// A module for a multiboot kernel: its bytes, its arguments and, when known, the file name it was
/// loaded from (QEMU's `-initrd "file args,file2"`).
public struct BootModule: Sendable, Equatable {
    public var bytes: ArraySlice<UInt8>
    /// The arguments; with `fileName` the guest sees `"fileName arguments"` (`MultibootCommandLine.module`).
    public var commandLine: String
    /// The file name as the user gave it, or nil to pass `commandLine` alone.
    public var fileName: String?

    public init(bytes: ArraySlice<UInt8>, commandLine: String = "", fileName: String? = nil) {
        self.bytes = bytes
        self.commandLine = commandLine
        self.fileName = fileName
    }

    /// What the guest reads as this module's command line.
    public var guestCommandLine: String {
        fileName.map { MultibootCommandLine.module(fileName: $0, arguments: commandLine) } ?? commandLine
    }
}

/// The CPU state the VMM sets before the first `KVM_RUN`.
public enum EntryState: Sendable, Equatable {
    /// Linux 64-bit protocol: long mode, paging on with the identity map, `__BOOT_CS` 0x10 /
    /// `__BOOT_DS` 0x18 flat segments, interrupts off; `rip` = entry, `rsi` = zero page.
    case longMode(rip: UInt64, rsi: UInt64)
    /// PVH and multiboot: 32-bit protected mode, paging off, flat 4 GiB segments, interrupts off.
    /// PVH: `ebx` = `hvm_start_info`, `eax` 0. Multiboot: `eax` = 0x2BADB002, `ebx` = info.
    case protectedMode(eip: UInt32, eax: UInt32, ebx: UInt32)
}

/// Everything the VMM copies into guest RAM to boot a kernel, and how to enter it.
///
/// Writes: the kernel's segments (at or above 1 MiB), the initrd or modules (page-aligned above
/// the kernel's end), the protocol's boot structures at their `Layout` addresses and the command
/// line at `Layout.commandLineAddress`. The plan checks that every write lies inside one RAM range
/// and that no two writes overlap (nor overlap the kernel's decompression area).
public struct BootPlan: Sendable {
    /// The parsed kernel.
    public let kernel: KernelImage
    /// What to copy where; apply in any order.
    public let writes: [GuestWrite]
    /// Registers for the boot vCPU.
    public let entryState: EntryState
    /// Where the initrd was placed (bzImage and PVH; for multiboot it is module 0).
    public let initrd: AddressRange?
    /// Where multiboot modules were placed, in order (initrd first when given).
    public let modules: [AddressRange]
    /// The command line as written.
    public let commandLine: KernelCommandLine

    /// The kernel's entry point.
    public var entry: UInt64 { kernel.entry }
    /// The boot protocol.
    public var bootProtocol: BootProtocol { kernel.bootProtocol }

    /// Parses `kernelImage` and plans the boot.
    public init(
        kernelImage: [UInt8], format: KernelFormat = .automatic, initrd: ArraySlice<UInt8>? = nil,
        modules: [BootModule] = [], commandLine: KernelCommandLine, memoryMap: MemoryMap, rsdpAddress: UInt64? = nil,
        kernelFileName: String? = nil, initrdFileName: String? = nil
    ) throws(LoaderError) {
        let kernel = try KernelImage.parse(kernelImage, memoryMap: memoryMap, format: format)
        try self.init(
            kernel: kernel, initrd: initrd, modules: modules, commandLine: commandLine, memoryMap: memoryMap,
            rsdpAddress: rsdpAddress, kernelFileName: kernelFileName, initrdFileName: initrdFileName)
    }

    /// Plans the boot of an already parsed kernel.
    ///
    /// - Parameters:
    ///   - kernelFileName: for a multiboot kernel, the file name as the user gave it: the guest's
    ///     command line becomes `"kernelFileName commandLine"`, as GRUB and QEMU pass it
    ///     (`MultibootCommandLine.kernel`). Other protocols ignore it.
    ///   - initrdFileName: for a multiboot kernel, the initrd's (first module's) file name, its
    ///     command line.
    public init(
        kernel: KernelImage, initrd: ArraySlice<UInt8>? = nil, modules: [BootModule] = [],
        commandLine arguments: KernelCommandLine, memoryMap: MemoryMap, rsdpAddress: UInt64? = nil,
        kernelFileName: String? = nil, initrdFileName: String? = nil
    ) throws(LoaderError) {
        self.kernel = kernel
        var commandLine = arguments
        if case .multiboot = kernel.bootProtocol, let kernelFileName {
            commandLine = try KernelCommandLine(MultibootCommandLine.kernel(fileName: kernelFileName, arguments: arguments.text))
        }
        self.commandLine = commandLine
        var writes: [GuestWrite] = kernel.segments.enumerated().map { index, segment in
            GuestWrite(
                label: "kernel segment \(index)", address: segment.address, bytes: segment.bytes,
                zeroFill: segment.zeroFill)
        }
        let commandLineBytes = try commandLine.encoded(limit: KernelCommandLine.limit(for: kernel.bootProtocol))
        writes.append(
            GuestWrite(label: "command line", address: Layout.commandLineAddress, bytes: commandLineBytes[...]))

        switch kernel.bootProtocol {
        case .linux64(let header):
            try Self.refuseModules(modules, kernel)
            let initrdRange = try Self.placeInitrd(initrd, kernel: kernel, memoryMap: memoryMap, writes: &writes)
            let zeroPage = ZeroPage(
                setupHeader: header, initrd: initrdRange, e820: memoryMap.e820, rsdpAddress: rsdpAddress)
            writes.append(
                GuestWrite(label: "zero page", address: Layout.zeroPageAddress, bytes: try zeroPage.encode()[...]))
            self.initrd = initrdRange
            self.modules = []
            entryState = .longMode(rip: kernel.entry, rsi: Layout.zeroPageAddress)

        case .pvh:
            try Self.refuseModules(modules, kernel)
            let initrdRange = try Self.placeInitrd(initrd, kernel: kernel, memoryMap: memoryMap, writes: &writes)
            let pvhModules = initrdRange.map { [PVHStartInfo.Module(address: $0.start, size: $0.size)] } ?? []
            let startInfo = PVHStartInfo(rsdpAddress: rsdpAddress, modules: pvhModules, memoryMap: memoryMap.e820)
            writes += try startInfo.encode()
            self.initrd = initrdRange
            self.modules = []
            entryState = .protectedMode(eip: try Self.entry32(kernel), eax: 0, ebx: UInt32(Layout.pvhStartInfoAddress))

        case .multiboot:
            var all = modules
            if let initrd { all.insert(BootModule(bytes: initrd, commandLine: "", fileName: initrdFileName), at: 0) }
            let placed = try Self.placeModules(all, kernel: kernel, memoryMap: memoryMap, writes: &writes)
            let info = MultibootInfo(
                modules: zip(placed, all).map { MultibootInfo.Module(range: $0, commandLine: $1.guestCommandLine) },
                e820: memoryMap.e820)
            writes.append(
                GuestWrite(
                    label: "multiboot information", address: Layout.multibootInfoAddress, bytes: try info.encode()[...])
            )
            self.initrd = nil
            self.modules = placed
            entryState = .protectedMode(
                eip: try Self.entry32(kernel), eax: MultibootHeader.bootloaderMagic,
                ebx: UInt32(Layout.multibootInfoAddress))
        }

        try Self.check(writes, kernel: kernel, memoryMap: memoryMap)
        self.writes = writes
    }

    private static func refuseModules(_ modules: [BootModule], _ kernel: KernelImage) throws(LoaderError) {
        guard modules.isEmpty else {
            throw .unsupported(
                "boot modules are passed only to multiboot kernels; a \(kernel.bootProtocol.name) kernel takes a single initrd"
            )
        }
    }

    private static func entry32(_ kernel: KernelImage) throws(LoaderError) -> UInt32 {
        guard kernel.entry <= UInt64(UInt32.max) else {
            throw .unsupported(
                "\(kernel.bootProtocol.name) entry \(hex(kernel.entry)) is above 4 GiB, out of reach of a 32-bit entry")
        }
        return UInt32(kernel.entry)
    }

    private static func placeInitrd(
        _ initrd: ArraySlice<UInt8>?, kernel: KernelImage, memoryMap: MemoryMap, writes: inout [GuestWrite]
    ) throws(LoaderError) -> AddressRange? {
        guard let initrd else { return nil }
        let size = UInt64(initrd.count)
        let address = try InitrdPlacement.highestAddress(
            size: size, lowest: kernel.end, limit: InitrdPlacement.limit(for: kernel, memoryMap: memoryMap))
        writes.append(GuestWrite(label: "initrd", address: address, bytes: initrd))
        return AddressRange(start: address, clampedEnd: address + size)
    }

    /// Modules one after another, each at a 4 KiB boundary (multiboot flags bit 0), from the
    /// kernel's end; all must end below 4 GiB and inside low RAM.
    private static func placeModules(
        _ modules: [BootModule], kernel: KernelImage, memoryMap: MemoryMap, writes: inout [GuestWrite]
    ) throws(LoaderError) -> [AddressRange] {
        let limit = min(memoryMap.lowRAMEnd, UInt64(UInt32.max))
        var next = kernel.end
        var placed: [AddressRange] = []
        for (i, module) in modules.enumerated() {
            guard let start = alignUp(next, pageSize) else {
                throw .overflow("multiboot module \(i) start rounded up to 4 KiB overflows")
            }
            let size = UInt64(module.bytes.count)
            guard start <= limit, size <= limit - start else {
                throw .doesNotFit(
                    "multiboot module \(i) (\(hex(size)) bytes) does not fit at \(hex(start)); modules must end below \(hex(limit))"
                )
            }
            let range = AddressRange(start: start, clampedEnd: start + size)
            writes.append(GuestWrite(label: "multiboot module \(i)", address: start, bytes: module.bytes))
            placed.append(range)
            next = range.end
        }
        return placed
    }

    /// Checks writes from any source (e.g. the plan's plus the VMM's GDT and page tables): each
    /// inside one RAM range of `memoryMap`, no two sharing a byte.
    public static func checkWrites(_ writes: [GuestWrite], memoryMap: MemoryMap) throws(LoaderError) {
        _ = try checkedRanges(writes, memoryMap: memoryMap)
    }

    private static func checkedRanges(_ writes: [GuestWrite], memoryMap: MemoryMap) throws(LoaderError)
        -> [(AddressRange, String)]
    {
        var items: [(AddressRange, String)] = []
        for write in writes {
            guard let range = write.range else {
                throw .overflow(
                    "\(write.label) at \(hex(write.address)) with \(hex(write.bytes.count)) bytes overflows 64 bits")
            }
            try SegmentValidation.checkInRAM(range, what: write.label, memoryMap: memoryMap)
            items.append((range, write.label))
        }
        try SegmentValidation.checkNoOverlap(items, kind: "guest writes")
        return items
    }

    /// Every write inside one RAM range; no two writes overlapping; nothing but the kernel's own
    /// segments (the first `kernel.segments.count` writes) inside the kernel's reserved range.
    static func check(_ writes: [GuestWrite], kernel: KernelImage, memoryMap: MemoryMap) throws(LoaderError) {
        let items = try checkedRanges(writes, memoryMap: memoryMap)
        let reserved = kernel.reservedRange
        // `init` puts the kernel's segments first.
        for (range, label) in items.dropFirst(kernel.segments.count) where reserved.overlaps(range) {
            throw .overlap("\(label) at \(range) overlaps the kernel's memory \(reserved)")
        }
    }
}
