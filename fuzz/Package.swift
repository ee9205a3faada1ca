// swift-tools-version: 6.0
// libFuzzer build of Skiff's fuzz harnesses, kept out of the main package so that `swift build`
// and `swift test` there never compile with sanitizers. Build and run with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "SkiffFuzz",
    dependencies: [
        .package(name: "Skiff", path: ".."),
    ],
    targets: [
        // Declares LLVMFuzzerRunDriver.
        .target(name: "CFuzzerDriver"),
        // One binary for every target (SKIFF_FUZZ_TARGET picks the harness): one link instead of one per target.
        .executableTarget(
            name: "skiff-fuzz",
            dependencies: ["CFuzzerDriver", .product(name: "SkiffFuzzHarnesses", package: "Skiff")]),
    ]
)
