import Foundation
import Testing

@testable import ArchX86

/// Feeds the generated tables to ACPICA's disassembler, compiler and interpreter.
@Suite("ACPI tables through ACPICA", .enabled(if: ACPICATools.shouldRun, "iasl/acpiexec not installed (apt-get install acpica-tools)"))
struct ACPICAValidationTests {
    /// Writes every table except the RSDP as `<signature>.dat` and returns the file names by signature.
    ///
    /// `iasl` cannot disassemble a raw RSDP ("does not contain a valid ACPI table"); the RSDP is
    /// checked in the pure-Swift tests.
    func dump(_ tables: ACPITables, to directory: URL) throws -> [String: String] {
        var files: [String: String] = [:]
        for table in tables.tables where table.signature != "RSD PTR " {
            let name = table.signature.lowercased()
            try Data(table.bytes).write(to: directory.appendingPathComponent("\(name).dat"))
            files[table.signature] = name
        }
        return files
    }

    func read(_ directory: URL, _ file: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
    }

    func problems(in output: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter {
            $0.contains("Error") && !$0.contains("0 Errors") || $0.contains("Warning") && !$0.contains("0 Warnings")
                || $0.contains("Remark") && !$0.contains("0 Remarks") || $0.contains("Invalid") || $0.contains("****")
        }
    }

    @Test("every table disassembles cleanly and recompiles to the same bytes", arguments: [1, 4])
    func disassembleAndRecompile(vcpus: Int) throws {
        let tables = try ACPITables.build(sampleACPIConfiguration(vcpus: vcpus))
        let directory = try ACPICATools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try dump(tables, to: directory)
        #expect(files.keys.sorted() == ["APIC", "DSDT", "FACP", "MCFG", "RSDT", "XSDT"])

        for (signature, name) in files.sorted(by: { $0.key < $1.key }) {
            let disassembly = try ACPICATools.run("iasl", ["-d", "\(name).dat"], in: directory)
            #expect(disassembly.status == 0, "iasl -d \(signature): \(disassembly.output)")
            #expect(problems(in: disassembly.output).isEmpty, "iasl -d \(signature): \(problems(in: disassembly.output))")
            let dsl = try read(directory, "\(name).dsl")
            #expect(problems(in: dsl).isEmpty, "\(signature).dsl: \(problems(in: dsl))")

            // Recompile the disassembly (without optimizations, so names and integers stay as
            // written) and compare everything after the header, whose creator fields iasl rewrites.
            let compile = try ACPICATools.run("iasl", ["-oa", "-p", "rt_\(name)", "\(name).dsl"], in: directory)
            #expect(compile.status == 0, "iasl \(signature).dsl: \(compile.output)")
            #expect(compile.output.contains("0 Errors, 0 Warnings, 0 Remarks"), "iasl \(signature).dsl: \(compile.output)")
            let recompiled = try [UInt8](Data(contentsOf: directory.appendingPathComponent("rt_\(name).aml")))
            let original = try #require(tables.table(signature)).bytes
            #expect(recompiled.count == original.count, "\(signature) length after round trip")
            #expect(Array(recompiled.dropFirst(36)) == Array(original.dropFirst(36)), "\(signature) body after round trip")
            #expect(Array(recompiled[0..<9]) == Array(original[0..<9]), "\(signature) signature, length, revision")
        }
    }

