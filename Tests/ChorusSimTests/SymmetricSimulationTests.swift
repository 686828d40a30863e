import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSim
import ChorusTopology
import Foundation
import Testing

/// Whether the long comparisons run (`CHORUS_LONG_TESTS=1`): full simulations of 1,024 ranks.
private let longTests = ProcessInfo.processInfo.environment["CHORUS_LONG_TESTS"].map { $0 != "0" && !$0.isEmpty } ?? false

private let loader = TopologyLoader(searchPaths: [topologies])

/// One case: an algorithm's plan on a topology, simulated in full and through its symmetry.
struct SymmetricCase: CustomTestStringConvertible, Sendable {
    var topology: String
    var algorithm: String
    var collective: Collective = .allReduce
    var ranks: Int
    var bytes: Int
    var channels = 1
    var slice: Int?
    var averaged = false
    /// Whether the images run in lockstep on this topology (else the simulator falls back to
    /// simulating every rank, and says why).
    var lockstep = true

    var testDescription: String {
        "\(algorithm) \(collective) of \(bytes) B on \(ranks) ranks of \(topology)\(channels > 1 ? ", \(channels) channels" : "")\(slice.map { ", slice \($0)" } ?? "")\(averaged ? ", loads averaged" : "")"
    }
}

private func simulateBothWays(_ c: SymmetricCase) throws -> (full: SimulationResult, symmetric: SimulationResult) {
    let topology = try loader.load(c.topology, parameters: c.topology == "localhost" ? ["ranks": c.ranks] : [:])
    let schedule = try AlgorithmRegistry.algorithm(id: c.algorithm)!.generate(CollectiveSpec(c.collective, ranks: c.ranks),
                                                                              context: AlgorithmContext(topology: topology, ranks: c.ranks))
    #expect(schedule.symmetry != nil, "\(c.algorithm) declares a symmetry")
    let plan = Plan(schedule: schedule, channels: c.channels, sliceBytes: c.slice)
    let simulator = Simulator(topology: topology)
    var input = SimulationInput(bytes: c.bytes, collective: c.collective, ranks: c.ranks, dataType: .float32)
    input.useSymmetry = false
    let full = try simulator.run(plan, input)
    input.useSymmetry = true
    input.averageSymmetricLoads = c.averaged
    let symmetric = try simulator.run(plan, input)
    return (full, symmetric)
}

private func expectAgreement(_ c: SymmetricCase, within tolerance: Double = 0.01) throws {
    let (full, symmetric) = try simulateBothWays(c)
    #expect(full.aggregation == nil)
    guard c.lockstep else {
        #expect(symmetric.aggregation == nil)
        #expect(symmetric.fullSimulationReason?.contains("lockstep") == true || symmetric.fullSimulationReason?.contains("does not route like") == true)
        #expect(symmetric.time == full.time)
        return
    }
    let aggregation = try #require(symmetric.aggregation, "every rank simulated: \(symmetric.fullSimulationReason ?? "")")
    #expect(aggregation.averagedLoads == c.averaged)
    #expect(aggregation.simulatedRanks < c.ranks)
    let gap = abs(symmetric.time.inSeconds - full.time.inSeconds) / full.time.inSeconds
    #expect(gap <= tolerance, "full \(full.time.inSeconds) s, symmetric \(symmetric.time.inSeconds) s: gap \(gap * 100) %")
    #expect(symmetric.opInstances == full.opInstances)
    #expect(symmetric.messages == full.messages)
}

@Suite("Symmetric simulation agrees with the full one")
struct SymmetricSimulationTests {
    static let oneHost: [SymmetricCase] = [
        SymmetricCase(topology: "localhost", algorithm: "ring", ranks: 8, bytes: 4 << 20, channels: 2, slice: 128 << 10),
        // Large enough that no rank's two sends per step, posted in whichever order ties break,
        // weigh in the total.
        SymmetricCase(topology: "localhost", algorithm: "bidirectional-ring", ranks: 6, bytes: 64 << 20),
        SymmetricCase(topology: "localhost", algorithm: "halving-doubling", ranks: 8, bytes: 64 << 20),
        SymmetricCase(topology: "localhost", algorithm: "recursive-doubling", ranks: 8, bytes: 8 << 10),
        SymmetricCase(topology: "localhost", algorithm: "ring", collective: .allGather, ranks: 7, bytes: 7 << 20),
        SymmetricCase(topology: "localhost", algorithm: "bruck", collective: .allGather, ranks: 6, bytes: 6 << 20),
        SymmetricCase(topology: "localhost", algorithm: "recursive-doubling", collective: .allGather, ranks: 8, bytes: 8 << 20),
        SymmetricCase(topology: "localhost", algorithm: "direct", collective: .allGather, ranks: 4, bytes: 4 << 20),
        SymmetricCase(topology: "localhost", algorithm: "ring", collective: .reduceScatter, ranks: 5, bytes: 5 << 20),
        SymmetricCase(topology: "localhost", algorithm: "halving-doubling", collective: .reduceScatter, ranks: 4, bytes: 4 << 20),
    ]

