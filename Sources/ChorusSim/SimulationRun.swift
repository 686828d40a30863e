import ChorusCore
import ChorusSchedule
import ChorusTopology

/// One simulation in progress: the plan laid out as op instances over the simulated ranks, the
/// event queue and the network. See `Simulator` for the model.
///
/// The simulated ranks are every rank, or with a symmetric plan one representative per orbit
/// (`0 ..< symmetry.orbits`): a representative's message to rank `p` pairs with the receive, at
/// `p`'s representative, from the rank that plays the sender's part in `p`'s frame, and it is a
/// flow class on a `SymmetricNetwork`.
///
/// Instance `g = (opBase[r] + i)·T + t` is op `i` of simulated rank `r` on piece `t` of its
/// chunks (`T = channels × slices`, piece `t = k·slices + p`), the numbering `CompiledPlan` uses.
struct SimulationRun {
    let plan: Plan
    let input: SimulationInput
    let topology: Topology
    let router: Router
    /// The plan's ranks.
    let ranks: Int
    /// The translations the run uses; for a full simulation, the trivial one (every rank its
    /// own orbit).
    let symmetry: RankSymmetry
    /// The ranks simulated: one representative per orbit (`0 ..< simulated`).
    var simulated: Int { symmetry.orbits }
    let symmetric: SymmetricNetwork?
    /// Pieces per chunk and slices per channel copy.
    let pieces: Int
    let slices: Int

    // Each op, by global index, in compact arrays (the programs themselves are dropped after
    // set-up): kind, peer, channel, whether it reduces, and the chunks its message or write covers.
    private let opKind: [Op.Kind]
    private let opReducing: [Bool]
    /// The real rank each send or receive talks to.
    private let opPeer: [Int32]
    private let opChunks: [ChunkList]
    /// Dependencies as global op indices: the ops that wait for op `g` are
    /// `successorList[successorOffsets[g] ..< successorOffsets[g + 1]]` (from `ProgramGraph`).
    private let successorOffsets: [Int32]
    private let successorList: [Int32]
    /// The next and the previous op in each message op's queue, or `-1`.
    private let queueNext: [Int32]
    private let queuePrevious: [Int32]
    /// The op each send or receive pairs with at its peer, or `-1` if it has none.
    private let partnerOp: [Int32]
    private var opBase: [Int]
    private var rankOfOp: [Int32]

    private var pending: [Int32]
    /// Per instance: `posted`, and for sends `drained` (its last byte has left) and `parked`
    /// (its flow waits for the previous message of its queue to drain).
    private var flags: [UInt8]
    private static let posted: UInt8 = 1, drained: UInt8 = 2, parked: UInt8 = 4
    private var partner: [Int32]
    private var startedAt: [Picoseconds]
    private var ready: [Int] = []
    private var completed = 0
    private var finishTime: Picoseconds = 0
    private var engineFree: [Picoseconds]
    private var memoryRate: [Double]

    private var events = EventQueue()
    private var eventCount = 0
    private var staleCount = 0
    private var reallocations = 0
    private var network: FlowNetwork
    private var flowSend: [Int32] = []
    private var flowLatency: [Picoseconds] = []
    private var messageCount = 0

    private struct RouteEntry {
        var route: Int32
        var latency: Picoseconds
        var overhead: Picoseconds
    }
    private var routeCache: [Int64: RouteEntry] = [:]
    private let resources: NetworkResources
    private var failure: SimulationError?
    private var drainScratch: [(Int32, Picoseconds, UInt32)] = []
    private var slicesRecorded: [TraceSlice] = []

