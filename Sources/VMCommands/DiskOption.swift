import OptionFields
import ArgumentParser
import ControlProtocol
import Storage
import VMM

/// `--disk PATH[,readonly][,format=raw|qcow2][,serial=ID][,bw=SIZE][,iops=N][,bw-burst=SIZE][,iops-burst=N]`:
/// one virtio-blk disk.
///
/// The format is raw unless `format=` names another: an image is never probed, so a guest
/// that writes a qcow2 header into a raw disk cannot change how it is opened next time.
/// A comma inside the path is written twice (`a,,b` is the file `a,b`). `bw=` (bytes a
/// second, K/M/G suffixes) and `iops=` limit the disk; the bursts are spent once, first.
enum DiskOption {
    static let usage = "PATH[,readonly][,format=raw|qcow2][,serial=ID][,bw=SIZE][,iops=N][,bw-burst=SIZE][,iops-burst=N]"
    static let serialLimit = 20

    /// The device and its rate limits (nil when none was given).
    struct Parsed {
        var spec: VirtioDeviceSpec
        var limits: RateLimits?
    }

    static func parse(_ text: String) throws(ValidationError) -> Parsed {
        var rates = RateOptions(option: "--disk", text: text)
        let fields = OptionFields.split(text)
        guard let path = fields.first, !path.isEmpty else {
            throw ValidationError("--disk '\(text)': missing image path (expected \(usage))")
        }
        var format: DiskFormat?
        var readOnly: Bool?
        var serial: String?
        for field in fields.dropFirst() {
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : nil
            switch (key, value) {
            case ("readonly", nil), ("readonly", "on"):
                guard readOnly == nil else { throw duplicate(text, "readonly") }
                readOnly = true
            case ("readonly", "off"):
                guard readOnly == nil else { throw duplicate(text, "readonly") }
                readOnly = false
            case ("format", let v?):
                guard format == nil else { throw duplicate(text, "format") }
                guard let f = DiskFormat(rawValue: v) else {
                    throw ValidationError("--disk '\(text)': unknown format '\(v)' (expected raw or qcow2)")
                }
                format = f
            case (let k, let v?) where RateOptions.diskKeys.contains(k):
                try rates.set(k, v)
            case ("serial", let v?):
                guard serial == nil else { throw duplicate(text, "serial") }
                guard !v.isEmpty, v.utf8.count <= serialLimit, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                    throw ValidationError("--disk '\(text)': serial must be 1 to \(serialLimit) printable ASCII characters without spaces")
                }
                serial = v
            default:
                throw ValidationError("--disk '\(text)': unknown option '\(field)' (expected \(usage))")
            }
        }
        return Parsed(spec: .block(path: path, format: format ?? .raw, readOnly: readOnly ?? false, serial: serial),
                      limits: try rates.limits(bandwidth: "bw", operations: "iops", bandwidthBurst: "bw-burst", operationsBurst: "iops-burst"))
    }

    private static func duplicate(_ text: String, _ key: String) -> ValidationError {
        ValidationError("--disk '\(text)': '\(key)' given twice")
    }
}
