import ChorusCore

/// Answers route queries on one topology, reusing its scratch space between queries.
///
/// A query runs a bidirectional breadth-first search that stops where the two searches meet, so
/// it touches the neighbourhoods of the two endpoints rather than the whole graph: on the
/// 65,536-chip trn2 cluster a cross-pod query visits a few thousand nodes. Scratch arrays are
/// stamped with a generation number, so a query never clears `O(nodes)` memory.
///
/// A `Router` is not thread-safe; give each thread its own (they share the `Topology`).
public final class Router {
    public let topology: Topology
    private var generation: UInt32 = 0
    // Scratch as raw buffers owned by the router: class-held arrays would pay a dynamic
    // exclusivity check on every access, a fifth of a cross-pod query's time.
    private let stampF: UnsafeMutableBufferPointer<UInt32>
    private let stampB: UnsafeMutableBufferPointer<UInt32>
    private let distF: UnsafeMutableBufferPointer<Int32>
    private let distB: UnsafeMutableBufferPointer<Int32>
    private let stampDag: UnsafeMutableBufferPointer<UInt32>
    private let pathsPre: UnsafeMutableBufferPointer<Double>
    private let share: UnsafeMutableBufferPointer<Double>
    private let latencyMin: UnsafeMutableBufferPointer<Double>
    private let latencyMax: UnsafeMutableBufferPointer<Double>
    private var torusOf: [NodeID: (torus: Int, member: Int)]?
    /// Per arc: `2·dimension` for a step in the positive direction of a torus dimension,
    /// `2·dimension + 1` for the negative one, `-1` for arcs on no torus.
    private lazy var torusStep: [Int16] = {
        let t = topology
        var step = [Int16](repeating: -1, count: t.arcCount)
        for torus in t.tori {
            for (m, node) in torus.members.enumerated() {
                let here = torus.coordinates(ofMember: m)
                for d in torus.dimensions.indices where torus.dimensions[d] > 1 {
                    var next = here
                    next[d] += 1
                    if next[d] == torus.dimensions[d] {
                        guard torus.wraps[d] else { continue }
                        next[d] = 0
                    }
                    let neighbour = torus.members[torus.member(at: next)]
                    guard let arc = t.arcs(from: node).first(where: { t.head($0) == neighbour }) else { continue }
                    if step[arc.index] < 0 { step[arc.index] = Int16(2 * d) }
                    let back = ArcID(rawValue: arc.rawValue ^ 1)
                    if step[back.index] < 0 { step[back.index] = Int16(2 * d + 1) }
                }
            }
        }
        return step
    }()

    private let heads: [Int32]
    private let arcs: [ArcID]
    private let kinds: [NodeKind]
    private let hosts: [Int32]

    public init(_ topology: Topology) {
        self.topology = topology
        heads = topology.arcHeadList
        arcs = topology.arcList
        kinds = topology.nodeKindList
        hosts = topology.nodeHostList
        let n = max(topology.nodes.count, 1)
        func buffer<T>(_ value: T) -> UnsafeMutableBufferPointer<T> {
            let b = UnsafeMutableBufferPointer<T>.allocate(capacity: n)
            b.initialize(repeating: value)
            return b
        }
        stampF = buffer(0)
        stampB = buffer(0)
        distF = buffer(0)
        distB = buffer(0)
        stampDag = buffer(0)
        pathsPre = buffer(0)
        share = buffer(0)
        latencyMin = buffer(0)
        latencyMax = buffer(0)
    }

    deinit {
        for b in [stampF, stampB, stampDag] { b.deallocate() }
        for b in [distF, distB] { b.deallocate() }
        for b in [pathsPre, share, latencyMin, latencyMax] { b.deallocate() }
    }

    private func nextGeneration() {
        generation &+= 1
        if generation == 0 {  // wrapped: clear once every 2^32 queries
            stampF.update(repeating: 0)
            stampB.update(repeating: 0)
            stampDag.update(repeating: 0)
            generation = 1
        }
    }

    // MARK: - Shortest paths

