import ChorusCore

/// The communication shape of an algorithm in closed form, for the selector's cost model: its
/// phases, each a number of sequential steps in which ranks send messages of a known size to
/// peers given by a function. The model evaluates a phase on a sample of ranks and the routes
/// between them, so costing never walks a whole schedule.
public struct CostShape: Sendable {
    public var phases: [CostPhase]

    public init(_ phases: [CostPhase]) { self.phases = phases }
}

public struct CostPhase: Sendable {
    /// How steps of a phase overlap.
    public enum Overlap: Sendable, Hashable {
        /// Each step waits for the previous one (ring and halving steps move different data).
        case steps
        /// The same data crosses `depth` hops in turn (chains, trees): slices stream through.
        case pipeline(depth: Int)
    }

    public var label: String
    public var steps: Int
    public var overlap: Overlap
    /// Bytes one message carries for a collective of `size` bytes (nccl-tests' size: the whole
    /// buffer; for all-gather and reduce-scatter, the whole gathered or scattered buffer).
    public var messageBytes: @Sendable (Double) -> Double
    /// Whom `rank` sends to in one step of the phase; empty when it is idle in this phase.
    public var peers: @Sendable (Int) -> [Int]
    /// Whether receivers add what arrives (memory traffic on top of the copy).
    public var reduces: Bool
    /// Local copies and reductions of the phase, in bytes moved per rank (e.g. direct's
    /// n-way sum at the end).
    public var localBytes: @Sendable (Double) -> Double

    public init(_ label: String, steps: Int, overlap: Overlap = .steps, reduces: Bool,
                messageBytes: @escaping @Sendable (Double) -> Double, peers: @escaping @Sendable (Int) -> [Int],
                localBytes: @escaping @Sendable (Double) -> Double = { _ in 0 }) {
        self.label = label
        self.steps = steps
        self.overlap = overlap
        self.reduces = reduces
        self.messageBytes = messageBytes
        self.peers = peers
        self.localBytes = localBytes
    }

    /// A local-only phase (a copy of `bytes(size)`).
    static func local(_ label: String, bytes: @escaping @Sendable (Double) -> Double) -> CostPhase {
        CostPhase(label, steps: 1, reduces: false, messageBytes: { _ in 0 }, peers: { _ in [] }, localBytes: bytes)
    }
}

// MARK: - Shapes of the building blocks

enum Shapes {
    /// `n−1` ring steps of `bytes` each over the given rings (one peer per ring).
    static func ring(_ label: String, rings: [RingPattern], reduces: Bool, bytes: @escaping @Sendable (Double) -> Double) -> CostPhase {
        let m = rings.first?.count ?? 1
        return CostPhase(label, steps: max(m - 1, 0), reduces: reduces, messageBytes: bytes,
                         peers: { r in rings.compactMap { $0.position[r] >= 0 && $0.count > 1 ? $0.right(of: r) : nil } })
    }

    /// The halving steps (then, mirrored, the doubling steps) of a folded hypercube.
    static func hypercube(_ cube: FoldedHypercube, reduces: Bool, halving: Bool, bytes: @escaping @Sendable (Double, Int) -> Double) -> [CostPhase] {
        var phases: [CostPhase] = []
        let dims = cube.dimensions
        for t in 0..<dims {
            let d = halving ? cube.core >> (t + 1) : 1 << t
            phases.append(CostPhase("\(halving ? "halving" : "doubling") step \(t)", steps: 1, reduces: reduces,
                                    messageBytes: { bytes($0, t) },
                                    peers: { r in
                                        if case .core(let i, _) = cube.role(of: r) { return [cube.rank(ofCore: i ^ d)] }
                                        return []
                                    }))
        }
        return phases
    }

    /// The fold (extra ranks send their data into the core) or unfold (the core sends back).
    static func fold(_ cube: FoldedHypercube, inward: Bool, reduces: Bool, bytes: @escaping @Sendable (Double) -> Double) -> CostPhase? {
        guard cube.extra > 0 else { return nil }
        return CostPhase(inward ? "fold in" : "fold out", steps: 1, reduces: reduces, messageBytes: bytes, peers: { r in
            switch cube.role(of: r) {
            case .foldedOut(let partner): return inward ? [partner] : []
            case .core(_, let from): return inward ? [] : (from.map { [$0] } ?? [])
            }
        })
    }

    /// Every rank sends to every other rank once.
    static func allToAll(_ label: String, n: Int, reduces: Bool, bytes: @escaping @Sendable (Double) -> Double) -> CostPhase {
        CostPhase(label, steps: 1, reduces: reduces, messageBytes: bytes, peers: { r in (1..<max(n, 1)).map { (r + $0) % n } })
    }
}
