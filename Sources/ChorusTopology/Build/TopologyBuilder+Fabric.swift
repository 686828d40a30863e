import ChorusCore

/// How a fabric is built: one crossbar switch, or a folded Clos (fat-tree).
public enum FabricShape: Hashable, Sendable {
    /// One switch with a port for every endpoint.
    case crossbar
    /// A folded Clos of `radix`-port switches.
    ///
    /// Leaves split their ports `oversubscription : 1` between endpoints and uplinks; tiers above
    /// the leaves are non-blocking (half down, half up), and the top tier turns every port down.
    /// With radix `k` and non-blocking leaves this holds `k` endpoints in one tier, `k²/2` in
    /// two, `k³/4` in three (65,536 for `k = 64`), `2(k/2)^t` in `t`.
    /// `tiers: nil` picks the fewest tiers that hold the endpoints.
    case clos(radix: Int, tiers: Int?, oversubscription: Double)
}

/// Where the NICs of composed instances land on a fabric's leaves.
public enum RailPlacement: String, Hashable, Sendable, CaseIterable {
    /// NICs of one instance sit side by side (a plain Clos: an instance's NICs share leaves).
    case instance
    /// NIC `r` of every instance sits in rail `r`'s leaves (rail-optimized: same-rail traffic
    /// between instances crosses one leaf, or as few tiers as the rail needs).
    case rail
}

/// A fabric to build: its shape, where instance NICs land, and its links.
public struct FabricDescription: Hashable, Sendable {
    public var shape: FabricShape
    public var placement: RailPlacement
    public var attributes: LinkAttributes

    public init(shape: FabricShape, placement: RailPlacement, attributes: LinkAttributes) {
        self.shape = shape
        self.placement = placement
        self.attributes = attributes
    }

    /// Endpoint ports per leaf for `ports` endpoints (all ports of a one-tier fabric).
    func leafDownlinks(forPorts ports: Int) throws -> Int {
        try plan(ports: ports).leafDownlinks
    }

    /// Chooses tiers and the leaf split for `ports` endpoints.
    /// - Throws: `TopologyError.build` when the shape cannot hold that many endpoints.
    public func plan(ports: Int) throws -> (tiers: Int, leafDownlinks: Int, radix: Int) {
        switch shape {
        case .crossbar:
            return (1, max(ports, 1), max(ports, 2))
        case .clos(let k, let requested, let o):
            guard k >= 2 else { throw TopologyError.build("clos radix must be at least 2, got \(k)") }
            guard o >= 1, o.isFinite else { throw TopologyError.build("oversubscription must be at least 1 (down:up), got \(o)") }
            if let requested, requested < 1 || requested > 6 {
                throw TopologyError.build("clos tiers must be between 1 and 6, got \(requested)")
            }
            func downlinks(_ t: Int) -> Int {
                t == 1 ? k : min(k - 1, max(1, Int((Double(k) * o / (o + 1)).rounded())))
            }
            func capacity(_ t: Int) -> Double {
                if t == 1 { return Double(k) }
                var c = Double(downlinks(t)) * Double(k)
                for _ in 0..<(t - 2) { c *= Double(k / 2) }
                return c
            }
            if let t = requested {
                if t >= 3 && k % 2 != 0 { throw TopologyError.build("a clos of 3 or more tiers needs an even radix, got \(k)") }
                guard capacity(t) >= Double(ports) else {
                    throw TopologyError.build("a clos of radix \(k) with \(t) tier\(t == 1 ? "" : "s") and oversubscription \(formatTrimmed(o, maxFractionDigits: 2)) holds at most \(Int(capacity(t))) endpoint ports; this topology needs \(ports)")
                }
                return (t, downlinks(t), k)
            }
            for t in 1...6 where capacity(t) >= Double(ports) && (t < 3 || k % 2 == 0) {
                return (t, downlinks(t), k)
            }
            throw TopologyError.build("no clos of radix \(k) with up to 6 tiers holds \(ports) endpoint ports")
        }
    }
}