    /// The equal-cost shortest paths from `source` to `destination` (in links), and how a flow
    /// with key `flow` spreads over them.
    ///
    /// Transit rules make hop counts mean what a machine does:
    /// - CPU nodes never forward traffic between other nodes (a host is an endpoint, not a router).
    /// - A route between two nodes of one host stays inside that host, and NICs do not forward
    ///   there; only when the host has no internal path does the search use the whole graph.
    ///   (Otherwise a chip-to-chip route could tie with a detour out over EFA and back.)
    /// - In a composition, an instance forwards nothing between other instances: a route
    ///   enters only the instances of its two ends.
    /// - Returns: `nil` when no path exists.
    public func routes(from source: NodeID, to destination: NodeID, flow: UInt64 = 0) -> RouteSet? {
        if source == destination {
            return RouteSet(source: source, destination: destination, hops: 0, pathCount: 1,
                            minimumLatency: .zero, maximumLatency: .zero, arcs: [])
        }
        let host = topology.nodes[source.index].host
        if host >= 0, topology.nodes[destination.index].host == host,
           let inside = search(from: source, to: destination, flow: flow, withinHost: host) {
            return inside
        }
        return search(from: source, to: destination, flow: flow, withinHost: nil)
    }

    /// The composition instance of each end of the current search (`-1` outside compositions).
    private var endInstances: (Int, Int) = (-1, -1)
    private lazy var instanceSize: Int = topology.composition?.instanceNodeCount ?? 0
    private lazy var firstFabricNode: Int = topology.composition?.firstFabricNode.index ?? Int.max

    /// Whether a route may pass through `node` (other than as its source or destination).
    @inline(__always)
    private func mayTransit(_ node: Int, withinHost host: Int?, ignoringInstances: Bool = false) -> Bool {
        if let host, Int(hosts[node]) != host { return false }
        if !ignoringInstances && instanceSize > 0 && node < firstFabricNode {
            let instance = node / instanceSize
            if instance != endInstances.0 && instance != endInstances.1 { return false }
        }
        switch kinds[node] {
        case .accelerator, .switch: return true
        case .cpu: return false
        case .nic: return host == nil
        }
    }

    /// The composition instance of a node; `-1` for fabric switches and outside compositions.
    @inline(__always)
    private func instance(of node: NodeID) -> Int {
        instanceSize > 0 && node.index < firstFabricNode ? node.index / instanceSize : -1
    }

