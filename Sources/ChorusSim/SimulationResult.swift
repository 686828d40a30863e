import ChorusCore
import ChorusSchedule

/// What a simulated collective cost.
public struct SimulationResult: Sendable {
    /// From the first op posted to the last op completed on any rank.
    public var time: Duration
    public var ranks: Int
    /// Ops times pieces (channel copies × slices) that ran.
    public var opInstances: Int
    /// Messages that crossed the network or a node's memory.
    public var messages: Int
    /// Events the engine processed.
    public var events: Int
    /// Of those, drain events made stale by a later change of the flow's rate.
    public var staleEvents: Int
    /// Max-min recomputations (one per instant at which flows started or ended).
    public var reallocations: Int
    /// Every resource that carried bytes.
    public var usage: [ResourceUsage]
    /// One slice per op instance, when the input asked for a trace.
    public var slices: [TraceSlice]
    /// How a symmetric plan was aggregated, `nil` for a full simulation of every rank.
    public var aggregation: Aggregation?
    /// Why a plan that declares a symmetry was simulated rank by rank (its images route unlike
    /// on this topology), `nil` otherwise.
    public var fullSimulationReason: String?
    /// How long the simulation itself took: laying the plan out, then running the events. The
    /// only field that differs between two runs of the same input.
    public var wallClock: (setUp: Duration, events: Duration) = (.zero, .zero)

    /// A symmetric run: the translations, the ranks simulated for all, and how link loads were
    /// found (every image routed, or averaged over links alike).
    public struct Aggregation: Sendable, Hashable, CustomStringConvertible {
        public var symmetry: RankSymmetry
        public var simulatedRanks: Int
        public var averagedLoads: Bool
        /// Constraints the max-min sharing ran over.
        public var resources: Int

        public var description: String {
            "\(simulatedRanks) representative rank\(simulatedRanks == 1 ? "" : "s") for \(symmetry.ranks) (\(symmetry.action.rawValue) symmetry), link loads \(averagedLoads ? "averaged over links alike" : "from every image's route") on \(resources) distinct constraint\(resources == 1 ? "" : "s")"
        }
    }

    /// The `count` resources with the highest utilisation over the whole run.
    public func busiest(_ count: Int) -> [ResourceUsage] {
        let t = time.inSeconds
        return usage.sorted {
            let a = $0.utilisation(over: t), b = $1.utilisation(over: t)
            return a != b ? a > b : $0.name < $1.name
        }.prefix(max(count, 0)).map { $0 }
    }
}

/// How much one resource (a link direction or a NIC direction) carried.
public struct ResourceUsage: Sendable, Hashable {
    /// `chip0 -> chip1`, or `inst0/efa3 injection`.
    public var name: String
    /// The link kind, or `nic`.
    public var kind: String
    public var capacity: Bandwidth
    public var bytes: Double

    /// Fraction of the capacity used over `seconds`.
    public func utilisation(over seconds: Double) -> Double {
        seconds > 0 && capacity.bytesPerSecond > 0 ? bytes / (capacity.bytesPerSecond * seconds) : 0
    }
}

/// One op instance's life on the simulated clock: from when it could start (a message: when both
/// ends were posted) to when it completed.
public struct TraceSlice: Sendable, Hashable {
    public var rank: Int32
    /// The op's index in its rank's program.
    public var op: Int32
    /// The piece (channel copy × slices + slice).
    public var piece: Int32
    /// Picoseconds.
    public var start: Int64
    public var end: Int64
}
