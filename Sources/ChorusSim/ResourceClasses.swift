import ChorusCore
import ChorusSchedule
import ChorusTopology

/// Resources the topology cannot tell apart, found by colour refinement: nodes start coloured by
/// what they are (kind, line rate, memory bandwidth, and for ranks their orbit under the plan's
/// symmetry), and each round recolours a node by its colour and the multiset of (link, neighbour
/// colour) around it, until no class splits. Two arcs are in one class when their ends' colours
/// and their link attributes match; two NIC directions when their NICs' colours match.
///
/// The classes are unions of the topology's automorphism orbits (each tier of a Clos, each
/// dimension of a torus with its directions, the chip-to-NIC attachments), which is what
/// averaging a symmetric load over "the links like this one" needs.
struct ResourceClasses {
    /// Class of each resource (`NetworkResources` numbering).
    let classOf: [Int32]
    /// Resources in each class, and the first of them (which names the class).
    let size: [Int]
    let firstMember: [Int]

    init(_ resources: NetworkResources, symmetry: RankSymmetry) {
        let topology = resources.topology
        let nodeCount = topology.nodes.count
        var orbitOfNode = [Int](repeating: -1, count: nodeCount)
        for r in 0..<min(symmetry.ranks, topology.rankCount) { orbitOfNode[topology.ranks[r].index] = symmetry.representative(of: r) }
        let linkAttribute = topology.links.map { link -> UInt64 in
            var h = Hasher()
            h.combine(link.kind.rawValue)
            h.combine(link.capacity.bytesPerSecond)
            h.combine(link.latency)
            h.combine(link.pathPolicy == .spray)
            return UInt64(bitPattern: Int64(h.finalize()))
        }
        var color = Self.dense(topology.nodes.enumerated().map { v, node in
            var h = Hasher()
            h.combine(node.kind.rawValue)
            h.combine(node.lineRate?.bytesPerSecond ?? -1)
            h.combine(node.memoryBandwidth?.bytesPerSecond ?? -1)
            h.combine(orbitOfNode[v])
            return UInt64(bitPattern: Int64(h.finalize()))
        })
        var classes = Set(color).count
        var around: [(UInt64, Int32)] = []
        for _ in 0..<64 {
            var signature = [UInt64](repeating: 0, count: nodeCount)
            for v in 0..<nodeCount {
                around.removeAll(keepingCapacity: true)
                for arc in topology.arcs(from: NodeID(v)) {
                    around.append((linkAttribute[arc.link.index], color[topology.head(arc).index]))
                }
                around.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
                var h = Hasher()
                h.combine(color[v])
                for (a, c) in around {
                    h.combine(a)
                    h.combine(c)
                }
                signature[v] = UInt64(bitPattern: Int64(h.finalize()))
            }
            let refined = Self.dense(signature)
            let count = Set(refined).count
            color = refined
            if count == classes { break }
            classes = count
        }
        var keys = [UInt64](repeating: 0, count: resources.count)
        for j in 0..<topology.arcCount {
            let arc = ArcID(rawValue: Int32(j))
            var h = Hasher()
            h.combine(0)
            h.combine(color[topology.tail(arc).index])
            h.combine(color[topology.head(arc).index])
            h.combine(linkAttribute[arc.link.index])
            keys[j] = UInt64(bitPattern: Int64(h.finalize()))
        }
        for r in topology.arcCount..<resources.count {
            var h = Hasher()
            h.combine(1)
            h.combine(color[resources.nicNode(of: r)!])
            h.combine((r - topology.arcCount) % 2)
            keys[r] = UInt64(bitPattern: Int64(h.finalize()))
        }
        let dense = Self.dense(keys)
        // Dense ids number classes by first appearance, so class c's first member is where the
        // count of classes seen reaches c.
        var size: [Int] = [], firstMember: [Int] = []
        for (r, c) in dense.enumerated() {
            if Int(c) == size.count {
                size.append(0)
                firstMember.append(r)
            }
            size[Int(c)] += 1
        }
        classOf = dense
        self.size = size
        self.firstMember = firstMember
    }

    /// Renumbers values densely in order of first appearance (deterministic: hashing is seeded
    /// per process, but the partition it induces is not).
    private static func dense(_ values: [UInt64]) -> [Int32] {
        var ids: [UInt64: Int32] = [:]
        ids.reserveCapacity(1024)
        return values.map { v in
            if let id = ids[v] { return id }
            let id = Int32(ids.count)
            ids[v] = id
            return id
        }
    }
}
