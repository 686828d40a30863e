import ChorusCore
import ChorusSchedule
import ChorusTopology

/// The network a symmetric plan's representative ranks run on.
///
/// With a plan symmetric under a group `G` of rank translations (`RankSymmetry`), rank `r`'s
/// message to rank `p` stands for the *flow class* `{ g(r) → g(p) : g ∈ G }`: every image runs
/// the same op at the same moment. One flow per class, at the rate every image gets, carries the
/// class: the class loads resource `x` with weight `w(x)` = the sum, over the images, of the
/// share of their route on `x` (a flow at rate `ρ` puts `w(x)·ρ` on `x`). Max-min sharing over
/// classes with these weights is max-min sharing over all the images with one rate per class:
/// the same allocation when the images are alike, and the slowest image's rate when they are
/// not (hashed single paths that collide, a ring's one hop between hosts).
///
/// Two ways to find the weights:
/// - **expanded** (exact): route every image and add up its shares. Resources whose weight
///   from every class is the same (and whose capacity is) act as one constraint and are merged.
/// - **averaged**, when routing every image would cost more than `expansionBudget` arc visits
///   (65,536 ranks on a three-tier Clos): resources are grouped into `ResourceClasses` and each
///   class's load is spread evenly over the group: `w(group) = |G| · Σ share on the group / |group|`.
///   Exact where the load of a group is even (sprayed fabric tiers, NIC and attachment links
///   of permutation traffic); optimistic where it is not (a group whose members are loaded
///   unevenly by hashed single paths). Sampled images must route like the representative
///   (the same shares per group, latency and overhead), or the plan is refused.
struct SymmetricNetwork {
    enum Mode: String { case expanded, averaged }

    struct Resource {
        var capacity: Double
        var name: String
        var kind: String
        /// Real resources this one stands for.
        var members: Int
    }

    /// One flow class: representative sender `a` to its peer `b` (a real rank).
    struct FlowClass: Hashable {
        var a: Int
        var b: Int
    }

    struct ClassRoute {
        /// Resources with weights; empty when the message never leaves the node.
        var weights: [(Int32, Double)]
        var latency: Duration
        var overhead: Duration
    }

    /// Arc visits (image routes × their arcs) the expanded mode may spend.
    static let expansionBudget = 20_000_000
    /// Images of each class routed to check the averaged mode's assumption.
    static let sampledImages = 12

    /// Why lockstep would be wrong here: images of a class that route unlike (a different
    /// bottleneck rate, latency or overhead), so they would drift apart in a full simulation.
    struct Unlike: Error {
        var reason: String
    }

    let mode: Mode
    let resources: [Resource]
    let routes: [FlowClass: ClassRoute]

    init(classes: [FlowClass], symmetry: RankSymmetry, topology: Topology, router: Router,
         calibration: LinkCalibration?, forceAveraged: Bool = false) throws {
        let base = NetworkResources(topology: topology, calibration: calibration)
        var representatives: [FlowClass: RouteSet] = [:]
        var work = 0
        for c in classes {
            let set = try Self.route(c.a, c.b, topology: topology, router: router)
            representatives[c] = set
            work += symmetry.orbitSize * max(set.arcs.count, 1)
        }
        if !forceAveraged && work <= Self.expansionBudget {
            mode = .expanded
            (resources, routes) = try Self.expand(classes, symmetry: symmetry, base: base, router: router, calibration: calibration)
        } else {
            mode = .averaged
            (resources, routes) = try Self.average(classes, representatives: representatives, symmetry: symmetry,
                                                   base: base, router: router, calibration: calibration)
        }
    }

    static func route(_ a: Int, _ b: Int, topology: Topology, router: Router) throws -> RouteSet {
        let from = topology.ranks[a], to = topology.ranks[b]
        guard let set = router.routes(from: from, to: to, flow: flowKey(a, b)) else {
            throw SimulationError.unreachable(from: a, to: b, detail: "no path from \(topology.nodes[from.index].name) to \(topology.nodes[to.index].name) in \(topology.name)")
        }
        return set
    }

    /// The hash key that picks a single-path flow's branch: the same for a pair here and in the
    /// full simulation, so both see the same paths.
    @inline(__always)
    static func flowKey(_ a: Int, _ b: Int) -> UInt64 { UInt64(bitPattern: (Int64(a) << 32) | Int64(b)) }

