import ChorusAlgorithms
import ChorusCore
import ChorusSelect
import ChorusTopology
import Foundation
import Testing

let topologies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Topologies").path

func shipped(_ name: String) throws -> Topology { try TopologyLoader(searchPaths: [topologies]).load(name) }

@Suite("Selector")
struct SelectorTests {
    static let logStepOrOneShot: Set<String> = ["recursive-doubling", "halving-doubling", "torus-hypercube", "bruck", "double-binary-tree", "direct"]
    static let bandwidthOptimal: Set<String> = ["ring", "bidirectional-ring", "torus-rings", "torus-dimensions", "torus-hypercube", "halving-doubling", "hierarchical"]

    @Test func eightBytesOnTheTrn2UltraServerTakeFewSteps() throws {
        let s = try Selector(topology: shipped("aws-trn2-ultraserver-64")).select(.allReduce, bytes: 8)
        #expect(Self.logStepOrOneShot.contains(s.chosen.id), "chose \(s.chosen.id)")
    }

    @Test(arguments: ["aws-trn2.48xlarge", "nvidia-dgx-h100"])
    func aGibibyteTakesABandwidthOptimalAlgorithm(_ name: String) throws {
        let s = try Selector(topology: shipped(name)).select(.allReduce, bytes: 1 << 30)
        #expect(Self.bandwidthOptimal.contains(s.chosen.id), "chose \(s.chosen.id)")
        // Within 25% of the per-rank link limit: busbw ≤ injection bandwidth.
        let busbw = Double(1 << 30) / s.chosen.estimate!.total.inSeconds * 2 * 15 / 16
        #expect(busbw > 0)
    }

    @Test func onTheTrn2TorusTheTwoDisjointRingsAreAmongTheFastestForLargeMessages() throws {
        // The natural-order bidirectional ring ties: in dimension order its row-to-row hops take
        // links no other hop uses.
        let s = try Selector(topology: shipped("aws-trn2.48xlarge")).select(.allReduce, bytes: 1 << 30)
        let torusRings = try #require(s.candidates.first { $0.id == "torus-rings" }?.estimate?.total)
        let chosen = try #require(s.chosen.estimate?.total)
        #expect(torusRings <= chosen)
        #expect(["torus-rings", "bidirectional-ring"].contains(s.chosen.id))
        #expect(s.candidates.filter { $0.estimate != nil }.allSatisfy { $0.estimate!.total >= torusRings })
        #expect(s.explanation.contains("hierarchical: cannot run: the topology is not composed of instances"))
    }

    @Test func theModelMatchesTheRingClosedFormOnAUniformRing() throws {
        // 8 ranks on a ring of 100 GB/s links with 1 us latency; memory so fast reduction is free.
        var b = TopologyBuilder(name: "ring8")
        let chips = try b.addFamily("c", count: 8, kind: .accelerator)
        for c in chips { b.setMemory(of: c, size: nil, bandwidth: .gigabytesPerSecond(1e9)) }
        try b.ring(over: "c", LinkAttributes(kind: .neuronlink, bandwidth: .gigabytesPerSecond(100), latency: .microseconds(1)))
        b.setRanks(chips)
        let t = try b.build()
        let spec = CollectiveSpec(.allReduce, ranks: 8)
        let shape = AlgorithmRegistry.algorithm(id: "ring")!.costShape(spec, context: AlgorithmContext(ranks: 8))
        let size = 64.0 * 1024 * 1024
        let model = CostModel(topology: t).estimate(shape, ranks: 8, bytes: size, sliceBytes: nil).total.inSeconds
        let alpha = 1e-6 + LinkKind.neuronlink.defaultMessageOverhead.inSeconds
        let closed = 2 * 7 * (alpha + size / 8 / 100e9)
        #expect(abs(model - closed) / closed < 0.005, "model \(model) s, closed form \(closed) s")
    }

    @Test func everyCollectiveHasACandidateOnEveryShippedSmallTopology() throws {
        for name in ["aws-trn1.32xlarge", "aws-trn2.48xlarge", "nvidia-dgx-b200", "localhost", "ethernet-hosts", "aws-trn3-ultraserver-gen1-64"] {
            let selector = Selector(topology: try shipped(name))
            for collective in Collective.allCases {
                for bytes in [0, 8, 1 << 20, 1 << 30] {
                    let s = try selector.select(collective, bytes: bytes)
                    #expect(s.chosen.estimate != nil)
                    #expect(s.chosen.estimate!.total >= .zero)
                }
            }
        }
    }

    @Test func hierarchicalAppliesToCompositions() throws {
        let t = try TopologyLoader(searchPaths: [topologies]).load("ethernet-hosts", parameters: ["hosts": 4, "ranks-per-host": 4])
        let s = try Selector(topology: t).select(.allReduce, bytes: 256 << 20)
        let hier = s.candidates.first { $0.id == "hierarchical" }
        #expect(hier?.unavailable == nil && hier?.estimate != nil)
    }
}

