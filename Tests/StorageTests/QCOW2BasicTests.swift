import Foundation
import Testing
@testable import Storage

@Suite struct QCOW2BasicTests {
    @Test(arguments: [512, 4096, 65536, 2 << 20])
    func writeThenReadBack(clusterSize: Int) throws {
        let dir = TempDir()
        let path = dir.file("a.qcow2")
        var options = QCOW2CreateOptions(size: 16 << 20)
        options.clusterSize = UInt64(clusterSize)
        try QCOW2Image.create(path: path, options: options)
        var random = TestRandom(seed: UInt64(clusterSize))
        var model = [UInt8](repeating: 0, count: 16 << 20)
        do {
            let image = try DiskImage.open(path: path, format: .qcow2, readOnly: false)
            for _ in 0..<200 {
                let length = Int(random.below(20000)) + 1
                let offset = Int(random.below(UInt64(model.count - length)))
                let data = random.bytes(length)
                try image.writeBytes(data, at: UInt64(offset))
                model.replaceSubrange(offset..<(offset + length), with: data)
            }
            try image.flush()
            let back = try image.readBytes(at: 0, count: model.count)
            #expect(back == model)
            try image.close()
        }
        let image = try DiskImage.openQCOW2(path: path, readOnly: true)
        #expect(try image.readBytes(at: 0, count: model.count) == model)
        let own = try image.check(repairing: false)
        #expect(own.exitCode == 0, "\(own.messages)")
        // qemu-img's verdict too: required in CI, reported when missing elsewhere.
        try QEMU.expectCleanCheck(path)
    }
}
