/// Recursive halving and doubling on any rank count: the power-of-two "core" and how the other
/// ranks fold into it (Rabenseifner's standard handling).
///
/// With `n` ranks, `p = 2^⌊log₂ n⌋` and `e = n − p` extra ranks: among ranks `0 ..< 2e`, each even
/// rank folds into its odd neighbour (sends it all its data first, receives the result last);
/// odd ranks below `2e` and all ranks from `2e` up form the core, renumbered `0 ..< p`. Core
/// index `i`'s partner at distance `d` (a power of two) is `i XOR d`.
public struct FoldedHypercube: Hashable, Sendable {
    public let ranks: Int
    /// Core size: the largest power of two not above `ranks`.
    public let core: Int
    public let extra: Int
    /// `actual[v]` is the rank playing virtual rank `v` (identity unless relabelled, as on a
    /// torus seen as a hypercube); `virtual` is the inverse.
    let actual: [Int]
    let virtual: [Int]

    /// - Parameter labels: `labels[rank]` is the virtual rank (hypercube label) of `rank`; a
    ///   permutation of `0 ..< n`. Defaults to the identity.
    public init(ranks n: Int, labels: [Int]? = nil) {
        precondition(n >= 1)
        var p = 1
        while p * 2 <= n { p *= 2 }
        ranks = n
        core = p
        extra = n - p
        let v = labels ?? Array(0..<n)
        var a = [Int](repeating: 0, count: n)
        for (r, label) in v.enumerated() { a[label] = r }
        virtual = v
        actual = a
    }

    /// `log₂ core`: the number of halving (or doubling) steps.
    public var dimensions: Int { core.trailingZeroBitCount }

    /// What a rank does.
    public enum Role: Hashable, Sendable {
        /// Sends its data to `partner` (a core rank) and receives the result from it.
        case foldedOut(partner: Int)
        /// A core rank; `foldedFrom` is the rank that folded into it, if any.
        case core(index: Int, foldedFrom: Int?)
    }

    public func role(of rank: Int) -> Role {
        let r = virtual[rank]
        if r < 2 * extra {
            return r % 2 == 0 ? .foldedOut(partner: actual[r + 1]) : .core(index: r / 2, foldedFrom: actual[r - 1])
        }
        return .core(index: r - extra, foldedFrom: nil)
    }

    /// The rank at core index `i`.
    public func rank(ofCore i: Int) -> Int { actual[i < extra ? 2 * i + 1 : i + extra] }

    /// The ranks a core index stands for, ascending: itself, and the rank folded into it.
    public func members(ofCore i: Int) -> [Int] { (i < extra ? [actual[2 * i], actual[2 * i + 1]] : [actual[i + extra]]).sorted() }
}
