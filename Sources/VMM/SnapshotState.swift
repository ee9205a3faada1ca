import ArchX86
import Migration
import Snapshot

/// A snapshot's state file read and checked as a restore reads it: every section decoded and
/// validated, the memory layout matching the memory size. What it does not check is outside
/// the file: the parent chain of a diff snapshot and the memory file.
package struct SnapshotState: Equatable {
    let configuration: SavedConfiguration
    let image: MemoryImage
    let machine: MachineState
    let devices: PlatformDevicesState

    package var vcpuCount: Int { configuration.vcpuCount }
    package var memorySize: UInt64 { configuration.memorySize }

    /// Parses and checks `bytes` (`path` names the file in errors). Throws `SnapshotError`,
    /// or `VMError` for a machine state that does not fit the configuration.
    package init(parsing bytes: [UInt8], path: String) throws {
        let file = try StateFile(parsing: bytes, path: path, known: SnapshotSection.all)
        for name in SnapshotSection.all where !file.has(name) { throw SnapshotError.sections("section '\(name)' is missing") }
        configuration = try file.decode(SavedConfiguration.self, section: SnapshotSection.configuration)
        try configuration.validate()
        image = try file.decode(MemoryImage.self, section: SnapshotSection.memory)
        try image.validate()
        machine = try file.decode(MachineState.self, section: SnapshotSection.machine)
        try machine.validate(vcpuCount: configuration.vcpuCount)
        devices = try file.decode(PlatformDevicesState.self, section: SnapshotSection.devices)
        do {
            try devices.validate()
        } catch {
            throw SnapshotError.invalid(section: SnapshotSection.devices, reason: error.description)
        }
        // The image must describe exactly the RAM this memory size gets.
        let expected: [(address: UInt64, size: UInt64)]
        do {
            expected = try MemoryMap(ramSize: configuration.memorySize).ramRanges
        } catch {
            throw SnapshotError.invalid(section: SnapshotSection.configuration, reason: "\(error)")
        }
        guard expected.count == image.regions.count,
              zip(expected, image.regions).allSatisfy({ $0.address == $1.guestAddress && $0.size == $1.size }) else {
            throw SnapshotError.invalid(section: SnapshotSection.memory, reason: "the regions do not match \(configuration.memorySize >> 20) MiB of RAM")
        }
    }

    /// The state file a snapshot of these values writes.
    package func serialized() throws(SnapshotError) -> [UInt8] {
        var file = StateFile()
        try file.add(SnapshotSection.configuration, configuration)
        try file.add(SnapshotSection.memory, image)
        try file.add(SnapshotSection.machine, machine)
        try file.add(SnapshotSection.devices, devices)
        return file.serialized()
    }

    /// The hello a migration of this VM starts with (no base snapshot, no copied disks).
    package func migrationHello() throws(MigrationError) -> MigrationHello {
        MigrationHello(configuration: try MigrationFrame.encode(configuration), pageCount: image.pageCount, base: nil, disks: [])
    }

    /// The state frame a migration of this VM ends with.
    package func migrationStateFrame() throws(VMError) -> [UInt8] {
        try StateFileBuilder.migrationState(configuration: configuration, machine: machine, devices: devices).get()
    }
}
