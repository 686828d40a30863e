import ChorusCore
import ChorusTopology
import Testing

@Suite("Shipped topologies")
struct ShippedTopologyTests {
    @Test func theCatalogHasEveryFileTheIssueNames() {
        let required = [
            "aws-trn1.32xlarge", "aws-trn1n.32xlarge", "aws-trn2.48xlarge", "aws-trn2-ultraserver-64",
            "aws-trn3-ultraserver-gen1-64", "aws-trn3-ultraserver-gen2-144", "aws-efa-ultracluster",
            "aws-trn2-cluster-4096", "nvidia-dgx-h100", "nvidia-dgx-b200", "nvidia-superpod-ndr-railopt",
            "localhost", "ethernet-hosts",
        ]
        for name in required { #expect(shippedTopologyNames.contains(name), "missing \(name)") }
    }

    @Test(arguments: shippedTopologyNames.filter { $0 != "aws-trn2-cluster-4096" })
    func loadsAndValidates(_ name: String) throws {
        let t = try loadShipped(name)
        #expect(t.rankCount >= 1)
        #expect(t.name == name)
        let s = t.summarize()
        #expect(s.diameter.hops >= 1)
        #expect(s.bisection.bandwidth.bytesPerSecond > 0)
    }

    @Test func trn2HasSixteenRanksWithFourNeuronlinkNeighboursAndTwoDisjointRings() throws {
        let t = try loadShipped("aws-trn2.48xlarge")
        #expect(t.rankCount == 16)
        #expect(t.rankHostCount == 1)
        for rank in 0..<16 {
            #expect(neighbours(t, t.node(of: Rank(rank)), kind: .neuronlink).count == 4)
        }
        // Row-major numbering: chip 5 = (1, 1) neighbours 1, 4, 6, 9.
        let chip5 = try #require(t.node(named: "chip5"))
        let expected = Set(["chip1", "chip4", "chip6", "chip9"].compactMap { t.node(named: $0) })
        #expect(neighbours(t, chip5, kind: .neuronlink) == expected)
        // The 4x4 torus splits into two link-disjoint Hamiltonian cycles.
        let rings = try #require(disjointHamiltonianCycles(t, kind: .neuronlink))
        #expect(rings.0.count == 16 && rings.1.count == 16)
        let edges0 = Set(cycleEdges(rings.0)), edges1 = Set(cycleEdges(rings.1))
        #expect(edges0.isDisjoint(with: edges1))
        #expect(edges0.count + edges1.count == 32)
        // One 200 Gbps EFA per chip.
        #expect(t.summarize().scaleOutPerRank == .gigabitsPerSecond(200))
    }

    @Test func trn2UltraServerIsA4x4x4TorusOfSixtyFourRanksOnFourHosts() throws {
        let t = try loadShipped("aws-trn2-ultraserver-64")
        #expect(t.rankCount == 64)
        #expect(t.rankHostCount == 4)
        #expect(t.tori.first?.dimensions == [4, 4, 4])
        for rank in 0..<64 { #expect(neighbours(t, t.node(of: Rank(rank)), kind: .neuronlink).count == 6) }
        // Chip 0's Z neighbours are chips 16 and 48 on hosts 1 and 3, at 128 GB/s.
        let chip0 = t.node(of: 0)
        let zLinks = t.arcs(from: chip0).filter { t.nodes[t.head($0).index].host != 0 && t.link($0).kind == .neuronlink }
        #expect(Set(zLinks.map { t.nodes[t.head($0).index].name }) == ["chip16", "chip48"])
        #expect(zLinks.allSatisfy { t.link($0).bandwidth == .gigabytesPerSecond(128) })
        // Bisection cuts the slow Z dimension: 2 x 16 lines x 128 GB/s.
        #expect(t.summarize().bisection.bandwidth == .gigabytesPerSecond(4096))
        #expect(t.summarize().diameter.hops == 6)
    }

    @Test func dgxH100HasEightGPUsBehindFourSwitches() throws {
        let t = try loadShipped("nvidia-dgx-h100")
        #expect(t.rankCount == 8)
        let switches = t.nodes.filter { $0.kind == .switch }
        #expect(switches.count == 4)
        for rank in 0..<8 {
            let node = t.node(of: Rank(rank))
            let nv = t.arcs(from: node).filter { t.link($0).kind == .nvlink }
            #expect(nv.count == 4)
            #expect(nv.allSatisfy { t.nodes[t.head($0).index].kind == .switch })
            #expect(nv.reduce(0) { $0 + t.link($1).count } == 18)
            // No GPU links to another GPU directly: everything goes through a switch.
            #expect(neighbours(t, node, kind: .nvlink).allSatisfy { t.nodes[$0.index].kind == .switch })
        }
        // GPU to GPU: 4 equal-cost paths through the switches, sprayed 5:4:4:5, at 450 GB/s.
        let r = try #require(t.routes(from: t.node(of: 0), to: t.node(of: 5)))
        #expect(r.hops == 2 && r.pathCount == 4)
        #expect(abs(r.bottleneck(in: t).gigabytesPerSecond - 450) < 1e-9)
        let firstHop = r.arcs.filter { $0.level == 0 }.map(\.share).sorted()
        #expect(firstHop.count == 4)
        #expect(abs(firstHop[0] - 4.0 / 18) < 1e-12 && abs(firstHop[3] - 5.0 / 18) < 1e-12)
    }

    @Test func trn1SharesOneEFADeviceBetweenTwoChips() throws {
        let t = try loadShipped("aws-trn1.32xlarge")
        let efa0 = try #require(t.node(named: "efa0"))
        #expect(Set(t.arcs(from: efa0).map { t.nodes[t.head($0).index].name }) == ["chip0", "chip1"])
        #expect(t.summarize().scaleOutPerRank == .gigabitsPerSecond(50))
        #expect(try loadShipped("aws-trn1n.32xlarge").summarize().scaleOutPerRank == .gigabitsPerSecond(100))
    }

    @Test func trn3UltraServersHaveTheirChipCounts() throws {
        let gen1 = try loadShipped("aws-trn3-ultraserver-gen1-64")
        #expect(gen1.rankCount == 64 && gen1.rankHostCount == 4)
        let gen2 = try loadShipped("aws-trn3-ultraserver-gen2-144")
        #expect(gen2.rankCount == 144 && gen2.rankHostCount == 36)
        // Same position in the other rack is one direct hop.
        let a = try #require(gen2.node(named: "rack0chip5")), b = try #require(gen2.node(named: "rack1chip5"))
        #expect(gen2.routes(from: a, to: b)?.hops == 1)
    }

    @Test func superPODBuildsThirtyTwoLeavesAndSixteenSpines() throws {
        let t = try loadShipped("nvidia-superpod-ndr-railopt")
        #expect(t.rankCount == 127 * 8)
        let c = try #require(t.composition)
        guard case .clos(let shape) = c.fabric.shape else { Issue.record("not a clos"); return }
        #expect(shape.switchesPerTier == [32, 16])
        // Same rail, different nodes in one SU: one leaf between them.
        let a = try #require(t.node(named: "inst0/nic3")), b = try #require(t.node(named: "inst1/nic3"))
        #expect(t.routes(from: a, to: b)?.hops == 2)
        // InfiniBand takes one path per flow.
        let gpuA = try #require(t.node(named: "inst0/gpu3")), gpuB = try #require(t.node(named: "inst100/gpu3"))
        let r = try #require(t.routes(from: gpuA, to: gpuB))
        #expect(r.pathCount > 1)
        #expect(r.singlePath(in: t) != nil)
        // Scaled up past two tiers' capacity (256 nodes) it grows a third tier.
        let big = try loadShipped("nvidia-superpod-ndr-railopt", parameters: ["nodes": 512])
        guard case .clos(let bigShape) = try #require(big.composition).fabric.shape else { return }
        #expect(bigShape.tiers == 3)
    }

    @Test func localhostAndEthernetHostsFollowTheirParameters() throws {
        let l = try loadShipped("localhost", parameters: ["ranks": 8])
        #expect(l.rankCount == 8 && l.rankHostCount == 1)
        let e = try loadShipped("ethernet-hosts", parameters: ["hosts": 4, "ranks-per-host": 2])
        #expect(e.rankCount == 8 && e.rankHostCount == 4)
        // Two ranks of one host talk through memory, never through the NIC.
        let r = try #require(e.routes(from: e.node(of: 0), to: e.node(of: 1)))
        #expect(r.hops == 2)
        #expect(r.arcs.allSatisfy { e.link($0.arc).kind == .shm })
        let across = try #require(e.routes(from: e.node(of: 0), to: e.node(of: 7)))
        #expect(across.arcs.contains { e.link($0.arc).kind == .ethernet })
    }

    @Test func theSixtyFiveThousandChipClusterComposesAndRoutes() throws {
        let t = try loadShipped("aws-trn2-cluster-4096")
        #expect(t.rankCount == 65_536)
        #expect(t.rankHostCount == 4096)
        let c = try #require(t.composition)
        #expect(c.count == 4096)
        guard case .clos(let shape) = c.fabric.shape else { Issue.record("not a clos"); return }
        #expect(shape.switchesPerTier == [2048, 2048, 1024])
        #expect(t.nodes[t.node(of: 65_535).index].name == "inst4095/chip15")
        let router = Router(t)
        // Inside an instance: the torus only.
        let local = try #require(router.routes(from: Rank(0), to: Rank(10)))
        #expect(local.hops == 4)
        #expect(local.arcs.allSatisfy { t.link($0.arc).kind == .neuronlink })
        // Across pods on one rail: chip, NIC, leaf, agg, core, agg, leaf, NIC, chip, sprayed over 32 x 32 paths.
        let far = try #require(router.routes(from: Rank(0), to: Rank(16 * 4000)))
        #expect(far.hops == 8)
        #expect(far.pathCount == 1024)
        #expect(abs(far.bottleneck(in: t).gigabytesPerSecond - 25) < 1e-9)
        // Only the two end instances and fabric switches appear on the route.
        for a in far.arcs {
            for node in [t.tail(a.arc), t.head(a.arc)] {
                #expect([0, 4000, nil].contains(c.instance(of: node)), "\(t.nodes[node.index].name)")
            }
        }
        let s = t.summarize()
        #expect(s.diameter.hops == 8 && s.diameter.exactness == .exact)
        #expect(s.bisection.bandwidth.gigabytesPerSecond == 65_536 / 2 * 25)
    }
}

// MARK: - Hamiltonian cycle search (small graphs)

/// Finds two link-disjoint Hamiltonian cycles over links of `kind` among the ranks, by
/// backtracking: build one cycle, check the remaining links form another.
func disjointHamiltonianCycles(_ t: Topology, kind: LinkKind) -> ([Int], [Int])? {
    let n = t.rankCount
    var index: [NodeID: Int] = [:]
    for r in 0..<n { index[t.node(of: Rank(r))] = r }
    var adjacency = [[Int]](repeating: [], count: n)
    for r in 0..<n {
        adjacency[r] = t.arcs(from: t.node(of: Rank(r))).filter { t.link($0).kind == kind }.compactMap { index[t.head($0)] }.sorted()
    }
    var path = [0]
    var used = [Bool](repeating: false, count: n)
    used[0] = true
    func complementCycle(_ cycle: [Int]) -> [Int]? {
        let taken = Set(cycleEdges(cycle))
        var rest = adjacency.enumerated().map { (v, ns) in ns.filter { !taken.contains(Edge(v, $0)) } }
        guard rest.allSatisfy({ $0.count == 2 }) else { return nil }
        var cycle2 = [0], previous = -1, current = 0
        while true {
            let next = rest[current].first { $0 != previous }!
            if next == 0 { break }
            cycle2.append(next)
            previous = current
            current = next
            if cycle2.count > n { return nil }
        }
        rest = []
        return cycle2.count == n ? cycle2 : nil
    }
    func extend() -> ([Int], [Int])? {
        if path.count == n {
            guard adjacency[path.last!].contains(0), let other = complementCycle(path) else { return nil }
            return (path, other)
        }
        for next in adjacency[path.last!] where !used[next] {
            used[next] = true
            path.append(next)
            if let found = extend() { return found }
            path.removeLast()
            used[next] = false
        }
        return nil
    }
    return extend()
}

struct Edge: Hashable {
    let a: Int, b: Int
    init(_ x: Int, _ y: Int) { a = min(x, y); b = max(x, y) }
}

func cycleEdges(_ cycle: [Int]) -> [Edge] {
    cycle.indices.map { Edge(cycle[$0], cycle[($0 + 1) % cycle.count]) }
}