    private func search(from source: NodeID, to destination: NodeID, flow: UInt64, withinHost host: Int?) -> RouteSet? {
        let t = topology
        endInstances = (instance(of: source), instance(of: destination))
        nextGeneration()
        let gen = generation
        stampF[source.index] = gen; distF[source.index] = 0
        stampB[destination.index] = gen; distB[destination.index] = 0
        var levelsF: [[NodeID]] = [[source]]
        var levelsB: [[NodeID]] = [[destination]]
        var best = Int32.max
        var expandedForward = true

        while best == .max {
            let fSize = levelsF.last!.count, bSize = levelsB.last!.count
            if fSize == 0 || bSize == 0 { return nil }
            expandedForward = fSize <= bSize
            let level = Int32(expandedForward ? levelsF.count : levelsB.count)
            var next: [NodeID] = []
            for v in (expandedForward ? levelsF.last! : levelsB.last!) {
                for j in t.arcRange(v.index) {
                    let w = Int(heads[j])
                    guard w == source.index || w == destination.index || mayTransit(w, withinHost: host) else { continue }
                    if expandedForward {
                        if stampF[w] != gen {
                            stampF[w] = gen; distF[w] = level; next.append(NodeID(w))
                            if stampB[w] == gen { best = min(best, level + distB[w]) }
                        }
                    } else {
                        if stampB[w] != gen {
                            stampB[w] = gen; distB[w] = level; next.append(NodeID(w))
                            if stampF[w] == gen { best = min(best, level + distF[w]) }
                        }
                    }
                }
            }
            if expandedForward { levelsF.append(next) } else { levelsB.append(next) }
        }
        let d = Int(best)
        // Cut level c: every shortest path crosses one node at forward distance c whose forward
        // and backward distances are both known.
        let c = expandedForward ? levelsF.count - 1 : d - (levelsB.count - 1)
        let middle = levelsF[c].filter { stampB[$0.index] == gen && Int(distB[$0.index]) == d - c }

        // Collect DAG arcs: forward half from the middle back to the source, backward half from
        // the middle on to the destination. `dagLevel` of an arc = forward distance of its tail.
        var dag: [(arc: ArcID, tail: Int32, level: Int32)] = []
        var frontier = middle
        for v in middle { stampDag[v.index] = gen }
        var l = c
        while l > 0 {
            var previous: [NodeID] = []
            for v in frontier {
                for j in t.arcRange(v.index) {
                    let u = NodeID(rawValue: heads[j])
                    guard stampF[u.index] == gen, Int(distF[u.index]) == l - 1 else { continue }
                    dag.append((ArcID(rawValue: arcs[j].rawValue ^ 1), u.rawValue, Int32(l - 1)))
                    if stampDag[u.index] != gen { stampDag[u.index] = gen; previous.append(u) }
                }
            }
            frontier = previous
            l -= 1
        }
        frontier = middle
        var k = d - c
        while k > 0 {
            var following: [NodeID] = []
            for v in frontier {
                for j in t.arcRange(v.index) {
                    let w = NodeID(rawValue: heads[j])
                    guard stampB[w.index] == gen, Int(distB[w.index]) == k - 1 else { continue }
                    dag.append((arcs[j], v.rawValue, Int32(d - k)))
                    if stampDag[w.index] != gen { stampDag[w.index] = gen; following.append(w) }
                }
            }
            frontier = following
            k -= 1
        }
        // Level, then tail, then arc: each branch point's arcs are one contiguous run.
        dag.sort { ($0.level, $0.tail, $0.arc.rawValue) < ($1.level, $1.tail, $1.arc.rawValue) }

        // Path counts, latencies and shares, level by level (tails before heads).
        for entry in dag {
            let u = t.tail(entry.arc).index, w = t.head(entry.arc).index
            pathsPre[u] = 0; pathsPre[w] = 0; share[u] = 0; share[w] = 0
            latencyMin[u] = .infinity; latencyMin[w] = .infinity; latencyMax[u] = -.infinity; latencyMax[w] = -.infinity
        }
        pathsPre[source.index] = 1; share[source.index] = 1
        latencyMin[source.index] = 0; latencyMax[source.index] = 0
        var result: [ArcShare] = []
        result.reserveCapacity(dag.count)
        var i = 0
        while i < dag.count {
            let u = Int(dag[i].tail), level = Int(dag[i].level)
            var j = i
            var spray = true
            var totalCapacity = 0.0
            while j < dag.count && dag[j].tail == dag[i].tail && dag[j].level == dag[i].level {
                let link = t.link(dag[j].arc)
                spray = spray && link.pathPolicy == .spray
                totalCapacity += link.capacity.bytesPerSecond
                j += 1
            }
            let fanOut = j - i
            spray = spray && fanOut > 1
            // Spraying splits in proportion to capacity (5 of 18 NVLink lanes carry 5/18);
            // a single-path branch sends everything down the next hop the flow hash picks, except
            // on a torus, which routes in dimension order (the lowest dimension still to travel
            // first, the positive direction when both ways are as short), as torus networks do.
            let chosen = fanOut == 1 || spray ? -1 : dimensionOrderChoice(dag[i..<j]) ?? Int(Router.mix(flow, UInt64(u)) % UInt64(fanOut))
            for index in 0..<fanOut {
                let arc = dag[i + index].arc
                let link = t.link(arc)
                let w = t.head(arc).index
                let lat = link.latency.inSeconds
                pathsPre[w] += pathsPre[u]
                latencyMin[w] = min(latencyMin[w], latencyMin[u] + lat)
                latencyMax[w] = max(latencyMax[w], latencyMax[u] + lat)
                let s: Double
                if fanOut == 1 {
                    s = share[u]
                } else if spray {
                    s = share[u] * link.capacity.bytesPerSecond / totalCapacity
                } else {
                    s = index == chosen ? share[u] : 0
                }
                share[w] += s
                result.append(ArcShare(arc: arc, share: s, level: level))
            }
            i = j
        }
        let dst = destination.index
        return RouteSet(source: source, destination: destination, hops: d, pathCount: pathsPre[dst],
                        minimumLatency: .seconds(latencyMin[dst]), maximumLatency: .seconds(latencyMax[dst]), arcs: result)
    }

    /// Which of a branch's arcs (by offset) dimension-order routing takes, when every one of them
    /// steps along a torus; `nil` otherwise.
    private func dimensionOrderChoice(_ branch: ArraySlice<(arc: ArcID, tail: Int32, level: Int32)>) -> Int? {
        var best: (offset: Int, step: Int16)?
        for (offset, entry) in branch.enumerated() {
            let step = torusStep[entry.arc.index]
            guard step >= 0 else { return nil }
            if best == nil || step < best!.step { best = (offset, step) }
        }
        return best?.offset
    }

    /// The route set between the nodes of two ranks.
    public func routes(from a: Rank, to b: Rank, flow: UInt64 = 0) -> RouteSet? {
        routes(from: topology.ranks[a.rawValue], to: topology.ranks[b.rawValue], flow: flow)
    }

    /// SplitMix64 finalizer over the flow key and the branch node: a fixed, seedless hash, so the
    /// same flow takes the same path in every run.
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 { SplitMix64.mix(a, b) }

    // MARK: - Dimension-order routes on tori

