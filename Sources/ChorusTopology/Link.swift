import ChorusCore

/// The index of a link in its `Topology`.
public struct LinkID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public init(_ index: Int) { self.rawValue = Int32(truncatingIfNeeded: index) }
    @inlinable public var index: Int { Int(rawValue) }
    @inlinable public static func < (a: LinkID, b: LinkID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "link #\(rawValue)" }
}

/// One direction of a link: the unit of capacity that flows share.
///
/// Links are full duplex; arc `2·l` runs from `link.a` to `link.b` and arc `2·l + 1` back.
public struct ArcID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public init(link: LinkID, reversed: Bool) { self.rawValue = link.rawValue &* 2 &+ (reversed ? 1 : 0) }
    @inlinable public var link: LinkID { LinkID(rawValue: rawValue >> 1) }
    @inlinable public var isReversed: Bool { rawValue & 1 == 1 }
    @inlinable public var index: Int { Int(rawValue) }
    @inlinable public static func < (a: ArcID, b: ArcID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "arc #\(rawValue)" }
}

/// The physical kind of a link; the cost model and calibration files key on it.
public enum LinkKind: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// AWS Trainium chip-to-chip links.
    case neuronlink
    /// NVIDIA GPU links, usually through NVSwitch.
    case nvlink
    /// PCI Express: accelerator or NIC to host, or a switched PCIe fabric.
    case pcie
    /// AWS Elastic Fabric Adapter (SRD transport).
    case efa
    case infiniband
    case ethernet
    /// Host memory between processes on one machine.
    case shm

    public var description: String { rawValue }

    /// Kinds that leave the host: a rank's share of these is its scale-out bandwidth.
    public var isNetwork: Bool {
        switch self {
        case .efa, .infiniband, .ethernet: return true
        default: return false
        }
    }
}

/// How a flow uses equal-cost paths.
public enum PathPolicy: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// Packets of one flow are spread over every equal-cost next hop (EFA's SRD).
    case spray
    /// Each flow takes one path, chosen by a hash of the flow (InfiniBand and Ethernet ECMP).
    case single

    public var description: String { rawValue }
}

/// One full-duplex link between two nodes.
public struct Link: Hashable, Sendable {
    public var a: NodeID
    public var b: NodeID
    public var kind: LinkKind
    /// The rate of one lane in each direction; the link carries `count` lanes.
    public var bandwidth: Bandwidth
    /// Time for a message's first byte to cross the link (wire, SerDes and the switch behind it).
    public var latency: Duration
    /// Parallel lanes bundled into this link (e.g. 5 NVLinks from a GPU to one NVSwitch).
    public var count: Int
    /// How flows split where this link is one of several equal-cost next hops.
    public var pathPolicy: PathPolicy

    public init(a: NodeID, b: NodeID, kind: LinkKind, bandwidth: Bandwidth, latency: Duration,
                count: Int = 1, pathPolicy: PathPolicy = .single) {
        self.a = a
        self.b = b
        self.kind = kind
        self.bandwidth = bandwidth
        self.latency = latency
        self.count = count
        self.pathPolicy = pathPolicy
    }

    /// Total rate in each direction: `bandwidth × count`.
    @inlinable
    public var capacity: Bandwidth { bandwidth * Double(count) }

    /// The node an arc of this link starts from.
    @inlinable
    public func tail(reversed: Bool) -> NodeID { reversed ? b : a }

    /// The node an arc of this link ends at.
    @inlinable
    public func head(reversed: Bool) -> NodeID { reversed ? a : b }
}
