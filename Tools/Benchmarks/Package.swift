// swift-tools-version: 6.1
//
// Chorus micro-benchmarks (package-benchmark). A nested package, so the library never depends
// on the benchmark harness. Run from this folder:
//     swift package benchmark
import PackageDescription

let package = Package(
    name: "ChorusBenchmarks",
    dependencies: [
        .package(name: "swift-chorus", path: "../.."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The yardstick loops, built for this CPU.
        .target(name: "CBaselineLoops", path: "Sources/CBaselineLoops",
                cSettings: [.unsafeFlags(["-O3", "-march=native"])]),
        .target(
            name: "RuntimeBenchSupport",
            dependencies: [.product(name: "ChorusTransport", package: "swift-chorus")],
            path: "Sources/RuntimeBenchSupport"
        ),
        .executableTarget(
            name: "RuntimeLatency",
            dependencies: [
                "CBaselineLoops",
                "RuntimeBenchSupport",
                .product(name: "Chorus", package: "swift-chorus"),
                .product(name: "ChorusTransport", package: "swift-chorus"),
            ],
            path: "Sources/RuntimeLatency"
        ),
        .executableTarget(
            name: "RuntimeBenchmarks",
            dependencies: [
                "CBaselineLoops",
                "RuntimeBenchSupport",
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Chorus", package: "swift-chorus"),
                .product(name: "ChorusExec", package: "swift-chorus"),
                .product(name: "ChorusTransport", package: "swift-chorus"),
            ],
            path: "Benchmarks/RuntimeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "TopologyBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "ChorusTopology", package: "swift-chorus"),
            ],
            path: "Benchmarks/TopologyBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "ScheduleBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "ChorusSchedule", package: "swift-chorus"),
                .product(name: "ChorusAlgorithms", package: "swift-chorus"),
                .product(name: "ChorusSelect", package: "swift-chorus"),
                .product(name: "ChorusTopology", package: "swift-chorus"),
            ],
            path: "Benchmarks/ScheduleBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "SimulatorBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "ChorusAlgorithms", package: "swift-chorus"),
                .product(name: "ChorusSchedule", package: "swift-chorus"),
                .product(name: "ChorusSelect", package: "swift-chorus"),
                .product(name: "ChorusSim", package: "swift-chorus"),
                .product(name: "ChorusTopology", package: "swift-chorus"),
            ],
            path: "Benchmarks/SimulatorBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
