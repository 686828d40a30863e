import ChorusCore

/// Builds a `Topology` in code: nodes, families, links, generators, ranks.
///
/// The file loader drives this type, and so can a program (the runtime builds the host-level
/// topology it learns at rendezvous this way). Methods that can fail on bad input throw a
/// `TopologyError.build` with a sentence naming the problem; the loader adds the file location.
///
/// ```swift
/// var b = TopologyBuilder(name: "ring-8")
/// let chips = try b.addFamily("chip", count: 8, kind: .accelerator)
/// try b.ring(over: "chip", LinkAttributes(kind: .neuronlink, bandwidth: .gigabytesPerSecond(100), latency: .microseconds(1)))
/// b.setRanks(chips)
/// let topology = try b.build()
/// ```
public struct TopologyBuilder {
    public var name: String
    public var summary: String?
    private(set) var nodes: [Node] = []
    private(set) var links: [Link] = []
    private(set) var ranks: [NodeID] = []
    private(set) var families: [String: [NodeID]] = [:]
    private(set) var tori: [TorusEmbedding] = []
    private(set) var generators: [GeneratorRecord] = []
    private(set) var names: [String: NodeID] = [:]
    private var composition: Composition?
    /// Names of every family in declaration order (dictionary order is not stable).
    private(set) var familyOrder: [String] = []

    public init(name: String, summary: String? = nil) {
        self.name = name
        self.summary = summary
    }

    // MARK: - Nodes

    /// Adds one node.
    /// - Throws: `TopologyError.build` if the name is taken or is the name of a family.
    @discardableResult
    public mutating func addNode(_ name: String, kind: NodeKind, host: Int = 0) throws -> NodeID {
        try checkNewName(name)
        let id = NodeID(nodes.count)
        nodes.append(Node(name: name, kind: kind, host: host))
        names[name] = id
        return id
    }

    /// Adds `count` nodes named `name0 … name{count−1}` and records them as the family `name`.
    /// - Parameter host: the host of member `i`; defaults to host 0 for all.
    /// - Throws: `TopologyError.build` if any member name is taken.
    @discardableResult
    public mutating func addFamily(_ name: String, count: Int, kind: NodeKind, host: (Int) -> Int = { _ in 0 }) throws -> [NodeID] {
        guard count >= 1 else { throw TopologyError.build("family '\(name)' needs at least one member, got \(count)") }
        guard families[name] == nil, names[name] == nil else { throw TopologyError.build("duplicate name '\(name)'") }
        var members: [NodeID] = []
        members.reserveCapacity(count)
        for i in 0..<count {
            members.append(try addNode("\(name)\(i)", kind: kind, host: host(i)))
        }
        families[name] = members
        familyOrder.append(name)
        return members
    }

    /// Groups existing nodes under a family name (for rank lists and generators).
    public mutating func defineFamily(_ name: String, members: [NodeID]) throws {
        guard families[name] == nil else { throw TopologyError.build("duplicate family '\(name)'") }
        families[name] = members
        familyOrder.append(name)
    }

    /// Records how much memory a node has and how fast it is (HBM for accelerators, DRAM for CPUs).
    public mutating func setMemory(of node: NodeID, size: ByteCount?, bandwidth: Bandwidth?) {
        nodes[node.index].memory = size
        nodes[node.index].memoryBandwidth = bandwidth
    }

    private func checkNewName(_ name: String) throws {
        guard !name.isEmpty else { throw TopologyError.build("a node name must not be empty") }
        if let existing = names[name] {
            if let (family, members) = families.first(where: { $0.value.contains(existing) }) {
                let index = members.firstIndex(of: existing)!
                throw TopologyError.build("duplicate node name '\(name)': member \(index) of family '\(family)' already has that name")
            }
            throw TopologyError.build("duplicate node name '\(name)': a \(nodes[existing.index].kind) already has that name")
        }
        if families[name] != nil { throw TopologyError.build("duplicate name '\(name)': a family has that name") }
    }

    /// Records a NIC's line rate (per direction).
    public mutating func setLineRate(of node: NodeID, _ rate: Bandwidth) {
        nodes[node.index].lineRate = rate
    }

    /// The node with this name, or the single member of a one-node family.
    public func lookup(_ name: String) -> NodeID? { names[name] }

