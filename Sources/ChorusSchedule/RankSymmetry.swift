/// A group of rank translations under which a schedule is the same schedule: translating every
/// rank of the job by `t` maps rank `r`'s program onto rank `t·r`'s, with every peer translated
/// by `t` as well, and every op the same size, kind and channel.
///
/// A generator that knows its schedule has this symmetry declares it (`Schedule.symmetry`); the
/// network simulator then runs one representative rank per orbit instead of every rank, after
/// spot-checking the declaration on sampled ranks. Chunk numbers may differ between a rank and
/// its translate (a ring rotates which chunk each rank owns); only the shape of the work and who
/// talks to whom must match.
///
/// The translations are the multiples of `stride` (for `.xor`, the values `t` with the low bits
/// below `stride` clear), so rank `r`'s orbit representative is `r mod stride` and there are
/// `stride` orbits: a stride of 1 makes every rank an image of rank 0.
public struct RankSymmetry: Hashable, Sendable, CustomStringConvertible {
    public enum Action: String, Hashable, Sendable {
        /// `r ↦ (r + t) mod n`: rings, Bruck, one-shot exchanges.
        case rotation
        /// `r ↦ r xor t` (`n` and `stride` powers of two): hypercube algorithms.
        case xor
    }

    public let action: Action
    public let ranks: Int
    public let stride: Int

    /// `nil` when the action cannot act on `ranks` with that stride (a stride that does not divide
    /// the ranks; for `.xor`, a rank count or stride that is not a power of two).
    public init?(_ action: Action, ranks: Int, stride: Int = 1) {
        guard ranks >= 1, stride >= 1, stride <= ranks, ranks % stride == 0 else { return nil }
        if action == .xor {
            guard ranks & (ranks - 1) == 0, stride & (stride - 1) == 0 else { return nil }
        }
        self.action = action
        self.ranks = ranks
        self.stride = stride
    }

    /// The number of orbits (and representative ranks `0 ..< orbits`).
    @inlinable public var orbits: Int { stride }

    /// Ranks in each orbit: how many ranks one representative stands for.
    @inlinable public var orbitSize: Int { ranks / stride }

    /// The representative of `rank`'s orbit.
    @inlinable public func representative(of rank: Int) -> Int { rank % stride }

    /// The translation that carries `representative(of: rank)` to `rank`.
    @inlinable public func translation(of rank: Int) -> Int { rank - rank % stride }

    /// `rank` translated by `t`.
    @inlinable public func apply(_ t: Int, to rank: Int) -> Int {
        switch action {
        case .rotation: return (rank + t) % ranks
        case .xor: return rank ^ t
        }
    }

    /// `rank` translated by the inverse of `t`.
    @inlinable public func unapply(_ t: Int, to rank: Int) -> Int {
        switch action {
        case .rotation: return (rank - t % ranks + ranks) % ranks
        case .xor: return rank ^ t
        }
    }

    /// The `k`-th translation of the group (`0 ..< orbitSize`; 0 is the identity).
    @inlinable public func element(_ k: Int) -> Int { k * stride }

    public var description: String {
        "\(action.rawValue) by multiples of \(stride) on \(ranks) ranks (\(orbits) orbit\(orbits == 1 ? "" : "s") of \(orbitSize))"
    }
}
