/// A binary tree over ranks `0 ..< n` in which a rank's height is the position of its lowest set
/// bit, and a second tree in which every internal rank of the first is a leaf (the "double
/// binary tree" NCCL uses, so that both halves of a buffer travel up and down at once without
/// sharing a rank's send link).
///
/// First tree: rank 0 is the root and has one child, the highest power of two below `n`. Any
/// other rank `r` with lowest set bit `b` hangs under `(r − b) + 2b` when that rank exists, else
/// under `r − b`; its children are `r ± b/2` (the upper one moved down by halving while it is out
/// of range). Leaves are the odd ranks. The second tree is the first mirrored (`r ↦ n − 1 − r`)
/// when `n` is even, or shifted by one (`r ↦ r + 1 mod n`) when `n` is odd.
public struct BinaryTree: Hashable, Sendable {
    /// `parent[r]`, `-1` at the root.
    public let parent: [Int]
    /// `children[r]` in ascending rank order.
    public let children: [[Int]]
    public let root: Int

    /// The first tree on `n` ranks, with ranks relabelled by `label` (rank ↦ tree position) if given.
    public init(ranks n: Int) {
        var parent = [Int](repeating: -1, count: n)
        for r in 1..<max(n, 1) {
            let b = r & -r
            let up = (r ^ b) | (b << 1)
            parent[r] = up < n ? up : (r ^ b)
        }
        self.init(parent: parent)
    }

    /// A tree from its parent array (exactly one `-1`).
    public init(parent: [Int]) {
        var children = [[Int]](repeating: [], count: parent.count)
        var root = 0
        for (r, p) in parent.enumerated() {
            if p >= 0 { children[p].append(r) } else { root = r }
        }
        self.parent = parent
        self.children = children.map { $0.sorted() }
        self.root = root
    }

    /// The second tree of the pair on `n` ranks.
    public static func complement(ranks n: Int) -> BinaryTree {
        let first = BinaryTree(ranks: n)
        let map: (Int) -> Int = n % 2 == 0 ? { n - 1 - $0 } : { ($0 + 1) % n }
        var parent = [Int](repeating: -1, count: n)
        for r in 0..<n where first.parent[r] >= 0 { parent[map(r)] = map(first.parent[r]) }
        return BinaryTree(parent: parent)
    }

    /// The tree rerooted at `root` by relabelling: position `p` of this tree is rank `(p + root) mod n`.
    public func rotated(to root: Int) -> BinaryTree {
        let n = parent.count
        var moved = [Int](repeating: -1, count: n)
        for p in 0..<n where parent[p] >= 0 { moved[(p + root) % n] = (parent[p] + root) % n }
        return BinaryTree(parent: moved)
    }

    /// Edges from the root to the deepest rank.
    public var depth: Int {
        var deepest = 0
        for r in parent.indices {
            var d = 0, x = r
            while parent[x] >= 0 { x = parent[x]; d += 1 }
            deepest = max(deepest, d)
        }
        return deepest
    }
}
