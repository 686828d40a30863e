import ChorusCore

/// One arc of an equal-cost route set, with the fraction of a flow that crosses it.
public struct ArcShare: Hashable, Sendable {
    public var arc: ArcID
    /// Between 0 and 1. Arcs of a `single`-policy branch that the flow's hash did not pick carry 0.
    public var share: Double
    /// The arc's distance from the source in links (its first arc is at 0).
    public var level: Int
}

/// Every shortest path between two nodes, kept as a directed acyclic graph of arcs rather than
/// a list of paths (a cross-pod route in a 3-tier fat-tree has over a thousand), together with
/// how one flow spreads over it.
///
/// Spreading follows each branch point's links: where all equal-cost next hops are `spray`
/// links the flow splits evenly across them (EFA's SRD); otherwise the flow takes one next hop,
/// picked by a hash of the flow key (InfiniBand/Ethernet ECMP).
public struct RouteSet: Sendable {
    public let source: NodeID
    public let destination: NodeID
    /// Links on each shortest path.
    public let hops: Int
    /// The number of distinct shortest paths (a `Double`: it can exceed 2^64 on large fabrics).
    public let pathCount: Double
    /// Sum of link latencies along the fastest and the slowest shortest path.
    public let minimumLatency: Duration
    public let maximumLatency: Duration
    /// Every arc on some shortest path, ordered by level, then tail node, then arc id.
    public let arcs: [ArcShare]

    /// The arcs the flow actually uses (share above zero).
    public var loadedArcs: [ArcShare] { arcs.filter { $0.share > 0 } }

    /// The rate one flow reaches alone on an idle network: the smallest `capacity / share`
    /// over the arcs it uses.
    public func bottleneck(in topology: Topology) -> Bandwidth {
        var best = Double.infinity
        for a in arcs where a.share > 0 {
            best = min(best, topology.link(a.arc).capacity.bytesPerSecond / a.share)
        }
        return Bandwidth(bytesPerSecond: best.isFinite ? best : 0)
    }

    /// The shortest paths themselves, as arc lists, up to `limit` of them (depth-first, in arc order).
    public func paths(in topology: Topology, limit: Int = 64) -> [[ArcID]] {
        guard hops > 0 else { return [[]] }
        var byTail: [NodeID: [ArcID]] = [:]
        for a in arcs { byTail[topology.tail(a.arc), default: []].append(a.arc) }
        var result: [[ArcID]] = []
        var path: [ArcID] = []
        func walk(_ v: NodeID) {
            if result.count >= limit { return }
            if v == destination {
                result.append(path)
                return
            }
            for arc in byTail[v] ?? [] {
                path.append(arc)
                walk(topology.head(arc))
                path.removeLast()
            }
        }
        walk(source)
        return result
    }

    /// The route a flow takes when the set has one loaded path; `nil` when the flow is sprayed.
    public func singlePath(in topology: Topology) -> [ArcID]? {
        let loaded = loadedArcs
        guard loaded.count == hops, loaded.allSatisfy({ $0.share == 1 }) else { return nil }
        return loaded.map(\.arc)
    }
}