extension TopologyBuilder {
    /// Builds a fabric and links endpoint `slots[p]` to port `p` (a `nil` slot is an unused port).
    ///
    /// Construction (levels bottom-up): each leaf is a block exposing its uplinks. A level groups
    /// up to `radix/2` blocks (or `radix` at the top tier) and adds one switch per uplink index
    /// ("plane"): switch `p` links to uplink `p` of every block in the group. The first level that
    /// needs only one group is the top; there, planes are merged onto fewer switches with parallel
    /// lanes when a top switch would otherwise use few of its ports (4 SuperPOD units: 32 leaves,
    /// 16 spines, 2 lanes each).
    /// - Returns: the fabric's record.
    @discardableResult
    public mutating func buildFabric(_ fabric: FabricDescription, slots: [NodeID?], endpointFamily: String) throws -> GeneratorRecord {
        let attributes = fabric.attributes
        try Self.check(attributes)
        let ports = slots.lazy.filter { $0 != nil }.count
        let (tiersAllowed, d1, k) = try fabric.plan(ports: slots.count)
        let leafCount = max(1, (slots.count + d1 - 1) / d1)
        let u1 = k - d1
        var switchesPerTier: [Int] = []
        var tiersBuilt = 1
        let oversubscription: Double
        if case .clos(_, _, let o) = fabric.shape { oversubscription = o } else { oversubscription = 1 }

        // Level 1: leaves, and endpoint links.
        let leafName = (tiersAllowed == 1 && fabric.shape == .crossbar) ? "switch" : "leaf"
        var leaves: [NodeID] = []
        leaves.reserveCapacity(leafCount)
        for i in 0..<leafCount { leaves.append(try addNode("\(leafName)\(i)", kind: .switch, host: -1)) }
        for (p, slot) in slots.enumerated() {
            guard let endpoint = slot else { continue }
            // A port runs at the slower of the fabric's link and the NIC's line rate.
            var port = attributes
            if let rate = node(endpoint).lineRate, rate < port.bandwidth { port.bandwidth = rate }
            try addLink(endpoint, leaves[p / d1], port)
        }
        switchesPerTier.append(leafCount)

        // Each block lists the node behind each of its uplinks.
        var blocks: [[NodeID]] = leaves.map { [NodeID](repeating: $0, count: u1) }
        var level = 1
        while blocks.count > 1 {
            level += 1
            let isTop = level == tiersAllowed
            let fanIn = isTop ? k : k / 2
            let planes = blocks[0].count
            let groupCount = (blocks.count + fanIn - 1) / fanIn
            precondition(!isTop || groupCount == 1, "clos plan admitted more blocks than the top tier can join")
            let lastLevel = groupCount == 1
            let tierName: String
            if lastLevel { tierName = level == 2 ? "spine" : "core" } else { tierName = tiersAllowed >= 4 ? "agg\(level - 1)-" : "agg" }
            var next: [[NodeID]] = []
            var created = 0
            for g in 0..<groupCount {
                let group = Array(blocks[(g * fanIn)..<min(blocks.count, (g + 1) * fanIn)])
                // At the top tier, fold `f` planes onto one switch so its ports are used.
                var fold = 1
                if isTop {
                    let limit = max(1, k / group.count)
                    for f in stride(from: min(limit, planes), through: 1, by: -1) where planes % f == 0 {
                        fold = f
                        break
                    }
                }
                var upward: [NodeID] = []
                for s in 0..<(planes / fold) {
                    let sw = try addNode("\(tierName)\(created)", kind: .switch, host: -1)
                    created += 1
                    for block in group {
                        // Lanes from this block to this switch, merged per distinct lower node.
                        var lanes: [(NodeID, Int)] = []
                        for p in (s * fold)..<((s + 1) * fold) {
                            if let i = lanes.firstIndex(where: { $0.0 == block[p] }) { lanes[i].1 += 1 } else { lanes.append((block[p], 1)) }
                        }
                        for (lower, n) in lanes {
                            var a = attributes
                            a.count = attributes.count * n
                            try addLink(lower, sw, a)
                        }
                    }
                    if !lastLevel { upward.append(contentsOf: repeatElement(sw, count: k / 2)) }
                }
                if !lastLevel { next.append(upward) }
            }
            switchesPerTier.append(created)
            tiersBuilt = level
            if lastLevel { break }
            blocks = next
        }

        let record = GeneratorRecord(
            shape: .clos(ClosShape(radix: k, tiers: tiersBuilt, oversubscription: oversubscription, ports: ports,
                                   leafDownlinks: d1, switchesPerTier: switchesPerTier)),
            family: endpointFamily, members: ports, kind: attributes.kind, capacity: attributes.capacity,
            dimensionCapacities: [])
        recordGenerator(record)
        return record
    }

