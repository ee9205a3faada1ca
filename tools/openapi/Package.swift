// swift-tools-version: 6.0
// Builds swift-openapi-generator on its own, so the main package never compiles the generator:
// scripts/generate-api.sh regenerates Sources/SkiffAPI from docs/openapi.yaml with it, and
// scripts/check-api.sh (run by scripts/test.sh) fails when the committed code differs.
import PackageDescription

let package = Package(
    name: "skiff-openapi-tool",
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
    ],
    targets: []
)
