import ChorusCore
import ChorusTopology

/// The capacities a flow competes for: every arc (one direction of a link), then two per NIC
/// with a line rate (injection, then ejection), numbered in that order.
struct NetworkResources {
    let topology: Topology
    /// Bytes per picosecond of each resource.
    let capacities: [Double]
    /// Resource index of each NIC's injection direction (ejection is the next), `-1` elsewhere.
    let nicResource: [Int32]
    /// The NIC node behind each NIC resource pair, by `(resource - arcCount) / 2`.
    private let nicNodes: [Int]

    init(topology: Topology, calibration: LinkCalibration?) {
        self.topology = topology
        var capacities = (0..<topology.arcCount).map { topology.capacity(of: ArcID(rawValue: Int32($0)), calibration: calibration) / 1e12 }
        var nicResource = [Int32](repeating: -1, count: topology.nodes.count)
        var nicNodes: [Int] = []
        for (v, node) in topology.nodes.enumerated() where node.kind == .nic {
            guard let rate = node.lineRate else { continue }
            nicResource[v] = Int32(capacities.count)
            nicNodes.append(v)
            capacities.append(rate.bytesPerSecond / 1e12)
            capacities.append(rate.bytesPerSecond / 1e12)
        }
        self.capacities = capacities
        self.nicResource = nicResource
        self.nicNodes = nicNodes
    }

    var count: Int { capacities.count }

    /// Calls `body` with every resource a route loads and the share of the flow it carries:
    /// each loaded arc, and for network links the NIC line rates at either end.
    @inline(__always)
    func forEachShare(of set: RouteSet, _ body: (Int32, Double) -> Void) {
        for a in set.arcs where a.share > 0 {
            body(a.arc.rawValue, a.share)
            guard topology.link(a.arc).kind.isNetwork else { continue }
            let tail = nicResource[topology.tail(a.arc).index], head = nicResource[topology.head(a.arc).index]
            if tail >= 0 { body(tail, a.share) }
            if head >= 0 { body(head + 1, a.share) }
        }
    }

    /// The resources of one route with their shares summed, in first-use order.
    func shares(of set: RouteSet) -> [(Int32, Double)] {
        var shares: [Int32: Double] = [:]
        var order: [Int32] = []
        forEachShare(of: set) { r, s in
            if shares[r] == nil { order.append(r) }
            shares[r, default: 0] += s
        }
        return order.map { ($0, shares[$0]!) }
    }

    /// `chip0 -> chip1`, or `inst0/efa3 injection`.
    func name(of resource: Int) -> String {
        if resource < topology.arcCount { return topology.describe(ArcID(rawValue: Int32(resource))) }
        let k = resource - topology.arcCount
        return "\(topology.nodes[nicNodes[k / 2]].name) \(k % 2 == 0 ? "injection" : "ejection")"
    }

    /// The link kind, or `nic`.
    func kind(of resource: Int) -> String {
        resource < topology.arcCount ? topology.link(ArcID(rawValue: Int32(resource))).kind.rawValue : "nic"
    }

    /// The NIC node of a NIC resource, `nil` for arcs.
    func nicNode(of resource: Int) -> Int? {
        resource < topology.arcCount ? nil : nicNodes[(resource - topology.arcCount) / 2]
    }
}
