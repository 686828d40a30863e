// swift-tools-version: 6.2
//
// Chorus: collective communication for training clusters.
// DESIGN.md's layer table is the map; each target's dependencies below keep to it.
import PackageDescription

let package = Package(
    name: "swift-chorus",
    products: [
        .executable(name: "chorus", targets: ["chorus"]),
        .library(name: "ChorusTopology", targets: ["ChorusTopology"]),
        .library(name: "ChorusSchedule", targets: ["ChorusSchedule"]),
        .library(name: "ChorusAlgorithms", targets: ["ChorusAlgorithms"]),
        .library(name: "ChorusSelect", targets: ["ChorusSelect"]),
        .library(name: "ChorusExec", targets: ["ChorusExec"]),
        .library(name: "ChorusSim", targets: ["ChorusSim"]),
        .library(name: "ChorusTransport", targets: ["ChorusTransport"]),
        .library(name: "ChorusTransportSHM", targets: ["ChorusTransportSHM"]),
        .library(name: "ChorusTransportOFI", targets: ["ChorusTransportOFI"]),
        .library(name: "ChorusTransportVerbs", targets: ["ChorusTransportVerbs"]),
        .library(name: "Chorus", targets: ["Chorus"]),
        // The C API: libChorusC.so, with include/chorus.h.
        .library(name: "ChorusC", type: .dynamic, targets: ["ChorusC"]),
    ],
    traits: [
        .trait(name: "RDMA", description: "The libfabric (OFI) and verbs transports. Needs the headers of libfabric-dev, libibverbs-dev and librdmacm-dev to build; the libraries themselves are loaded with dlopen at run time."),
        .default(enabledTraits: ["RDMA"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // MARK: - Layer 0: vocabulary
        .target(name: "ChorusCore", dependencies: [.product(name: "Yams", package: "Yams")], exclude: ["README.md"]),

        // MARK: - Layer 1: descriptions
        .target(
            name: "ChorusTopology",
            dependencies: ["ChorusCore", .product(name: "Yams", package: "Yams")],
            exclude: ["README.md"]
        ),

        .target(
            name: "ChorusSchedule",
            dependencies: ["ChorusCore", .product(name: "Yams", package: "Yams")],
            exclude: ["README.md"]
        ),

        .target(name: "ChorusTransport", dependencies: ["ChorusCore"], exclude: ["README.md"]),
        .target(name: "CChorusSHM"),
        .target(name: "ChorusTransportTCP", dependencies: ["ChorusCore", "ChorusTransport"], exclude: ["README.md"]),
        .target(name: "ChorusTransportSHM", dependencies: ["ChorusCore", "ChorusTransport", "CChorusSHM", "CChorusKernels"], exclude: ["README.md"]),
        // RDMA backends: built under the RDMA trait (their sources are empty without it); the
        // libraries are loaded with dlopen, so nothing here links libfabric or libibverbs.
        .target(name: "CChorusFabric", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "CChorusVerbs", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "ChorusTransportVerbs",
            dependencies: ["ChorusCore", "ChorusTransport", .target(name: "CChorusVerbs", condition: .when(traits: ["RDMA"]))],
            exclude: ["README.md"]
        ),
        .target(
            name: "ChorusTransportOFI",
            dependencies: ["ChorusCore", "ChorusTransport", .target(name: "CChorusFabric", condition: .when(traits: ["RDMA"]))],
            exclude: ["README.md"]
        ),

        // MARK: - Layer 2: algorithms
        .target(
            name: "ChorusAlgorithms",
            dependencies: ["ChorusCore", "ChorusTopology", "ChorusSchedule"],
            exclude: ["README.md"]
        ),

        // MARK: - Layer 3: execution and selection
        .target(name: "CChorusKernels"),
        .target(
            name: "ChorusExec",
            dependencies: ["ChorusCore", "ChorusSchedule", "ChorusTransport", "CChorusKernels"],
            exclude: ["README.md"]
        ),
        .target(
            name: "ChorusSim",
            dependencies: ["ChorusCore", "ChorusTopology", "ChorusSchedule"],
            exclude: ["README.md"]
        ),
        .target(
            name: "ChorusSelect",
            dependencies: ["ChorusCore", "ChorusTopology", "ChorusSchedule", "ChorusAlgorithms"],
            exclude: ["README.md"]
        ),

        // MARK: - Layer 4: the public API
        .target(
            name: "Chorus",
            dependencies: ["ChorusCore", "ChorusTopology", "ChorusSchedule", "ChorusAlgorithms", "ChorusSelect",
                           "ChorusExec", "ChorusTransport", "ChorusTransportSHM", "ChorusTransportTCP",
                           "ChorusTransportVerbs", .target(name: "ChorusTransportOFI", condition: .when(traits: ["RDMA"]))],
            exclude: ["README.md"]
        ),

        // MARK: - Layer 5: the C API
        .target(name: "ChorusC", dependencies: ["Chorus", "ChorusCore"], exclude: ["README.md"]),

        // MARK: - Tools
        .executableTarget(
            name: "chorus",
            dependencies: [
                "ChorusCore", "ChorusTopology", "ChorusSchedule", "ChorusAlgorithms", "ChorusSelect", "ChorusSim", "Chorus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/chorus"
        ),

        // MARK: - Tests
        .testTarget(name: "ChorusCoreTests", dependencies: ["ChorusCore"]),
        .testTarget(name: "ChorusTopologyTests", dependencies: ["ChorusTopology"]),
        .testTarget(name: "ChorusScheduleTests", dependencies: ["ChorusSchedule"]),
        .testTarget(name: "ChorusAlgorithmsTests", dependencies: ["ChorusAlgorithms"]),
        .testTarget(name: "ChorusSelectTests", dependencies: ["ChorusSelect"]),
        .testTarget(name: "ChorusSimTests", dependencies: ["ChorusSim", "ChorusAlgorithms", "ChorusSelect"]),
        .testTarget(name: "ChorusExecTests", dependencies: ["ChorusExec", "ChorusAlgorithms"]),
        .testTarget(name: "ChorusTests", dependencies: ["Chorus"]),
        .testTarget(name: "ChorusTransportSHMTests", dependencies: ["ChorusTransportSHM", "CChorusSHM"]),
        .testTarget(name: "ChorusTransportTCPTests", dependencies: ["ChorusTransport", "ChorusTransportTCP"]),
        .testTarget(name: "ChorusTransportOFITests", dependencies: ["ChorusTransport", "ChorusTransportOFI"]),
        .testTarget(name: "ChorusTransportVerbsTests", dependencies: ["ChorusTransport", "ChorusTransportVerbs"]),
        .testTarget(name: "ChorusToolTests", dependencies: ["chorus", "ChorusTopology"]),
    ]
)
