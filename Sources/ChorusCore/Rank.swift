/// The position of one participant in a communicator, `0 ..< size`.
///
/// A rank is an index, not a process or a device: the topology maps ranks to nodes, and the
/// runtime maps ranks to processes. Keeping it a distinct type stops a rank being passed where a
/// count or a chunk index is expected.
public struct Rank: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int

    @inlinable
    public init(rawValue: Int) { self.rawValue = rawValue }

    @inlinable
    public init(_ rawValue: Int) { self.rawValue = rawValue }

    @inlinable
    public static func < (lhs: Rank, rhs: Rank) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "rank \(rawValue)" }
}

extension Rank: ExpressibleByIntegerLiteral {
    @inlinable
    public init(integerLiteral value: Int) { self.rawValue = value }
}