    /// The members of a family, or the node with that name as a one-member group.
    public func group(_ name: String) -> [NodeID]? {
        if let members = families[name] { return members }
        if let node = names[name] { return [node] }
        return nil
    }

    /// The number of nodes so far.
    public var nodeCount: Int { nodes.count }

    /// A node added so far.
    public func node(_ id: NodeID) -> Node { nodes[id.index] }

    // MARK: - Links

    /// Adds one link between two existing nodes.
    /// - Throws: `TopologyError.build` for a self-loop, a non-positive bandwidth, latency or count.
    @discardableResult
    public mutating func addLink(_ a: NodeID, _ b: NodeID, _ attributes: LinkAttributes) throws -> LinkID {
        guard a != b else { throw TopologyError.build("a link cannot join '\(nodes[a.index].name)' to itself") }
        try Self.check(attributes)
        let id = LinkID(links.count)
        links.append(Link(a: a, b: b, kind: attributes.kind, bandwidth: attributes.bandwidth,
                          latency: attributes.latency, count: attributes.count, pathPolicy: attributes.pathPolicy))
        return id
    }

    static func check(_ attributes: LinkAttributes) throws {
        guard attributes.bandwidth.bytesPerSecond > 0, attributes.bandwidth.bytesPerSecond.isFinite else {
            throw TopologyError.build("bandwidth must be positive, got \(attributes.bandwidth)")
        }
        guard attributes.latency > .zero else {
            throw TopologyError.build("latency must be positive, got \(attributes.latency.chorusDescription)")
        }
        guard attributes.count >= 1 else { throw TopologyError.build("count must be at least 1, got \(attributes.count)") }
    }

    func members(_ family: String) throws -> [NodeID] {
        guard let members = group(family) else { throw TopologyError.build("unknown node or family '\(family)'") }
        return members
    }

    // MARK: - Generators

    /// Links family members `0 → 1 → … → n−1 → 0`. A family of two gets one link; of one, none.
    public mutating func ring(over family: String, _ attributes: LinkAttributes) throws {
        let members = try members(family)
        try Self.check(attributes)
        let n = members.count
        if n >= 2 {
            for i in 0..<(n == 2 ? 1 : n) {
                try addLink(members[i], members[(i + 1) % n], attributes)
            }
        }
        generators.append(GeneratorRecord(shape: .ring, family: family, members: n, kind: attributes.kind,
                                          capacity: attributes.capacity, dimensionCapacities: []))
    }

    /// Links a family as an N-dimensional torus (or grid, where a dimension does not wrap).
    ///
    /// Member `i` sits at the row-major coordinates of `i` (last dimension fastest). Along each
    /// dimension of size `k`, neighbours differ by one in that coordinate; a wrapping dimension
    /// also links `k−1` back to `0` when `k > 2` (for `k = 2` the two are already neighbours).
    /// - Parameter perDimension: the link attributes of each dimension.
    public mutating func torus(over family: String, dimensions: [Int], wraps: [Bool], perDimension: [LinkAttributes]) throws {
        let members = try members(family)
        guard !dimensions.isEmpty, dimensions.allSatisfy({ $0 >= 1 }) else {
            throw TopologyError.build("torus dimensions must be positive integers, got \(dimensions)")
        }
        guard wraps.count == dimensions.count, perDimension.count == dimensions.count else {
            throw TopologyError.build("torus needs one wrap flag and one link description per dimension")
        }
        let product = dimensions.reduce(1, *)
        guard product == members.count else {
            throw TopologyError.build("torus \(dimensions.map(String.init).joined(separator: "x")) has \(product) positions but '\(family)' has \(members.count) members")
        }
        let embedding = TorusEmbedding(family: family, members: members, dimensions: dimensions, wraps: wraps)
        for i in 0..<members.count {
            let coords = embedding.coordinates(ofMember: i)
            for d in dimensions.indices {
                let k = dimensions[d]
                guard k >= 2 else { continue }
                let attributes = perDimension[d]
                // Link to the +1 neighbour; the last position links back to 0 only on a wrapping
                // dimension longer than 2.
                if coords[d] + 1 < k || (wraps[d] && k > 2) {
                    var next = coords
                    next[d] = (coords[d] + 1) % k
                    try addLink(members[i], members[embedding.member(at: next)], attributes)
                }
            }
        }
        tori.append(embedding)
        generators.append(GeneratorRecord(
            shape: .torus(dimensions: dimensions, wraps: wraps), family: family, members: members.count,
            kind: perDimension[0].kind, capacity: perDimension.map(\.capacity).min() ?? .zero,
            dimensionCapacities: perDimension.map(\.capacity)))
    }

