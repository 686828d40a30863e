import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusTopology

/// One algorithm considered for a collective, with its best plan parameters and modelled time,
/// or the reason it was not considered.
public struct Candidate: Sendable {
    public var algorithm: Algorithm
    public var channels: Int
    public var sliceBytes: Int?
    public var estimate: Estimate?
    /// Why it cannot run, if it cannot.
    public var unavailable: String?
    /// Set when `CHORUS_ALGO` ruled it out.
    public var excluded: Bool

    public var id: String { algorithm.id }
}

/// The selector's decision: an algorithm, its plan parameters and modelled time, and everything
/// it was compared with.
public struct Selection: Sendable {
    public var spec: CollectiveSpec
    public var bytes: Int
    public var chosen: Candidate
    /// Every candidate, fastest first, then those ruled out.
    public var candidates: [Candidate]
    public var context: AlgorithmContext
    /// Set when `CHORUS_ALGO` decided.
    public var overridden: Bool

    /// The plan to run or simulate. Programs are generated on demand, so this is cheap even for
    /// 65,536 ranks.
    public func plan() throws -> Plan {
        Plan(schedule: try chosen.algorithm.generate(spec, context: context), channels: chosen.channels, sliceBytes: chosen.sliceBytes)
    }

    /// One line per candidate, saying why each lost.
    public var explanation: [String] {
        let best = chosen.estimate?.total ?? .zero
        return candidates.map { c in
            let params = "channels \(c.channels), slice \(c.sliceBytes.map { ByteCount($0).description } ?? "whole chunks")"
            if let reason = c.unavailable { return "\(c.id): cannot run: \(reason)" }
            if c.excluded { return "\(c.id): ruled out by \(overridden ? "the override" : "CHORUS_ALGO")" }
            let time = c.estimate!.total
            if c.id == chosen.id { return "\(c.id): chosen, \(time.chorusDescription) (\(params))" }
            let slower = time - best
            let ratio = best > .zero ? time.inSeconds / best.inSeconds : 0
            return "\(c.id): \(time.chorusDescription), slower by \(slower.chorusDescription) (\(formatTrimmed(ratio, maxFractionDigits: 2))x; \(params))"
        }
    }
}

/// Chooses the algorithm, channel copies and slice size for a collective on a topology by
/// least modelled time (`CostModel`), honouring `CHORUS_ALGO`.
public final class Selector {
    public let topology: Topology
    public let ranks: Int
    public let context: AlgorithmContext
    public let model: CostModel

    /// Slice sizes tried for every algorithm (`nil`: whole chunks).
    public static let sliceCandidates: [Int?] = [nil, 4 << 20, 1 << 20, 256 << 10, 64 << 10]

    /// - Parameter ranks: use the first `ranks` ranks of the topology (all by default).
    public init(topology: Topology, ranks: Int? = nil, calibration: LinkCalibration? = nil) {
        self.topology = topology
        self.ranks = ranks ?? topology.rankCount
        self.context = AlgorithmContext(topology: topology, ranks: ranks)
        self.model = CostModel(topology: topology, calibration: calibration)
    }

    /// Chooses for `collective` at `bytes` (nccl-tests' size: the whole buffer; for all-gather
    /// and reduce-scatter the whole gathered or scattered buffer).
    /// - Throws: `SelectError` when the override allows nothing that can run.
    public func select(_ collective: Collective, bytes: Int, root: Int = 0, override: SelectionOverride? = nil) throws -> Selection {
        let spec = CollectiveSpec(collective, ranks: ranks, root: root)
        let clause = override?.clause(for: collective, bytes: bytes)
        var candidates: [Candidate] = []
        for algorithm in AlgorithmRegistry.algorithms(for: collective) {
            var candidate = Candidate(algorithm: algorithm, channels: 1, sliceBytes: nil, estimate: nil, unavailable: nil, excluded: false)
            if let reason = algorithm.unavailableReason(spec, context) {
                candidate.unavailable = reason
                candidates.append(candidate)
                continue
            }
            var forced: SelectionOverride.AlgorithmChoice?
            if let clause {
                let named = clause.algorithms.first { $0.id == algorithm.id }
                if clause.exclude ? named != nil : named == nil {
                    candidate.excluded = true
                    candidates.append(candidate)
                    continue
                }
                forced = clause.exclude ? nil : named
            }
            let shape = algorithm.costShape(spec, context: context)
            let slices: [Int?] = forced?.sliceBytes.map { [$0] } ?? Self.sliceCandidates
            for slice in slices {
                let estimate = model.estimate(shape, ranks: ranks, bytes: Double(bytes), sliceBytes: slice)
                if candidate.estimate == nil || estimate.total < candidate.estimate!.total {
                    candidate.estimate = estimate
                    candidate.sliceBytes = slice
                }
            }
            candidate.channels = forced?.channels ?? 1
            candidates.append(candidate)
        }
        let runnable = candidates.filter { $0.estimate != nil }.sorted {
            $0.estimate!.total != $1.estimate!.total ? $0.estimate!.total < $1.estimate!.total : $0.id < $1.id
        }
        let others = candidates.filter { $0.estimate == nil }
        guard let best = runnable.first else {
            if let clause, let override {
                let named = clause.algorithms.map(\.id)
                let reasons = candidates.filter { named.contains($0.id) }.map { "\($0.id): \($0.unavailable ?? "excluded")" }
                throw SelectError.nothingAllowed("\(override.text.isEmpty ? "the override" : "'\(override.text)'") allows only \(named.joined(separator: ", ")) for \(collective) at \(ByteCount(bytes)), and none can run here (\(reasons.joined(separator: "; ")))")
            }
            throw SelectError.noCandidate("no algorithm can run \(collective) on \(ranks) ranks of \(topology.name)")
        }
        return Selection(spec: spec, bytes: bytes, chosen: best, candidates: runnable + others, context: context, overridden: clause != nil)
    }
}
