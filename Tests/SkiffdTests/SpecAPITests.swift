import Foundation
import SkiffAPI
import SkiffSpec
import Testing

/// The spec crosses between the generated API type and `VMSpec` as JSON: every field must
/// survive both ways (a renamed field on either side fails here).
struct SpecAPITests {
    static let full = """
        name: full
        cpus: 2
        memory: 512M
        cpuTemplate: host
        kernel: /k
        initrd: /i
        cmdline: console=ttyS0
        disks: [{path: /d.img, format: raw, readonly: true, serial: s1, bandwidth: 1048576, iops: 100, burst: 4096}, {clone: base, format: qcow2}]
        nics: [{tap: tap0, mac: "02:00:00:00:00:01", rxBandwidth: 1, txBandwidth: 2, rxPps: 3, txPps: 4}]
        vsock: {cid: 42}
        balloon: {enabled: true, freePageReporting: false, deflateOnOOM: true, auto: false}
        qos: {class: low, cpuLimit: 0.5, memoryLimit: 1G, cpuset: "0-1"}
        restart: on-failure
        ksm: false
        cloudInit: {userData: "#cloud-config\\n", metaData: "instance-id: x\\n", networkConfig: "version: 2\\n"}
        """

    @Test func everyFieldSurvivesTheRoundTrip() throws {
        let spec = try SpecLoader.parse(Self.full)
        let data = try JSONEncoder().encode(spec)
        let api = try JSONDecoder().decode(Components.Schemas.VMSpec.self, from: data)
        #expect(api.qos?._class == .low)
        #expect(api.disks?.first?.bandwidth == 1048576)
        #expect(api.balloon?.auto == false)
        let back = try JSONDecoder().decode(VMSpec.self, from: try JSONEncoder().encode(api))
        #expect(back == spec)
    }

    @Test func theGeneratedTypeRefusesUnknownFields() {
        let json = Data("{\"name\":\"a\",\"kernel\":\"/k\",\"bogus\":1}".utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Components.Schemas.VMSpec.self, from: json) }
    }
}