    /// Links every member of `family` to every node of `switches` (a full crossbar per switch).
    /// - Parameter counts: lanes from each member to switch `s` (`counts[s]`), or one value for all.
    public mutating func crossbar(over family: String, switches: String, _ attributes: LinkAttributes, counts: [Int]? = nil) throws {
        let members = try members(family)
        let hubs = try self.members(switches)
        if let counts {
            guard counts.count == hubs.count else {
                throw TopologyError.build("'count' lists \(counts.count) values but '\(switches)' has \(hubs.count) switches")
            }
        }
        var perMember = Bandwidth.zero
        for (s, hub) in hubs.enumerated() {
            var a = attributes
            if let counts { a.count = counts[s] }
            perMember = perMember + a.capacity
            for member in members { try addLink(member, hub, a) }
        }
        generators.append(GeneratorRecord(shape: .crossbar(switches: hubs.count), family: family, members: members.count,
                                          kind: attributes.kind, capacity: perMember, dimensionCapacities: []))
    }

    /// Links every pair of members directly.
    public mutating func fullMesh(over family: String, _ attributes: LinkAttributes) throws {
        let members = try members(family)
        for i in 0..<members.count {
            for j in (i + 1)..<max(i + 1, members.count) { try addLink(members[i], members[j], attributes) }
        }
        generators.append(GeneratorRecord(shape: .fullMesh, family: family, members: members.count,
                                          kind: attributes.kind, capacity: attributes.capacity, dimensionCapacities: []))
    }

    /// Links member `i` of `family` to member `⌊i · m / n⌋` of `targets` (n members, m targets):
    /// one-to-one when the sizes match, consecutive members sharing a target otherwise
    /// (two trn1 chips per EFA device).
    public mutating func attach(_ family: String, to targets: String, _ attributes: LinkAttributes) throws {
        let members = try members(family)
        let hosts = try self.members(targets)
        let n = members.count, m = hosts.count
        guard m <= n else {
            throw TopologyError.build("cannot attach \(n) member(s) of '\(family)' to \(m) members of '\(targets)': each target needs at least one member")
        }
        for i in 0..<n { try addLink(members[i], hosts[i * m / n], attributes) }
        generators.append(GeneratorRecord(shape: .attach, family: family, members: n, kind: attributes.kind,
                                          capacity: attributes.capacity, dimensionCapacities: []))
    }

    // MARK: - Ranks

    /// Sets rank `r` to run on `nodes[r]`.
    public mutating func setRanks(_ nodes: [NodeID]) { ranks = nodes }

    // MARK: - Build

    /// Checks the whole graph and freezes it.
    /// - Throws: `TopologyError.build` when there are no ranks, a rank sits on a switch or a NIC,
    ///   a node hosts two ranks, or some rank cannot reach rank 0.
    public func build() throws -> Topology {
        let topology = freeze()
        try topology.checkRanks()
        return topology
    }

    /// Freezes without checks (the loader checks with file locations).
    func freeze() -> Topology {
        Topology(name: name, summary: summary, nodes: nodes, links: links, ranks: ranks, families: families,
                 tori: tori, generators: generators, composition: composition, knownNames: names.isEmpty ? nil : names)
    }

    // MARK: - Internal access for composition and fabrics

    mutating func appendRaw(nodes newNodes: [Node], links newLinks: [Link]) {
        nodes.append(contentsOf: newNodes)
        links.append(contentsOf: newLinks)
    }

    mutating func setComposition(_ c: Composition) { composition = c }
    mutating func recordGenerator(_ g: GeneratorRecord) { generators.append(g) }
    mutating func recordTorus(_ t: TorusEmbedding) { tori.append(t) }
    mutating func setFamilies(_ f: [String: [NodeID]], order: [String]) {
        families = f
        familyOrder = order
    }
    mutating func dropNameIndex() { names = [:] }
}