    init(plan: Plan, input: SimulationInput, topology: Topology, router: Router) throws {
        let schedule = plan.schedule
        let n = schedule.ranks
        guard n <= topology.rankCount else { throw SimulationError.tooManyRanks(plan: n, topology: topology.rankCount, name: topology.name) }
        self.plan = plan
        self.input = input
        self.topology = topology
        self.router = router
        ranks = n
        slices = plan.slices(blockElements: input.blockElements, elementSize: input.elementSize)
        pieces = plan.channels * slices
        // A trace shows every rank, so it comes from the full simulation wherever that can run.
        let traceWantsAll = input.recordTrace && (try? Self.checkSize(plan, pieces: pieces, simulatedRanks: n)) != nil
        let symmetry = input.useSymmetry && !traceWantsAll ? schedule.symmetry.flatMap { $0.ranks == n && $0.orbits < n ? $0 : nil } : nil
        let acting = symmetry ?? RankSymmetry(.rotation, ranks: n, stride: n)!
        self.symmetry = acting
        let s = acting.orbits

        try Self.checkSize(plan, pieces: pieces, simulatedRanks: s)
        if let symmetry { try Self.spotCheck(schedule, symmetry) }
        let programs = schedule.programs(ofFirst: s)
        let graphs = ProgramGraph.all(schedule, programs: programs)
        var base = [Int](repeating: 0, count: s + 1)
        for r in 0..<s { base[r + 1] = base[r] + programs[r].count }
        opBase = base
        let totalOps = base[s]
        guard totalOps.multipliedReportingOverflow(by: pieces).partialValue < Int(Int32.max), totalOps * pieces < Int(Int32.max) else {
            throw SimulationError.tooLarge("the plan has \(totalOps) ops in \(pieces) pieces each, more than the \(Int32.max) op instances one simulation holds; use fewer ranks, channels or a larger slice")
        }
        var rankOfOp = [Int32](repeating: 0, count: totalOps)
        var opKind: [Op.Kind] = [], opReducing: [Bool] = [], opChunks: [ChunkList] = [], opPeer: [Int32] = []
        opKind.reserveCapacity(totalOps); opReducing.reserveCapacity(totalOps); opChunks.reserveCapacity(totalOps)
        opPeer.reserveCapacity(totalOps)
        var successorOffsets = [Int32](repeating: 0, count: totalOps + 1)
        var successorList: [Int32] = []
        successorList.reserveCapacity(totalOps * 2)
        var queueNext = [Int32](repeating: -1, count: totalOps)
        var queuePrevious = [Int32](repeating: -1, count: totalOps)
        var predecessorCount = [Int32](repeating: 0, count: totalOps)
        // Per rank: (direction, peer, channel) → that queue's ops (global indices), in order.
        var queues = [[Int64: [Int32]]](repeating: [:], count: s)
        for r in 0..<s {
            let graph = graphs[r]
            for (i, op) in programs[r].ops.enumerated() {
                let g = base[r] + i
                rankOfOp[g] = Int32(r)
                opKind.append(op.kind)
                opReducing.append(op.reducing)
                opPeer.append(op.peer)
                opChunks.append((op.kind == .send ? op.source! : op.destination!).chunks)
                for j in graph.successors(of: i) { successorList.append(Int32(base[r] + Int(j))) }
                successorOffsets[g + 1] = Int32(successorList.count)
                predecessorCount[g] = Int32(graph.predecessors(of: i).count)
                if graph.queueSuccessor[i] >= 0 { queueNext[g] = Int32(base[r] + Int(graph.queueSuccessor[i])) }
                if graph.queuePredecessor[i] >= 0 { queuePrevious[g] = Int32(base[r] + Int(graph.queuePredecessor[i])) }
                guard op.kind == .send || op.kind == .recv else { continue }
                queues[r][Self.queueKey(send: op.kind == .send, peer: Int(op.peer), channel: Int(op.channel)), default: []].append(Int32(g))
            }
        }
        // Pair the q-th send from a to b on a channel with the q-th receive at b from a on it.
        // With a symmetry, b's part is played by its representative, and a's by the rank that
        // stands to b's representative as a stands to b.
        var partnerOp = [Int32](repeating: -1, count: totalOps)
        var flowClasses: [SymmetricNetwork.FlowClass] = []
        for r in 0..<s {
            for (key, sends) in queues[r].sorted(by: { $0.key < $1.key }) where key >> 62 == 1 {
                let peer = Int((key >> 24) & 0xFF_FFFF), channel = Int(key & 0xFF_FFFF)
                guard peer < n else { continue }
                if symmetry != nil { flowClasses.append(.init(a: r, b: peer)) }
                let t = acting.translation(of: peer)
                let sender = acting.unapply(t, to: r)
                guard let receives = queues[acting.representative(of: peer)][Self.queueKey(send: false, peer: sender, channel: channel)] else { continue }
                for (s, q) in zip(sends, receives) {
                    partnerOp[Int(s)] = q
                    partnerOp[Int(q)] = s
                }
            }
        }
        self.rankOfOp = rankOfOp
        self.opKind = opKind
        self.opReducing = opReducing
        self.opPeer = opPeer
        self.opChunks = opChunks
        self.successorOffsets = successorOffsets
        self.successorList = successorList
        self.queueNext = queueNext
        self.queuePrevious = queuePrevious
        self.partnerOp = partnerOp

        let instances = totalOps * pieces
        var pending = [Int32](repeating: 0, count: instances)
        for g in 0..<totalOps {
            let message = opKind[g] == .send || opKind[g] == .recv
            for t in 0..<pieces {
                let hasQueuePredecessor = message && (t % slices > 0 || queuePrevious[g] >= 0)
                pending[g * pieces + t] = predecessorCount[g] + (hasQueuePredecessor ? 1 : 0)
            }
        }
        self.pending = pending
        flags = [UInt8](repeating: 0, count: instances)
        partner = [Int32](repeating: -1, count: instances)
        startedAt = input.recordTrace ? [Picoseconds](repeating: 0, count: instances) : []
        engineFree = [Picoseconds](repeating: 0, count: s)
        memoryRate = (0..<s).map { topology.memoryBandwidth(of: topology.ranks[$0]).bytesPerSecond / 1e12 }

        resources = NetworkResources(topology: topology, calibration: input.calibration)
        if symmetry != nil {
            let classes = Array(Set(flowClasses)).sorted { ($0.a, $0.b) < ($1.a, $1.b) }
            let quotient = try SymmetricNetwork(classes: classes, symmetry: acting, topology: topology, router: router,
                                                calibration: input.calibration, forceAveraged: input.averageSymmetricLoads)
            symmetric = quotient
            network = FlowNetwork(capacities: quotient.resources.map(\.capacity))
            for c in classes {
                let entry = quotient.routes[c]!
                let route = entry.weights.isEmpty ? -1 : network.addRoute(entry.weights)
                routeCache[Self.pairKey(c.a, c.b)] = RouteEntry(route: route, latency: .from(entry.latency), overhead: .from(entry.overhead))
            }
        } else {
            symmetric = nil
            network = FlowNetwork(capacities: resources.capacities)
        }
    }

