import ChorusCore

/// Whether a figure is exact or a bound, and what it rests on.
public enum Exactness: String, Hashable, Sendable {
    /// Computed exactly (by search, or by a closed form the structure guarantees).
    case exact
    /// An upper bound (a value some cut or path achieves), labelled as such in every output.
    case upperBound = "upper-bound"
    /// A range: the true value lies between the two figures given.
    case range
}

/// The bisection bandwidth among ranks: the least total capacity, in one direction, crossing a
/// cut that splits the ranks into two halves.
public struct BisectionFigure: Hashable, Sendable {
    public var bandwidth: Bandwidth
    public var exactness: Exactness
    /// The link kind the figure is over, when it is a generator's closed form.
    public var kind: LinkKind?
    /// How it was obtained, e.g. "closed form: 4x4 torus" or "bound: fabric cut between halves of the instances".
    public var basis: String
}

/// The rank-to-rank diameter: the most links (and the latency along them) any pair of ranks must
/// cross on their shortest route.
public struct DiameterFigure: Hashable, Sendable {
    public var hops: Int
    /// Equal to `hops` when exact; the upper end of the range otherwise.
    public var hopsUpperBound: Int
    /// The latency of the slowest rank pair's fastest shortest route (lower bound when not exact).
    public var latency: Duration
    public var latencyUpperBound: Duration
    public var exactness: Exactness
    public var basis: String
}

/// What `chorus topo show` prints: counts, per-rank bandwidths, bisection and diameter.
public struct TopologySummary: Sendable {
    public var name: String
    public var summary: String?
    public var rankCount: Int
    public var hostCount: Int
    public var nodeCounts: [(kind: NodeKind, count: Int)]
    public var linkCounts: [(kind: LinkKind, links: Int, lanes: Int, capacity: Bandwidth)]
    /// Per rank, the capacity of the rank node's own links by kind: minimum over ranks, and
    /// maximum when ranks differ (a grid's corner has fewer links than its middle).
    public var injection: [(kind: LinkKind, minimum: Bandwidth, maximum: Bandwidth)]
    /// Per rank, its host's network links (EFA, InfiniBand, Ethernet) divided among the host's
    /// ranks; the least over hosts. `nil` without network links.
    public var scaleOutPerRank: Bandwidth?
    public var bisection: BisectionFigure
    public var diameter: DiameterFigure
    public var composition: String?
    public var fabric: String?
}

extension Topology {
    /// Computes the summary. Searches are bounded: exact diameters only where
    /// `ranks × (nodes + links)` stays under a few tens of millions; otherwise closed forms and
    /// labelled bounds.
    public func summarize() -> TopologySummary {
        var nodeCounts: [NodeKind: Int] = [:]
        for n in nodes { nodeCounts[n.kind, default: 0] += 1 }
        var linkCounts: [LinkKind: (Int, Int, Double)] = [:]
        for l in links {
            let e = linkCounts[l.kind] ?? (0, 0, 0)
            linkCounts[l.kind] = (e.0 + 1, e.1 + l.count, e.2 + l.capacity.bytesPerSecond)
        }
        return TopologySummary(
            name: name, summary: summary, rankCount: rankCount, hostCount: rankHostCount,
            nodeCounts: NodeKind.allCases.compactMap { k in nodeCounts[k].map { (k, $0) } },
            linkCounts: LinkKind.allCases.compactMap { k in linkCounts[k].map { (k, $0.0, $0.1, Bandwidth(bytesPerSecond: $0.2)) } },
            injection: injectionPerRank(), scaleOutPerRank: scaleOutPerRank(),
            bisection: bisection(), diameter: diameter(),
            composition: composition.map { "\($0.count) x \($0.instance.name), rail family '\($0.railFamily)'" },
            fabric: fabricDescription())
    }

    func fabricDescription() -> String? {
        let record = composition?.fabric ?? generators.first { if case .clos = $0.shape { return true } else { return false } }
        guard let record, case .clos(let c) = record.shape else { return nil }
        let tiers = c.switchesPerTier.map(String.init).joined(separator: " / ")
        let policy = links.last.map { $0.pathPolicy.rawValue } ?? "single"
        if c.tiers == 1 && c.switchesPerTier == [1] {
            return "one \(record.kind) switch, \(c.ports) ports at \(record.capacity), path policy \(policy)"
        }
        return "\(c.tiers)-tier clos, radix \(c.radix), \(c.ports) ports at \(record.capacity) (\(record.kind)), switches per tier \(tiers), oversubscription \(formatTrimmed(c.oversubscription, maxFractionDigits: 2)):1, path policy \(policy)"
    }

