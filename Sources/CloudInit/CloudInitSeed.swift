import Foundation

/// A cloud-init NoCloud seed disk: a FAT image labelled CIDATA holding `user-data`,
/// `meta-data` and (when given) `network-config`. Built with mkfs.vfat and mcopy (Debian's
/// dosfstools and mtools) into a temporary file that is renamed into place, so a failure
/// leaves nothing half-written.
public enum CloudInitSeed {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Image size: 1 MiB holds the three files (each at most 64 KiB) with room to spare.
    public static let imageKiB = 1024

    /// Writes the seed to `path`. A missing `metaData` gets `instance-id` and
    /// `local-hostname` from `instanceID` (cloud-init needs an instance id).
    public static func build(at path: String, instanceID: String, userData: String?, metaData: String?,
                             networkConfig: String?) throws(Failure) {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = "\(dir)/.\((path as NSString).lastPathComponent).partial-\(getpid())"
        let staging = "\(dir)/.cidata-files-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer {
            try? FileManager.default.removeItem(atPath: staging)
            try? FileManager.default.removeItem(atPath: tmp)
        }
        do {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
            var files: [(String, String)] = [
                ("user-data", userData ?? "#cloud-config\n"),
                ("meta-data", metaData ?? "instance-id: \(instanceID)\nlocal-hostname: \(instanceID)\n"),
            ]
            if let networkConfig { files.append(("network-config", networkConfig)) }
            for (name, text) in files {
                try Data(text.utf8).write(to: URL(fileURLWithPath: "\(staging)/\(name)"))
            }
            try? FileManager.default.removeItem(atPath: tmp)
            try run("mkfs.vfat", ["-n", "CIDATA", "-C", tmp, String(imageKiB)])
            try run("mcopy", ["-o", "-i", tmp] + files.map { "\(staging)/\($0.0)" } + ["::/"])
            let fd = unsafe open(tmp, O_RDONLY)
            if fd >= 0 {
                fsync(fd)
                close(fd)
            }
            guard unsafe rename(tmp, path) == 0 else {
                throw Failure(message: unsafe "cannot rename the seed image into \(path): \(String(cString: strerror(errno)))")
            }
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(message: "cannot build the cloud-init seed: \(error.localizedDescription)")
        }
    }

    static func run(_ tool: String, _ arguments: [String]) throws(Failure) {
        let candidates = ["/usr/sbin/\(tool)", "/sbin/\(tool)", "/usr/bin/\(tool)", "/bin/\(tool)"]
        guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(message: "\(tool) is not installed (Debian packages dosfstools and mtools; scripts/setup.sh installs them)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["MTOOLS_SKIP_CHECK"] = "1"
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(message: "cannot run \(tool): \(error.localizedDescription)")
        }
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: data.prefix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(message: "\(tool) failed (status \(process.terminationStatus)): \(text)")
        }
    }
}
