import ChorusCore
import ChorusExec
import ChorusSchedule
import ChorusSelect
import ChorusTransport
import Synchronization

/// A group of ranks that run collectives together: the handle a training runtime holds.
///
/// ```swift
/// let comm = try Communicator.fromEnvironment()          // torchrun, mpirun, srun, chorus run
/// var gradients: [Float] = ...
/// try comm.allReduce(&gradients, op: .avg)
/// ```
///
/// Every rank of the communicator must make the same calls in the same order (as with NCCL and
/// MPI); calls that disagree (collective, count, type, op or root) fail with `.mismatch` on
/// every rank instead of combining unrelated data.
///
/// ## Threads
/// A communicator may be used from any thread; calls run one at a time, in the order they were
/// made. Blocking calls run on the calling thread; `async` calls run on the communicator's own
/// progress thread and resume from there (never blocking Swift's cooperative pool). `abort` and
/// `asyncError` may be called from any thread at any time.
///
/// ## Failures
/// A call that fails (a peer stopped for `CHORUS_TIMEOUT`, calls disagree, a peer aborted, a
/// transport error) poisons the communicator, its parent and its splits: every later call
/// fails with the same error. Rebuild the communicator to go on.
public final class Communicator: @unchecked Sendable {
    /// This rank, `0..<size`.
    public let rank: Int
    public let size: Int
    /// The transport's name (`inproc`, `shm`, `tcp`, ...; `tcp+shm` when the pair decides).
    public var transportKind: String { engine.transport.kind }

    /// The transport that carries messages between this rank and `peer` (`self` for this rank):
    /// with ranks on several hosts, `shm` inside a host and `tcp` between hosts.
    public func transportKind(to peer: Int) -> String {
        guard (0..<size).contains(peer) else { return "none" }
        let world = worldRanks?[peer] ?? peer
        let me = worldRanks?[rank] ?? rank
        return world == me ? "self" : engine.transport.kind(of: world)
    }

    let engine: Engine
    /// Transport rank of each communicator rank; `nil` when they are the same.
    let worldRanks: [Int]?
    /// Host index of each rank (for the selector's model).
    let hosts: [Int]
    /// 24 bits naming the communicator inside every stream it uses.
    let id: UInt64
    let plans: PlanCache
    let splits = Mutex<UInt64>(0)
    private let closed = Atomic<Bool>(false)
    /// The last lone call run here and its executions, kept for the next call: a training loop
    /// repeats the same calls on the same buffers, and a call equal to the last one needs no
    /// checking, plan lookup or layout again. Executions over the engine's auxiliary buffer (a
    /// barrier's byte, a non-root's reduce output) hold only while the buffer is the one they
    /// were laid out over (`lastAuxiliaryGeneration`); a call that lays out nothing (one rank:
    /// `prepare` does the work itself) is never reused. Used only by the thread whose turn is
    /// served.
    @exclusivity(unchecked) private var lastCall: Call?
    @exclusivity(unchecked) private var lastAuxiliaryGeneration: UInt64 = 0
    @exclusivity(unchecked) private var lastExecutions: [Execution] = []

    init(engine: Engine, rank: Int, size: Int, worldRanks: [Int]?, hosts: [Int], id: UInt64) {
        self.engine = engine
        self.rank = rank
        self.size = size
        self.worldRanks = worldRanks
        self.hosts = hosts
        self.id = id & 0xFF_FFFF
        // The network between hosts, as the transport to a rank of another host names it.
        let network = hosts.indices.first { hosts[$0] != hosts[rank] }
            .map { HostModel.networkLink(for: engine.transport.network(of: worldRanks?[$0] ?? $0)) } ?? HostModel.ethernet
        self.plans = PlanCache(rank: rank, size: size, hosts: hosts, network: network, configuration: engine.configuration)
    }

    // MARK: - Creation

    /// `size` communicators of one job whose ranks are threads of this process (ranks run the
    /// in-process transport: messages are copied once, from buffer to buffer). For tests, and
    /// for runtimes that drive several ranks from one process.
    public static func inProcess(size: Int, configuration: ChorusConfiguration = ChorusConfiguration()) throws(ChorusError) -> [Communicator] {
        guard size >= 1 else { throw .invalidArgument("a communicator needs at least one rank, not \(size)") }
        let fabric = InProcessFabric(size: size)
        return (0..<size).map { r in
            Communicator(engine: Engine(transport: fabric.transport(rank: r), configuration: configuration),
                         rank: r, size: size, worldRanks: nil, hosts: Array(repeating: 0, count: size), id: 1)
        }
    }

