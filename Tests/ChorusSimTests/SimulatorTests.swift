import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSelect
import ChorusSim
import ChorusTopology
import Foundation
import Testing

let topologies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Topologies").path

/// The shortest latency a link may have (links need a positive one).
private let onePicosecond = Duration(secondsComponent: 0, attosecondsComponent: 1_000_000)

/// Memory so fast that local copies and reductions cost nothing measurable.
private let instantMemory = Bandwidth.gigabytesPerSecond(1e9)

/// `n` chips on a ring of `bandwidth` links with `latency` each.
private func ring(_ n: Int, bandwidth: Double = 100, latency: Duration = .microseconds(1)) throws -> Topology {
    var b = TopologyBuilder(name: "ring\(n)")
    let chips = try b.addFamily("c", count: n, kind: .accelerator)
    for c in chips { b.setMemory(of: c, size: nil, bandwidth: instantMemory) }
    try b.ring(over: "c", LinkAttributes(kind: .neuronlink, bandwidth: .gigabytesPerSecond(bandwidth), latency: latency))
    b.setRanks(chips)
    return try b.build()
}

/// `n` chips on one switch, each with its own link of `bandwidths[i]` GB/s.
private func star(_ bandwidths: [Double], latency: Duration = onePicosecond) throws -> Topology {
    var b = TopologyBuilder(name: "star")
    let chips = try b.addFamily("c", count: bandwidths.count, kind: .accelerator)
    let hub = try b.addNode("hub", kind: .switch, host: -1)
    for (c, bw) in zip(chips, bandwidths) {
        b.setMemory(of: c, size: nil, bandwidth: instantMemory)
        _ = try b.addLink(c, hub, LinkAttributes(kind: .neuronlink, bandwidth: .gigabytesPerSecond(bw), latency: latency))
    }
    b.setRanks(chips)
    return try b.build()
}

/// A schedule in which each `(from, to)` pair sends one whole block at once: rank `from`'s
/// input goes to block `from` of rank `to`'s output (an all-gather layout).
private func transfers(_ pairs: [(Int, Int)], ranks: Int) -> Schedule {
    var programs = [RankProgram](repeating: RankProgram(), count: ranks)
    for (a, b) in pairs {
        programs[a].append(.send(to: b, BufferSlice(.input, chunk: 0)))
        programs[b].append(.recv(from: a, into: BufferSlice(.output, chunk: a)))
    }
    return Schedule(algorithm: "transfers", collective: .allGather, ranks: ranks,
                    layout: .standard(.allGather, ranks: ranks, chunksPerBlock: 1), programs: programs)
}

private func generated(_ id: String, _ collective: Collective, ranks n: Int) throws -> Schedule {
    try AlgorithmRegistry.algorithm(id: id)!.generate(CollectiveSpec(collective, ranks: n))
}

/// When each op of rank `rank` ended, in microseconds.
private func ends(_ result: SimulationResult, rank: Int) -> [Double] {
    result.slices.filter { $0.rank == rank }.sorted { $0.op < $1.op }.map { Double($0.end) / 1e6 }
}

@Suite struct SimulatorTests {
    @Test func aRingAllReduceOnAUniformRingMatchesTheClosedForm() throws {
        let alpha = 1e-6 + LinkKind.neuronlink.defaultMessageOverhead.inSeconds
        for n in [2, 5, 8, 16] {
            let t = try ring(n)
            let size = 64 << 20
            let result = try Simulator(topology: t).run(Plan(schedule: try generated("ring", .allReduce, ranks: n)),
                                                       SimulationInput(bytes: size, collective: .allReduce, ranks: n, dataType: .float32))
            let closed = 2 * Double(n - 1) * (alpha + Double(size) / Double(n) / 100e9)
            let simulated = result.time.inSeconds
            #expect(abs(simulated - closed) / closed < 0.005, "\(n) ranks: simulated \(simulated) s, closed form \(closed) s")
        }
    }