    // MARK: - Injection

    func injectionPerRank() -> [(kind: LinkKind, minimum: Bandwidth, maximum: Bandwidth)] {
        var lo: [LinkKind: Double] = [:], hi: [LinkKind: Double] = [:]
        var kinds = Set<LinkKind>()
        for node in ranks { for arc in arcs(from: node) { kinds.insert(link(arc).kind) } }
        for node in ranks {
            var sum: [LinkKind: Double] = [:]
            for arc in arcs(from: node) { sum[link(arc).kind, default: 0] += link(arc).capacity.bytesPerSecond }
            for k in kinds {
                let v = sum[k] ?? 0
                lo[k] = min(lo[k] ?? .infinity, v)
                hi[k] = max(hi[k] ?? 0, v)
            }
        }
        return LinkKind.allCases.compactMap { k in
            guard let l = lo[k], let h = hi[k] else { return nil }
            return (k, Bandwidth(bytesPerSecond: l), Bandwidth(bytesPerSecond: h))
        }
    }

    /// Each NIC counts its network links, capped at its line rate, or its line rate alone when it
    /// has no network links (a single instance whose fabric is not described).
    func scaleOutPerRank() -> Bandwidth? {
        var perNIC: [Int: Double] = [:]
        for l in links where l.kind.isNetwork {
            for end in [l.a, l.b] where nodes[end.index].kind == .nic {
                perNIC[end.index, default: 0] += l.capacity.bytesPerSecond
            }
        }
        var perHost: [Int: Double] = [:]
        for (i, n) in nodes.enumerated() where n.kind == .nic && n.host >= 0 {
            let linked = perNIC[i]
            let rate = n.lineRate?.bytesPerSecond
            let value: Double? = switch (linked, rate) {
            case let (l?, r?): min(l, r)
            case let (l?, nil): l
            case let (nil, r?): r
            default: nil
            }
            if let value { perHost[n.host, default: 0] += value }
        }
        guard !perHost.isEmpty else { return nil }
        var ranksPerHost: [Int: Int] = [:]
        for r in ranks { ranksPerHost[nodes[r.index].host, default: 0] += 1 }
        var best = Double.infinity
        for (host, count) in ranksPerHost {
            best = min(best, (perHost[host] ?? 0) / Double(count))
        }
        return best.isFinite ? Bandwidth(bytesPerSecond: best) : nil
    }

    // MARK: - Bisection

    func bisection() -> BisectionFigure {
        let n = rankCount
        if let c = composition, case .clos(let shape) = c.fabric.shape {
            let ports = Double(shape.ports)
            let perPort = c.fabric.capacity.bytesPerSecond
            let leafUp = Double(shape.radix - shape.leafDownlinks)
            let ratio = shape.tiers == 1 ? 1 : max(1, Double(shape.leafDownlinks) / leafUp)
            let fabricCut = (ports / 2).rounded(.down) * perPort / ratio
            let nicCut = Double(c.count / 2) * Double(shape.ports / max(c.count, 1)) * perPort
            return BisectionFigure(bandwidth: Bandwidth(bytesPerSecond: min(fabricCut, nicCut)), exactness: .upperBound,
                                   kind: c.fabric.kind, basis: "bound: the fabric cut between halves of the \(c.count) instances")
        }
        let rankSet = Set(ranks)
        for g in generators where g.members == n && Set(families[g.family] ?? []) == rankSet || (g.family == "host" && composition == nil && g.members == n) {
            if let figure = closedFormBisection(g) { return figure }
        }
        return heuristicBisection()
    }

