import ChorusCore
import ChorusSchedule

/// One registered algorithm: its id (what `CHORUS_ALGO` and `--algo` name), a one-line summary,
/// the collectives it implements, its constraints, and for each collective a generator and a
/// closed-form cost shape.
public struct Algorithm: Sendable {
    /// Short kebab-case id: `ring`, `halving-doubling`, `torus-rings`, ….
    public let id: String
    public let name: String
    public let summary: String
    public let collectives: [Collective]
    /// When it applies, in words (for `explain` and `--help`).
    public let constraints: String
    let check: @Sendable (CollectiveSpec, AlgorithmContext) -> String?
    let make: @Sendable (CollectiveSpec, AlgorithmContext) -> Schedule
    let shape: @Sendable (CollectiveSpec, AlgorithmContext) -> CostShape

    /// Why the algorithm cannot run this collective in this context, or `nil` if it can.
    public func unavailableReason(_ spec: CollectiveSpec, _ context: AlgorithmContext) -> String? {
        guard collectives.contains(spec.collective) else {
            return "\(id) does not implement \(spec.collective) (it implements \(collectives.map(\.rawValue).joined(separator: ", ")))"
        }
        guard spec.ranks >= 1 else { return "needs at least one rank" }
        if spec.collective.hasRoot, !(0..<spec.ranks).contains(spec.root) { return "root \(spec.root) is not a rank" }
        return check(spec, context)
    }

    /// The schedule for `spec`.
    /// - Throws: `ScheduleError.unsupported` with the reason when the algorithm does not apply.
    public func generate(_ spec: CollectiveSpec, context: AlgorithmContext? = nil) throws -> Schedule {
        let context = context ?? AlgorithmContext(ranks: spec.ranks)
        if let reason = unavailableReason(spec, context) { throw ScheduleError.unsupported("\(id): \(reason)") }
        return make(spec, context)
    }

    /// The closed-form cost shape for `spec` (call only when available).
    public func costShape(_ spec: CollectiveSpec, context: AlgorithmContext) -> CostShape { shape(spec, context) }
}

/// Every algorithm Chorus ships, in a stable order.
public enum AlgorithmRegistry {
    public static let all: [Algorithm] = [
        ring, bidirectionalRing, halvingDoubling, recursiveDoubling, bruck, doubleBinaryTree, binaryTree, direct,
        torusRings, torusDimensions, torusHypercube, hierarchical,
    ]

    public static func algorithm(id: String) -> Algorithm? { all.first { $0.id == id } }

    public static func algorithms(for collective: Collective) -> [Algorithm] { all.filter { $0.collectives.contains(collective) } }

    public static var ids: [String] { all.map(\.id) }

    // MARK: - Entries