    @inline(__always)
    static func pairKey(_ a: Int, _ b: Int) -> Int64 { (Int64(a) << 32) | Int64(b) }

    /// Work the full event simulation can take on: op instances held, and chunk slots and chunk
    /// visits while deriving dependencies (both grow with ranks squared for schedules that cut
    /// the buffer into one chunk per rank, such as halving-doubling).
    static let instanceBudget = 200_000_000
    static let chunkWorkBudget = 2_000_000_000

    /// Refuses, before any work, a plan whose full simulation would take hours, estimated from
    /// rank 0's program.
    static func checkSize(_ plan: Plan, pieces: Int, simulatedRanks: Int) throws {
        let schedule = plan.schedule
        let program = schedule.program(for: 0)
        var visits = 0
        for op in program.ops {
            if let s = op.source { visits += s.chunks.count }
            if let d = op.destination { visits += d.chunks.count }
        }
        let layout = schedule.layout
        let slots = layout.chunkCount(.input) + layout.chunkCount(.output) + layout.chunkCount(.scratch)
        let n = schedule.ranks, s = simulatedRanks
        let instances = program.count * s * pieces
        let chunkWork = (slots + visits) * s
        let advice = s < n
            ? "use a coarser plan (--slice, --channels) or 'chorus plan' for the analytic model's estimate"
            : "use fewer ranks (--ranks), a coarser plan, an algorithm that declares a rank symmetry, or 'chorus plan' for the analytic model's estimate"
        if instances > instanceBudget {
            throw SimulationError.tooLarge("\(schedule.algorithm) on \(n) ranks is about \(instances) op instances (\(program.count) ops per rank x \(pieces) pieces\(s < n ? " x \(s) representative ranks" : "")), more than the \(instanceBudget) a full event simulation takes on; \(advice)")
        }
        if chunkWork > chunkWorkBudget {
            throw SimulationError.tooLarge("\(schedule.algorithm) on \(n) ranks cuts each buffer into \(layout.chunksPerBlock) chunks per block: deriving its dependencies means about \(chunkWork / 1_000_000) million chunk steps (\(slots + visits) per simulated rank), more than the \(chunkWorkBudget / 1_000_000) million a full event simulation takes on; \(advice)")
        }
    }

