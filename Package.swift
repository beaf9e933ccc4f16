// swift-tools-version: 6.0
// Petrel: an XDP layer-4 load balancer. BPF data plane in bpf/, Swift control plane in Sources/.
import PackageDescription

let package = Package(
    name: "Petrel",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Petrel", targets: ["Petrel"]),
        // The config file format, for services that want to read petreld's files.
        .library(name: "PetrelConfig", targets: ["PetrelConfig"]),
        .executable(name: "petrel", targets: ["petrel"]),
        .executable(name: "petreld", targets: ["petreld"]),
        .executable(name: "petrel-bench", targets: ["PetrelBench"]),
        .executable(name: "petrel-fuzz", targets: ["petrel-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // MARK: C edges
        // Missing libbpf or libxdp: SwiftPM names the Debian packages to install.
        .systemLibrary(name: "CLibBPF", path: "Sources/CLibBPF", pkgConfig: "libxdp",
                       providers: [.apt(["libbpf-dev", "libxdp-dev"])]),
        .systemLibrary(name: "CPetrelABI", path: "Sources/CPetrelABI"),
        // The kernel's rtnetlink headers (constants and layouts only).
        .systemLibrary(name: "CNetlink", path: "Sources/CNetlink"),
        .target(name: "CBPFSupport", dependencies: ["CLibBPF"]),

        // MARK: Building the BPF programs during `swift build`
        .executableTarget(name: "petrel-embed-bpf", path: "Sources/BPFEmbedTool"),
        .plugin(
            name: "BPFCompilerPlugin",
            capability: .buildTool(),
            dependencies: ["petrel-embed-bpf"],
            path: "Sources/BPFCompilerPlugin"
        ),
        .target(name: "PetrelObjects", plugins: ["BPFCompilerPlugin"]),
        // The benchmark's own programs (bench/bpf), kept out of the shipped library.
        .target(name: "PetrelBenchObjects", dependencies: ["PetrelObjects"], path: "bench/Sources/PetrelBenchObjects",
                plugins: ["BPFCompilerPlugin"]),
        // Small programs that exercise the BPF access layer in the kernel (Tests/bpf), for the tests only.
        .target(name: "PetrelTestObjects", dependencies: ["PetrelObjects"], path: "Tests/Support/PetrelTestObjects",
                plugins: ["BPFCompilerPlugin"]),

        // MARK: The product
        // The BPF access layer: the only code that touches libbpf, raw fds and errno.
        .target(name: "PetrelBPF", dependencies: ["CLibBPF", "CBPFSupport"]),
        // The load balancer: model, Maglev, data-plane driver, stats, explain.
        .target(name: "Petrel", dependencies: ["PetrelBPF", "PetrelObjects", "CPetrelABI"]),
        // Health checks: what to check, the probes, each real's up/down state.
        .target(name: "PetrelHealth", dependencies: ["Petrel"]),
        // The config file: parsing and validation.
        .target(name: "PetrelConfig", dependencies: ["Petrel", "PetrelHealth", "Yams"]),

        // The next hop's MAC from the kernel's neighbour table, over rtnetlink.
        .target(name: "PetrelNetlink", dependencies: ["Petrel", "CNetlink"]),

        // The packet fuzzer: random and mutated packets against a model of the program.
        .target(name: "PetrelFuzz", dependencies: ["Petrel", "PetrelTestSupport"]),

        // Test code kept out of the product: packet builders, seeded randomness, the YAML
        // renderer. For the tests, the fuzzer and the benchmark only.
        .target(name: "PetrelTestSupport", dependencies: ["Petrel", "PetrelConfig", "PetrelHealth"]),

        // MARK: Front ends
        // The admin API's JSON documents and the request/response values, shared by petreld and petrel;
        // the CLI's small HTTP/1.1 client for the unix socket.
        .target(name: "PetrelAdmin", dependencies: ["Petrel"]),
        .executableTarget(
            name: "petreld",
            dependencies: [
                "Petrel", "PetrelConfig", "PetrelAdmin", "PetrelNetlink", "PetrelHealth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // The admin API and metrics are served by SwiftNIO's HTTP/1.1 server.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "petrel",
            dependencies: [
                "Petrel", "PetrelConfig", "PetrelAdmin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "petrel-fuzz",
            dependencies: ["PetrelFuzz", "Petrel", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "PetrelBench",
            dependencies: ["Petrel", "PetrelTestSupport", "PetrelBPF", "PetrelBenchObjects", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "bench/Sources/PetrelBench"
        ),

        // MARK: Tests
        .testTarget(name: "PetrelTests", dependencies: ["Petrel", "PetrelTestSupport", "CPetrelABI"]),
        // Health checks: the rise/fall state, probes against loopback sockets, the monitor's bounds.
        .testTarget(name: "PetrelHealthTests", dependencies: ["PetrelHealth", "Petrel"]),
        .testTarget(name: "PetrelKernelTests", dependencies: ["Petrel", "PetrelTestSupport", "PetrelBPF", "PetrelObjects", "PetrelTestObjects", "PetrelFuzz", "petrel-fuzz", "CPetrelABI"]),
        // Resolves gateways in network namespaces of its own (root).
        .testTarget(name: "PetrelNetlinkTests", dependencies: ["PetrelNetlink", "Petrel"]),
        // Runs the built petreld and petrel in a network namespace of its own (root).
        .testTarget(name: "DaemonTests", dependencies: ["PetrelAdmin", "Petrel", "PetrelConfig", "petreld", "petrel",
                                                      .product(name: "NIOCore", package: "swift-nio"),
                                                      .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "PetrelConfigTests", dependencies: ["PetrelConfig", "PetrelTestSupport", "Petrel", "PetrelHealth", "CPetrelABI"]),
        // The same bad VIPs through the config file, the admin API's body reader and the library.
        .testTarget(name: "ValidationTests", dependencies: ["Petrel", "PetrelConfig", "PetrelAdmin", "PetrelTestSupport"]),
        // Runs petrel-bench --quick and checks its JSON (never its speed).
        .testTarget(name: "BenchTests", dependencies: ["PetrelBench"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Petrel", "PetrelBPF", "PetrelAdmin", "PetrelTestSupport", "petreld", "petrel"]),
    ],
    swiftLanguageModes: [.v6]
)
