import Benchmark
import ChorusTopology
import Foundation

/// The shipped topologies, found relative to this package.
let topologies = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Topologies").path

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident, .mallocCountTotal],
                                           maxDuration: .seconds(20), maxIterations: 10)

    // Issue target: load, validate and prepare the 65,536-chip cluster for route queries in
    // under 2 s and 2 GiB.
    Benchmark("Load aws-trn2-cluster-4096 and route") { benchmark in
        for _ in benchmark.scaledIterations {
            let t = try TopologyLoader(searchPaths: [topologies]).load("aws-trn2-cluster-4096")
            let router = Router(t)
            blackHole(router.routes(from: t.ranks[0], to: t.ranks[t.rankCount - 1]))
        }
    }

    // `chorus topo show` does this after loading.
    Benchmark("Summarize aws-trn2-cluster-4096") { benchmark in
        let t = try TopologyLoader(searchPaths: [topologies]).load("aws-trn2-cluster-4096")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(t.summarize())
        }
    }

    // A route query on the cluster: cross-pod, 1,024 equal-cost paths.
    Benchmark("Route query across pods on aws-trn2-cluster-4096", configuration: .init(maxIterations: 10_000)) { benchmark in
        let t = try TopologyLoader(searchPaths: [topologies]).load("aws-trn2-cluster-4096")
        let router = Router(t)
        var i = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            i = (i &+ 7919) % t.rankCount
            blackHole(router.routes(from: t.ranks[i], to: t.ranks[(i + 32_768) % t.rankCount]))
        }
    }
}