    @inline(__always)
    static func queueKey(send: Bool, peer: Int, channel: Int) -> Int64 {
        (Int64(send ? 1 : 0) << 62) | (Int64(peer) << 24) | Int64(channel)
    }

    // MARK: - Running

    mutating func execute(progress: ((Double) -> Void)?) throws -> SimulationResult {
        let total = pending.count
        for g in 0..<total where pending[g] == 0 { ready.append(g) }
        // Posting order: lowest instance first, deterministically.
        ready.reverse()
        var now: Picoseconds = 0
        drainReady(now)
        var nextReport = 1 << 16
        while failure == nil {
            if network.hasChanges {
                var due: [(Int32, Picoseconds, UInt32)] = []
                swap(&due, &drainScratch)
                network.reallocate(now: now) { due.append(($0, $1, $2)) }
                reallocations += 1
                for (f, t, v) in due { events.schedule(.flowDrained, at: t, id: f, version: v) }
                due.removeAll(keepingCapacity: true)
                swap(&due, &drainScratch)
            }
            guard let first = events.pop() else { break }
            now = first.time
            handle(first, now)
            while failure == nil, events.nextTime == now, let e = events.pop() { handle(e, now) }
            if let progress, completed >= nextReport {
                progress(Double(completed) / Double(max(total, 1)))
                nextReport = completed + (1 << 16)
            }
        }
        if let failure { throw failure }
        guard completed == total else { throw SimulationError.stalled(describeStall()) }
        let images = symmetry.orbitSize
        var result = SimulationResult(time: finishTime.duration, ranks: ranks, opInstances: total * images, messages: messageCount * images,
                                      events: eventCount, staleEvents: staleCount, reallocations: reallocations, usage: usage(), slices: slicesRecorded)
        if let symmetric {
            result.aggregation = SimulationResult.Aggregation(symmetry: symmetry, simulatedRanks: simulated,
                                                              averagedLoads: symmetric.mode == .averaged, resources: symmetric.resources.count)
        }
        return result
    }

    private mutating func handle(_ e: Event, _ now: Picoseconds) {
        eventCount += 1
        switch e.kind {
        case .flowStart:
            beginFlow(sendInstance: Int(e.id), now)
        case .flowDrained:
            let f = e.id
            guard e.version == network.version[Int(f)] else {
                staleCount += 1
                return
            }
            let s = Int(flowSend[Int(f)])
            network.finish(f, bytes: Double(messageBytes(s)))
            events.schedule(.delivered, at: now + flowLatency[Int(f)], id: f, version: 0)
            if let next = markDrained(s) { beginFlow(sendInstance: next, now) }
        case .delivered:
            // version 1: a message that used no network (id is its send instance).
            let s: Int
            if e.version == 1 {
                s = Int(e.id)
            } else {
                s = Int(flowSend[Int(e.id)])
                network.release(e.id)
            }
            let r = Int(partner[s])
            complete(s, now)
            let rank = Int(rankOfOp[r / pieces])
            let bytes = messageBytes(s)
            if opReducing[r / pieces] && bytes > 0 {
                events.schedule(.complete, at: now + duration(bytes: Double(bytes) * 3, rate: memoryRate[rank]), id: Int32(r))
            } else {
                complete(r, now)
            }
        case .complete:
            complete(Int(e.id), now)
        }
        drainReady(now)
    }

    private mutating func drainReady(_ now: Picoseconds) {
        while let g = ready.popLast() { post(g, now) }
    }