    // MARK: - Expanded

    private static func expand(_ classes: [FlowClass], symmetry: RankSymmetry, base: NetworkResources, router: Router,
                               calibration: LinkCalibration?) throws -> ([Resource], [FlowClass: ClassRoute]) {
        let topology = base.topology
        var weight = [Double](repeating: 0, count: base.count)
        var touched: [Int32] = []
        // A signature per resource: a running hash of (class, weight) pairs, so resources loaded
        // alike by every class merge into one constraint.
        var signature = [UInt64](repeating: 0, count: base.count)
        var perClass: [(FlowClass, [(Int32, Double)], Duration, Duration)] = []
        // The resources of each image's route, flat, for the check below.
        var imageResources: [Int32] = [], imageEnds: [Int] = []
        var imageCosts: [RouteCost] = []
        for (index, c) in classes.enumerated() {
            imageResources.removeAll(keepingCapacity: true)
            imageEnds.removeAll(keepingCapacity: true)
            imageCosts.removeAll(keepingCapacity: true)
            for k in 0..<symmetry.orbitSize {
                let t = symmetry.element(k)
                let a = symmetry.apply(t, to: c.a), b = symmetry.apply(t, to: c.b)
                let set = try route(a, b, topology: topology, router: router)
                imageCosts.append(topology.cost(of: set, calibration: calibration))
                base.forEachShare(of: set) { r, s in
                    if weight[Int(r)] == 0 { touched.append(r) }
                    weight[Int(r)] += s
                    imageResources.append(r)
                }
                imageEnds.append(imageResources.count)
            }
            // Lockstep holds when every image is held to the same rate by the class's load, and
            // pays the same latency and overhead; otherwise images drift apart and only a full
            // simulation says what that costs.
            var start = 0
            var first: (rate: Double, cost: RouteCost)?
            for (k, end) in imageEnds.enumerated() {
                var rate = Double.infinity
                for j in start..<end {
                    let r = Int(imageResources[j])
                    rate = min(rate, base.capacities[r] / weight[r])
                }
                start = end
                guard let reference = first else {
                    first = (rate, imageCosts[k])
                    continue
                }
                let cost = imageCosts[k]
                if abs(rate - reference.rate) > 1e-9 * max(abs(rate), abs(reference.rate)) || (rate.isInfinite != reference.rate.isInfinite)
                    || cost.latency != reference.cost.latency || cost.overhead != reference.cost.overhead {
                    let t = symmetry.element(k)
                    let what = cost.latency != reference.cost.latency || cost.overhead != reference.cost.overhead
                        ? "pays a different latency or per-message overhead"
                        : "is held to \(Bandwidth(bytesPerSecond: rate * 1e12)) where it gets \(Bandwidth(bytesPerSecond: reference.rate * 1e12))"
                    throw Unlike(reason: "rank \(symmetry.apply(t, to: c.a))'s message to rank \(symmetry.apply(t, to: c.b)) \(what) from rank \(c.a) to rank \(c.b), so its images would not run in lockstep")
                }
            }
            let latency = first?.cost.latency ?? .zero, overhead = first?.cost.overhead ?? .zero
            touched.sort()
            let list = touched.map { ($0, weight[Int($0)]) }
            for (r, w) in list {
                signature[Int(r)] = mix(signature[Int(r)], UInt64(index), w.bitPattern)
                weight[Int(r)] = 0
            }
            touched.removeAll(keepingCapacity: true)
            perClass.append((c, list, latency, overhead))
        }
        // Merge resources with equal signatures and capacities, numbered by first member.
        var groupOf: [Int32] = Array(repeating: -1, count: base.count)
        var groups: [Resource] = []
        var index: [SIMD2<UInt64>: Int32] = [:]
        for r in 0..<base.count where signature[r] != 0 {
            let key = SIMD2(signature[r], base.capacities[r].bitPattern)
            if let g = index[key] {
                groupOf[r] = g
                groups[Int(g)].members += 1
            } else {
                let g = Int32(groups.count)
                index[key] = g
                groupOf[r] = g
                groups.append(Resource(capacity: base.capacities[r], name: base.name(of: r), kind: base.kind(of: r), members: 1))
            }
        }
        var routes: [FlowClass: ClassRoute] = [:]
        for (c, list, latency, overhead) in perClass {
            // Every member of a group carries the same weight from this class: one constraint.
            var seen = Set<Int32>()
            var weights: [(Int32, Double)] = []
            for (r, w) in list where seen.insert(groupOf[Int(r)]).inserted { weights.append((groupOf[Int(r)], w)) }
            routes[c] = ClassRoute(weights: weights, latency: latency, overhead: overhead)
        }
        return (groups, routes)
    }

