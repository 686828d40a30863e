/// The collective operations Chorus plans, runs and simulates.
public enum Collective: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case allReduce = "all-reduce"
    case allGather = "all-gather"
    case reduceScatter = "reduce-scatter"
    case broadcast
    case reduce

    public var description: String { rawValue }

    /// Accepts `all-reduce`, `allreduce`, `all_reduce`, `AllReduce` and the same for the others.
    public init?(name: String) {
        let key = name.lowercased().filter { $0 != "-" && $0 != "_" }
        guard let c = Collective.allCases.first(where: { $0.rawValue.filter { $0 != "-" } == key }) else { return nil }
        self = c
    }

    /// Whether the collective combines contributions with a `ReduceOp`.
    public var reduces: Bool {
        switch self {
        case .allReduce, .reduceScatter, .reduce: return true
        case .allGather, .broadcast: return false
        }
    }

    /// Whether the collective has a root rank.
    public var hasRoot: Bool { self == .broadcast || self == .reduce }

    /// nccl-tests' bus-bandwidth factor: `busbw = algbw × factor`.
    ///
    /// All-reduce moves `2(n−1)/n` of the buffer over each rank's busiest link in a ring; all-gather
    /// and reduce-scatter `(n−1)/n` of the full (gathered) buffer; broadcast and reduce `1`.
    public func busBandwidthFactor(ranks n: Int) -> Double {
        guard n > 1 else { return self == .broadcast || self == .reduce ? 1 : 0 }
        switch self {
        case .allReduce: return 2 * Double(n - 1) / Double(n)
        case .allGather, .reduceScatter: return Double(n - 1) / Double(n)
        case .broadcast, .reduce: return 1
        }
    }
}
