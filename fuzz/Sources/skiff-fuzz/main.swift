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
