import ChorusCore
import ChorusSchedule
import ChorusTopology

/// What a simulation needs besides the plan: the message size and the figures that replace the
/// topology's.
public struct SimulationInput: Sendable {
    /// Elements per block (the collective's per-block count: all-reduce count, all-gather send
    /// count, reduce-scatter receive count).
    public var blockElements: Int
    public var elementSize: Int
    public var calibration: LinkCalibration?
    /// Record one slice per op instance for a trace.
    public var recordTrace: Bool
    /// With `recordTrace`, record only ranks below this (a trace of every op of thousands of
    /// ranks is more than a trace viewer opens); `nil` records every rank.
    public var traceRanks: Int?
    /// Run one representative per orbit when the plan declares a rank symmetry (`false`
    /// simulates every rank).
    public var useSymmetry = true
    /// With a symmetry, average link loads over links alike even where routing every image is
    /// affordable (tests compare both ways).
    public var averageSymmetricLoads = false

    public init(blockElements: Int, elementSize: Int, calibration: LinkCalibration? = nil, recordTrace: Bool = false) {
        self.blockElements = blockElements
        self.elementSize = elementSize
        self.calibration = calibration
        self.recordTrace = recordTrace
    }

    /// The input for nccl-tests' `bytes` of `collective` over `ranks` ranks (the whole buffer;
    /// for all-gather and reduce-scatter the whole gathered or scattered buffer).
    public init(bytes: Int, collective: Collective, ranks: Int, dataType: DataType,
                calibration: LinkCalibration? = nil, recordTrace: Bool = false) {
        let count = bytes / dataType.size
        let m = (collective == .allGather || collective == .reduceScatter) ? count / max(ranks, 1) : count
        self.init(blockElements: m, elementSize: dataType.size, calibration: calibration, recordTrace: recordTrace)
    }
}

public enum SimulationError: Error, CustomStringConvertible, Equatable {
    /// The plan needs more ranks than the topology has.
    case tooManyRanks(plan: Int, topology: Int, name: String)
    /// Two ranks that exchange messages have no path between them.
    case unreachable(from: Int, to: Int, detail: String)
    /// Some ops can never run (an unverified schedule that deadlocks or never matches).
    case stalled(String)
    /// The plan has more op instances than one simulation holds.
    case tooLarge(String)
    /// The plan's declared rank symmetry does not hold, in the schedule or on the topology.
    case asymmetric(String)

    public var description: String {
        switch self {
        case .tooManyRanks(let p, let t, let name): return "the plan has \(p) ranks but \(name) has \(t)"
        case .unreachable(let a, let b, let d): return "rank \(a) cannot reach rank \(b): \(d)"
        case .stalled(let what): return "the simulation stalled: \(what)"
        case .tooLarge(let what): return what
        case .asymmetric(let what): return "one rank cannot stand for the others: \(what)"
        }
    }
}

/// Runs a `Plan` on a topology with the flow-level network model and reports what it costs.
///
/// The plan means what DESIGN.md's contracts say, through the same `ProgramGraph` the executor
/// uses: an op instance (an op on one piece of its chunks: channel copy `k`, slice `p`) runs when
/// the instances it depends on have completed, and a send or receive is posted after the one
/// before it in its (peer, channel, copy) queue. A message moves when both its send and its
/// receive are posted (rendezvous), and both complete when its last byte has arrived; a reducing
/// receive then spends the reduction's memory traffic. Nothing here knows which algorithm made
/// the plan.
///
/// Costs of one message from rank a to rank b:
/// 1. the sender's per-message overhead (`RouteCost.overhead`), paid one message at a time per
///    rank (a rank's progress engine posts messages in turn);
/// 2. its bytes through the network at the max-min fair rate of its route (`FlowNetwork`), which
///    changes as other flows start and end;
/// 3. the route's latency (sum of link latencies) after the last byte leaves;
/// 4. at the receiver, a reducing receive reads two operands and writes one at the node's memory
///    bandwidth; local copies move 2 bytes and local reductions 3 bytes of memory traffic per byte.
///
/// A plan whose schedule declares a `RankSymmetry` runs one representative rank per orbit (see
/// `SymmetricNetwork`) when the declaration survives its spot-check and the images run in
/// lockstep on this topology; otherwise every rank runs, and `SimulationResult` says why.
public final class Simulator {
    public let topology: Topology
    private let router: Router

    public init(topology: Topology) {
        self.topology = topology
        self.router = Router(topology)
    }

    /// Simulates `plan` with `input`. `progress`, if given, is called now and then with the
    /// fraction of op instances completed.
    public func run(_ plan: Plan, _ input: SimulationInput, progress: ((Double) -> Void)? = nil) throws -> SimulationResult {
        let clock = ContinuousClock()
        let start = clock.now
        var run: SimulationRun
        var fullBecause: String?
        do {
            run = try SimulationRun(plan: plan, input: input, topology: topology, router: router)
        } catch let unlike as SymmetricNetwork.Unlike {
            // The symmetry holds in the schedule but not on this topology: simulate every rank.
            var full = input
            full.useSymmetry = false
            do {
                run = try SimulationRun(plan: plan, input: full, topology: topology, router: router)
            } catch SimulationError.tooLarge(let what) {
                throw SimulationError.asymmetric("on \(topology.name), \(unlike.reason); and the full simulation is too large: \(what)")
            }
            fullBecause = unlike.reason
        }
        let laidOut = clock.now
        var result = try run.execute(progress: progress)
        result.wallClock = (setUp: laidOut - start, events: clock.now - laidOut)
        result.fullSimulationReason = fullBecause
        return result
    }
}