    /// Instance `g` has nothing left to wait for.
    private mutating func post(_ g: Int, _ now: Picoseconds) {
        flags[g] |= Self.posted
        if input.recordTrace { startedAt[g] = now }
        let globalOp = g / pieces, t = g % pieces
        let rank = Int(rankOfOp[globalOp])
        let kind = opKind[globalOp]
        switch kind {
        case .copy, .reduce:
            let bytes = Double(sliceBytes(opChunks[globalOp], piece: t))
            let traffic = kind == .copy ? 2.0 : 3.0
            events.schedule(.complete, at: now + duration(bytes: bytes * traffic, rate: memoryRate[rank]), id: Int32(g))
        case .send, .recv:
            if let next = queueSuccessor(g) {
                pending[next] -= 1
                if pending[next] == 0 { ready.append(next) }
            }
            guard let other = match(g, rank: rank) else { return }
            partner[g] = Int32(other)
            partner[other] = Int32(g)
            if flags[other] & Self.posted != 0 {
                let send = kind == .send ? g : other
                if input.recordTrace {
                    startedAt[g] = now
                    startedAt[other] = now
                }
                startTransfer(sendInstance: send, now)
            }
        }
    }

    /// The next instance in `g`'s message queue.
    @inline(__always)
    private func queueSuccessor(_ g: Int) -> Int? {
        let t = g % pieces
        if t % slices < slices - 1 { return g + 1 }
        let next = queueNext[g / pieces]
        guard next >= 0 else { return nil }
        return Int(next) * pieces + (t / slices) * slices
    }

    /// The previous instance in `g`'s message queue.
    @inline(__always)
    private func queuePredecessor(_ g: Int) -> Int? {
        let t = g % pieces
        if t % slices > 0 { return g - 1 }
        let previous = queuePrevious[g / pieces]
        guard previous >= 0 else { return nil }
        return Int(previous) * pieces + (t / slices) * slices + slices - 1
    }

    /// The instance at the peer that `g` pairs with.
    private mutating func match(_ g: Int, rank: Int) -> Int? {
        let globalOp = g / pieces
        let other = partnerOp[globalOp]
        guard other >= 0 else {
            let i = globalOp - opBase[rank]
            let op = plan.schedule.program(for: rank).ops[i]
            failure = .stalled("rank \(rank) op \(i) (\(op.summary)) has no matching \(op.kind == .send ? "receive" : "send") at rank \(op.peer); verify the schedule first (chorus verify)")
            return nil
        }
        return Int(other) * pieces + g % pieces
    }

    private mutating func startTransfer(sendInstance s: Int, _ now: Picoseconds) {
        let a = Int(rankOfOp[s / pieces])
        let b = Int(opPeer[s / pieces])
        guard let route = routeEntry(a, b) else { return }
        let begin = max(now, engineFree[a]) + route.overhead
        engineFree[a] = begin
        messageCount += 1
        events.schedule(.flowStart, at: begin, id: Int32(s))
    }

    /// A message whose sender has paid its overhead enters the network, unless the previous
    /// message of its queue is still draining: one connection sends its messages in order, one
    /// after another (FIFO per peer pair and channel), so they never share its bandwidth.
    private mutating func beginFlow(sendInstance first: Int, _ now: Picoseconds) {
        var s = first
        while true {
            if let previous = queuePredecessor(s), flags[previous] & Self.drained == 0 {
                flags[s] |= Self.parked
                return
            }
            flags[s] &= ~Self.parked
            let a = Int(rankOfOp[s / pieces])
            let b = Int(opPeer[s / pieces])
            let route = routeEntry(a, b)!
            let bytes = messageBytes(s)
            if bytes > 0 && route.route >= 0 {
                let f = network.start(bytes: Double(bytes), route: route.route, now: now)
                if Int(f) == flowSend.count {
                    flowSend.append(Int32(s))
                    flowLatency.append(route.latency)
                } else {
                    flowSend[Int(f)] = Int32(s)
                    flowLatency[Int(f)] = route.latency
                }
                return
            }
            // Nothing to carry, or two ranks on one node: a memory copy, off the network.
            let copy = bytes == 0 ? 0 : duration(bytes: Double(bytes) * 2, rate: memoryRate[a])
            events.schedule(.delivered, at: now + route.latency + copy, id: Int32(s), version: 1)
            guard let next = markDrained(s) else { return }
            s = next
        }
    }