    private func closedFormBisection(_ g: GeneratorRecord) -> BisectionFigure? {
        let n = g.members
        guard n >= 2 else { return BisectionFigure(bandwidth: .zero, exactness: .exact, kind: g.kind, basis: "one rank") }
        switch g.shape {
        case .ring:
            let cut = n == 2 ? g.capacity : g.capacity * 2
            return BisectionFigure(bandwidth: cut, exactness: .exact, kind: g.kind, basis: "closed form: ring of \(n)")
        case .torus(let dims, let wraps):
            // A cut across dimension d (even k_d) severs N/k_d lines, each crossed once (twice when it wraps).
            var best = Double.infinity
            for d in dims.indices where dims[d] >= 2 {
                let lines = Double(n / dims[d])
                let crossings: Double = (wraps[d] && dims[d] > 2) ? 2 : 1
                best = min(best, lines * crossings * g.dimensionCapacities[d].bytesPerSecond)
            }
            let shape = dims.map(String.init).joined(separator: "x")
            let allEven = dims.allSatisfy { $0 % 2 == 0 || $0 == 1 }
            return BisectionFigure(bandwidth: Bandwidth(bytesPerSecond: best), exactness: allEven ? .exact : .upperBound, kind: g.kind,
                                   basis: allEven ? "closed form: \(shape) \(wraps.allSatisfy { $0 } ? "torus" : "grid")" : "bound: cut across the longest dimension of \(shape)")
        case .crossbar(let switches):
            let cut = g.capacity * Double(n / 2)
            return BisectionFigure(bandwidth: cut, exactness: .exact, kind: g.kind,
                                   basis: "closed form: \(n) members on \(switches) crossbar switch\(switches == 1 ? "" : "es")")
        case .fullMesh:
            let cut = g.capacity * Double((n / 2) * (n - n / 2))
            return BisectionFigure(bandwidth: cut, exactness: .exact, kind: g.kind, basis: "closed form: full mesh of \(n)")
        case .clos(let c):
            let leafUp = Double(c.radix - c.leafDownlinks)
            let ratio = c.tiers == 1 ? 1 : max(1, Double(c.leafDownlinks) / leafUp)
            let cut = g.capacity * ((Double(c.ports) / 2).rounded(.down) / ratio)
            return BisectionFigure(bandwidth: cut, exactness: .exact, kind: g.kind,
                                   basis: "closed form: \(c.tiers)-tier clos, \(c.ports) ports, oversubscription \(formatTrimmed(c.oversubscription, maxFractionDigits: 2)):1")
        case .attach:
            return nil
        }
    }

    /// The cheapest of a few natural balanced cuts (ranks by index halves; by host halves), with
    /// every other node put on the side most of its links lead to. An upper bound.
    private func heuristicBisection() -> BisectionFigure {
        let n = rankCount
        guard n >= 2 else { return BisectionFigure(bandwidth: .zero, exactness: .exact, kind: nil, basis: "one rank") }
        var candidates: [([Bool], String)] = []
        var byIndex = [Bool?](repeating: nil, count: nodes.count)
        for (r, node) in ranks.enumerated() { byIndex[node.index] = r < n / 2 }
        candidates.append((settle(byIndex), "ranks 0-\(n / 2 - 1) against the rest"))
        let hosts = Array(Set(ranks.map { nodes[$0.index].host })).sorted()
        if hosts.count >= 2 {
            var byHost = [Bool?](repeating: nil, count: nodes.count)
            let left = Set(hosts.prefix(hosts.count / 2))
            for node in ranks { byHost[node.index] = left.contains(nodes[node.index].host) }
            candidates.append((settle(byHost), "hosts split in halves"))
        }
        var best = Double.infinity
        var basis = ""
        for (side, label) in candidates {
            var cut = 0.0
            for l in links where side[l.a.index] != side[l.b.index] { cut += l.capacity.bytesPerSecond }
            if cut < best { best = cut; basis = label }
        }
        return BisectionFigure(bandwidth: Bandwidth(bytesPerSecond: best), exactness: .upperBound, kind: nil,
                               basis: "bound: the cut between \(basis)")
    }

    /// Assigns unassigned nodes to the side most of their already-assigned neighbours are on,
    /// sweeping outward from the ranks.
    private func settle(_ initial: [Bool?]) -> [Bool] {
        var side = initial
        var changed = true
        var rounds = 0
        while changed && rounds < 64 {
            changed = false
            rounds += 1
            for v in nodes.indices where side[v] == nil {
                var left = 0.0, right = 0.0
                for arc in arcs(from: NodeID(v)) {
                    if let s = side[head(arc).index] {
                        if s { left += link(arc).capacity.bytesPerSecond } else { right += link(arc).capacity.bytesPerSecond }
                    }
                }
                if left > 0 || right > 0 {
                    side[v] = left >= right
                    changed = true
                }
            }
        }
        return side.map { $0 ?? true }
    }

    // MARK: - Diameter

