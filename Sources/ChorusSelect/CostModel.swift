import ChorusAlgorithms
import ChorusCore
import ChorusTopology

/// The modelled time of a plan, phase by phase.
public struct Estimate: Sendable {
    public var total: Duration
    public var phases: [(label: String, time: Duration)]
}

/// An alpha-beta model over routed paths.
///
/// A phase of an algorithm (`CostPhase`) is a number of steps in which ranks send messages of a
/// known size to known peers. For one step the model routes each message over the topology's
/// equal-cost shortest paths (`Router`), adds every message's bytes to the arcs it crosses in
/// proportion to its share (so links that concurrent messages of the step share count as
/// shared), and takes
///
///     step = max(comm, reduce, P·m·o, α + o' + (comm + reduce) / P)
///
/// where α is the largest route latency (sum of link latencies), `o` the per-message overhead of
/// the route's bottleneck link kind (`LinkKind.defaultMessageOverhead`, or a calibration's
/// alpha), `m` the messages a rank posts per step, `comm` the busiest arc's load over its
/// capacity, `reduce` the time to add what arrives at the node's memory bandwidth (read two,
/// write one), and `P` the slices per message. Slices pipeline across steps (slice p of a step
/// waits only for slice p of the step before), so in the steady state a step costs what its
/// busiest resource needs (the link: comm; memory: reduce; the sender's engine, which posts
/// every slice in turn: P·m·o) unless one slice's own chain through the step (latency,
/// posting o', its share of transfer and reduction) is longer. The chain posts one message
/// (o' = o) when steps follow one another, since each of a step's m messages then starts its
/// own chain, and waits for all m postings (o' = m·o) in a phase of a single step; with P = 1
/// the chain is the whole step. The simulator (`ChorusSim`) agrees on uncontended rings and
/// hypercubes (a test). Pipelined phases (chains, trees) cost `(depth + P − 1)` stages of
/// one slice each.
///
/// It never walks a whole schedule: phases are evaluated on a sample of ranks (all of them up to
/// 512; otherwise two whole instances of a composition plus 32 ranks spread over the rest), and a
/// rank with more than 64 peers in a step (one-shot algorithms) routes 64 of them, spread evenly,
/// with their loads scaled up to stand for the rest. Costing the 65,536-chip cluster routes a few
/// thousand flows. Loads are counted among sampled flows only: sharing inside instances and NICs
/// is exact for symmetric patterns; sharing deep in a fabric by unsampled instances is not
/// (non-blocking fabrics make this small; the simulator models it fully).
public final class CostModel {
    public let topology: Topology
    public let calibration: LinkCalibration?
    private let router: Router
    private var routeCache: [Int64: RouteLoads] = [:]
    /// Bytes per arc in the step being costed, dense, with the arcs touched (for resetting).
    private var arcLoad: [Double]
    private var touched: [Int32] = []

    struct RouteLoads {
        var latency: Double
        var overhead: Double
        var loads: [(arc: Int32, share: Double)]
    }

    public init(topology: Topology, calibration: LinkCalibration? = nil) {
        self.topology = topology
        self.calibration = calibration
        self.router = Router(topology)
        self.arcLoad = [Double](repeating: 0, count: topology.arcCount)
    }

    /// The ranks a phase is evaluated on.
    public func sample(ranks n: Int) -> [Int] {
        if n <= 512 { return Array(0..<n) }
        var picked = Set<Int>()
        if let c = topology.composition, c.instance.rankCount > 0, c.instance.rankCount <= 64 {
            let g = c.instance.rankCount
            for l in 0..<min(2 * g, n) { picked.insert(l) }
        }
        for i in 0..<32 { picked.insert(i * n / 32) }
        picked.insert(n - 1)
        return picked.sorted()
    }

    /// Capacity of an arc in bytes per second, calibrated if the calibration covers its kind.
    private func capacity(_ arc: Int32) -> Double {
        topology.capacity(of: ArcID(rawValue: arc), calibration: calibration)
    }

