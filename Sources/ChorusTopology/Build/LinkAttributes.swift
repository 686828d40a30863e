import ChorusCore

/// What every generated or declared link shares: kind, per-lane bandwidth per direction,
/// latency, lane count and path policy.
public struct LinkAttributes: Hashable, Sendable {
    public var kind: LinkKind
    public var bandwidth: Bandwidth
    public var latency: Duration
    public var count: Int
    public var pathPolicy: PathPolicy

    public init(kind: LinkKind, bandwidth: Bandwidth, latency: Duration, count: Int = 1, pathPolicy: PathPolicy = .single) {
        self.kind = kind
        self.bandwidth = bandwidth
        self.latency = latency
        self.count = count
        self.pathPolicy = pathPolicy
    }

    /// `bandwidth × count`.
    public var capacity: Bandwidth { bandwidth * Double(count) }
}
