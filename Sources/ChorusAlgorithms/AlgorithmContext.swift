import ChorusCore
import ChorusTopology

/// What an algorithm is asked to do: the collective, how many ranks, and the root.
public struct CollectiveSpec: Hashable, Sendable {
    public var collective: Collective
    public var ranks: Int
    public var root: Int

    public init(_ collective: Collective, ranks: Int, root: Int = 0) {
        self.collective = collective
        self.ranks = ranks
        self.root = root
    }
}

/// What generators may know about the machine, distilled from a topology: whether the ranks
/// form a torus (rank `r` at row-major coordinates), and whether they come in groups that share
/// an instance (for hierarchical algorithms), with a good ring order inside a group.
public struct AlgorithmContext: Sendable {
    public var ranks: Int
    public var torus: TorusPattern?
    /// Ranks `g·i ..< g·(i+1)` share instance `i`.
    public var groupSize: Int?
    /// A ring through one group's local indices that follows fast links (e.g. a Hamiltonian
    /// cycle of the instance's torus); the natural order when nil.
    public var groupRing: [Int]?
    /// Two link-disjoint Hamiltonian cycles of the torus, when the search found them.
    public var torusCycles: ([Int], [Int])?

    public init(ranks: Int, torus: TorusPattern? = nil, groupSize: Int? = nil, groupRing: [Int]? = nil) {
        self.ranks = ranks
        self.torus = torus
        self.groupSize = groupSize
        self.groupRing = groupRing
        if let torus, torus.count == ranks, ranks <= 1024 { torusCycles = torus.disjointHamiltonianCycles() }
    }

    /// The context of the first `ranks` ranks of `topology` (all of them by default).
    ///
    /// A torus counts when some torus generator's members are exactly the ranks in rank order.
    /// Groups come from a composition (ranks per instance), and the group ring is the first
    /// Hamiltonian cycle of the instance's torus when it has one.
    public init(topology: Topology, ranks: Int? = nil) {
        let n = ranks ?? topology.rankCount
        self.ranks = n
        let rankNodes = Array(topology.ranks.prefix(n))
        if let t = topology.tori.first(where: { $0.members == rankNodes }) {
            let pattern = TorusPattern(dimensions: t.dimensions, wraps: t.wraps)
            torus = pattern
            if n <= 1024 { torusCycles = pattern.disjointHamiltonianCycles() }
        }
        if let c = topology.composition {
            let g = c.instance.rankCount
            if g >= 1, n % g == 0 {
                groupSize = g
                let inner = AlgorithmContext(topology: c.instance)
                if let t = inner.torus, let cycles = t.disjointHamiltonianCycles() { groupRing = cycles.0 }
            }
        }
    }
}
