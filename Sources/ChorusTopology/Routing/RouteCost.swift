import ChorusCore

/// What one message pays on a route besides bytes over bandwidth, by the one rule the cost
/// model and the simulator share.
///
/// - `latency`: the sum of link latencies along the fastest shortest path.
/// - `overhead`: software and protocol cost per message (posting, completion, polling) of the
///   route's bottleneck link kind: the calibration's alpha for that kind if it has one, else
///   `LinkKind.defaultMessageOverhead`. The bottleneck is the loaded arc of least capacity; of
///   equal capacities, the kind with the larger overhead.
public struct RouteCost: Hashable, Sendable {
    public var latency: Duration
    public var overhead: Duration
    public var bottleneckKind: LinkKind?

    public init(latency: Duration, overhead: Duration, bottleneckKind: LinkKind?) {
        self.latency = latency
        self.overhead = overhead
        self.bottleneckKind = bottleneckKind
    }
}

extension Topology {
    /// Memory bandwidth assumed for a node whose file does not say (local copies and reductions).
    public static let assumedMemoryBandwidth = Bandwidth.gigabytesPerSecond(50)

    /// How fast `node`'s memory reads or writes: the file's figure, else the assumed one.
    @inlinable
    public func memoryBandwidth(of node: NodeID) -> Bandwidth {
        nodes[node.index].memoryBandwidth ?? Self.assumedMemoryBandwidth
    }

    /// The payload capacity of one direction of `arc`, in bytes per second: the calibration's
    /// bandwidth where it covers the link's kind, else the link's rate times its kind's payload
    /// efficiency (`LinkKind.defaultPayloadEfficiency`).
    @inlinable
    public func capacity(of arc: ArcID, calibration: LinkCalibration?) -> Double {
        let link = links[arc.link.index]
        if let b = calibration?.entries[link.kind]?.bandwidth { return b.bytesPerSecond }
        return link.capacity.bytesPerSecond * link.kind.defaultPayloadEfficiency
    }

    /// Latency and per-message overhead of a routed message.
    public func cost(of route: RouteSet, calibration: LinkCalibration?) -> RouteCost {
        guard route.hops > 0 else { return RouteCost(latency: .zero, overhead: .zero, bottleneckKind: nil) }
        var bottleneck = Double.infinity
        var kind = LinkKind.shm
        for a in route.arcs where a.share > 0 {
            let c = capacity(of: a.arc, calibration: calibration)
            let k = links[a.arc.link.index].kind
            if c < bottleneck || (c == bottleneck && k.defaultMessageOverhead > kind.defaultMessageOverhead) {
                bottleneck = c
                kind = k
            }
        }
        return RouteCost(latency: route.minimumLatency,
                         overhead: calibration?.entries[kind]?.alpha ?? kind.defaultMessageOverhead,
                         bottleneckKind: kind)
    }
}