@Suite("CHORUS_ALGO grammar")
struct SelectionOverrideTests {
    @Test func parsesRulesClausesRangesChoicesAndParameters() throws {
        let o = try SelectionOverride.parse("allreduce:0-64K:recursive-doubling,64K-inf:ring|halving-doubling;allgather:ring{channels=2,slice=512K};^direct")
        #expect(o.rules.count == 3)
        #expect(o.clause(for: .allReduce, bytes: 8)?.algorithms.map(\.id) == ["recursive-doubling"])
        #expect(o.clause(for: .allReduce, bytes: 65536)?.algorithms.map(\.id) == ["ring", "halving-doubling"])
        let ag = try #require(o.clause(for: .allGather, bytes: 1))
        #expect(ag.algorithms.first?.channels == 2 && ag.algorithms.first?.sliceBytes == 512 << 10)
        let rs = try #require(o.clause(for: .reduceScatter, bytes: 1))
        #expect(rs.exclude && rs.algorithms.map(\.id) == ["direct"])
        #expect(try SelectionOverride.parse("ring").clause(for: .broadcast, bytes: 99)?.algorithms.map(\.id) == ["ring"])
        #expect(try SelectionOverride.parse("reduce-scatter:1M-2M:ring").clause(for: .reduceScatter, bytes: 4 << 20) == nil)
        #expect(try SelectionOverride.parse("").rules.isEmpty)
    }

    @Test(arguments: [
        ("rng", "CHORUS_ALGO=\"rng\": at character 1: unknown algorithm 'rng' (did you mean 'ring'?); known: ring, bidirectional-ring, halving-doubling, recursive-doubling, bruck, double-binary-tree, binary-tree, direct, torus-rings, torus-dimensions, torus-hypercube, hierarchical"),
        ("allreduse:ring", "CHORUS_ALGO=\"allreduse:ring\": at character 1: unknown collective 'allreduse' (did you mean 'all-reduce'?); expected one of all-reduce, all-gather, reduce-scatter, broadcast, reduce"),
        ("allreduce:64K:ring", "CHORUS_ALGO=\"allreduce:64K:ring\": at character 11: '64K' is not a size range (write LOW-HIGH, e.g. 0-64K or 64K-inf)"),
        ("allreduce:64K-1K:ring", "CHORUS_ALGO=\"allreduce:64K-1K:ring\": at character 11: the range '64K-1K' is empty (its low end must be below its high end)"),
        ("allreduce:0-lots:ring", "CHORUS_ALGO=\"allreduce:0-lots:ring\": at character 11: 'lots' is not a size (write 0, 64K, 256M, 1G)"),
        ("ring{channels=0}", "CHORUS_ALGO=\"ring{channels=0}\": at character 1: channels must be an integer from 1 to 64, got '0'"),
        ("ring{speed=9}", "CHORUS_ALGO=\"ring{speed=9}\": at character 1: unknown parameter 'speed'; expected channels or slice"),
        ("ring{channels=2", "CHORUS_ALGO=\"ring{channels=2\": at character 1: 'ring{channels=2' opens '{' without closing it"),
        ("allreduce:", "CHORUS_ALGO=\"allreduce:\": at character 11: expected an algorithm name"),
    ])
    func badTextIsRefusedWithWhereAndWhy(_ text: String, _ message: String) {
        #expect(throws: SelectError.self) { try SelectionOverride.parse(text) }
        do { _ = try SelectionOverride.parse(text) } catch { #expect("\(error)" == message) }
    }

    @Test func theSelectorObeysTheOverride() throws {
        let selector = Selector(topology: try shipped("aws-trn2.48xlarge"))
        let forced = try selector.select(.allReduce, bytes: 1 << 30, override: try SelectionOverride.parse("ring{slice=64K}"))
        #expect(forced.chosen.id == "ring" && forced.chosen.sliceBytes == 64 << 10 && forced.overridden)
        let excluded = try selector.select(.allReduce, bytes: 1 << 30, override: try SelectionOverride.parse("^torus-rings"))
        #expect(excluded.chosen.id != "torus-rings")
        #expect(excluded.candidates.contains { $0.id == "torus-rings" && $0.excluded })
        let choice = try selector.select(.allReduce, bytes: 8, override: try SelectionOverride.parse("ring|direct"))
        #expect(["ring", "direct"].contains(choice.chosen.id))
        let impossible = try SelectionOverride.parse("hierarchical")
        #expect(throws: SelectError.self) { try selector.select(.allReduce, bytes: 8, override: impossible) }
        do { _ = try selector.select(.allReduce, bytes: 8, override: impossible) } catch {
            #expect("\(error)" == "'hierarchical' allows only hierarchical for all-reduce at 8 B, and none can run here (hierarchical: the topology is not composed of instances)")
        }
    }
}

@Suite("Calibration files")
struct CalibrationTests {
    @Test func roundTripsAndChangesTheModel() throws {
        let text = "calibration: 1\nsource: bench on host x\nkinds:\n  neuronlink: { alpha: 4us, bandwidth: 100GB/s }\n"
        let c = try LinkCalibration(text: text, file: "c.yaml")
        #expect(c.entries[.neuronlink]?.alpha == .microseconds(4))
        #expect(c.entries[.neuronlink]?.bandwidth == .gigabytesPerSecond(100))
        #expect(try LinkCalibration(text: c.yamlText, file: "again.yaml") == c)
        let t = try shipped("aws-trn2.48xlarge")
        let plain = try Selector(topology: t).select(.allReduce, bytes: 1 << 30, override: try .parse("ring"))
        let slower = try Selector(topology: t, calibration: c).select(.allReduce, bytes: 1 << 30, override: try .parse("ring"))
        #expect(slower.chosen.estimate!.total > plain.chosen.estimate!.total)
    }

    @Test func badCalibrationFilesSayWhere() {
        do {
            _ = try LinkCalibration(text: "kinds:\n  nvlnk: { alpha: 4 }\n", file: "c.yaml")
            Issue.record("accepted")
        } catch {
            #expect("\(error)" == "c.yaml:2:3: kinds: 'link kind' has unknown value 'nvlnk' (did you mean 'nvlink'?); expected one of neuronlink, nvlink, pcie, efa, infiniband, ethernet, shm")
        }
    }
}