    /// Records that send `s` has drained; returns the next message of its queue if it was
    /// waiting for that.
    private mutating func markDrained(_ s: Int) -> Int? {
        flags[s] |= Self.drained
        guard let next = queueSuccessor(s), flags[next] & Self.parked != 0 else { return nil }
        return next
    }

    private mutating func complete(_ g: Int, _ now: Picoseconds) {
        completed += 1
        finishTime = max(finishTime, now)
        let globalOp = g / pieces, t = g % pieces
        if input.recordTrace, Int(rankOfOp[globalOp]) < (input.traceRanks ?? Int.max) {
            let rank = Int(rankOfOp[globalOp])
            slicesRecorded.append(TraceSlice(rank: Int32(rank), op: Int32(globalOp - opBase[rank]), piece: Int32(t), start: startedAt[g], end: now))
        }
        for j in Int(successorOffsets[globalOp])..<Int(successorOffsets[globalOp + 1]) {
            let next = Int(successorList[j]) * pieces + t
            pending[next] -= 1
            if pending[next] == 0 { ready.append(next) }
        }
    }

    // MARK: - Sizes and routes

    @inline(__always)
    private func duration(bytes: Double, rate: Double) -> Picoseconds {
        bytes <= 0 ? 0 : Picoseconds((bytes / rate).rounded(.up))
    }

    private func sliceBytes(_ chunks: ChunkList, piece t: Int) -> Int {
        plan.schedule.layout.elementCount(of: chunks, piece: t, of: pieces, blockElements: input.blockElements) * input.elementSize
    }

    /// Bytes of the message a send instance carries.
    private func messageBytes(_ s: Int) -> Int {
        sliceBytes(opChunks[s / pieces], piece: s % pieces)
    }

    private mutating func routeEntry(_ a: Int, _ b: Int) -> RouteEntry? {
        let key = Self.pairKey(a, b)
        if let cached = routeCache[key] { return cached }
        let set: RouteSet
        do {
            set = try SymmetricNetwork.route(a, b, topology: topology, router: router)
        } catch {
            failure = error as? SimulationError
            return nil
        }
        let cost = topology.cost(of: set, calibration: input.calibration)
        let shares = resources.shares(of: set)
        let route = shares.isEmpty ? -1 : network.addRoute(shares)
        let entry = RouteEntry(route: route, latency: .from(cost.latency), overhead: .from(cost.overhead))
        routeCache[key] = entry
        return entry
    }

    // MARK: - Reports

    /// Bytes per resource; a resource that stands for several alike (a symmetric run) reports
    /// what each of them carried, named by the first with the count of the rest.
    private func usage() -> [ResourceUsage] {
        var out: [ResourceUsage] = []
        for r in 0..<network.resourceCount where network.carried[r] > 0 {
            let capacity = Bandwidth(bytesPerSecond: network.capacity[r] * 1e12)
            if let symmetric {
                let resource = symmetric.resources[r]
                let name = resource.members > 1 ? "\(resource.name) (and \(resource.members - 1) alike)" : resource.name
                out.append(ResourceUsage(name: name, kind: resource.kind, capacity: capacity, bytes: network.carried[r]))
            } else {
                out.append(ResourceUsage(name: resources.name(of: r), kind: resources.kind(of: r), capacity: capacity, bytes: network.carried[r]))
            }
        }
        return out
    }

    private func describeStall() -> String {
        for r in 0..<simulated {
            for (i, op) in plan.schedule.program(for: r).ops.enumerated() {
                let g = (opBase[r] + i) * pieces
                if flags[g] & Self.posted == 0 || pending[g] > 0 {
                    return "rank \(r) op \(i) (\(op.summary)) never ran; \(completed) of \(pending.count) op instances completed. An unverified schedule can deadlock: check it with 'chorus verify'"
                }
            }
        }
        return "\(completed) of \(pending.count) op instances completed"
    }
}
