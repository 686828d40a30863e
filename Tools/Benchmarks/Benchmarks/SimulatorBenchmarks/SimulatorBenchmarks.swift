import Benchmark
import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSelect
import ChorusSim
import ChorusTopology
import Foundation

/// This package's folder, and the repository's shipped topologies.
let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let shipped = here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Topologies").path

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident],
                                           maxDuration: .seconds(60), maxIterations: 3)

    // Issue target: a full event simulation (max-min sharing) of a 1,024-rank flat ring
    // all-reduce of 1 GiB in under 10 s (ASTRA-sim 2.0's analytical backend: 14.4-25.6 s).
    Benchmark("Simulate a 1,024-rank flat ring all-reduce of 1 GiB") { benchmark in
        let ring = try TopologyLoader().load(here.appendingPathComponent("Topologies/flat-ring.yaml").path)
        let schedule = try AlgorithmRegistry.algorithm(id: "ring")!.generate(CollectiveSpec(.allReduce, ranks: 1024))
        var input = SimulationInput(bytes: 1 << 30, collective: .allReduce, ranks: 1024, dataType: .float32)
        input.useSymmetry = false  // every rank's every op: the full event simulation
        for _ in benchmark.scaledIterations {
            blackHole(try Simulator(topology: ring).run(Plan(schedule: schedule), input))
        }
    }

    // Issue target: the 65,536-chip cluster end to end in under 10 s and 4 GiB; here selection
    // and simulation (halving-doubling through its xor symmetry, loads averaged over alike links).
    Benchmark("Select and simulate 1 GiB all-reduce on all 65,536 ranks of aws-trn2-cluster-4096") { benchmark in
        let cluster = try TopologyLoader(searchPaths: [shipped]).load("aws-trn2-cluster-4096")
        for _ in benchmark.scaledIterations {
            let selection = try Selector(topology: cluster).select(.allReduce, bytes: 1 << 30)
            let input = SimulationInput(bytes: 1 << 30, collective: .allReduce, ranks: cluster.rankCount, dataType: .float32)
            blackHole(try Simulator(topology: cluster).run(try selection.plan(), input))
        }
    }

    // 64 instances (1,024 chips) of the trn2 cluster over the EFA fabric, the selector's plan.
    Benchmark("Select and simulate 1 GiB all-reduce on 1,024 ranks of aws-trn2-cluster-4096") { benchmark in
        let cluster = try TopologyLoader(searchPaths: [shipped]).load("aws-trn2-cluster-4096")
        for _ in benchmark.scaledIterations {
            let selection = try Selector(topology: cluster, ranks: 1024).select(.allReduce, bytes: 1 << 30)
            let input = SimulationInput(bytes: 1 << 30, collective: .allReduce, ranks: 1024, dataType: .float32)
            blackHole(try Simulator(topology: cluster).run(try selection.plan(), input))
        }
    }
}
