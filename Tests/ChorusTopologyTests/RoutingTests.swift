import ChorusCore
import ChorusTopology
import Testing

@Suite("Routing on small graphs")
struct RoutingTests {
    static let link = LinkAttributes(kind: .neuronlink, bandwidth: .gigabytesPerSecond(100), latency: .microseconds(1))

    func torus(_ dims: [Int], wrap: Bool = true) throws -> Topology {
        var b = TopologyBuilder(name: "torus")
        let n = dims.reduce(1, *)
        let chips = try b.addFamily("c", count: n, kind: .accelerator)
        try b.torus(over: "c", dimensions: dims, wraps: Array(repeating: wrap, count: dims.count),
                    perDimension: Array(repeating: Self.link, count: dims.count))
        b.setRanks(chips)
        return try b.build()
    }

    @Test func ringDistancesGoTheShortWayRound() throws {
        var b = TopologyBuilder(name: "ring6")
        let c = try b.addFamily("c", count: 6, kind: .accelerator)
        try b.ring(over: "c", Self.link)
        b.setRanks(c)
        let t = try b.build()
        let router = Router(t)
        for (to, hops, paths) in [(1, 1, 1.0), (2, 2, 1), (3, 3, 2), (4, 2, 1), (5, 1, 1)] {
            let r = try #require(router.routes(from: c[0], to: c[to]))
            #expect(r.hops == hops, "0 -> \(to)")
            #expect(r.pathCount == paths, "0 -> \(to)")
            #expect(r.minimumLatency == .microseconds(hops))
        }
        #expect(t.summarize().diameter.hops == 3)
        #expect(t.summarize().bisection.bandwidth == .gigabytesPerSecond(200))
    }

    @Test func oppositeCornersOfA4x4TorusHaveTwentyFourShortestPaths() throws {
        // (0,0) -> (2,2): 2 steps per dimension, either way round in each: 2 x 2 direction
        // choices x C(4,2) interleavings = 24 paths of 4 hops.
        let t = try torus([4, 4])
        let r = try #require(t.routes(from: t.node(of: 0), to: t.node(of: 10)))
        #expect(r.hops == 4)
        #expect(r.pathCount == 24)
        #expect(r.paths(in: t, limit: 100).count == 24)
        #expect(r.paths(in: t).allSatisfy { $0.count == 4 })
        // Single policy: the flow takes exactly one of them.
        #expect(r.singlePath(in: t)?.count == 4)
        // A torus routes in dimension order whatever the flow: every flow takes the one path
        // that goes along dimension 0 first.
        let spreads = Set((0..<32).compactMap { t.routes(from: t.node(of: 0), to: t.node(of: 10), flow: UInt64($0))?.singlePath(in: t) })
        #expect(spreads.count == 1)
        #expect(spreads.first == (try Router(t).dimensionOrderRoute(from: t.node(of: 0), to: t.node(of: 10))))
    }

    @Test func dimensionOrderRoutesGoAlongDimensionZeroFirst() throws {
        let t = try torus([4, 4])
        let router = Router(t)
        // (0,1) -> (3,2): dimension 0 from 0 to 3 is one step backwards (wrap), then dimension 1 one step forward.
        let route = try router.dimensionOrderRoute(from: t.node(of: 1), to: t.node(of: 14))
        #expect(route.map { t.nodes[t.head($0).index].name } == ["c13", "c14"])
        // Ties (distance 2 on a ring of 4) go the positive way.
        let tie = try router.dimensionOrderRoute(from: t.node(of: 0), to: t.node(of: 8))
        #expect(tie.map { t.nodes[t.head($0).index].name } == ["c4", "c8"])
        // A grid (no wrap) never wraps.
        let grid = try torus([4, 4], wrap: false)
        let long = try Router(grid).dimensionOrderRoute(from: grid.node(of: 0), to: grid.node(of: 12))
        #expect(long.count == 3)
        #expect(grid.summarize().diameter.hops == 6)
        #expect(grid.summarize().bisection.bandwidth == .gigabytesPerSecond(400))
        // Not on one torus:
        var b = TopologyBuilder(name: "two")
        let x = try b.addNode("x", kind: .accelerator), y = try b.addNode("y", kind: .accelerator)
        try b.addLink(x, y, Self.link)
        b.setRanks([x, y])
        let pair = try b.build()
        #expect(throws: TopologyError.self) { try Router(pair).dimensionOrderRoute(from: x, to: y) }
    }

