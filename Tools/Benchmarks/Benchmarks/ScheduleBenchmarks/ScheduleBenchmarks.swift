import Benchmark
import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSelect
import ChorusTopology
import Foundation

let topologies = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Topologies").path

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident, .mallocCountTotal],
                                           maxDuration: .seconds(30), maxIterations: 5)

    // Issue target: generate and verify a 1,024-rank ring all-reduce in under 1 s.
    Benchmark("Generate and verify a 1,024-rank ring all-reduce") { benchmark in
        for _ in benchmark.scaledIterations {
            let schedule = try AlgorithmRegistry.algorithm(id: "ring")!.generate(CollectiveSpec(.allReduce, ranks: 1024))
            try SymbolicChecker.verify(schedule)
        }
    }

    // Issue target: `chorus plan` on the 65,536-chip cluster, selector included, under 5 s.
    Benchmark("Load aws-trn2-cluster-4096 and select for 1 GiB all-reduce") { benchmark in
        for _ in benchmark.scaledIterations {
            let t = try TopologyLoader(searchPaths: [topologies]).load("aws-trn2-cluster-4096")
            blackHole(try Selector(topology: t).select(.allReduce, bytes: 1 << 30))
        }
    }
}