    @Test func twoFlowsOnOneLinkEachGetHalf() throws {
        // c0 and c1 both send 1 MB to c2: the hub -> c2 arc is shared.
        let t = try star([100, 100, 100])
        let bytes = 1_000_000
        let plan = Plan(schedule: transfers([(0, 2), (1, 2)], ranks: 3))
        let result = try Simulator(topology: t).run(plan, SimulationInput(blockElements: bytes, elementSize: 1, recordTrace: true))
        let overhead = LinkKind.neuronlink.defaultMessageOverhead.inMicroseconds
        let alone = Double(bytes) / 100e9 * 1e6
        for sender in [0, 1] {
            let end = ends(result, rank: sender)[0]
            #expect(abs(end - (overhead + 2 * alone)) < 1e-3, "rank \(sender) ended at \(end) us")
        }
        let shared = result.usage.first { $0.name == "hub -> c2" }!
        #expect(shared.bytes == 2e6)
    }

    @Test func aFlowBottleneckedElsewhereLeavesItsShareToTheOthers() throws {
        // c1's own link runs at 20 GB/s, so on the shared hub -> c2 arc c0 gets the other 80.
        let t = try star([100, 20, 100])
        let bytes = 1_000_000
        let plan = Plan(schedule: transfers([(0, 2), (1, 2)], ranks: 3))
        let result = try Simulator(topology: t).run(plan, SimulationInput(blockElements: bytes, elementSize: 1, recordTrace: true))
        let overhead = LinkKind.neuronlink.defaultMessageOverhead.inMicroseconds
        let fast = ends(result, rank: 0)[0] - overhead, slow = ends(result, rank: 1)[0] - overhead
        #expect(abs(fast - Double(bytes) / 80e9 * 1e6) < 1e-3, "c0 took \(fast) us")
        #expect(abs(slow - Double(bytes) / 20e9 * 1e6) < 1e-3, "c1 took \(slow) us")
    }

    @Test func whenTheSlowFlowEndsTheOtherSpeedsUp() throws {
        // c0 sends 2 MB, c1 sends 0.5 MB, both through hub -> c2 at 100: half each until c1's
        // is done (10 us), then c0 alone: 1.5 MB more at 100 GB/s.
        let t = try star([100, 100, 100])
        var programs = [RankProgram](repeating: RankProgram(), count: 3)
        programs[0].append(.send(to: 2, BufferSlice(.input, 0..<4)))
        programs[2].append(.recv(from: 0, into: BufferSlice(.output, 0..<4)))
        programs[1].append(.send(to: 2, BufferSlice(.input, chunk: 0)))
        programs[2].append(.recv(from: 1, into: BufferSlice(.output, chunk: 4)))
        let schedule = Schedule(algorithm: "uneven", collective: .allGather, ranks: 3,
                                layout: .standard(.allGather, ranks: 3, chunksPerBlock: 4), programs: programs)
        let result = try Simulator(topology: t).run(Plan(schedule: schedule), SimulationInput(blockElements: 2_000_000, elementSize: 1, recordTrace: true))
        let overhead = LinkKind.neuronlink.defaultMessageOverhead.inMicroseconds
        #expect(abs(ends(result, rank: 1)[0] - overhead - 10) < 1e-3)
        #expect(abs(ends(result, rank: 0)[0] - overhead - 25) < 1e-3)
    }

    /// c0 - s0 = {m0, m1} = s1 - c1: two equal-cost paths through the middle switches.
    private func diamond(_ policy: PathPolicy) throws -> Topology {
        var b = TopologyBuilder(name: "diamond-\(policy)")
        let c = try b.addFamily("c", count: 2, kind: .accelerator)
        let s0 = try b.addNode("s0", kind: .switch, host: -1), s1 = try b.addNode("s1", kind: .switch, host: -1)
        let m = [try b.addNode("m0", kind: .switch, host: -1), try b.addNode("m1", kind: .switch, host: -1)]
        let edge = LinkAttributes(kind: .efa, bandwidth: .gigabytesPerSecond(200), latency: onePicosecond, pathPolicy: policy)
        let middle = LinkAttributes(kind: .efa, bandwidth: .gigabytesPerSecond(100), latency: onePicosecond, pathPolicy: policy)
        _ = try b.addLink(c[0], s0, edge)
        _ = try b.addLink(s1, c[1], edge)
        for x in m {
            _ = try b.addLink(s0, x, middle)
            _ = try b.addLink(x, s1, middle)
        }
        for x in c { b.setMemory(of: x, size: nil, bandwidth: instantMemory) }
        b.setRanks(c)
        return try b.build()
    }

