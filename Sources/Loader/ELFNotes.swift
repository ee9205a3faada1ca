/// One ELF note: `namesz`, `descsz`, `type`, then the name and the descriptor, each padded.
struct ELFNote {
    /// Name bytes without trailing NULs.
    var name: ArraySlice<UInt8>
    var type: UInt32
    var descriptor: ArraySlice<UInt8>
    /// File offset of the note header, for messages.
    var offset: UInt64
}

enum ELFNotes {
    /// Parses the notes in `size` bytes at file offset `offset`.
    ///
    /// The descriptor starts at the note's offset + `align_up(12 + namesz)` and the next note at
    /// `align_up(descriptor offset + descsz)`, offsets counted from the container's start (as
    /// binutils' `ELF_NOTE_DESC_OFFSET`/`ELF_NOTE_NEXT_OFFSET` do). The alignment is 4 (what Linux
    /// and Xen emit for both ELF classes) unless the container declares 8. Every size is checked
    /// against the container, so a huge `namesz` or `descsz` is an error, not a read past it.
    static func parse(_ image: [UInt8], offset: UInt64, size: UInt64, containerAlignment: UInt64, what: String)
        throws(LoaderError) -> [ELFNote]
    {
        let region = try AddressRange.checked(start: offset, size: size, what)
        _ = try image.bytes(at: offset, count: size, what)
        let alignment: UInt64 = containerAlignment == 8 ? 8 : 4
        var notes: [ELFNote] = []
        var position = region.start
        while position < region.end {
            let remaining = region.end - position
            guard remaining >= 12 else {
                throw .truncated(
                    "\(what): note at \(hex(position)) needs a 12-byte header but only \(remaining) bytes remain")
            }
            let at = Int(position)
            let nameSize = UInt64(image.loadLE(UInt32.self, at: at))
            let descriptorSize = UInt64(image.loadLE(UInt32.self, at: at + 4))
            let type = image.loadLE(UInt32.self, at: at + 8)
            let nameStart = position + 12
            // Sizes are below 2^32 and positions below the file size, so these sums cannot overflow.
            guard nameSize <= region.end - nameStart else {
                throw .malformed(
                    "\(what): note at \(hex(position)) has namesz \(hex(nameSize)), past the end of its container at \(hex(region.end))"
                )
            }
            guard let descriptorOffset = alignUp(nameStart + nameSize - region.start, alignment) else {
                throw .overflow("\(what): note at \(hex(position)) descriptor offset overflows")
            }
            let descriptorStart = region.start + descriptorOffset
            guard
                descriptorSize == 0 || (descriptorStart <= region.end && descriptorSize <= region.end - descriptorStart)
            else {
                throw .malformed(
                    "\(what): note at \(hex(position)) has descsz \(hex(descriptorSize)), past the end of its container at \(hex(region.end))"
                )
            }
            var nameEnd = Int(nameStart + nameSize)
            while nameEnd > Int(nameStart), image[nameEnd - 1] == 0 { nameEnd -= 1 }
            let descriptor: ArraySlice<UInt8>
            if descriptorSize == 0 {
                descriptor = image[nameEnd..<nameEnd]
            } else {
                let begin = Int(descriptorStart)
                descriptor = image[begin..<(begin + Int(descriptorSize))]
            }
            notes.append(
                ELFNote(name: image[Int(nameStart)..<nameEnd], type: type, descriptor: descriptor, offset: position))
            // Always at least 12 bytes further. The last note's padding may run past the container;
            // that ends the walk.
            guard let nextOffset = alignUp(descriptorStart + descriptorSize - region.start, alignment) else { break }
            position = region.start + nextOffset
        }
        return notes
    }
}

/// Finds the PVH entry: the `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18, name "Xen") that Linux emits
/// in arch/x86/platform/pvh/head.S, in a `PT_NOTE` segment or, failing that, an `SHT_NOTE` section.
enum PVHNote {
    static let type: UInt32 = 18
    static let name: [UInt8] = Array("Xen".utf8)

    /// The 32-bit physical entry, or nil when the file has no PVH note. The descriptor is a 32-bit
    /// value (descsz 4) or a 64-bit value (descsz 8, as `_ASM_PTR` gives on x86-64) that must fit
    /// in 32 bits.
    static func entry(in elf: ELFFile, image: [UInt8]) throws(LoaderError) -> UInt64? {
        for (index, header) in elf.programHeaders.enumerated() where header.type == ELFFile.programNote {
            let notes = try ELFNotes.parse(
                image, offset: header.offset, size: header.fileSize, containerAlignment: header.alignment,
                what: "\(elf.elfClass.name) PT_NOTE segment \(index)")
            if let entry = try entry(in: notes) { return entry }
        }
        for (index, section) in try elf.noteSections(image).enumerated() {
            let notes = try ELFNotes.parse(
                image, offset: section.offset, size: section.size, containerAlignment: section.alignment,
                what: "\(elf.elfClass.name) SHT_NOTE section \(index)")
            if let entry = try entry(in: notes) { return entry }
        }
        return nil
    }

    /// The `XEN_ELFNOTE_GUEST_OS` string (type 6, name "Xen"; Linux says "linux"), if present
    /// and well formed: at most 64 printable ASCII bytes before the terminating NUL.
    static func guestOS(in elf: ELFFile, image: [UInt8]) -> String? {
        var notes: [ELFNote] = []
        for header in elf.programHeaders where header.type == ELFFile.programNote {
            notes += (try? ELFNotes.parse(image, offset: header.offset, size: header.fileSize,
                                          containerAlignment: header.alignment, what: "PT_NOTE")) ?? []
        }
        for note in notes where note.type == 6 && Array(note.name) == name {
            let text = Array(note.descriptor.prefix { $0 != 0 })
            guard !text.isEmpty, text.count <= 64, text.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return nil }
            return String(decoding: text, as: UTF8.self)
        }
        return nil
    }

    private static func entry(in notes: [ELFNote]) throws(LoaderError) -> UInt64? {
        for note in notes where note.type == type && Array(note.name) == name {
            let d = note.descriptor
            let value: UInt64
            switch d.count {
            case 4:
                value = UInt64(Array(d).loadLE(UInt32.self, at: 0))
            case 8:
                value = Array(d).loadLE(UInt64.self, at: 0)
            default:
                throw .malformed(
                    "PVH note (Xen, type 18) at \(hex(note.offset)) has descsz \(d.count); expected 4 or 8")
            }
            guard value <= UInt64(UInt32.max) else {
                throw .unsupported("PVH entry \(hex(value)) is above 4 GiB; the PVH entry runs in 32-bit mode")
            }
            return value
        }
        return nil
    }
}