    @Test func torusBisectionAndDiameterHaveClosedForms() throws {
        let t = try torus([4, 4, 4])
        let s = t.summarize()
        #expect(s.diameter.hops == 6)
        #expect(s.bisection.exactness == .exact)
        #expect(s.bisection.bandwidth == .gigabytesPerSecond(2 * 16 * 100))
    }

    @Test func aTwoTierClosSpraysEvenlyOverEverySpine() throws {
        // 8 hosts on radix-4 switches, 2 tiers: leaves with 2 hosts and 2 uplinks, 4 leaves, 2 spines.
        var b = TopologyBuilder(name: "clos")
        let hosts = try b.addFamily("h", count: 8, kind: .cpu, host: { $0 })
        let efa = LinkAttributes(kind: .efa, bandwidth: .gigabitsPerSecond(100), latency: .microseconds(1), pathPolicy: .spray)
        let record = try b.buildFabric(FabricDescription(shape: .clos(radix: 4, tiers: 2, oversubscription: 1), placement: .instance, attributes: efa),
                                       slots: hosts, endpointFamily: "h")
        b.setRanks(hosts)
        let t = try b.build()
        guard case .clos(let shape) = record.shape else { Issue.record("not a clos"); return }
        #expect(shape.switchesPerTier == [4, 2])
        #expect(shape.leafDownlinks == 2)
        let same = try #require(t.routes(from: hosts[0], to: hosts[1]))
        #expect(same.hops == 2 && same.pathCount == 1)
        let far = try #require(t.routes(from: hosts[0], to: hosts[7]))
        #expect(far.hops == 4 && far.pathCount == 2)
        let up = far.arcs.filter { $0.level == 1 }
        #expect(up.count == 2 && up.allSatisfy { $0.share == 0.5 })
        // Shares are conserved level by level.
        for level in 0..<4 {
            #expect(abs(far.arcs.filter { $0.level == level }.reduce(0) { $0 + $1.share } - 1) < 1e-12)
        }
        #expect(t.summarize().bisection.bandwidth == .gigabitsPerSecond(400))
        #expect(t.summarize().diameter.hops == 4)
    }

    @Test func aCapacityCheckRefusesFabricsThatCannotHoldTheirEndpoints() throws {
        let d = FabricDescription(shape: .clos(radix: 4, tiers: 2, oversubscription: 1), placement: .instance,
                                  attributes: LinkAttributes(kind: .ethernet, bandwidth: .gigabitsPerSecond(10), latency: .microseconds(1)))
        #expect(throws: TopologyError.self) { _ = try d.plan(ports: 9) }
        #expect(d.maximumPorts == 8)
    }

