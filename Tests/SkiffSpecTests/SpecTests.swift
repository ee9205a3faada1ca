import Foundation
import SkiffSpec
import Testing

struct SpecTests {
    static let example = """
        name: web1
        cpus: 2
        memory: 256M
        kernel: /srv/vmlinux
        initrd: /srv/initrd.img        # optional
        cmdline: console=ttyS0         # optional
        disks: [{path: /srv/web1.qcow2, format: qcow2, readonly: false}]
        nics: [{tap: tap-web1}]
        qos: {class: high}             # high | normal | low
        restart: on-failure            # always | on-failure | never
        """

    @Test func theIssuesExampleParses() throws {
        let spec = try SpecLoader.parse(Self.example)
        #expect(spec.name == "web1")
        #expect(spec.vcpus == 2)
        #expect(spec.memoryBytes == 256 << 20)
        #expect(spec.kernel == "/srv/vmlinux")
        #expect(spec.initrd == "/srv/initrd.img")
        #expect(spec.cmdline == "console=ttyS0")
        #expect(spec.disks == [DiskSpec(path: "/srv/web1.qcow2", format: .qcow2, readonly: false)])
        #expect(spec.nics == [NICSpec(tap: "tap-web1")])
        #expect(spec.qosClass == .high)
        #expect(spec.restartPolicy == .onFailure)
        #expect(spec.hasBalloon)
    }

    @Test func jsonParsesToTheSameSpec() throws {
        let yaml = try SpecLoader.parse(Self.example)
        let json = String(decoding: try JSONEncoder().encode(yaml), as: UTF8.self)
        #expect(json.hasPrefix("{"))
        #expect(try SpecLoader.parse(json) == yaml)
    }

    @Test(arguments: [
        ("name: a\nkernel: /k\ncpu: 2\n", "unknown field 'cpu'"),
        ("name: a\nkernel: /k\nqos: {class: high, weight: 3}\n", "unknown field 'weight' in qos"),
        ("name: a\nkernel: /k\ndisks: [{path: /d, size: 1G}]\n", "unknown field 'size' in a disk"),
        ("name: a\nkernel: /k\nnics: [{tap: t0, bridge: br0}]\n", "unknown field 'bridge' in a nic"),
        ("name: a\nkernel: /k\ncloudInit: {userdata: x}\n", "unknown field 'userdata' in cloudInit"),
        ("{\"name\": \"a\", \"kernel\": \"/k\", \"extra\": 1}", "unknown field 'extra'"),
    ])
    func unknownFieldsAreRefused(document: String, message: String) {
        #expect(throws: SpecError.self) { try SpecLoader.parse(document) }
        do {
            _ = try SpecLoader.parse(document)
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test(arguments: [
        ("kernel: /k\n", "missing field 'name'"),
        ("name: a\n", "missing field 'kernel'"),
        ("name: Web\nkernel: /k\n", "name 'Web' must be"),
        ("name: a\nkernel: /k\ncpus: 0\n", "cpus must be between 1 and 254"),
        ("name: a\nkernel: /k\ncpus: two\n", "cpus: expected an integer"),
        ("name: a\nkernel: /k\nmemory: lots\n", "memory 'lots' is not a size"),
        ("name: a\nkernel: /k\nmemory: 2000G\n", "memory must be between 1M and 1024G"),
        ("name: a\nkernel: /k\nmemory: 1025K\n", "multiple of 4K"),
        ("name: a\nkernel: ''\n", "kernel must not be empty"),
        ("name: a\nkernel: /k\ndisks: [{format: raw}]\n", "disks[0] needs a path or a clone"),
        ("name: a\nkernel: /k\ndisks: [{path: /a, clone: base}]\n", "both a path and a clone"),
        ("name: a\nkernel: /k\nnics: [{tap: 'tap with spaces'}]\n", "nics[0].tap"),
        ("name: a\nkernel: /k\nnics: [{tap: t, mac: '02:00'}]\n", "not a MAC address"),
        ("name: a\nkernel: /k\nnics: [{tap: t}, {tap: t}]\n", "same tap"),
        ("name: a\nkernel: /k\nrestart: sometimes\n", "restart"),
        ("name: a\nkernel: /k\nqos: {class: urgent}\n", "qos.class"),
        ("name: a\nkernel: /k\nqos: {cpuLimit: 0}\n", "qos.cpuLimit"),
        ("name: a\nkernel: /k\nqos: {memoryLimit: 1M}\n", "qos.memoryLimit"),
        ("name: a\nkernel: /k\nvsock: {cid: 2}\n", "vsock.cid"),
        ("name: [a\n", "not valid YAML"),
    ])
    func badValuesGetOneClearLine(document: String, message: String) {
        do {
            let spec = try SpecLoader.parse(document)
            Issue.record("accepted: \(spec)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
    }

    @Test func oversizedDocumentsAreRefused() {
        let big = "name: a\nkernel: /k\ncmdline: " + String(repeating: "x", count: SpecLoader.maxDocumentLength) + "\n"
        #expect(throws: SpecError.self) { try SpecLoader.parse(big) }
    }

    @Test func cloudInitFilesAreBounded() throws {
        var spec = VMSpec(name: "a", kernel: "/k")
        spec.cloudInit = CloudInitSpec(userData: String(repeating: "x", count: CloudInitSpec.maxFileLength + 1))
        #expect(throws: SpecError.self) { try spec.validate() }
        spec.cloudInit = CloudInitSpec(userData: "#cloud-config\n")
        try spec.validate()
    }

    @Test(arguments: [("256M", UInt64(256 << 20)), ("1G", UInt64(1 << 30)), ("65536K", UInt64(64 << 20)), ("512", UInt64(512 << 20)), ("1.5G", UInt64(3 << 29)), ("256MiB", UInt64(256 << 20))])
    func sizes(text: String, bytes: UInt64) {
        #expect(SpecSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "M", "-1M", "1.1K", "99999999999999G", "１M", "256 MB x"])
    func badSizes(text: String) {
        #expect(SpecSize.parse(text) == nil)
    }

    @Test func qosWeightsAreFourTwoOne() {
        #expect(QoSClass.high.weightUnits == 4 * QoSClass.low.weightUnits)
        #expect(QoSClass.normal.weightUnits == 2 * QoSClass.low.weightUnits)
    }
}