    static let ring = Algorithm(
        id: "ring", name: "Ring",
        summary: "reduce-scatter then all-gather around one ring; bandwidth-optimal, 2(n-1) steps (broadcast and reduce: a pipelined chain)",
        collectives: [.allReduce, .allGather, .reduceScatter, .broadcast, .reduce], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in
            let rings = [RingPattern.natural(spec.ranks)]
            switch spec.collective {
            case .allReduce: return AllReduce.ring(spec, rings: rings).declaring(.rotating(spec))
            case .allGather: return AllGather.ring(spec, rings: rings).declaring(.rotating(spec))
            case .reduceScatter: return ReduceScatter.ring(spec, rings: rings).declaring(.rotating(spec))
            case .broadcast: return Broadcast.ring(spec)
            case .reduce: return Reduce.ring(spec)
            }
        },
        shape: { spec, _ in ringShape(spec, rings: [.natural(spec.ranks)]) })

    static let bidirectionalRing = Algorithm(
        id: "bidirectional-ring", name: "Bidirectional ring",
        summary: "two rings in opposite directions, each on half the buffer: both directions of every link busy",
        collectives: [.allReduce, .allGather, .reduceScatter], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in
            let rings = [RingPattern.natural(spec.ranks), RingPattern.natural(spec.ranks).reversed]
            return ringSchedule(spec, rings: rings, id: "bidirectional-ring").declaring(.rotating(spec))
        },
        shape: { spec, _ in ringShape(spec, rings: [.natural(spec.ranks), RingPattern.natural(spec.ranks).reversed]) })

    static let halvingDoubling = Algorithm(
        id: "halving-doubling", name: "Recursive halving-doubling (Rabenseifner)",
        summary: "recursive-halving reduce-scatter and recursive-doubling all-gather; bandwidth-optimal in 2 log2(n) steps",
        collectives: [.allReduce, .reduceScatter], constraints: "any rank count (non-powers of two fold the extra ranks in)",
        check: { _, _ in nil },
        make: { spec, _ in
            let schedule = spec.collective == .allReduce ? AllReduce.halvingDoubling(spec) : ReduceScatter.halvingDoubling(spec)
            return schedule.declaring(.hypercube(spec))
        },
        shape: { spec, _ in halvingShape(spec, cube: FoldedHypercube(ranks: spec.ranks)) })

    static let recursiveDoubling = Algorithm(
        id: "recursive-doubling", name: "Recursive doubling",
        summary: "log2(n) steps exchanging the whole buffer (all-reduce) or doubling windows (all-gather); for small messages",
        collectives: [.allReduce, .allGather], constraints: "any rank count (non-powers of two fold the extra ranks in)",
        check: { _, _ in nil },
        make: { spec, _ in
            let schedule = spec.collective == .allReduce ? AllReduce.recursiveDoubling(spec) : AllGather.recursiveDoubling(spec)
            return schedule.declaring(.hypercube(spec))
        },
        shape: { spec, _ in
            let cube = FoldedHypercube(ranks: spec.ranks)
            let n = Double(spec.ranks)
            if spec.collective == .allReduce {
                var phases = [Shapes.fold(cube, inward: true, reduces: true, bytes: { $0 })].compactMap { $0 }
                for t in 0..<cube.dimensions {
                    phases.append(CostPhase("exchange step \(t)", steps: 1, reduces: true, messageBytes: { $0 },
                                            peers: { r in if case .core(let i, _) = cube.role(of: r) { return [cube.rank(ofCore: i ^ (1 << t))] }; return [] }))
                }
                phases += [Shapes.fold(cube, inward: false, reduces: false, bytes: { $0 })].compactMap { $0 }
                return CostShape(phases)
            }
            var phases = [Shapes.fold(cube, inward: true, reduces: false, bytes: { $0 / n })].compactMap { $0 }
            phases += Shapes.hypercube(cube, reduces: false, halving: false, bytes: { s, t in s * Double(1 << t) / Double(cube.core) })
            phases += [Shapes.fold(cube, inward: false, reduces: false, bytes: { $0 })].compactMap { $0 }
            return CostShape(phases)
        })

    static let bruck = Algorithm(
        id: "bruck", name: "Bruck",
        summary: "ceil(log2 n) steps at distances 1, 2, 4, ... for any rank count; latency-optimal all-gather",
        collectives: [.allGather], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in AllGather.bruck(spec).declaring(.rotating(spec)) },
        shape: { spec, _ in
            let n = spec.ranks
            var phases: [CostPhase] = []
            var have = 1
            while have < n {
                let count = min(have, n - have), distance = have
                phases.append(CostPhase("step \(phases.count)", steps: 1, reduces: false,
                                        messageBytes: { $0 * Double(count) / Double(n) }, peers: { r in [(r - distance + n) % n] }))
                have += count
            }
            return CostShape(phases)
        })

    static let doubleBinaryTree = Algorithm(
        id: "double-binary-tree", name: "Double binary tree",
        summary: "each half of the buffer reduced up and broadcast down one of two complementary binary trees (NCCL's tree)",
        collectives: [.allReduce], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in AllReduce.doubleBinaryTree(spec) },
        shape: { spec, _ in
            let trees = [BinaryTree(ranks: spec.ranks), BinaryTree.complement(ranks: spec.ranks)]
            let depth = max(trees.map(\.depth).max() ?? 0, 1)
            guard spec.ranks > 1 else { return CostShape([.local("copy", bytes: { $0 })]) }
            return CostShape([
                CostPhase("reduce up both trees", steps: 1, overlap: .pipeline(depth: depth), reduces: true, messageBytes: { $0 / 2 },
                          peers: { r in trees.compactMap { $0.parent[r] >= 0 ? $0.parent[r] : nil } }),
                CostPhase("broadcast down both trees", steps: 1, overlap: .pipeline(depth: depth), reduces: false, messageBytes: { $0 / 2 },
                          peers: { r in trees.flatMap { $0.children[r] } }),
            ])
        })

    static let binaryTree = Algorithm(
        id: "binary-tree", name: "Binary tree",
        summary: "a binary tree rooted at the root, pipelined by slices",
        collectives: [.broadcast, .reduce], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in spec.collective == .broadcast ? Broadcast.binaryTree(spec) : Reduce.binaryTree(spec) },
        shape: { spec, _ in
            let tree = BinaryTree(ranks: spec.ranks).rotated(to: spec.root)
            let up = spec.collective == .reduce
            return CostShape([CostPhase(up ? "reduce up the tree" : "broadcast down the tree", steps: 1, overlap: .pipeline(depth: max(tree.depth, 1)),
                                        reduces: up, messageBytes: { $0 },
                                        peers: { r in up ? (tree.parent[r] >= 0 ? [tree.parent[r]] : []) : tree.children[r] })])
        })

    static let direct = Algorithm(
        id: "direct", name: "Direct (one-shot)",
        summary: "every rank sends straight to every rank that needs its data, in one step; for small messages",
        collectives: [.allReduce, .allGather, .reduceScatter, .broadcast, .reduce], constraints: "any rank count",
        check: { _, _ in nil },
        make: { spec, _ in
            switch spec.collective {
            // All-reduce and reduce-scatter add contributions in one global order for identical
            // bits everywhere, so their ranks' dependencies differ: no symmetry to declare.
            case .allReduce: return AllReduce.direct(spec)
            case .allGather: return AllGather.direct(spec).declaring(.rotating(spec))
            case .reduceScatter: return ReduceScatter.direct(spec)
            case .broadcast: return Broadcast.direct(spec)
            case .reduce: return Reduce.direct(spec)
            }
        },
        shape: { spec, _ in
            let n = spec.ranks, root = spec.root
            let nd = Double(n)
            switch spec.collective {
            case .allReduce:
                return CostShape([Shapes.allToAll("send to all", n: n, reduces: false, bytes: { $0 }),
                                  .local("sum n contributions", bytes: { $0 * nd })])
            case .allGather: return CostShape([Shapes.allToAll("send to all", n: n, reduces: false, bytes: { $0 / nd })])
            case .reduceScatter:
                return CostShape([Shapes.allToAll("send each block to its owner", n: n, reduces: false, bytes: { $0 / nd }),
                                  .local("sum n contributions", bytes: { $0 })])
            case .broadcast:
                return CostShape([CostPhase("root sends to all", steps: 1, reduces: false, messageBytes: { $0 },
                                            peers: { r in r == root ? (1..<max(n, 1)).map { (root + $0) % n } : [] })])
            case .reduce:
                return CostShape([CostPhase("all send to the root", steps: 1, reduces: false, messageBytes: { $0 },
                                            peers: { r in r == root ? [] : [root] }),
                                  .local("sum n contributions", bytes: { $0 * nd })])
            }
        })

    static let torusRings = Algorithm(
        id: "torus-rings", name: "Torus rings",
        summary: "two link-disjoint Hamiltonian rings of the torus used together, each on half the buffer (Trainium's ring family)",
        collectives: [.allReduce, .allGather, .reduceScatter],
        constraints: "the ranks form a torus with two link-disjoint Hamiltonian cycles (e.g. 4x4, 4x4x4)",
        check: { spec, context in
            guard let torus = context.torus, torus.count == spec.ranks else { return "the ranks do not form a torus" }
            return context.torusCycles == nil ? "no two link-disjoint Hamiltonian cycles were found on the \(torus.dimensions.map(String.init).joined(separator: "x")) torus" : nil
        },
        make: { spec, context in
            let (a, b) = context.torusCycles!
            return ringSchedule(spec, rings: [RingPattern(order: a, worldSize: spec.ranks), RingPattern(order: b, worldSize: spec.ranks)], id: "torus-rings")
        },
        shape: { spec, context in
            let (a, b) = context.torusCycles!
            return ringShape(spec, rings: [RingPattern(order: a, worldSize: spec.ranks), RingPattern(order: b, worldSize: spec.ranks)])
        })

    static let torusDimensions = Algorithm(
        id: "torus-dimensions", name: "Torus, dimension by dimension",
        summary: "reduce-scatter along each torus dimension in turn, then all-gather back; every message crosses one link",
        collectives: [.allReduce, .allGather, .reduceScatter], constraints: "the ranks form a torus (2-D or 3-D)",
        check: { spec, context in
            guard let torus = context.torus, torus.count == spec.ranks else { return "the ranks do not form a torus" }
            return nil
        },
        make: { spec, context in
            let torus = context.torus!
            switch spec.collective {
            case .allReduce: return AllReduce.torusDimensions(spec, torus: torus)
            case .allGather: return AllGather.torusDimensions(spec, torus: torus)
            default: return ReduceScatter.torusDimensions(spec, torus: torus)
            }
        },
        shape: { spec, context in
            let torus = context.torus!
            let n = spec.ranks
            func line(_ d: Int) -> @Sendable (Int) -> [Int] {
                { r in
                    let l = torus.line(through: r, dimension: d)
                    return l.count > 1 ? [l[(l.firstIndex(of: r)! + 1) % l.count]] : []
                }
            }
            let dims = torus.dimensions
            var rs: [CostPhase] = [], ag: [CostPhase] = []
            var remaining = Double(n)
            for d in dims.indices {
                remaining /= Double(dims[d])
                let share = remaining
                rs.append(CostPhase("reduce-scatter along dimension \(d)", steps: dims[d] - 1, reduces: true,
                                    messageBytes: { $0 * share / Double(n) }, peers: line(d)))
            }
            var gathered = 1.0
            for d in dims.indices.reversed() {
                let share = gathered
                ag.append(CostPhase("all-gather along dimension \(d)", steps: dims[d] - 1, reduces: false,
                                    messageBytes: { $0 * share / Double(n) }, peers: line(d)))
                gathered *= Double(dims[d])
            }
            switch spec.collective {
            case .allReduce: return CostShape(rs + ag)
            case .allGather: return CostShape(ag)
            default: return CostShape(rs)
            }
        })

    static let torusHypercube = Algorithm(
        id: "torus-hypercube", name: "Torus as a hypercube",
        summary: "halving-doubling on the torus seen as a hypercube (4x4 torus = 4-D hypercube): every exchange is between neighbours",
        collectives: [.allReduce, .reduceScatter],
        constraints: "the ranks form a torus whose dimensions are 2 or 4 (wrapping)",
        check: { spec, context in
            guard let torus = context.torus, torus.count == spec.ranks else { return "the ranks do not form a torus" }
            return torus.isHypercube ? nil : "the \(torus.dimensions.map(String.init).joined(separator: "x")) torus is not a hypercube (dimensions must be 2 or 4)"
        },
        make: { spec, context in
            let torus = context.torus!
            let labels = (0..<spec.ranks).map { torus.hypercubeLabel(of: $0) }
            return spec.collective == .allReduce
                ? AllReduce.halvingDoubling(spec, labels: labels, algorithm: "torus-hypercube")
                : ReduceScatter.halvingDoublingLabelled(spec, labels: labels)
        },
        shape: { spec, context in
            let torus = context.torus!
            return halvingShape(spec, cube: FoldedHypercube(ranks: spec.ranks, labels: (0..<spec.ranks).map { torus.hypercubeLabel(of: $0) }))
        })

    static let hierarchical = Algorithm(
        id: "hierarchical", name: "Hierarchical",
        summary: "inside each instance, then across instances between same-index ranks (one NIC each), then inside again",
        collectives: [.allReduce, .allGather, .reduceScatter],
        constraints: "a composed topology: ranks in equal groups per instance, at least 2 instances",
        check: { spec, context in
            guard let g = context.groupSize else { return "the topology is not composed of instances" }
            guard spec.ranks % g == 0, spec.ranks / g >= 2 else { return "needs at least 2 instances of \(g) ranks" }
            return nil
        },
        make: { spec, context in
            let g = context.groupSize!
            // Every instance does what the one before it does, one instance further round the
            // cross-instance rings: rotation by whole instances.
            let byInstance = RankSymmetry(.rotation, ranks: spec.ranks, stride: g)
            switch spec.collective {
            case .allReduce: return AllReduce.hierarchical(spec, groupSize: g, groupRing: context.groupRing).declaring(byInstance)
            case .allGather: return AllGather.hierarchical(spec, groupSize: g, groupRing: context.groupRing).declaring(byInstance)
            default: return ReduceScatter.hierarchical(spec, groupSize: g, groupRing: context.groupRing).declaring(byInstance)
            }
        },
        shape: { spec, context in
            let g = context.groupSize!, n = spec.ranks, m = n / g
            let local = context.groupRing ?? Array(0..<g)
            let intra: @Sendable (Int) -> [Int] = { r in
                guard g > 1 else { return [] }
                let base = (r / g) * g
                let p = local.firstIndex(of: r % g)!
                return [base + local[(p + 1) % g]]
            }
            let inter: @Sendable (Int) -> [Int] = { r in m > 1 ? [((r / g + 1) % m) * g + r % g] : [] }
            let gd = Double(g), md = Double(m), nd = Double(n)
            switch spec.collective {
            case .allReduce:
                return CostShape([
                    CostPhase("reduce-scatter inside instances", steps: g - 1, reduces: true, messageBytes: { $0 / gd }, peers: intra),
                    CostPhase("reduce-scatter across instances", steps: m - 1, reduces: true, messageBytes: { $0 / (gd * md) }, peers: inter),
                    CostPhase("all-gather across instances", steps: m - 1, reduces: false, messageBytes: { $0 / (gd * md) }, peers: inter),
                    CostPhase("all-gather inside instances", steps: g - 1, reduces: false, messageBytes: { $0 / gd }, peers: intra),
                ])
            case .allGather:
                return CostShape([
                    CostPhase("all-gather across instances", steps: m - 1, reduces: false, messageBytes: { $0 / nd }, peers: inter),
                    CostPhase("all-gather inside instances", steps: g - 1, reduces: false, messageBytes: { $0 * md / nd }, peers: intra),
                ])
            default:
                return CostShape([
                    CostPhase("reduce-scatter inside instances", steps: g - 1, reduces: true, messageBytes: { $0 * md / nd }, peers: intra),
                    CostPhase("reduce-scatter across instances", steps: m - 1, reduces: true, messageBytes: { $0 / nd }, peers: inter),
                ])
            }
        })

    // MARK: - Shared shapes

    static func ringSchedule(_ spec: CollectiveSpec, rings: [RingPattern], id: String) -> Schedule {
        switch spec.collective {
        case .allReduce: return AllReduce.ring(spec, rings: rings, algorithm: id)
        case .allGather: return AllGather.ring(spec, rings: rings, algorithm: id)
        default: return ReduceScatter.ring(spec, rings: rings, algorithm: id)
        }
    }

    static func ringShape(_ spec: CollectiveSpec, rings: [RingPattern]) -> CostShape {
        let n = Double(spec.ranks), count = Double(rings.count)
        let ranks = spec.ranks, root = spec.root
        switch spec.collective {
        case .allReduce:
            guard ranks > 1 else { return CostShape([.local("copy", bytes: { $0 })]) }
            return CostShape([Shapes.ring("reduce-scatter", rings: rings, reduces: true, bytes: { $0 / (n * count) }),
                              Shapes.ring("all-gather", rings: rings, reduces: false, bytes: { $0 / (n * count) })])
        case .allGather: return CostShape([Shapes.ring("all-gather", rings: rings, reduces: false, bytes: { $0 / (n * count) })])
        case .reduceScatter: return CostShape([Shapes.ring("reduce-scatter", rings: rings, reduces: true, bytes: { $0 / (n * count) })])
        case .broadcast, .reduce:
            let up = spec.collective == .reduce
            return CostShape([CostPhase(up ? "chain to the root" : "chain from the root", steps: 1, overlap: .pipeline(depth: max(ranks - 1, 1)),
                                        reduces: up, messageBytes: { $0 },
                                        peers: { r in
                                            let j = up ? (r - root - 1 + 2 * ranks) % ranks : (r - root + ranks) % ranks
                                            return j < ranks - 1 ? [(r + 1) % ranks] : []
                                        })])
        }
    }

    static func halvingShape(_ spec: CollectiveSpec, cube: FoldedHypercube) -> CostShape {
        let core = Double(cube.core), n = Double(spec.ranks)
        if spec.collective == .allReduce {
            var phases = [Shapes.fold(cube, inward: true, reduces: true, bytes: { $0 })].compactMap { $0 }
            phases += Shapes.hypercube(cube, reduces: true, halving: true, bytes: { s, t in s / Double(2 << t) })
            phases += Shapes.hypercube(cube, reduces: false, halving: false, bytes: { s, t in s * Double(1 << t) / core })
            phases += [Shapes.fold(cube, inward: false, reduces: false, bytes: { $0 })].compactMap { $0 }
            return CostShape(phases)
        }
        var phases = [Shapes.fold(cube, inward: true, reduces: true, bytes: { $0 })].compactMap { $0 }
        phases += Shapes.hypercube(cube, reduces: true, halving: true, bytes: { s, t in s / Double(2 << t) })
        phases += [Shapes.fold(cube, inward: false, reduces: false, bytes: { $0 / n })].compactMap { $0 }
        return CostShape(phases)
    }
}

extension RankSymmetry {
    /// Every rank an image of rank 0 under rotation (rings, Bruck, one-shot exchanges).
    static func rotating(_ spec: CollectiveSpec) -> RankSymmetry? { RankSymmetry(.rotation, ranks: spec.ranks) }

    /// Every rank an image of rank 0 under xor, when the ranks form a whole hypercube (other
    /// counts fold extra ranks in and have no such symmetry).
    static func hypercube(_ spec: CollectiveSpec) -> RankSymmetry? { RankSymmetry(.xor, ranks: spec.ranks) }
}
