import ChorusCore

/// Everything that can go wrong building, loading or querying a topology.
public enum TopologyError: Error, CustomStringConvertible, Sendable {
    /// A topology file (or a file it includes) has problems: one diagnostic per problem, each
    /// naming `file:line:column`, the field, and what was expected.
    case invalid(Diagnostics)
    /// A topology built in code is inconsistent; the sentence says how.
    case build(String)
    /// A query named a node that does not exist.
    case unknownNode(String)
    /// A query named a rank outside `0 ..< rankCount`.
    case rankOutOfRange(Rank, rankCount: Int)
    /// A dimension-order route was asked between nodes that are not on one torus.
    case notOnOneTorus(String, String)

    public var description: String {
        switch self {
        case .invalid(let diagnostics): return diagnostics.description
        case .build(let message): return message
        case .unknownNode(let name): return "unknown node '\(name)'"
        case .rankOutOfRange(let rank, let count): return "\(rank) is out of range: the topology has \(count) ranks (0...\(count - 1))"
        case .notOnOneTorus(let a, let b): return "'\(a)' and '\(b)' are not members of one torus, so there is no dimension-order route between them"
        }
    }

    /// The diagnostics, if this is a file error.
    public var diagnostics: [Diagnostic] {
        if case .invalid(let d) = self { return d.items }
        return []
    }
}

extension Topology {
    /// Checks the rank mapping: at least one rank, ranks on accelerators or CPUs, one rank per
    /// node, and every rank connected to rank 0.
    func checkRanks(connectivity: Bool = true) throws {
        guard !ranks.isEmpty else { throw TopologyError.build("the topology has no ranks; say which nodes run ranks with 'ranks:'") }
        var seen = [Int32](repeating: -1, count: nodes.count)
        for (r, node) in ranks.enumerated() {
            let n = nodes[node.index]
            guard n.kind == .accelerator || n.kind == .cpu else {
                throw TopologyError.build("rank \(r) is on '\(n.name)', a \(n.kind); ranks run on accelerators or CPUs")
            }
            if seen[node.index] >= 0 {
                throw TopologyError.build("ranks \(seen[node.index]) and \(r) are both on '\(n.name)'; give each rank its own node")
            }
            seen[node.index] = Int32(r)
        }
        guard connectivity else { return }
        let reached = reachable(from: ranks[0])
        if let lost = ranks.firstIndex(where: { !reached[$0.index] }) {
            throw TopologyError.build("rank \(lost) ('\(nodes[ranks[lost].index].name)') cannot reach rank 0 ('\(nodes[ranks[0].index].name)'): no chain of links joins them")
        }
    }

    /// Which nodes a breadth-first search from `start` reaches.
    func reachable(from start: NodeID) -> [Bool] {
        var seen = [Bool](repeating: false, count: nodes.count)
        var queue: [NodeID] = [start]
        seen[start.index] = true
        var cursor = 0
        while cursor < queue.count {
            let v = queue[cursor]
            cursor += 1
            for arc in arcs(from: v) {
                let w = head(arc)
                if !seen[w.index] {
                    seen[w.index] = true
                    queue.append(w)
                }
            }
        }
        return seen
    }
}
