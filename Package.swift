// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = []
/// Targets that build with strict memory safety (SE-0458): every unsafe construct is marked
/// `unsafe` (or its type `@unsafe` or `@safe`), and an unmarked one fails the build.
let memorySafe: [SwiftSetting] = strict + [.strictMemorySafety(), .treatWarning("StrictMemorySafety", as: .error)]

let package = Package(
    name: "Skiff",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "skiff", targets: ["skiff"]),
        .executable(name: "skiff-vmm", targets: ["skiff-vmm"]),
        .executable(name: "skiff-jailer", targets: ["skiff-jailer"]),
        .executable(name: "skiffd", targets: ["skiffd"]),
        // The fuzz harnesses, for the fuzzing package in fuzz/ (built with -sanitize=fuzzer there).
        .library(name: "SkiffFuzzHarnesses", targets: ["FuzzHarnesses"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // skiffd and its client.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The only place that includes <linux/kvm.h>: ioctl numbers and kvm_run accessors.
        .target(name: "CKVM"),
        // Linux headers and calls the Glibc module does not export (epoll, eventfd, memfd, signals).
        .target(name: "CSkiffSystem", dependencies: ["CMutexSanitizerModel"]),
        // ThreadSanitizer builds only: tells TSan where Synchronization.Mutex's slow paths lock
        // and unlock. Linked into every executable (through CSkiffSystem, or directly).
        .target(name: "CMutexSanitizerModel"),
        // Owned file descriptors, eventfd, epoll, mmap, terminal modes.
        .target(name: "SystemExtras", dependencies: ["CSkiffSystem"], swiftSettings: memorySafe),
        // /dev/kvm, VM and vCPU file descriptors, exits.
        .target(name: "KVM", dependencies: ["CKVM", "CSkiffSystem", "SystemExtras"], swiftSettings: memorySafe),
        // libseccomp from the system (Debian: libseccomp-dev), which compiles the per-thread filters.
        .systemLibrary(name: "CSeccomp", path: "Sources/CSeccomp"),
        // The monitor's seccomp policy: an allow-list per thread role, compiled once, installed by each thread.
        .target(name: "Seccomp", dependencies: ["CSeccomp", "CSkiffSystem", "CKVM", "SystemExtras"], swiftSettings: memorySafe),
        // Guest physical memory: regions and bounds-checked access.
        .target(name: "GuestMemory", dependencies: ["SystemExtras", "CSkiffSystem"], swiftSettings: memorySafe),
        // x86 platform: memory map, GDT, page tables, CPUID, MSRs, MP and ACPI tables.
        .target(name: "ArchX86", swiftSettings: memorySafe),
        // Kernel loaders: bzImage, PVH ELF, multiboot; zero page and start info.
        .target(name: "Loader", dependencies: ["ArchX86"], swiftSettings: memorySafe),
        // I/O-port and MMIO buses and the device protocol.
        .target(name: "DeviceModel", swiftSettings: memorySafe),
        // 16550 UART, i8042, CMOS RTC, fw_cfg, debug-exit, port 0x80.
        .target(name: "LegacyDevices", dependencies: ["DeviceModel"], swiftSettings: memorySafe),
        // PCI: configuration space, host bridge, config mechanism #1 and ECAM, BARs, MSI-X.
        .target(name: "PCI", dependencies: ["DeviceModel"], swiftSettings: memorySafe),
        // virtio: split virtqueues and descriptor chains (transport- and device-independent).
        .target(name: "Virtio", dependencies: ["GuestMemory", "PCI", "DeviceModel", "SystemExtras"], swiftSettings: memorySafe),
        // TAP ioctls and timerfd for the virtio device backends.
        .target(name: "CVirtioHost"),
        // virtio-net over a TAP (or any frame descriptor with the virtio-net header).
        .target(name: "VirtioNet", dependencies: ["Virtio", "CVirtioHost", "GuestMemory", "SystemExtras", "CSkiffSystem"], swiftSettings: memorySafe),
        // virtio-vsock relayed to host AF_UNIX sockets (Firecracker's hybrid scheme).
        .target(name: "VirtioVsock", dependencies: ["Virtio", "CVirtioHost", "GuestMemory", "SystemExtras", "CSkiffSystem"], swiftSettings: memorySafe),
        // virtio-blk over Storage's block devices (kept out of `Virtio` so that stays light).
        .target(name: "VirtioBlock", dependencies: ["Virtio", "Storage", "GuestMemory", "SystemExtras"], swiftSettings: memorySafe),
        // Versioned binary encoding (a tagged Codable coder) and CRC-64 for state files,
        // migration streams and control messages; no Foundation.
        .target(name: "BinaryCoding", swiftSettings: memorySafe),
        // The monitor's control API: typed requests and replies, framing, a blocking client.
        .target(name: "ControlProtocol", dependencies: ["BinaryCoding"], swiftSettings: memorySafe),
        // Snapshot files: the sectioned, checksummed state file, the sparse memory image,
        // atomic snapshot directories.
        .target(name: "Snapshot", dependencies: ["BinaryCoding"], swiftSettings: memorySafe),
        // The live-migration stream: frames, messages, page batches, connections and listeners.
        .target(name: "Migration", dependencies: ["BinaryCoding", "ControlProtocol", "SystemExtras"], swiftSettings: memorySafe),
        // Composes one VM: memory, vCPUs, devices, boot.
        .target(
            name: "VMM",
            dependencies: ["CKVM", "CSkiffSystem", "KVM", "GuestMemory", "ArchX86", "Loader", "DeviceModel", "LegacyDevices", "PCI", "Virtio",
                           "VirtioBlock", "Storage", "VirtioNet", "VirtioVsock", "X86Emulator", "SystemExtras", "BinaryCoding",
                           "ControlProtocol", "Snapshot", "Migration", "Seccomp", .product(name: "Logging", package: "swift-log")],
            swiftSettings: memorySafe),
        // Disk images: raw, qcow2, clones, de-duplicating store.
        .target(
            name: "Storage",
            dependencies: ["CStorage"],
            swiftSettings: memorySafe),
        // The de-duplicating, content-addressed image store (FastCDC chunks, SHA-256): only the
        // image commands use it, so VMs do not link swift-crypto.
        .target(
            name: "ImageStore",
            dependencies: ["Storage", "CStorage", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: memorySafe),
        // System zlib (raw deflate for compressed qcow2 clusters and store chunks) and fallocate.
        .systemLibrary(name: "CStorage", path: "Sources/CStorage"),
        // `skiff image ...` verbs (library so they can be tested).
        .target(
            name: "ImageCommands",
            dependencies: ["Storage", "ImageStore", "Units", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        // Storage test and benchmark tool: crash-test writer, qemu-img-style bench, chunking bench, `image` verbs.
        .executableTarget(
            name: "skiff-storage-stress",
            dependencies: ["Storage", "ImageStore", "ImageCommands", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: memorySafe),
        // Host-side virtio-blk benchmark: request rate and notify → completion round trip with a mock driver.
        .executableTarget(
            name: "skiff-virtio-bench",
            dependencies: ["VirtioBlock", "Virtio", "Storage", "GuestMemory", "PCI", "SystemExtras"],
            swiftSettings: memorySafe),
        // `skiff run` / `skiff-vmm`: VM options and the interactive launcher (no Foundation).
        .target(
            name: "VMCommands",
            dependencies: ["VMM", "ArchX86", "Loader", "Storage", "VirtioNet", "ControlProtocol", "CSkiffSystem", "Units", "Seccomp", "OptionFields", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        // Sizes as people type them (256M, 2G).
        .target(name: "Units", swiftSettings: memorySafe),
        // `skiff vm|snapshot|migrate|fork`: clients of running monitors' control sockets.
        .target(
            name: "ClientCommands",
            dependencies: ["ControlProtocol", "Units", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        // The `skiff` command tree (library so it can be tested).
        .target(
            name: "SkiffCLI",
            dependencies: ["VMCommands", "ImageCommands", "ClientCommands", "DaemonCommands", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        // Emulation assist: decoder, page-table walker and emulator for instructions KVM cannot emulate.
        .target(name: "X86Emulator", swiftSettings: memorySafe),
        // Test oracles: popcnt/lzcnt/tzcnt and SSE operations executed natively on the host CPU.
        .target(name: "CX86Host"),
        // Fuzz harnesses: decode a fuzzer's bytes into hostile guest or file input for each parser
        // and check properties. fuzz/ links them with libFuzzer; FuzzHarnessTests replays the corpora.
        .target(
            name: "FuzzHarnesses",
            dependencies: ["CSkiffSystem", "GuestMemory", "SystemExtras", "DeviceModel", "PCI", "Virtio", "VirtioBlock", "VirtioNet", "VirtioVsock", "Storage",
                           "ArchX86", "Loader", "X86Emulator", "BinaryCoding", "Snapshot", "Migration", "ControlProtocol", "VMM"],
            swiftSettings: memorySafe),
        .testTarget(name: "FuzzHarnessTests", dependencies: ["FuzzHarnesses"]),
        .testTarget(name: "X86EmulatorTests", dependencies: ["X86Emulator", "CX86Host"], exclude: ["Fixtures/generate-fixtures.py"]),
        .executableTarget(name: "skiff", dependencies: ["SkiffCLI", "VMCommands"], swiftSettings: memorySafe),

        // MARK: skiffd, the host daemon, and its client
        // The REST API: code generated from openapi.yaml (types, server stubs, client), committed;
        // scripts/check-api.sh regenerates it and fails on a difference.
        .target(
            name: "SkiffAPI",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            exclude: ["openapi.yaml", "openapi-generator-config.yaml"],
            swiftSettings: memorySafe),
        // VM specs (YAML or JSON; unknown fields refused) and their validation.
        .target(name: "SkiffSpec", dependencies: ["Units", .product(name: "Yams", package: "Yams")], swiftSettings: memorySafe),
        // The daemon's SQLite database (GRDB, WAL, versioned migrations): VMs, images, tasks, events.
        .target(name: "SkiffStore", dependencies: ["SkiffSpec", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: memorySafe),
        // spawn into a session and cgroups, pidfds, waitid: what Glibc does not export.
        .target(name: "CHostProcess"),
        // Monitor processes: spawning, identity (pid + start time), exit watching with pidfds.
        .target(name: "HostProcess", dependencies: ["CHostProcess", "CVirtioHost"], swiftSettings: memorySafe),
        // Host resources: cgroups v1 and v2 (QoS), KSM, memory pressure (PSI), /proc readings.
        .target(name: "HostResources", swiftSettings: memorySafe),
        // The cloud-init NoCloud seed: a small FAT image labelled "cidata".
        .target(name: "CloudInit", swiftSettings: memorySafe),
        // skiffd: supervision, the API handlers, tasks, events, QoS, overbooking, metrics.
        .target(
            name: "SkiffDaemon",
            dependencies: ["SkiffAPI", "SkiffSpec", "SkiffStore", "HostProcess", "HostResources", "CloudInit", "ControlProtocol", "Storage",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTLS", package: "hummingbird"),
                           .product(name: "HummingbirdCore", package: "hummingbird"),
                           .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                           .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                           .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: memorySafe),
        .executableTarget(
            name: "skiffd",
            dependencies: ["SkiffDaemon", "CMutexSanitizerModel", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        // The daemon's client: the generated client over the unix socket (or TCP), the console WebSocket.
        .target(
            name: "DaemonClient",
            dependencies: ["SkiffAPI", "SkiffSpec",
                           .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                           .product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: memorySafe),
        // `skiff create|start|stop|list|...`: the daemon verbs of the CLI.
        .target(
            name: "DaemonCommands",
            dependencies: ["DaemonClient", "SkiffAPI", "SkiffSpec", "SystemExtras",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: memorySafe),
        .testTarget(name: "SkiffSpecTests", dependencies: ["SkiffSpec"]),
        .testTarget(name: "SkiffStoreTests", dependencies: ["SkiffStore", "SkiffSpec"]),
        .testTarget(name: "HostResourcesTests", dependencies: ["HostResources", "HostProcess", "CloudInit"]),
        .testTarget(name: "SkiffdTests", dependencies: ["DaemonClient", "SkiffAPI", "SkiffSpec", "HostProcess", "HostResources", "ControlProtocol", "WorkloadCheck"]),
        // Test support: the guest kit's workload output as the migration tests judge it.
        .target(name: "WorkloadCheck", path: "Tests/WorkloadCheck"),
        .executableTarget(name: "skiff-vmm", dependencies: ["VMCommands", "VMM"], swiftSettings: memorySafe),
        // Namespaces, pivot_root, mounts, device nodes, capabilities, prctl: what the jailer calls.
        .target(name: "CSkiffJail"),
        // The jailer: one VM's jail (root directory, namespaces, cgroups, privileges), then exec of the monitor.
        // `--disk`-style field splitting, shared by the monitor's options and the jailer.
        .target(name: "OptionFields", swiftSettings: memorySafe),
        .target(name: "Jailer", dependencies: ["CSkiffJail", "OptionFields"], swiftSettings: memorySafe),
        .executableTarget(name: "skiff-jailer", dependencies: ["Jailer"], swiftSettings: memorySafe),

        .testTarget(name: "ArchX86Tests", dependencies: ["ArchX86"]),
        .testTarget(name: "BinaryCodingTests", dependencies: ["BinaryCoding"]),
        .testTarget(name: "LoaderTests", dependencies: ["Loader", "ArchX86"]),
        .testTarget(name: "GuestMemoryTests", dependencies: ["GuestMemory"]),
        .testTarget(name: "DeviceTests", dependencies: ["DeviceModel", "LegacyDevices"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "ImageStore"]),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "VirtioBlock", "Storage", "GuestMemory", "PCI", "SystemExtras"]),
        .testTarget(name: "VirtioNetworkTests", dependencies: ["VirtioNet", "VirtioVsock", "Virtio", "GuestMemory", "SystemExtras", "CSkiffSystem"]),
        .testTarget(name: "PCITests", dependencies: ["PCI", "DeviceModel"]),
        .testTarget(name: "ImageCommandsTests", dependencies: ["ImageCommands", "Storage", "ImageStore"]),
        .testTarget(name: "UnitsTests", dependencies: ["Units"]),
        .testTarget(name: "JailerTests", dependencies: ["Jailer"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "ArchX86", "KVM", "CSkiffSystem", "VMCommands", "SkiffCLI", "Storage", "ControlProtocol", "Snapshot", "Migration", "BinaryCoding", "Seccomp", "SystemExtras", "X86Emulator", "WorkloadCheck", .product(name: "Logging", package: "swift-log")]),
    ]
)
