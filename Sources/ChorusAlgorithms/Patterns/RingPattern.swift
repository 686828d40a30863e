/// A ring over some ranks: `order[p]` is the rank at position `p`; data flows from position `p`
/// to position `p + 1`.
public struct RingPattern: Hashable, Sendable {
    public let order: [Int]
    /// `position[rank]`, or `-1` for ranks not on the ring.
    public let position: [Int]

    /// A ring through `order` (a permutation of some ranks), in a world of `worldSize` ranks.
    public init(order: [Int], worldSize: Int) {
        precondition(Set(order).count == order.count, "a ring visits each rank once")
        self.order = order
        var position = [Int](repeating: -1, count: worldSize)
        for (p, r) in order.enumerated() { position[r] = p }
        self.position = position
    }

    /// Ranks `0 … n−1` in order.
    public static func natural(_ n: Int) -> RingPattern { RingPattern(order: Array(0..<n), worldSize: n) }

    public var count: Int { order.count }

    /// The same ring travelled the other way.
    public var reversed: RingPattern { RingPattern(order: order.reversed(), worldSize: position.count) }

    /// Where `rank` sends (its successor).
    @inlinable public func right(of rank: Int) -> Int { order[(position[rank] + 1) % order.count] }
    /// Where `rank` receives from (its predecessor).
    @inlinable public func left(of rank: Int) -> Int { order[(position[rank] - 1 + order.count) % order.count] }

    @inlinable
    public static func mod(_ a: Int, _ m: Int) -> Int { ((a % m) + m) % m }
}