    func diameter() -> DiameterFigure {
        let router = Router(self)
        let work = Double(rankCount) * Double(nodes.count + links.count)
        if work <= 3e7 {
            var hops = 0
            var latency = 0.0
            for source in ranks {
                let (h, lat) = router.distances(from: source)
                for target in ranks {
                    hops = max(hops, Int(h[target.index]))
                    latency = max(latency, lat[target.index])
                }
            }
            return DiameterFigure(hops: hops, hopsUpperBound: hops, latency: .seconds(latency), latencyUpperBound: .seconds(latency),
                                  exactness: .exact, basis: "exact: a search from every rank")
        }
        // Lower bound: eccentricities of a few ranks. Upper bound: the structure's closed form.
        var lowerHops = 0
        var lowerLatency = 0.0
        for source in Set([ranks[0], ranks[rankCount / 2], ranks[rankCount - 1]]).sorted() {
            let (h, lat) = router.distances(from: source)
            for target in ranks {
                lowerHops = max(lowerHops, Int(h[target.index]))
                lowerLatency = max(lowerLatency, lat[target.index])
            }
        }
        var upperHops = Int.max
        var upperLatency = Double.infinity
        var basis = "bound: searches from 3 ranks give the lower end"
        if let c = composition, let (h, lat) = compositionDiameterBound(c) {
            upperHops = h
            upperLatency = lat
            basis = "closed form over the composition (instance routes to rails, fabric tiers), confirmed by a search"
        } else if let g = generators.first(where: { $0.members == rankCount }), let h = closedFormDiameter(g) {
            upperHops = h
            basis = "closed form of the \(g.family) generator, confirmed by a search"
        }
        if upperHops == lowerHops {
            return DiameterFigure(hops: lowerHops, hopsUpperBound: lowerHops, latency: .seconds(lowerLatency),
                                  latencyUpperBound: .seconds(max(lowerLatency, upperLatency.isFinite ? upperLatency : lowerLatency)),
                                  exactness: .exact, basis: basis)
        }
        return DiameterFigure(hops: lowerHops, hopsUpperBound: upperHops == .max ? 2 * lowerHops : upperHops,
                              latency: .seconds(lowerLatency),
                              latencyUpperBound: .seconds(upperLatency.isFinite ? upperLatency : 2 * lowerLatency),
                              exactness: .range, basis: upperHops == .max ? "bound: searches from 3 ranks, and twice the largest eccentricity" : basis)
    }

    private func closedFormDiameter(_ g: GeneratorRecord) -> Int? {
        switch g.shape {
        case .ring: return g.members / 2
        case .torus(let dims, let wraps): return zip(dims, wraps).reduce(0) { $0 + ($1.1 ? $1.0 / 2 : $1.0 - 1) }
        case .crossbar: return g.members > 1 ? 2 : 0
        case .fullMesh: return g.members > 1 ? 1 : 0
        case .clos(let c): return g.members > 1 ? 2 * c.tiers : 0
        case .attach: return nil
        }
    }

    /// Cross-instance routes go rank → nearest rail NIC → leaf → (fabric) → leaf → NIC → rank;
    /// within an instance, the instance's own diameter. Computed on the instance alone.
    private func compositionDiameterBound(_ c: Composition) -> (Int, Double)? {
        guard case .clos(let shape) = c.fabric.shape, let rails = c.instance.families[c.railFamily] else { return nil }
        let inner = c.instance.summarizeDiameterExactly()
        let router = Router(c.instance)
        var toRail = 0
        var toRailLatency = 0.0
        for rank in c.instance.ranks {
            let (h, lat) = router.distances(from: rank)
            var bestHops = Int32.max
            var bestLatency = Double.infinity
            for nic in rails where h[nic.index] >= 0 {
                if h[nic.index] < bestHops || (h[nic.index] == bestHops && lat[nic.index] < bestLatency) {
                    bestHops = h[nic.index]
                    bestLatency = lat[nic.index]
                }
            }
            guard bestHops != .max else { return nil }
            toRail = max(toRail, Int(bestHops))
            toRailLatency = max(toRailLatency, bestLatency)
        }
        let fabricHops = shape.tiers == 1 ? 0 : 2 * (shape.tiers - 1)
        let hopLatency = links[c.firstFabricLink.index].latency.inSeconds
        let cross = 2 * toRail + 2 + fabricHops
        let crossLatency = 2 * toRailLatency + Double(2 + fabricHops) * hopLatency
        return (max(inner.0, cross), max(inner.1, crossLatency))
    }

    /// Exact diameter by a search from every rank (for small topologies such as an instance).
    func summarizeDiameterExactly() -> (Int, Double) {
        let router = Router(self)
        var hops = 0
        var latency = 0.0
        for source in ranks {
            let (h, lat) = router.distances(from: source)
            for target in ranks {
                hops = max(hops, Int(h[target.index]))
                latency = max(latency, lat[target.index])
            }
        }
        return (hops, latency)
    }
}