    @Test("disassembly shows the expected devices and fields")
    func disassemblyContents() throws {
        let tables = try ACPITables.build(sampleACPIConfiguration(vcpus: 3))
        let directory = try ACPICATools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try dump(tables, to: directory)
        for name in files.values {
            _ = try ACPICATools.run("iasl", ["-d", "\(name).dat"], in: directory)
        }

        let dsdt = try read(directory, "dsdt.dsl")
        let expectedASL = [
            "Name (_S5, Package (0x04)", "0x05, \n        0x05, \n        Zero, \n        Zero",
            "Scope (\\_SB)",
            "Device (COM1)", "Name (_HID, EisaId (\"PNP0501\")", "Name (_UID, One)", "Method (_STA, 0, NotSerialized)", "Return (0x0F)",
            "0x03F8,             // Range Minimum", "0x08,               // Length", "IRQNoFlags ()\n                    {4}",
            "Device (PS2K)", "EisaId (\"PNP0303\")", "0x0060,             // Range Minimum", "0x0064,             // Range Minimum",
            "IRQNoFlags ()\n                    {1}",
            "Device (RTC)", "EisaId (\"PNP0B00\")", "0x0070,             // Range Minimum", "0x02,               // Length",
            "IRQNoFlags ()\n                    {8}",
            "Device (PCI0)", "Name (_HID, EisaId (\"PNP0A08\")", "Name (_CID, EisaId (\"PNP0A03\")",
            "Name (_SEG, Zero)", "Name (_BBN, Zero)", "Name (_UID, Zero)",
            "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,", "0x00FF,             // Range Maximum",
            "0x0CF8,             // Range Minimum",
            "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,", "0x0CF7,             // Range Maximum",
            "0x0D00,             // Range Minimum", "0xFFFF,             // Range Maximum",
            "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
            "0xC0000000,         // Range Minimum", "0xDFFFFFFF,         // Range Maximum", "0x20000000,         // Length",
            "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,",
            "0x0000004000000000, // Range Minimum", "0x0000007FFFFFFFFF, // Range Maximum",
            "Name (_PRT, Package (0x7C)", "0x0001FFFF,", "0x001FFFFF,",
            "Device (MRES)", "EisaId (\"PNP0C02\")", "Memory32Fixed (ReadWrite,\n                    0xE0000000,",
            "Device (VR00)", "Name (_HID, \"LNRO0005\")", "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
        ]
        for text in expectedASL {
            #expect(dsdt.contains(text), "DSDT disassembly lacks \(text.debugDescription)")
        }

        let fadt = try read(directory, "facp.dsl")
        for text in [
            "Revision : 06", "FADT Minor Revision : 05", "Hardware Reduced (V5) : 1", "Reset Register Supported (V2) : 1",
            "Control Method Power Button (V1) : 1", "Control Method Sleep Button (V1) : 1",
            "Legacy Devices Supported (V2) : 1", "8042 Present on ports 60/64 (V2) : 1", "VGA Not Present (V4) : 1",
            "CMOS RTC Not Present (V5) : 0", "Space ID : 01 [SystemIO]", "Address : 0000000000000604",
            "Value to cause reset : 01", "Address : 0000000000000600", "Address : 0000000000000601",
            "DSDT Address : 00000000000E", "Hypervisor ID : 4D4D564646494B53",
        ] {
            #expect(fadt.contains(text), "FADT disassembly lacks \(text)")
        }

        let madt = try read(directory, "apic.dsl")
        #expect(madt.components(separatedBy: "[Processor Local APIC]").count - 1 == 3)
        #expect(madt.contains("Local Apic Address : FEE00000"))
        #expect(madt.contains("PC-AT Compatibility : 1"))
        #expect(madt.contains("I/O Apic ID : 03"))
        #expect(madt.contains("Address : FEC00000"))
        #expect(madt.contains("[Interrupt Source Override]"))
        #expect(madt.contains("[Local APIC NMI]"))
        #expect(madt.contains("Interrupt Input LINT : 01"))

        let mcfg = try read(directory, "mcfg.dsl")
        #expect(mcfg.contains("Base Address : 00000000E0000000"))
        #expect(mcfg.contains("End Bus Number : FF"))
    }

    @Test("ACPICA's interpreter loads the tables and converts every _CRS back to identical AML")
    func acpiexec() throws {
        let tables = try ACPITables.build(sampleACPIConfiguration(vcpus: 2))
        let directory = try ACPICATools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try dump(tables, to: directory)
        let devices = ["\\_SB.COM1", "\\_SB.PS2K", "\\_SB.RTC_", "\\_SB.PCI0", "\\_SB.MRES", "\\_SB.VR00"]
        let commands = ["namespace", "evaluate \\_S5_", "evaluate \\_SB.COM1._STA"] + devices.map { "resources \($0)" }
        let result = try ACPICATools.run(
            "acpiexec", ["-b", commands.joined(separator: "; "), "dsdt.dat", "facp.dat", "apic.dat", "mcfg.dat"], in: directory)
        #expect(result.status == 0, "\(result.output)")
        let output = result.output
        #expect(output.contains("1 ACPI AML tables successfully acquired and loaded"))
        #expect(output.contains("Elements 7C"), "the _PRT package has 124 entries")
        #expect(output.contains("[Integer] = 0000000000000005\n    [Integer] = 0000000000000005"), "_S5_ starts with SLP_TYP 5, 5")
        #expect(output.contains("[Integer] = 000000000000000F"), "_STA returns 0xF")
        #expect(output.components(separatedBy: "Resource Conversion Comparison").count - 1 == devices.count)
        #expect(!output.contains("Mismatch"), "ACPICA re-encoded a resource differently")
        #expect(!output.contains("Could not"), "\(output)")
        // The only failure acpiexec reports is the missing _SRS it tries after each _CRS.
        let failures = output.split(separator: "\n").filter { $0.contains("AE_") && !$0.contains("AcpiSetCurrentResources failed: AE_NOT_FOUND") }
        #expect(failures.isEmpty, "\(failures)")
        #expect(output.contains("Interrupt List : 4"))
        #expect(output.contains("Address Maximum : DFFFFFFF"))
    }
}
