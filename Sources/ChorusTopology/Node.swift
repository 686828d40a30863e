import ChorusCore

/// The index of a node in its `Topology`.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public init(_ index: Int) { self.rawValue = Int32(truncatingIfNeeded: index) }
    @inlinable public var index: Int { Int(rawValue) }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "node #\(rawValue)" }
}

/// What a node is. Ranks usually live on accelerators (or on CPUs for host-only runs); NICs and
/// switches only forward.
public enum NodeKind: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case accelerator
    case cpu
    case nic
    case `switch`

    public var description: String { rawValue }
}

/// One vertex of the topology graph.
public struct Node: Hashable, Sendable {
    /// Unique within the topology, e.g. `chip5`, `inst12/efa3`, `leaf40`.
    public var name: String
    public var kind: NodeKind
    /// The host (instance, server) the node belongs to; fabric switches carry `-1`.
    ///
    /// Two ranks whose nodes share a host can talk through host memory; the runtime's
    /// host identity (boot id and network namespace) is matched against this index.
    public var host: Int
    /// Memory attached to the node (HBM for accelerators, DRAM for CPUs), when the file says.
    public var memory: ByteCount?
    /// How fast that memory reads or writes, when the file says; local reductions run at this rate.
    public var memoryBandwidth: Bandwidth?
    /// A NIC's line rate per direction, when the file says; a fabric port link never runs faster.
    public var lineRate: Bandwidth?

    public init(name: String, kind: NodeKind, host: Int, memory: ByteCount? = nil, memoryBandwidth: Bandwidth? = nil,
                lineRate: Bandwidth? = nil) {
        self.name = name
        self.kind = kind
        self.host = host
        self.memory = memory
        self.memoryBandwidth = memoryBandwidth
        self.lineRate = lineRate
    }
}
