import Foundation
import Testing

@testable import ArchX86

/// Checks the feature table in docs/cpu-templates.md against what the templates do.
@Suite("CPU template documentation")
struct CPUTemplateDocumentationTests {
    struct Row {
        let name: String
        let leaf: String
        let register: String
        let bit: UInt32
        let baseline: String
        let host: String
    }

    static func rows() throws -> [Row] {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/cpu-templates.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        return text.split(separator: "\n").filter { $0.hasPrefix("| `") }.compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 8, let bit = UInt32(cells[4]) else { return nil }
            return Row(name: cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`")), leaf: cells[2], register: cells[3], bit: bit, baseline: cells[5], host: cells[6])
        }
    }

    /// A supported table with every feature register set to `value`.
    static func uniform(_ value: UInt32, vendor: CPUVendor) -> [CPUIDEntry] {
        let name = vendor == .amd ? CPUIDFixtures.amdVendor : CPUIDFixtures.intelVendor
        return [
            CPUIDEntry(function: 0, eax: 0x1F, ebx: name.ebx, ecx: name.ecx, edx: name.edx),
            CPUIDEntry(function: 1, eax: 0x806F8, ebx: 0, ecx: value, edx: value),
            CPUIDEntry(function: 6, eax: value, ecx: value),
            CPUIDEntry(function: 7, index: 0, flags: CPUIDEntry.significantIndex, ebx: value, ecx: value, edx: value),
            CPUIDEntry(function: 0x4000_0000, eax: 0x4000_0001),
            CPUIDEntry(function: 0x4000_0001, eax: value),
            CPUIDEntry(function: 0x8000_0000, eax: 0x8000_0008, ebx: name.ebx, ecx: name.ecx, edx: name.edx),
            CPUIDEntry(function: 0x8000_0001, ecx: value, edx: value),
            CPUIDEntry(function: 0x8000_0007, edx: value),
            CPUIDEntry(function: 0x8000_0008, ebx: value),
        ]
    }

    static func output(_ template: CPUTemplate, _ value: UInt32, vendor: CPUVendor = .intel, vcpus: Int = 2, tscOption: Bool = false) throws -> [CPUIDEntry] {
        try template.entries(
            supported: uniform(value, vendor: vendor), vcpuIndex: 0, vcpuCount: vcpus, apicID: 0, options: CPUIDOptions(tscDeadlineTimer: tscOption))
    }

    @Test("every named feature has exactly one row with its leaf, register and bit")
    func coverage() throws {
        let rows = try Self.rows()
        #expect(rows.count == CPUIDFeature.all.count)
        #expect(Set(rows.map(\.name)).count == rows.count)
        for feature in CPUIDFeature.all {
            let row = try #require(rows.first { $0.name == feature.name }, "\(feature) is not documented")
            let leaf = "0x" + String(feature.function, radix: 16) + (feature.function == 7 ? ".\(feature.index)" : "")
            #expect(row.leaf == leaf && row.register == feature.register.rawValue.uppercased() && row.bit == feature.bit, "\(feature)")
        }
    }

    @Test("the documented decision is what each template does")
    func decisions() throws {
        let rows = try Self.rows()
        for template in CPUTemplate.allCases {
            let ones = try Self.output(template, .max)
            let zeros = try Self.output(template, 0)
            for row in rows {
                let feature = try #require(CPUIDFeature.all.first { $0.name == row.name })
                let decision = template == .baseline ? row.baseline : row.host
                switch decision {
                case "keep":
                    #expect(feature.isSet(in: ones) && !feature.isSet(in: zeros), "\(template) should keep \(feature)")
                case "clear":
                    #expect(!feature.isSet(in: ones), "\(template) should clear \(feature)")
                case "set":
                    #expect(feature.isSet(in: zeros), "\(template) should set \(feature)")
                case "vCPUs > 1":
                    #expect(feature.isSet(in: try Self.output(template, 0, vcpus: 2)))
                    #expect(!feature.isSet(in: try Self.output(template, .max, vcpus: 1)))
                case "AMD, vCPUs > 1":
                    #expect(feature.isSet(in: try Self.output(template, .max, vendor: .amd, vcpus: 2)))
                    #expect(!feature.isSet(in: try Self.output(template, .max, vendor: .amd, vcpus: 1)))
                    #expect(!feature.isSet(in: try Self.output(template, .max, vendor: .intel, vcpus: 2)))
                case "keep / option":
                    #expect(feature.isSet(in: ones) && !feature.isSet(in: zeros))
                    #expect(feature.isSet(in: try Self.output(template, 0, tscOption: true)))
                case "keep, AMD: clear":
                    #expect(feature.isSet(in: ones) && !feature.isSet(in: zeros))
                    #expect(!feature.isSet(in: try Self.output(template, .max, vendor: .amd)))
                default:
                    Issue.record("unknown decision \"\(decision)\" for \(row.name)")
                }
            }
        }
    }
}
