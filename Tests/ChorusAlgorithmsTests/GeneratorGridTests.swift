import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import Foundation
import Testing

/// The context each rank count is tested in: tori where the count is a torus shape, groups
/// where it splits into instances.
func contexts(for n: Int) -> [AlgorithmContext] {
    var list = [AlgorithmContext(ranks: n)]
    let tori: [Int: [Int]] = [4: [2, 2], 8: [2, 4], 9: [3, 3], 12: [3, 4], 16: [4, 4], 27: [3, 3, 3], 32: [2, 4, 4], 36: [6, 6], 64: [4, 4, 4]]
    if let dims = tori[n] { list.append(AlgorithmContext(ranks: n, torus: TorusPattern(dimensions: dims))) }
    for g in [2, 4, 16] where n % g == 0 && n / g >= 2 {
        let ring = g == 16 ? TorusPattern(dimensions: [4, 4]).disjointHamiltonianCycles()?.0 : nil
        list.append(AlgorithmContext(ranks: n, groupSize: g, groupRing: ring))
    }
    return list
}

/// Every (algorithm, collective, context) that applies at `n` ranks.
func applicable(_ n: Int, root: Int = 0) -> [(Algorithm, CollectiveSpec, AlgorithmContext)] {
    var result: [(Algorithm, CollectiveSpec, AlgorithmContext)] = []
    var seen = Set<String>()
    for context in contexts(for: n) {
        for algorithm in AlgorithmRegistry.all {
            for collective in algorithm.collectives {
                let spec = CollectiveSpec(collective, ranks: n, root: collective.hasRoot ? root % n : 0)
                guard algorithm.unavailableReason(spec, context) == nil else { continue }
                // Context-free algorithms need testing once per rank count.
                let key = "\(algorithm.id)/\(collective)/\(context.torus?.dimensions ?? [])/\(context.groupSize ?? 0)"
                if seen.insert(key).inserted { result.append((algorithm, spec, context)) }
            }
        }
    }
    return result
}

/// Whether the long grids run (`CHORUS_LONG_TESTS=1`): rank counts of 128 and more.
let longTests = ProcessInfo.processInfo.environment["CHORUS_LONG_TESTS"].map { $0 != "0" && !$0.isEmpty } ?? false

/// Every rank count from 1 to 64 and 127; with `CHORUS_LONG_TESTS`, also 128 and 1,000.
let gridRankCounts = Array(1...64) + [127] + (longTests ? [128, 1000] : [])

@Suite("Generators, verified")
struct GeneratorGridTests {
    @Test(arguments: gridRankCounts)
    func everyApplicableScheduleIsProvenInBothForms(_ n: Int) throws {
        for (algorithm, spec, context) in applicable(n, root: n / 3) {
            // Quadratic algorithms are proven up to 128 ranks.
            if n > 128 && algorithm.id == "direct" { continue }
            let schedule = try algorithm.generate(spec, context: context)
            #expect(schedule.algorithm == algorithm.id)
            do {
                try SymbolicChecker.verify(schedule)
            } catch {
                Issue.record("\(algorithm.id) \(spec.collective) n=\(n) torus=\(context.torus?.dimensions ?? []) group=\(context.groupSize ?? 0): \(error)")
            }
        }
    }

    @Test func everyAlgorithmAndCollectiveIsCovered() {
        var covered = Set<String>()
        for n in [1, 2, 3, 8, 16, 64] {
            for (algorithm, spec, _) in applicable(n) { covered.insert("\(algorithm.id)/\(spec.collective)") }
        }
        for algorithm in AlgorithmRegistry.all {
            for collective in algorithm.collectives {
                #expect(covered.contains("\(algorithm.id)/\(collective)"), "\(algorithm.id) \(collective) never tested")
            }
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 7, 8, 9, 16])
    func theInterpreterComputesTheCollective(_ n: Int) throws {
        for (algorithm, spec, context) in applicable(n, root: n - 1) {
            let plan = Plan(schedule: try algorithm.generate(spec, context: context))
            let layout = plan.schedule.layout
            for m in [0, 1, 5, 13] {
                let inputs = (0..<n).map { r in
                    (0..<(layout.inputBlocks * m)).flatMap { i -> [UInt8] in withUnsafeBytes(of: Int32(truncatingIfNeeded: r &* 7919 &+ i &* 104_729)) { Array($0) } }
                }
                let expected = ReferenceInterpreter.expected(spec.collective, ranks: n, root: spec.root, dataType: .int32, op: .sum,
                                                             blockElements: m, inputs: inputs)
                for inPlace in [false, true] {
                    let outputs = try ReferenceInterpreter.run(plan, dataType: .int32, op: .sum, blockElements: m, inputs: inputs, inPlace: inPlace)
                    for r in 0..<n {
                        guard let want = expected[r] else { continue }
                        #expect(outputs[r] == want, "\(algorithm.id) \(spec.collective) n=\(n) m=\(m) inPlace=\(inPlace) rank \(r)")
                    }
                }
            }
        }
    }

    @Test func aThousandRankRingIsGeneratedOnDemandPerRank() throws {
        let schedule = try AlgorithmRegistry.algorithm(id: "ring")!.generate(CollectiveSpec(.allReduce, ranks: 1000))
        // Each rank sends and receives n−1 times in each of the two phases.
        #expect(schedule.program(for: 999).count == 4 * 999)
        #expect(schedule.totalOps() == 1000 * 4 * 999)
    }

    @Test func unavailableAlgorithmsSayWhy() {
        let spec = CollectiveSpec(.allReduce, ranks: 12)
        let plain = AlgorithmContext(ranks: 12)
        #expect(AlgorithmRegistry.algorithm(id: "torus-rings")!.unavailableReason(spec, plain) == "the ranks do not form a torus")
        #expect(AlgorithmRegistry.algorithm(id: "hierarchical")!.unavailableReason(spec, plain) == "the topology is not composed of instances")
        let torus = AlgorithmContext(ranks: 12, torus: TorusPattern(dimensions: [3, 4]))
        #expect(AlgorithmRegistry.algorithm(id: "torus-hypercube")!.unavailableReason(spec, torus) == "the 3x4 torus is not a hypercube (dimensions must be 2 or 4)")
        #expect(AlgorithmRegistry.algorithm(id: "bruck")!.unavailableReason(spec, plain) == "bruck does not implement all-reduce (it implements all-gather)")
        #expect(throws: ScheduleError.self) { try AlgorithmRegistry.algorithm(id: "torus-dimensions")!.generate(spec, context: plain) }
    }
}