    @Test func sprayingSpreadsOneFlowOverEqualCostPaths() throws {
        let bytes = 1_000_000
        let plan = Plan(schedule: transfers([(0, 1)], ranks: 2))
        let overhead = LinkKind.efa.defaultMessageOverhead.inMicroseconds
        let sprayed = try Simulator(topology: diamond(.spray)).run(plan, SimulationInput(blockElements: bytes, elementSize: 1, recordTrace: true))
        let single = try Simulator(topology: diamond(.single)).run(plan, SimulationInput(blockElements: bytes, elementSize: 1, recordTrace: true))
        // EFA links carry payload at 0.99 of their rate (LinkKind.defaultPayloadEfficiency).
        let efficiency = LinkKind.efa.defaultPayloadEfficiency
        #expect(abs(ends(sprayed, rank: 0)[0] - overhead - 5 / efficiency) < 1e-3, "sprayed over both paths at 200 GB/s")
        #expect(abs(ends(single, rank: 0)[0] - overhead - 10 / efficiency) < 1e-3, "one path at 100 GB/s")
        let middleLoads = { (r: SimulationResult) in r.usage.filter { $0.name.hasPrefix("s0 -> m") }.map(\.bytes).sorted() }
        #expect(middleLoads(sprayed) == [5e5, 5e5])
        #expect(middleLoads(single) == [1e6])
    }

    @Test func nicLineRatesLimitInjection() throws {
        // Two chips share one NIC whose line rate (50 GB/s) is below its fabric link (100 GB/s);
        // the PCIe links are fast enough that EFA stays the routes' bottleneck kind.
        var b = TopologyBuilder(name: "nic")
        let c = try b.addFamily("c", count: 3, kind: .accelerator)
        let nic = try b.addNode("nic", kind: .nic, host: 0)
        let hub = try b.addNode("hub", kind: .switch, host: -1)
        b.setLineRate(of: nic, .gigabytesPerSecond(50))
        _ = try b.addLink(c[0], nic, LinkAttributes(kind: .pcie, bandwidth: .gigabytesPerSecond(200), latency: onePicosecond))
        _ = try b.addLink(c[1], nic, LinkAttributes(kind: .pcie, bandwidth: .gigabytesPerSecond(200), latency: onePicosecond))
        _ = try b.addLink(nic, hub, LinkAttributes(kind: .efa, bandwidth: .gigabytesPerSecond(100), latency: onePicosecond))
        _ = try b.addLink(hub, c[2], LinkAttributes(kind: .efa, bandwidth: .gigabytesPerSecond(400), latency: onePicosecond))
        for x in c { b.setMemory(of: x, size: nil, bandwidth: instantMemory) }
        b.setRanks(c)
        let t = try b.build()
        let result = try Simulator(topology: t).run(Plan(schedule: transfers([(0, 2), (1, 2)], ranks: 3)),
                                                    SimulationInput(blockElements: 1_000_000, elementSize: 1, recordTrace: true))
        let overhead = LinkKind.efa.defaultMessageOverhead.inMicroseconds
        // 25 GB/s each: 40 us for 1 MB.
        #expect(abs(ends(result, rank: 0)[0] - overhead - 40) < 1e-3, "\(ends(result, rank: 0))")
        #expect(result.usage.contains { $0.name == "nic injection" && $0.bytes == 2e6 })
    }

    @Test func theSimulatorAndTheModelAgreeWhereNothingContends() throws {
        let n = 8
        let t = try ring(n)
        let star8 = try star(Array(repeating: 100, count: n), latency: .microseconds(1))
        let cases: [(String, Topology, Int?)] = [("ring", t, nil), ("ring", t, 1 << 20), ("bidirectional-ring", t, nil),
                                                 ("bidirectional-ring", t, 256 << 10), ("halving-doubling", star8, nil),
                                                 ("halving-doubling", star8, 1 << 20), ("recursive-doubling", star8, nil)]
        for (id, topology, slice) in cases {
            let algorithm = AlgorithmRegistry.algorithm(id: id)!
            let spec = CollectiveSpec(.allReduce, ranks: n)
            let context = AlgorithmContext(topology: topology)
            let plan = Plan(schedule: try algorithm.generate(spec, context: context), sliceBytes: slice)
            for size in [1 << 10, 64 << 20] {
                let simulated = try Simulator(topology: topology).run(plan, SimulationInput(bytes: size, collective: .allReduce, ranks: n, dataType: .float32)).time.inSeconds
                let modelled = CostModel(topology: topology).estimate(algorithm.costShape(spec, context: context), ranks: n, bytes: Double(size), sliceBytes: slice).total.inSeconds
                // Large messages within 3%; latency-bound ones within 8% (the model has no
                // pipeline fill: the second ring of a bidirectional pair starts one posting late).
                #expect(abs(simulated - modelled) / modelled < (size >= 1 << 20 ? 0.03 : 0.08), "\(id) slice \(slice ?? 0) at \(size) B: simulated \(simulated), modelled \(modelled)")
            }
        }
    }