    /// A communicator over an existing transport (one per rank; every rank's transport must be
    /// of the same job). `hosts` gives each rank's host index for the selector's model.
    public static func over(_ transport: Transport, hosts: [Int]? = nil, configuration: ChorusConfiguration = ChorusConfiguration()) throws(ChorusError) -> Communicator {
        let hosts = hosts ?? Array(repeating: 0, count: transport.size)
        guard hosts.count == transport.size else {
            throw .invalidArgument("hosts lists \(hosts.count) ranks but the transport has \(transport.size)")
        }
        return Communicator(engine: Engine(transport: transport, configuration: configuration),
                            rank: transport.rank, size: transport.size, worldRanks: nil, hosts: hosts, id: 1)
    }

    // MARK: - State

    /// Marks the communicator closed after every call made before has finished. Later calls
    /// fail with `.invalidArgument`. The transport is released when the last communicator
    /// sharing it (parent and splits) is gone.
    public func close() {
        let ticket = engine.takeTicket()
        _ = try? engine.withTurn(ticket) { () throws(ChorusError) in }
        closed.store(true, ordering: .releasing)
    }

    /// Stops this communicator, its parent and its splits, here and on every peer: a call in
    /// flight on any thread returns `.aborted` promptly, and so does every later call. Returns
    /// at once.
    public func abort(reason: String = "aborted by the application") {
        engine.abort(reason: reason)
    }

    /// The error that stopped the communicator, if any: one here, or one a peer reported
    /// (checked without blocking when no call is running). `nil` while all is well.
    public func asyncError() -> ChorusError? {
        engine.asyncError()
    }

    /// Why the selector picks the plan it picks for a call of this shape, one line per algorithm.
    public func explain(_ collective: Collective, count: Int, dataType: DataType, root: Int = 0) throws(ChorusError) -> [String] {
        let ticket = engine.takeTicket()
        return try engine.withTurn(ticket) { () throws(ChorusError) -> [String] in
            try plans.selection(collective, count: count, dataType: dataType, root: root).explanation
        }
    }

    /// The registry id of the algorithm a call of this shape runs (`CHORUS_ALGO` included).
    public func algorithm(for collective: Collective, count: Int, dataType: DataType, root: Int = 0) throws(ChorusError) -> String {
        guard size > 1 else { return "local" }
        let ticket = engine.takeTicket()
        return try engine.withTurn(ticket) { () throws(ChorusError) -> String in
            try plans.selection(collective, count: count, dataType: dataType, root: root).chosen.id
        }
    }

    // MARK: - Running calls

    private func checkOpen(_ call: Call) throws(ChorusError) {
        if closed.load(ordering: .acquiring) { throw .invalidArgument("\(call.name) on rank \(rank): the communicator is closed") }
    }

    /// Runs a call now (blocking), or records it when a group is open on this thread. A call
    /// is checked when it is recorded, or once its turn comes (so that a call equal to the last
    /// one, which passed, is not checked again).
    func perform(_ call: Call) throws(ChorusError) {
        try checkOpen(call)
        if GroupState.isOpen {
            try call.validate(rank: rank, size: size)
            GroupState.record(self, call)
            return
        }
        let ticket = engine.takeTicket()
        try engine.withTurn(ticket) { () throws(ChorusError) in
            // A lone call: its executions directly (what `executions` gives for one call). A
            // call equal to the last one reuses what that one was checked and laid out as.
            if call != lastCall || engine.auxiliaryGeneration != lastAuxiliaryGeneration {
                lastCall = nil
                try call.validate(rank: rank, size: size)
                lastExecutions.removeAll(keepingCapacity: true)
                var used = Set<ObjectIdentifier>()
                try prepare(call, slot: 1, used: &used, inGroup: false, into: &lastExecutions)
                if !lastExecutions.isEmpty {
                    lastCall = call
                    lastAuxiliaryGeneration = engine.auxiliaryGeneration
                }
            }
            try engine.run(lastExecutions)
        }
    }

    /// Runs a checked call on the progress thread.
    func performAsync(_ call: Call) async throws(ChorusError) {
        try checkOpen(call)
        try call.validate(rank: rank, size: size)
        if GroupState.isOpen {
            throw .invalidArgument("\(call.name) on rank \(rank): async calls cannot be part of a group; use the blocking raw-buffer forms between groupStart and groupEnd")
        }
        let ticket = engine.takeTicket()
        let result: ChorusError? = await withCheckedContinuation { continuation in
            engine.submit(ticket, { [self] () throws(ChorusError) in try engine.run(try executions([(self, call)])) },
                          completion: { continuation.resume(returning: $0) })
        }
        if let result { throw result }
    }