    private func routeCost(_ a: Int, _ b: Int) -> RouteLoads {
        let key = (Int64(a) << 32) | Int64(b)
        if let cached = routeCache[key] { return cached }
        var cost = RouteLoads(latency: 0, overhead: 0, loads: [])
        if a != b, let route = router.routes(from: topology.ranks[a], to: topology.ranks[b], flow: UInt64(key)) {
            let shared = topology.cost(of: route, calibration: calibration)
            cost.latency = shared.latency.inSeconds
            cost.overhead = shared.overhead.inSeconds
            for a in route.arcs where a.share > 0 { cost.loads.append((a.arc.rawValue, a.share)) }
        }
        routeCache[key] = cost
        return cost
    }

    private func memoryBandwidth(_ rank: Int) -> Double {
        topology.memoryBandwidth(of: topology.ranks[rank]).bytesPerSecond
    }

    /// The modelled time of `shape` for `bytes` (nccl-tests' size) over `ranks` ranks.
    /// - Parameter sliceBytes: the plan's slice size (`nil`: each message whole).
    public func estimate(_ shape: CostShape, ranks n: Int, bytes: Double, sliceBytes: Int?) -> Estimate {
        let sampled = sample(ranks: n)
        var phases: [(String, Duration)] = []
        var total = 0.0
        for phase in shape.phases {
            let b = phase.messageBytes(bytes)
            var alpha = 0.0, overhead = 0.0
            var messages = 0
            var received: [Int: Int] = [:]
            for arc in touched { arcLoad[Int(arc)] = 0 }
            touched.removeAll(keepingCapacity: true)
            for r in sampled {
                let allPeers = phase.peers(r)
                messages = max(messages, allPeers.count)
                // Route at most 64 peers per rank; each stands for `weight` of them.
                let peers = allPeers.count <= 64 ? allPeers : (0..<64).map { allPeers[$0 * allPeers.count / 64] }
                let weight = Double(allPeers.count) / Double(max(peers.count, 1))
                for q in peers where q != r {
                    let cost = routeCost(r, q)
                    alpha = max(alpha, cost.latency)
                    overhead = max(overhead, cost.overhead)
                    received[q, default: 0] += 1
                    for (arc, share) in cost.loads {
                        if arcLoad[Int(arc)] == 0 { touched.append(arc) }
                        arcLoad[Int(arc)] += b * share * weight
                    }
                }
            }
            var comm = 0.0
            for arc in touched { comm = max(comm, arcLoad[Int(arc)] / capacity(arc)) }
            var reduce = 0.0
            if phase.reduces {
                // A rank receives about as many messages per step as it sends (patterns are symmetric).
                for (q, count) in received { reduce = max(reduce, Double(max(count, messages)) * b * 3 / memoryBandwidth(q)) }
            }
            let localBytes = phase.localBytes(bytes)
            let local = localBytes > 0 ? localBytes * 2 / sampled.map(memoryBandwidth).min()! : 0
            let slices = Double(sliceBytes.map { b > 0 ? max(1, (b / Double($0)).rounded(.up)) : 1 } ?? 1)
            let m = Double(max(messages, messages > 0 ? 1 : 0))
            var time: Double
            switch phase.overlap {
            case .steps:
                // One slice's chain through a step posts one message, unless the phase is a single step
                // (nothing to overlap with): then its last message waits for all m postings.
                let posting = phase.steps > 1 ? overhead : m * overhead
                let step = messages == 0 ? 0 : max(comm, reduce, slices * m * overhead, alpha + posting + (comm + reduce) / slices)
                time = Double(phase.steps) * step
            case .pipeline(let depth):
                let stage = messages == 0 ? 0 : alpha + m * overhead + (comm + reduce) / slices
                time = (Double(depth) + slices - 1) * stage
            }
            time += local
            total += time
            phases.append((phase.label, .seconds(time)))
        }
        return Estimate(total: .seconds(total), phases: phases)
    }
}