    // MARK: - Averaged

    private static func average(_ classes: [FlowClass], representatives: [FlowClass: RouteSet], symmetry: RankSymmetry,
                                base: NetworkResources, router: Router,
                                calibration: LinkCalibration?) throws -> ([Resource], [FlowClass: ClassRoute]) {
        let topology = base.topology
        let partition = ResourceClasses(base, symmetry: symmetry)
        var used: [Int32: Int32] = [:]  // partition class → resource index here
        var resources: [Resource] = []
        var routes: [FlowClass: ClassRoute] = [:]
        func profile(_ set: RouteSet) -> [Int32: Double] {
            var p: [Int32: Double] = [:]
            base.forEachShare(of: set) { r, s in p[partition.classOf[Int(r)], default: 0] += s }
            return p
        }
        for c in classes {
            let set = representatives[c]!
            let shape = profile(set)
            let cost = topology.cost(of: set, calibration: calibration)
            // Spot-check: sampled images route like the representative.
            for k in sampledElements(symmetry) {
                let t = symmetry.element(k)
                let a = symmetry.apply(t, to: c.a), b = symmetry.apply(t, to: c.b)
                let image = try route(a, b, topology: topology, router: router)
                let imageCost = topology.cost(of: image, calibration: calibration)
                let imageShape = profile(image)
                let alike = imageShape.count == shape.count && imageShape.allSatisfy { cls, s in
                    abs((shape[cls] ?? -1) - s) <= 1e-9 * max(1, s)
                }
                guard alike, imageCost.latency == cost.latency, imageCost.overhead == cost.overhead else {
                    throw Unlike(reason: "rank \(a)'s message to rank \(b) does not route like rank \(c.a)'s to rank \(c.b) (\(alike ? "a different latency or overhead" : "different kinds of links or shares of them")), so averaging the symmetric load over links alike would be wrong")
                }
            }
            var weights: [(Int32, Double)] = []
            for cls in shape.keys.sorted() {
                let r: Int32
                if let existing = used[cls] {
                    r = existing
                } else {
                    r = Int32(resources.count)
                    used[cls] = r
                    let member = partition.firstMember[Int(cls)]
                    resources.append(Resource(capacity: base.capacities[member], name: base.name(of: member), kind: base.kind(of: member),
                                              members: partition.size[Int(cls)]))
                }
                weights.append((r, Double(symmetry.orbitSize) * shape[cls]! / Double(partition.size[Int(cls)])))
            }
            routes[c] = ClassRoute(weights: weights, latency: cost.latency, overhead: cost.overhead)
        }
        return (resources, routes)
    }

    /// Group elements to spot-check: the first few, the last few and some spread between.
    static func sampledElements(_ symmetry: RankSymmetry) -> [Int] {
        let m = symmetry.orbitSize
        guard m > sampledImages + 1 else { return Array(1..<m) }
        var picks = Set<Int>()
        for k in [1, 2, 3, m - 1, m / 2, m / 3] where k >= 1 && k < m { picks.insert(k) }
        // A fixed sequence (SplitMix64 steps), so the same plan is checked the same way.
        var x: UInt64 = 0x243F_6A88_85A3_08D3
        for _ in 0..<(4 * sampledImages) where picks.count < sampledImages {
            x &+= SplitMix64.increment
            picks.insert(1 + Int(SplitMix64.finalize(x) % UInt64(m - 1)))
        }
        return picks.sorted()
    }

    /// Folds `(a, b)` into a running signature; never 0, so 0 can mean "no load".
    @inline(__always)
    static func mix(_ h: UInt64, _ a: UInt64, _ b: UInt64) -> UInt64 {
        SplitMix64.mix(h ^ (b &* 0xD6E8_FEB8_6659_FD93), a) | 1
    }
}