    @Test func cpusDoNotForwardAndHostsKeepTheirTrafficInside() throws {
        // Two chips joined both by a slow 3-hop chain and through a host CPU (2 hops): the CPU
        // may not forward, so the chain wins.
        var b = TopologyBuilder(name: "transit")
        let a = try b.addNode("a", kind: .accelerator), z = try b.addNode("z", kind: .accelerator)
        let m1 = try b.addNode("m1", kind: .accelerator), m2 = try b.addNode("m2", kind: .accelerator)
        let cpu = try b.addNode("cpu", kind: .cpu)
        let nicA = try b.addNode("nicA", kind: .nic), nicZ = try b.addNode("nicZ", kind: .nic)
        let sw = try b.addNode("sw", kind: .switch, host: -1)
        for (x, y) in [(a, m1), (m1, m2), (m2, z)] { try b.addLink(x, y, Self.link) }
        let pcie = LinkAttributes(kind: .pcie, bandwidth: .gigabytesPerSecond(32), latency: .microseconds(1))
        for x in [a, z] { try b.addLink(x, cpu, pcie) }
        try b.addLink(a, nicA, pcie)
        try b.addLink(z, nicZ, pcie)
        let eth = LinkAttributes(kind: .ethernet, bandwidth: .gigabitsPerSecond(100), latency: .microseconds(1))
        try b.addLink(nicA, sw, eth)
        try b.addLink(nicZ, sw, eth)
        b.setRanks([a, z])
        let t = try b.build()
        let r = try #require(t.routes(from: a, to: z))
        #expect(r.hops == 3)
        #expect(r.arcs.allSatisfy { t.link($0.arc).kind == .neuronlink })
        // The CPU is still a valid endpoint.
        #expect(t.routes(from: a, to: cpu)?.hops == 1)
        // Without the chain, a and z (one host) have no internal path: the route leaves the host.
        var b2 = TopologyBuilder(name: "split")
        let p = try b2.addNode("p", kind: .accelerator), q = try b2.addNode("q", kind: .accelerator)
        let np = try b2.addNode("np", kind: .nic), nq = try b2.addNode("nq", kind: .nic)
        let s2 = try b2.addNode("s", kind: .switch, host: -1)
        try b2.addLink(p, np, pcie); try b2.addLink(q, nq, pcie)
        try b2.addLink(np, s2, eth); try b2.addLink(nq, s2, eth)
        b2.setRanks([p, q])
        let t2 = try b2.build()
        #expect(t2.routes(from: p, to: q)?.hops == 4)
        #expect(Router(t2).distances(from: p).hops[q.index] == 4)
    }

    @Test func unreachableNodesHaveNoRoute() throws {
        var b = TopologyBuilder(name: "islands")
        let a = try b.addNode("a", kind: .accelerator), c = try b.addNode("c", kind: .accelerator)
        let lone = try b.addNode("lone", kind: .accelerator)
        try b.addLink(a, c, Self.link)
        b.setRanks([a, c])
        let t = try b.build()
        #expect(t.routes(from: a, to: lone) == nil)
        // A rank that cannot reach rank 0 is refused.
        b.setRanks([a, c, lone])
        #expect(throws: TopologyError.self) { try b.build() }
    }

    @Test func compositionNamesHostsRanksAndRails() throws {
        var b = TopologyBuilder(name: "box")
        let chips = try b.addFamily("chip", count: 4, kind: .accelerator)
        let nics = try b.addFamily("nic", count: 2, kind: .nic)
        try b.ring(over: "chip", Self.link)
        try b.attach("chip", to: "nic", LinkAttributes(kind: .pcie, bandwidth: .gigabytesPerSecond(32), latency: .microseconds(1)))
        b.setRanks(chips)
        _ = nics
        let box = try b.build()
        let fabric = FabricDescription(shape: .crossbar, placement: .rail,
                                       attributes: LinkAttributes(kind: .ethernet, bandwidth: .gigabitsPerSecond(100), latency: .microseconds(2)))
        let t = try TopologyBuilder.compose(name: "three", summary: nil, instance: box, count: 3, railFamily: "nic", fabric: fabric)
        #expect(t.rankCount == 12)
        #expect(t.rankHostCount == 3)
        #expect(t.nodes[t.node(of: 5).index].name == "inst1/chip1")
        #expect(t.nodes[t.node(of: 5).index].host == 1)
        #expect(t.families["chip"]?.count == 12)
        #expect(t.node(named: "inst2/nic1") != nil)
        #expect(t.node(named: "switch0") != nil)
        // Chip 0 of instance 0 reaches chip 0 of instance 2 through nic0 (its own rail).
        let r = try #require(t.routes(from: t.node(of: 0), to: t.node(of: 8)))
        #expect(r.hops == 4)
        #expect(try t.checkedSummary().rankCount == 12)
    }
}

extension Topology {
    func checkedSummary() throws -> TopologySummary { summarize() }
}
