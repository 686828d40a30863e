import ChorusCore
import Synchronization

/// A machine or a cluster as a graph: nodes, full-duplex links, and the nodes that ranks run on.
///
/// A `Topology` is an immutable value built from a topology file (`TopologyLoader`) or in code
/// (`TopologyBuilder`). It keeps, besides the graph, what its generators were (a torus, a Clos
/// fabric, a composition of instances), so that diameters, bisections and routes on large systems
/// come from closed forms and compact tables instead of all-pairs searches.
///
/// Storage is flat arrays indexed by `NodeID`, `LinkID` and `ArcID`, with the adjacency in
/// compressed-sparse-row form: a 65,536-chip cluster is a few hundred thousand links and tens of
/// megabytes.
public struct Topology: Sendable {
    /// The topology's name as its file declares it, e.g. `aws-trn2.48xlarge`.
    public let name: String
    /// A one-line description from the file, if any.
    public let summary: String?
    public let nodes: [Node]
    public let links: [Link]
    /// `ranks[r]` is the node rank `r` runs on.
    public let ranks: [NodeID]
    /// Named groups of nodes (the families a file declares, e.g. `chip` = `chip0…chip15`).
    public let families: [String: [NodeID]]
    /// Tori declared by `torus` generators, with coordinates for dimension-order routing.
    public let tori: [TorusEmbedding]
    /// The generators that built this topology, for closed-form metrics.
    public let generators: [GeneratorRecord]
    /// Set when the topology is `count` instances of one topology joined by a fabric.
    public let composition: Composition?

    // Adjacency (CSR): the arcs leaving node `v` are `arcList[arcOffsets[v] ..< arcOffsets[v + 1]]`.
    @usableFromInline let arcOffsets: [Int32]
    @usableFromInline let arcList: [ArcID]
    /// `arcHeadList[j]` is the head node of `arcList[j]`: searches read 4 bytes per arc here
    /// instead of a whole `Link` (a cross-pod route query went from 6 ms to well under 1 ms).
    let arcHeadList: [Int32]
    /// Node kinds and hosts in compact arrays, for the same reason.
    let nodeKindList: [NodeKind]
    let nodeHostList: [Int32]
    private let nameIndex: NameIndex

    init(name: String, summary: String?, nodes: [Node], links: [Link], ranks: [NodeID],
         families: [String: [NodeID]], tori: [TorusEmbedding], generators: [GeneratorRecord],
         composition: Composition?, knownNames: [String: NodeID]?) {
        self.name = name
        self.summary = summary
        self.nodes = nodes
        self.links = links
        self.ranks = ranks
        self.families = families
        self.tori = tori
        self.generators = generators
        self.composition = composition
        (self.arcOffsets, self.arcList) = Topology.buildAdjacency(nodeCount: nodes.count, links: links)
        self.arcHeadList = arcList.map { links[$0.link.index].head(reversed: $0.isReversed).rawValue }
        self.nodeKindList = nodes.map(\.kind)
        self.nodeHostList = nodes.map { Int32(truncatingIfNeeded: $0.host) }
        self.nameIndex = NameIndex(prebuilt: knownNames)
    }

    /// Counting sort of arcs by tail node.
    private static func buildAdjacency(nodeCount: Int, links: [Link]) -> ([Int32], [ArcID]) {
        var degree = [Int32](repeating: 0, count: nodeCount + 1)
        for link in links {
            degree[link.a.index + 1] += 1
            degree[link.b.index + 1] += 1
        }
        for i in 0..<nodeCount { degree[i + 1] += degree[i] }
        var cursor = degree
        var arcs = [ArcID](repeating: ArcID(rawValue: 0), count: links.count * 2)
        for (l, link) in links.enumerated() {
            let id = LinkID(l)
            arcs[Int(cursor[link.a.index])] = ArcID(link: id, reversed: false)
            cursor[link.a.index] += 1
            arcs[Int(cursor[link.b.index])] = ArcID(link: id, reversed: true)
            cursor[link.b.index] += 1
        }
        return (degree, arcs)
    }

    // MARK: - Queries

    /// The number of ranks.
    @inlinable public var rankCount: Int { ranks.count }

    /// The node with this exact name.
    /// - Complexity: O(1) after the first call, which indexes every name once.
    public func node(named name: String) -> NodeID? { nameIndex.lookup(name, in: nodes) }

    /// The node rank `r` runs on.
    @inlinable public func node(of rank: Rank) -> NodeID { ranks[rank.rawValue] }

    /// The arcs leaving `node`.
    @inlinable
    public func arcs(from node: NodeID) -> ArraySlice<ArcID> {
        arcList[Int(arcOffsets[node.index])..<Int(arcOffsets[node.index + 1])]
    }

    /// The link an arc belongs to.
    @inlinable public func link(_ arc: ArcID) -> Link { links[arc.link.index] }

    /// Where an arc starts.
    @inlinable public func tail(_ arc: ArcID) -> NodeID { links[arc.link.index].tail(reversed: arc.isReversed) }

    /// Where an arc ends.
    @inlinable public func head(_ arc: ArcID) -> NodeID { links[arc.link.index].head(reversed: arc.isReversed) }

    /// The CSR index range of the arcs leaving `node` (index into the compact arc arrays).
    @inline(__always)
    func arcRange(_ node: Int) -> Range<Int> { Int(arcOffsets[node])..<Int(arcOffsets[node + 1]) }

    /// The arc count: two per link.
    @inlinable public var arcCount: Int { links.count * 2 }