    /// Builds `count` copies of `instance` joined by `fabric`, NIC `r` of every copy (member `r`
    /// of `railFamily`) on rail `r`.
    ///
    /// Instance `i`'s node `name` becomes `inst{i}/name` on host `i × H + host` (H = the
    /// instance's host count); its ranks become ranks `i × n ..< (i + 1) × n`; each family is the
    /// concatenation of that family's members across instances.
    public static func compose(name: String, summary: String?, instance: Topology, count: Int,
                               railFamily: String, fabric: FabricDescription) throws -> Topology {
        guard count >= 1 else { throw TopologyError.build("compose needs at least one instance, got \(count)") }
        guard let rails = instance.families[railFamily] ?? instance.node(named: railFamily).map({ [$0] }) else {
            let known = instance.families.keys.sorted().joined(separator: ", ")
            throw TopologyError.build("the instance '\(instance.name)' has no family '\(railFamily)' to put on rails (families: \(known.isEmpty ? "none" : known))")
        }
        let perInstance = instance.nodes.count
        let hostsPerInstance = (instance.nodes.map(\.host).max() ?? 0) + 1
        guard Double(perInstance) * Double(count) < Double(Int32.max / 4) else {
            throw TopologyError.build("\(count) instances of \(perInstance) nodes is too large")
        }

        var builder = TopologyBuilder(name: name, summary: summary)
        var nodes: [Node] = []
        nodes.reserveCapacity(perInstance * count)
        var links: [Link] = []
        links.reserveCapacity(instance.links.count * count)
        for i in 0..<count {
            let offset = Int32(i * perInstance)
            for node in instance.nodes {
                var copy = node
                copy.name = "inst\(i)/\(node.name)"
                copy.host = node.host < 0 ? node.host : i * hostsPerInstance + node.host
                nodes.append(copy)
            }
            for link in instance.links {
                var copy = link
                copy.a = NodeID(rawValue: link.a.rawValue + offset)
                copy.b = NodeID(rawValue: link.b.rawValue + offset)
                links.append(copy)
            }
        }
        builder.appendRaw(nodes: nodes, links: links)
        builder.dropNameIndex()

        var families: [String: [NodeID]] = [:]
        for (family, members) in instance.families {
            var all: [NodeID] = []
            all.reserveCapacity(members.count * count)
            for i in 0..<count {
                let offset = Int32(i * perInstance)
                all.append(contentsOf: members.map { NodeID(rawValue: $0.rawValue + offset) })
            }
            families[family] = all
        }
        builder.setFamilies(families, order: instance.families.keys.sorted())
        for i in 0..<count {
            let offset = Int32(i * perInstance)
            for torus in instance.tori {
                var copy = torus
                copy.members = torus.members.map { NodeID(rawValue: $0.rawValue + offset) }
                builder.recordTorus(copy)
            }
        }
        var ranks: [NodeID] = []
        ranks.reserveCapacity(instance.ranks.count * count)
        for i in 0..<count {
            let offset = Int32(i * perInstance)
            ranks.append(contentsOf: instance.ranks.map { NodeID(rawValue: $0.rawValue + offset) })
        }
        builder.setRanks(ranks)

        // Fabric: map (instance, rail) to a port slot, then build.
        let railCount = rails.count
        let ports = count * railCount
        let d1 = try fabric.leafDownlinks(forPorts: ports)
        var slots: [NodeID?]
        switch fabric.placement {
        case .instance:
            slots = [NodeID?](repeating: nil, count: ports)
            for i in 0..<count {
                for (r, nic) in rails.enumerated() { slots[i * railCount + r] = NodeID(rawValue: nic.rawValue + Int32(i * perInstance)) }
            }
        case .rail:
            // Each rail starts on a fresh leaf, so leaves never mix rails.
            let perRail = ((count + d1 - 1) / d1) * d1
            slots = [NodeID?](repeating: nil, count: perRail * railCount)
            for i in 0..<count {
                for (r, nic) in rails.enumerated() { slots[r * perRail + i] = NodeID(rawValue: nic.rawValue + Int32(i * perInstance)) }
            }
        }
        let firstFabricNode = NodeID(builder.nodeCount)
        let firstFabricLink = LinkID(builder.links.count)
        let record = try builder.buildFabric(fabric, slots: slots, endpointFamily: railFamily)
        builder.dropNameIndex()  // the fabric's names alone would be a partial index; index lazily
        builder.setComposition(Composition(instance: instance, count: count, railFamily: railFamily, fabric: record,
                                           firstFabricLink: firstFabricLink, firstFabricNode: firstFabricNode))
        return builder.freeze()
    }

    /// A fabric on its own: `endpoints` hosts (`host0 …`), one rank each, one port each.
    public static func standaloneFabric(name: String, summary: String?, fabric: FabricDescription, endpoints: Int) throws -> Topology {
        guard endpoints >= 1 else { throw TopologyError.build("a fabric needs at least one endpoint, got \(endpoints)") }
        var builder = TopologyBuilder(name: name, summary: summary)
        let hosts = try builder.addFamily("host", count: endpoints, kind: .cpu, host: { $0 })
        try builder.buildFabric(fabric, slots: hosts, endpointFamily: "host")
        builder.setRanks(hosts)
        return builder.freeze()
    }
}