    /// Tori with hashed single paths, NIC line rates, a sprayed Clos, an InfiniBand fat tree whose
    /// flows hash onto single paths.
    static let fabrics: [SymmetricCase] = [
        SymmetricCase(topology: "aws-trn2.48xlarge", algorithm: "halving-doubling", ranks: 16, bytes: 256 << 20),
        // A natural-order ring on a 4x4 torus: three hops in four are one link, one is two.
        SymmetricCase(topology: "aws-trn2.48xlarge", algorithm: "ring", ranks: 16, bytes: 64 << 20, slice: 1 << 20, lockstep: false),
        SymmetricCase(topology: "aws-trn2-ultraserver-64", algorithm: "halving-doubling", ranks: 64, bytes: 1 << 30),
        SymmetricCase(topology: "aws-trn2-ultraserver-64", algorithm: "bidirectional-ring", ranks: 64, bytes: 64 << 20, lockstep: false),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 256, bytes: 1 << 30),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "ring", ranks: 256, bytes: 1 << 30, lockstep: false),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "recursive-doubling", ranks: 256, bytes: 64 << 10),
        SymmetricCase(topology: "nvidia-superpod-ndr-railopt", algorithm: "halving-doubling", ranks: 128, bytes: 1 << 30),
        SymmetricCase(topology: "nvidia-superpod-ndr-railopt", algorithm: "ring", ranks: 128, bytes: 256 << 20, lockstep: false),
        SymmetricCase(topology: "nvidia-dgx-h100", algorithm: "ring", ranks: 8, bytes: 256 << 20, slice: 1 << 20),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 256, bytes: 1 << 30, averaged: true),
        // 16 orbits (one per chip of an instance); 16 instances share each rail's leaf.
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "hierarchical", ranks: 256, bytes: 1 << 30),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "hierarchical", collective: .allGather, ranks: 256, bytes: 256 << 20),
    ]

    static let large: [SymmetricCase] = longTests ? [
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 1024, bytes: 1 << 30),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 1024, bytes: 1 << 30, averaged: true),
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "ring", ranks: 1024, bytes: 1 << 30, lockstep: false),
        // 64 instances: the ring between instances 31 and 32 crosses leaves.
        SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "hierarchical", ranks: 1024, bytes: 1 << 30, lockstep: false),
        SymmetricCase(topology: "localhost", algorithm: "ring", ranks: 1024, bytes: 1 << 30),
    ] : []

    @Test(arguments: oneHost)
    func onOneHost(_ c: SymmetricCase) throws { try expectAgreement(c) }

    @Test(arguments: fabrics)
    func onFabrics(_ c: SymmetricCase) throws { try expectAgreement(c) }

    @Test(arguments: large)
    func atAThousandRanks(_ c: SymmetricCase) throws { try expectAgreement(c) }

    @Test func aSymmetricRunIsDeterministic() throws {
        let c = SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 512, bytes: 1 << 30)
        let (_, first) = try simulateBothWays(c)
        let (_, second) = try simulateBothWays(c)
        #expect(first.time == second.time)
        #expect(first.usage == second.usage)
        #expect(first.events == second.events)
    }

    @Test func mergedLinksAreNamedWithHowManyTheyStandFor() throws {
        let c = SymmetricCase(topology: "aws-trn2-cluster-4096", algorithm: "halving-doubling", ranks: 256, bytes: 1 << 30)
        let (_, symmetric) = try simulateBothWays(c)
        let busiest = symmetric.busiest(1)[0]
        #expect(busiest.name.contains("alike"), "\(busiest.name)")
        #expect(busiest.utilisation(over: symmetric.time.inSeconds) > 0.5)
    }

    @Test func aFalseDeclarationIsCaught() throws {
        let topology = try loader.load("localhost", parameters: ["ranks": 8])
        let tree = try AlgorithmRegistry.algorithm(id: "double-binary-tree")!.generate(CollectiveSpec(.allReduce, ranks: 8))
        #expect(tree.symmetry == nil)
        let claimed = tree.declaring(RankSymmetry(.rotation, ranks: 8))
        var input = SimulationInput(bytes: 1 << 20, collective: .allReduce, ranks: 8, dataType: .float32)
        input.useSymmetry = true
        #expect {
            try Simulator(topology: topology).run(Plan(schedule: claimed), input)
        } throws: { error in
            guard case .asymmetric(let what) = error as? SimulationError else { return false }
            return what.contains("double-binary-tree") && what.contains("rank ")
        }
    }

    @Test func imagesThatRouteUnlikeAreSimulatedRankByRank() throws {
        // A ring over 32 chips of two trn2 instances: most hops stay on a torus, one crosses EFA.
        let topology = try loader.load("aws-trn2-cluster-4096")
        let ring = try AlgorithmRegistry.algorithm(id: "ring")!.generate(CollectiveSpec(.allReduce, ranks: 32))
        for averaged in [false, true] {
            var input = SimulationInput(bytes: 1 << 20, collective: .allReduce, ranks: 32, dataType: .float32)
            input.averageSymmetricLoads = averaged
            let result = try Simulator(topology: topology).run(Plan(schedule: ring), input)
            #expect(result.aggregation == nil)
            let reason = try #require(result.fullSimulationReason)
            #expect(reason.contains(averaged ? "does not route like" : "would not run in lockstep"), "\(reason)")
        }
    }

    @Test func symmetryDeclarationsActAsDocumented() throws {
        let rotation = try #require(RankSymmetry(.rotation, ranks: 12, stride: 4))
        #expect(rotation.orbits == 4 && rotation.orbitSize == 3)
        #expect(rotation.representative(of: 10) == 2 && rotation.translation(of: 10) == 8)
        #expect(rotation.apply(8, to: 6) == 2 && rotation.unapply(8, to: 2) == 6)
        let xor = try #require(RankSymmetry(.xor, ranks: 16))
        #expect(xor.apply(5, to: 3) == 6 && xor.unapply(5, to: 6) == 3)
        #expect(RankSymmetry(.xor, ranks: 12) == nil)
        #expect(RankSymmetry(.rotation, ranks: 12, stride: 5) == nil)
        #expect(RankSymmetry(.xor, ranks: 16, stride: 3) == nil)
    }
}