    @Test func twoRunsGiveIdenticalResults() throws {
        let t = try TopologyLoader(searchPaths: [topologies]).load("aws-trn2.48xlarge")
        let plan = try Selector(topology: t).select(.allReduce, bytes: 16 << 20).plan()
        let input = SimulationInput(bytes: 16 << 20, collective: .allReduce, ranks: t.rankCount, dataType: .bfloat16, recordTrace: true)
        let a = try Simulator(topology: t).run(plan, input), b = try Simulator(topology: t).run(plan, input)
        #expect(a.time == b.time)
        #expect(a.events == b.events)
        #expect(a.usage == b.usage)
        #expect(a.slices == b.slices)
    }

    @Test func aScheduleReadFromJSONSimulatesLikeTheGeneratedOne() throws {
        let t = try ring(6)
        let schedule = try generated("bidirectional-ring", .reduceScatter, ranks: 6)
        var text = ""
        schedule.writeJSON { text += $0 }
        let loaded = try Schedule(json: text, file: "rs.json")
        let input = SimulationInput(bytes: 6 << 20, collective: .reduceScatter, ranks: 6, dataType: .float32)
        let a = try Simulator(topology: t).run(Plan(schedule: schedule, channels: 2), input)
        let b = try Simulator(topology: t).run(Plan(schedule: loaded, channels: 2), input)
        #expect(a.time == b.time)
        #expect(a.messages == b.messages)
    }

    @Test func aScheduleThatDeadlocksIsReportedNotHung() throws {
        // Both ranks receive before they send.
        var programs = [RankProgram(), RankProgram()]
        programs[0].append(.recv(from: 1, into: BufferSlice(.output, chunk: 1)))
        programs[0].append(Op.send(to: 1, BufferSlice(.input, chunk: 0)).after([0]))
        programs[1].append(.recv(from: 0, into: BufferSlice(.output, chunk: 0)))
        programs[1].append(Op.send(to: 0, BufferSlice(.input, chunk: 0)).after([0]))
        let schedule = Schedule(algorithm: "deadlock", collective: .allGather, ranks: 2,
                                layout: .standard(.allGather, ranks: 2, chunksPerBlock: 1), programs: programs)
        #expect {
            try Simulator(topology: ring(2)).run(Plan(schedule: schedule), SimulationInput(blockElements: 16, elementSize: 4))
        } throws: { error in
            "\(error)".contains("rank 0 op 1 (send to rank 1") && "\(error)".contains("never ran")
        }
    }

    @Test func aPlanWiderThanTheTopologyIsRefused() throws {
        #expect(throws: SimulationError.tooManyRanks(plan: 4, topology: 2, name: "ring2")) {
            try Simulator(topology: ring(2)).run(Plan(schedule: generated("ring", .allReduce, ranks: 4)), SimulationInput(blockElements: 16, elementSize: 4))
        }
    }
}

@Suite struct ChunkCountingTests {
    @Test func countingRunsMatchesCountingChunks() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let k = Int.random(in: 1...9, using: &generator), blocks = Int.random(in: 1...5, using: &generator)
            let layout = ChunkLayout(chunksPerBlock: k, inputBlocks: blocks, outputBlocks: blocks)
            let m = Int.random(in: 0...50, using: &generator)
            let total = k * blocks
            var runs: [Range<Int>] = []
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let a = Int.random(in: 0..<total, using: &generator), b = Int.random(in: a...total, using: &generator)
                runs.append(a..<b)
            }
            let list = ChunkList(runs: runs)
            let pieces = Int.random(in: 1...4, using: &generator), t = Int.random(in: 0..<pieces, using: &generator)
            var expected = 0
            list.forEach { expected += layout.elements(ofChunk: $0, piece: t, of: pieces, blockElements: m).count }
            #expect(layout.elementCount(of: list, piece: t, of: pieces, blockElements: m) == expected, "k \(k) m \(m) runs \(runs) piece \(t)/\(pieces)")
        }
    }
}