    /// Lays out `calls` (all on this engine, in order) as executions: each call on its own
    /// stream slot, a rooted collective with its signature ring.
    func executions(_ calls: [(Communicator, Call)]) throws(ChorusError) -> [Execution] {
        guard calls.count < Communicator.ringSlot else {
            throw .invalidArgument("a group holds \(calls.count) operations; at most \(Communicator.ringSlot - 1) can run together")
        }
        var executions: [Execution] = []
        var used = Set<ObjectIdentifier>()
        for (g, (comm, call)) in calls.enumerated() {
            try comm.prepare(call, slot: UInt64(g + 1), used: &used, inGroup: calls.count > 1, into: &executions)
        }
        return executions
    }

    /// Stream slot of point-to-point messages (one FIFO queue per peer pair).
    static let pointToPointSlot: UInt64 = 0
    /// Slots at and above this one carry signature rings.
    static let ringSlot = 0x8000

    private func streamBase(slot: UInt64) -> UInt64 { id << 40 | slot << 24 }

    private func prepare(_ call: Call, slot: UInt64, used: inout Set<ObjectIdentifier>, inGroup: Bool,
                         into executions: inout [Execution]) throws(ChorusError) {
        let tag = call.signature.packed
        switch call.kind {
        case .send(let peer), .receive(let peer):
            let shape: PlanCache.Shape
            if case .send = call.kind { shape = .send(to: peer) } else { shape = .receive(from: peer) }
            let compiled = try plan(PlanCache.Key(shape: shape, count: call.count, dataType: call.dataType), used: &used, inGroup: inGroup)
            executions.append(Execution(compiled: compiled, input: call.input, output: call.output, reduceOp: .sum, tag: tag,
                                        streamBase: streamBase(slot: Communicator.pointToPointSlot), worldRanks: worldRanks))
        case .barrier:
            guard size > 1 else { return }
            let byte = engine.auxiliaryBuffer(64)
            let compiled = try plan(PlanCache.Key(shape: .collective(.allReduce, root: 0), count: 1, dataType: .uint8), used: &used, inGroup: inGroup)
            executions.append(Execution(compiled: compiled, input: byte, output: byte, reduceOp: .max, tag: tag,
                                        streamBase: streamBase(slot: slot), worldRanks: worldRanks))
        case .collective(let collective):
            var input = call.input, output = call.output
            if collective == .broadcast && rank != call.root { input = output }
            if collective == .reduce && rank != call.root {
                output = engine.auxiliaryBuffer(call.count * call.dataType.size)
            }
            if size == 1 {
                // One rank: the result is the input (avg of one value is itself).
                let (inBytes, outBytes) = call.bytes(size: 1, rank: 0)
                if let input, let output, input != output, min(inBytes, outBytes) > 0 {
                    output.copyMemory(from: input, byteCount: min(inBytes, outBytes))
                }
                return
            }
            let compiled = try plan(PlanCache.Key(shape: .collective(collective, root: collective.hasRoot ? call.root : 0), count: call.count,
                                                  dataType: call.dataType), used: &used, inGroup: inGroup)
            executions.append(Execution(compiled: compiled, input: input, output: output, reduceOp: call.op, tag: tag,
                                        streamBase: streamBase(slot: slot), worldRanks: worldRanks))
            if collective.hasRoot {
                // Every rank receives something tagged with the call, so a rank that runs a
                // different call is caught even where the plan has it only send (empty messages).
                let ring = try plan(PlanCache.Key(shape: .signatureRing, count: 0, dataType: call.dataType), used: &used, inGroup: inGroup)
                executions.append(Execution(compiled: ring, input: nil, output: nil,
                                        reduceOp: .sum, tag: tag, streamBase: streamBase(slot: UInt64(Communicator.ringSlot) + slot),
                                        worldRanks: worldRanks))
            }
        }
    }

    /// The compiled plan for a call; a second use within one run gets a fresh copy. (`used` is
    /// filled only for groups: a lone call cannot meet its own plan twice.)
    private func plan(_ key: PlanCache.Key, used: inout Set<ObjectIdentifier>, inGroup: Bool) throws(ChorusError) -> CompiledPlan {
        var compiled = try plans.compiled(key)
        if used.isEmpty && !inGroup { return compiled }
        if !used.insert(ObjectIdentifier(compiled)).inserted {
            compiled = try plans.compiled(key, fresh: true)
        }
        return compiled
    }
}
