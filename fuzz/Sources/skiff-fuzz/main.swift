import CFuzzerDriver
import FuzzHarnesses
#if canImport(Glibc)
import Glibc
#endif

// libFuzzer entry for every Skiff fuzz target: SKIFF_FUZZ_TARGET names the harness, the
// arguments are libFuzzer's (corpus directories, -max_total_time=..., ...). SwiftPM gives an
// executable target its own main, so this main hands over to libFuzzer's driver.

/// Writes a line to standard error.
func printError(_ line: String) {
    let text = Array((line + "\n").utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// The harness `SKIFF_FUZZ_TARGET` names.
nonisolated(unsafe) var selectedTarget = FuzzTarget.splitQueue

let name = getenv("SKIFF_FUZZ_TARGET").map { String(cString: $0) } ?? ""
guard let target = FuzzTarget(rawValue: name) else {
    printError("skiff-fuzz: set SKIFF_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))")
    exit(2)
}
selectedTarget = target

// SKIFF_FUZZ_SEEDS=DIR: write the seeds this target builds from values into DIR and exit
// (the migration stream's come from the snapshot state files in SKIFF_FUZZ_STATES).
if let directory = getenv("SKIFF_FUZZ_SEEDS").map({ String(cString: $0) }) {
    var seeds: [(name: String, bytes: [UInt8])] = []
    switch target {
    case .controlRequest:
        seeds = FuzzSeeds.controlRequests()
    case .migrationStream:
        let states = getenv("SKIFF_FUZZ_STATES").map { String(cString: $0) } ?? "fuzz/corpus/snapshot-state"
        var inputs: [(name: String, bytes: [UInt8])] = []
        if let dir = opendir(states) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard !name.hasPrefix("."), let file = fopen(states + "/" + name, "rb") else { continue }
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = fread(&chunk, 1, chunk.count, file)
                    if n <= 0 { break }
                    bytes += chunk[0..<n]
                }
                fclose(file)
                inputs.append((name, bytes))
            }
            closedir(dir)
        }
        seeds = FuzzSeeds.migrationStreams(fromStates: inputs.sorted { $0.name < $1.name })
    default:
        printError("skiff-fuzz: \(target.rawValue) has no built seeds")
        exit(2)
    }
    for seed in seeds {
        guard let file = fopen(directory + "/" + seed.name, "wb") else {
            printError("skiff-fuzz: cannot write \(directory)/\(seed.name)")
            exit(1)
        }
        _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    printError("skiff-fuzz: wrote \(seeds.count) seeds to \(directory)")
    exit(0)
}

// The vsock and qcow2 harnesses keep sockets and images in temporary directories.
atexit { FuzzTarget.removeTemporaryFiles() }

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try selectedTarget.run(bytes)
    } catch {
        // A property the harness checks failed: a crash, so libFuzzer keeps the input.
        printError("skiff-fuzz: \(selectedTarget.rawValue): invariant violated: \(error)")
        abort()
    }
    return 0
})