    /// The dimension-order route between two members of one torus: along dimension 0 first, then
    /// 1, and so on, each the short way round (ties go in the positive direction), as torus
    /// networks route deterministically.
    /// - Throws: `TopologyError.notOnOneTorus` when the two nodes do not share a torus.
    public func dimensionOrderRoute(from a: NodeID, to b: NodeID) throws -> [ArcID] {
        if torusOf == nil {
            var map: [NodeID: (Int, Int)] = [:]
            for (ti, torus) in topology.tori.enumerated() {
                for (m, node) in torus.members.enumerated() where map[node] == nil { map[node] = (ti, m) }
            }
            torusOf = map
        }
        guard let (ta, ma) = torusOf![a], let (tb, mb) = torusOf![b], ta == tb else {
            throw TopologyError.notOnOneTorus(topology.nodes[a.index].name, topology.nodes[b.index].name)
        }
        let torus = topology.tori[ta]
        var here = torus.coordinates(ofMember: ma)
        let goal = torus.coordinates(ofMember: mb)
        var route: [ArcID] = []
        for d in torus.dimensions.indices {
            let k = torus.dimensions[d]
            while here[d] != goal[d] {
                let forward = (goal[d] - here[d] + k) % k
                let step: Int
                if torus.wraps[d] { step = forward <= k - forward ? 1 : -1 } else { step = goal[d] > here[d] ? 1 : -1 }
                var next = here
                next[d] = (here[d] + step + k) % k
                let from = torus.members[torus.member(at: here)], to = torus.members[torus.member(at: next)]
                guard let arc = topology.arcs(from: from).first(where: { topology.head($0) == to }) else {
                    preconditionFailure("torus members \(here) and \(next) are not linked")
                }
                route.append(arc)
                here = next
            }
        }
        return route
    }

    // MARK: - Single-source distances

    /// Hop distances from `source` to every node (`-1` where unreachable), and for each node the
    /// smallest latency among its hop-shortest paths, in seconds, under the same transit rules
    /// as `routes(from:to:)`.
    public func distances(from source: NodeID) -> (hops: [Int32], latency: [Double]) {
        var (hops, latency) = bfs(from: source, withinHost: nil)
        let host = topology.nodes[source.index].host
        if host >= 0 {
            let (inHops, inLatency) = bfs(from: source, withinHost: host)
            for v in hops.indices where topology.nodes[v].host == host && inHops[v] >= 0 {
                hops[v] = inHops[v]
                latency[v] = inLatency[v]
            }
        }
        return (hops, latency)
    }

    /// Single-source search. In a composition, a node of an instance other than the source's
    /// forwards only within its own instance (a route may enter the destination's instance but
    /// never cross a third one).
    private func bfs(from source: NodeID, withinHost host: Int?) -> (hops: [Int32], latency: [Double]) {
        let t = topology
        let sourceInstance = instance(of: source)
        endInstances = (sourceInstance, -2)
        var hops = [Int32](repeating: -1, count: t.nodes.count)
        var latency = [Double](repeating: .infinity, count: t.nodes.count)
        hops[source.index] = 0
        latency[source.index] = 0
        var frontier = [source]
        var level: Int32 = 0
        while !frontier.isEmpty {
            level += 1
            var next: [NodeID] = []
            for v in frontier {
                let lv = latency[v.index]
                let vInstance = instance(of: v)
                let confined = vInstance >= 0 && vInstance != sourceInstance
                for j in t.arcRange(v.index) {
                    let w = Int(heads[j])
                    let arc = arcs[j]
                    if let host, Int(hosts[w]) != host { continue }
                    if confined && instance(of: NodeID(w)) != vInstance { continue }
                    if hops[w] < 0 {
                        hops[w] = level
                        // Reached, but it forwards nothing further unless it may transit. A node
                        // of another instance is entered (it may be the target's instance) and
                        // then forwards only inside it.
                        let wInstance = instance(of: NodeID(w))
                        let transit = wInstance >= 0 && wInstance != sourceInstance
                            ? mayTransit(w, withinHost: host, ignoringInstances: true)
                            : mayTransit(w, withinHost: host)
                        if transit { next.append(NodeID(w)) }
                    }
                    if hops[w] == level {
                        latency[w] = min(latency[w], lv + t.link(arc).latency.inSeconds)
                    }
                }
            }
            frontier = next
        }
        return (hops, latency)
    }
}

extension Topology {
    /// The equal-cost shortest paths between two nodes (a one-off query; use a `Router` for many).
    public func routes(from a: NodeID, to b: NodeID, flow: UInt64 = 0) -> RouteSet? {
        Router(self).routes(from: a, to: b, flow: flow)
    }
}