    /// A readable name for an arc: `chip0 -> chip1`.
    public func describe(_ arc: ArcID) -> String { "\(nodes[tail(arc).index].name) -> \(nodes[head(arc).index].name)" }

    /// The ranks whose nodes sit on `host`.
    public func ranks(onHost host: Int) -> [Rank] {
        ranks.enumerated().filter { nodes[$0.element.index].host == host }.map { Rank($0.offset) }
    }

    /// The number of distinct hosts that carry ranks.
    public var rankHostCount: Int { Set(ranks.map { nodes[$0.index].host }).count }
}

// MARK: - Structure records

/// A torus built by a `torus` generator, with the coordinates of its members.
///
/// Coordinates are row-major: member `i` of a `[4, 4]` torus sits at `(i / 4, i % 4)`, the last
/// dimension varying fastest, matching Neuron's device numbering on trn1 and trn2.
public struct TorusEmbedding: Hashable, Sendable {
    /// The family the torus was built over.
    public var family: String
    /// Member `i` of the torus, in row-major coordinate order.
    public var members: [NodeID]
    public var dimensions: [Int]
    /// Whether each dimension wraps around (a ring) or is a line.
    public var wraps: [Bool]

    /// The coordinates of member `index`.
    public func coordinates(ofMember index: Int) -> [Int] {
        var rest = index
        var coords = [Int](repeating: 0, count: dimensions.count)
        for d in dimensions.indices.reversed() {
            coords[d] = rest % dimensions[d]
            rest /= dimensions[d]
        }
        return coords
    }

    /// The member index at `coordinates` (row-major).
    public func member(at coordinates: [Int]) -> Int {
        var index = 0
        for d in dimensions.indices { index = index * dimensions[d] + coordinates[d] }
        return index
    }
}

/// What a generator built, kept for closed-form metrics (bisection, diameter).
public struct GeneratorRecord: Hashable, Sendable {
    public enum Shape: Hashable, Sendable {
        /// `members` nodes in a cycle.
        case ring
        /// A torus or mesh grid; per-dimension capacity in `dimensionCapacities`.
        case torus(dimensions: [Int], wraps: [Bool])
        /// `switches` crossbar switches, each linked to every member.
        case crossbar(switches: Int)
        /// Every pair of members linked directly.
        case fullMesh
        /// Each member linked to one node of another family (NIC or host attachment).
        case attach
        /// A folded Clos (fat-tree) over `ports` endpoint ports.
        case clos(ClosShape)
    }

    public var shape: Shape
    /// The family the generator connected (for a Clos: the endpoint nodes).
    public var family: String
    public var members: Int
    public var kind: LinkKind
    /// Per-member capacity in each direction: for a ring or mesh, of one link; for a crossbar, the
    /// member's links to all switches together; for a Clos, one endpoint port.
    public var capacity: Bandwidth
    /// Per-dimension link capacity, for tori.
    public var dimensionCapacities: [Bandwidth]
}

/// The shape of a built Clos fabric.
public struct ClosShape: Hashable, Sendable {
    public var radix: Int
    /// Tiers actually built (a fabric whose ports fit on one leaf is one tier, whatever was asked).
    public var tiers: Int
    /// Leaf downlinks per uplink (1 is non-blocking).
    public var oversubscription: Double
    public var ports: Int
    /// Endpoint ports per leaf.
    public var leafDownlinks: Int
    /// Switches per tier, leaves first.
    public var switchesPerTier: [Int]
}

/// The record of a composed topology: `count` copies of `instance`, with NIC `r` of every copy
/// on rail `r` of the fabric.
public final class Composition: Sendable {
    /// The topology every instance copies. Instance `i`'s node `n` is node `i × instanceNodeCount + n`.
    public let instance: Topology
    public let count: Int
    /// The family of the instance whose member `r` is the NIC on rail `r`.
    public let railFamily: String
    /// The fabric's structure (its generator record).
    public let fabric: GeneratorRecord
    /// Links of the fabric, from the first fabric link to the end of `links`.
    public let firstFabricLink: LinkID
    /// Nodes of the fabric, from the first fabric node to the end of `nodes`.
    public let firstFabricNode: NodeID

    init(instance: Topology, count: Int, railFamily: String, fabric: GeneratorRecord, firstFabricLink: LinkID, firstFabricNode: NodeID) {
        self.instance = instance
        self.count = count
        self.railFamily = railFamily
        self.fabric = fabric
        self.firstFabricLink = firstFabricLink
        self.firstFabricNode = firstFabricNode
    }

    public var instanceNodeCount: Int { instance.nodes.count }

    /// The instance a node of the composed topology belongs to, or `nil` for fabric switches.
    public func instance(of node: NodeID) -> Int? {
        node < firstFabricNode ? node.index / instance.nodes.count : nil
    }
}

// MARK: - Name index

/// Name → node lookup, built on first use (composed clusters have 10^5 nodes and most callers
/// never look one up by name).
private final class NameIndex: Sendable {
    private let table: Mutex<[String: NodeID]?>

    init(prebuilt: [String: NodeID]?) { table = Mutex(prebuilt) }

    func lookup(_ name: String, in nodes: [Node]) -> NodeID? {
        table.withLock { table in
            if table == nil {
                var built = [String: NodeID](minimumCapacity: nodes.count)
                for (i, node) in nodes.enumerated() { built[node.name] = NodeID(i) }
                table = built
            }
            return table![name]
        }
    }
}
