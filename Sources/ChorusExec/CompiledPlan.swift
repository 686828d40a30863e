import ChorusCore
import ChorusSchedule

/// A plan laid out for one rank and one message size: every instance (an op on one piece of
/// its chunks) with its byte segments, dependencies and place in its message queue.
///
/// Instance `x = i·T + t` is op `i` on piece `t` of its chunks, where a chunk splits into
/// `T = channels × slices` pieces and piece `t = k·slices + p` belongs to channel copy `k`,
/// slice `p`. Instance `(i, t)` waits for `(j, t)` for each op `j` op `i` depends on (pieces are
/// disjoint, so different pieces never conflict), and messages of one (peer, schedule channel,
/// copy) go in op order, then slice order. Communicators build one per (plan, count, type) and
/// reuse it.
public final class CompiledPlan: @unchecked Sendable {
    public let plan: Plan
    public let rank: Int
    public let blockElements: Int
    public let dataType: DataType
    public let ops: [Op]
    /// Pieces per chunk (`T`) and slices per channel copy.
    public let pieces: Int
    public let slices: Int
    public let inputBytes: Int
    public let outputBytes: Int
    public let scratchBytes: Int

    // What the executor reads on every post and completion is kept in `Table`s (no reference
    // counting on reads), freed in `deinit`.

    // Segments of each instance's roles: 0 = source, 1 = destination, 2 = reduce operand.
    @usableFromInline let segmentStart: Table<Int32>
    @usableFromInline let segmentBuffer: Table<BufferKind>
    @usableFromInline let segmentOffset: Table<Int>
    @usableFromInline let segmentLength: Table<Int>
    /// Previous and next instance in the same message queue (`-1` if none or local).
    let queuePredecessor: Table<Int32>
    let queueSuccessor: Table<Int32>
    /// Low bits of the stream: schedule channel and channel copy.
    let streamLow: Table<UInt64>
    /// Bytes in the instance's message (sends and receives).
    let messageBytes: Table<Int>

    /// Per op: kind, peer and whether a receive reduces (reading an `Op` copies its optional
    /// arrays).
    let opKind: Table<Op.Kind>
    let opPeer: Table<Int32>
    let opReducing: Table<Bool>
    /// Per op: how many ops it waits for, and the ops that wait for it (from `graph`:
    /// `successorList[successorOffsets[i] ..< successorOffsets[i + 1]]`).
    let predecessorCount: Table<Int32>
    let successorOffsets: Table<Int32>
    let successorList: Table<Int32>

    /// Local copies carried by sends (see `TransportRequest.alsoCopyInto`). A copy and a send
    /// that read the same bytes (an all-gather's own block: copied into the output and sent to
    /// a neighbour) would read them from memory twice; a transport that `copiesOnSend` writes
    /// the copy from the bytes it has just moved, while they are in cache.
    /// - `segmentCarrier[a]`: for a copy's source segment `a`, the send instance that carries it
    ///   (`-1` if none);
    /// - `carriedCopy[x]`, `carriedSegment[x]`: for a send instance, the copy instance it carries
    ///   part of and that copy's destination segment (`-1` if none).
    /// Paired are a copy that depends on nothing and a send first in its message queue that
    /// depends on nothing or on that copy alone, where the copy writes only buffers other than
    /// the one the send reads. Writing the copy's destination early or late is then invisible
    /// to every op that touches it (they all depend on the copy). The send's dependency on the
    /// copy (`carrierWaitsForCopy`) comes from input and output being aliased in the graph, as
    /// in place; when the buffers are apart it is void, and the executor drops it for a carrying
    /// send (else the two would wait for each other).
    let segmentCarrier: Table<Int32>
    let carriedCopy: Table<Int32>
    let carriedSegment: Table<Int32>
    let carrierWaitsForCopy: Table<Bool>
    /// The send instances that carry a copy (usually none).
    let carriers: Table<Int32>

    /// Mutable run state, reused call after call (a communicator runs one operation at a time).
    let state: RunState

    public var instanceCount: Int { opKind.count * pieces }

    /// Lays out `plan` for `rank` with blocks of `blockElements` elements of `dataType`.
    public init(plan: Plan, rank: Int, blockElements m: Int, dataType: DataType, program: RankProgram? = nil) {
        self.plan = plan
        self.rank = rank
        self.blockElements = m
        self.dataType = dataType
        let schedule = plan.schedule
        let layout = schedule.layout
        let program = program ?? schedule.program(for: rank)
        ops = program.ops
        let kinds = program.ops.map(\.kind)
        opKind = Table(kinds)
        opPeer = Table(program.ops.map(\.peer))
        opReducing = Table(program.ops.map(\.reducing))
        let graph = ProgramGraph(program: program, storage: StorageMap(layout: layout, collective: schedule.collective, rank: rank, aliased: true))
        predecessorCount = Table(kinds.indices.map { graph.predecessorOffsets[$0 + 1] - graph.predecessorOffsets[$0] })
        successorOffsets = Table(graph.successorOffsets)
        successorList = Table(graph.successorList)
        let es = dataType.size
        slices = plan.slices(blockElements: m, elementSize: es)
        pieces = plan.channels * slices
        inputBytes = layout.elementCount(.input, blockElements: m) * es
        outputBytes = layout.elementCount(.output, blockElements: m) * es
        scratchBytes = layout.elementCount(.scratch, blockElements: m) * es

        let T = pieces
        let n = ops.count * T
        var segmentStart = [Int32](repeating: 0, count: n * 3 + 1)
        var buffers: [BufferKind] = [], offsets: [Int] = [], lengths: [Int] = []
        var queuePredecessor = [Int32](repeating: -1, count: n)
        var streamLow = [UInt64](repeating: 0, count: n)
        var messageBytes = [Int](repeating: 0, count: n)
        for (i, op) in ops.enumerated() {
            let roles: [BufferSlice?] = [op.source, op.destination, op.reduceOperand]
            for t in 0..<T {
                let x = i * T + t
                var bytes = 0
                for (role, slice) in roles.enumerated() {
                    if let slice {
                        slice.chunks.forEach { c in
                            let elements = layout.elements(ofChunk: c, piece: t, of: T, blockElements: m)
                            buffers.append(slice.buffer)
                            offsets.append(elements.lowerBound * es)
                            lengths.append(elements.count * es)
                            if role == (op.kind == .send ? 0 : 1) { bytes += elements.count * es }
                        }
                    }
                    segmentStart[x * 3 + role + 1] = Int32(buffers.count)
                }
                messageBytes[x] = bytes
                if op.kind == .send || op.kind == .recv {
                    let k = t / slices, p = t % slices
                    streamLow[x] = (UInt64(op.channel) << 16) | UInt64(k)
                    if p > 0 {
                        queuePredecessor[x] = Int32(x - 1)
                    } else if graph.queuePredecessor[i] >= 0 {
                        queuePredecessor[x] = Int32(Int(graph.queuePredecessor[i]) * T + k * slices + slices - 1)
                    }
                }
            }
        }
        self.segmentStart = Table(segmentStart)
        segmentBuffer = Table(buffers)
        segmentOffset = Table(offsets)
        segmentLength = Table(lengths)
        var queueSuccessor = [Int32](repeating: -1, count: n)
        for (x, p) in queuePredecessor.enumerated() where p >= 0 { queueSuccessor[Int(p)] = Int32(x) }
        self.queuePredecessor = Table(queuePredecessor)
        self.queueSuccessor = Table(queueSuccessor)
        self.streamLow = Table(streamLow)
        self.messageBytes = Table(messageBytes)

        var segmentCarrier = [Int32](repeating: -1, count: buffers.count)
        var carriedCopy = [Int32](repeating: -1, count: n)
        var carriedSegment = [Int32](repeating: -1, count: n)
        var carrierWaitsForCopy = [Bool](repeating: false, count: n)
        let copies = kinds.indices.filter { kinds[$0] == .copy && graph.predecessors(of: $0).isEmpty }
        for k in kinds.indices where kinds[k] == .send && graph.queuePredecessor[k] < 0 && ops[k].after.isEmpty {
            let waitsFor = graph.predecessors(of: k)
            guard waitsFor.count <= 1 else { continue }
            for t in 0..<T {
                let y = k * T + t
                let from = Int(segmentStart[y * 3]), end = Int(segmentStart[y * 3 + 1])
                guard end - from == 1, lengths[from] > 0 else { continue }
                search: for i in copies where waitsFor.isEmpty || Int(waitsFor.first!) == i {
                    let x = i * T + t
                    let sources = Int(segmentStart[x * 3]), destinations = Int(segmentStart[x * 3 + 1])
                    let written = destinations..<Int(segmentStart[x * 3 + 2])
                    // The copy writes another buffer than the send reads (see `Executor`'s `buffersApart`).
                    guard written.allSatisfy({ buffers[$0] != buffers[from] }) else { continue }
                    for a in sources..<destinations where segmentCarrier[a] < 0 && buffers[a] == buffers[from]
                        && offsets[a] == offsets[from] && lengths[a] == lengths[from] {
                        segmentCarrier[a] = Int32(y)
                        carriedCopy[y] = Int32(x)
                        carriedSegment[y] = Int32(destinations + (a - sources))
                        carrierWaitsForCopy[y] = !waitsFor.isEmpty
                        break search
                    }
                }
            }
        }
        self.segmentCarrier = Table(segmentCarrier)
        self.carriedCopy = Table(carriedCopy)
        self.carriedSegment = Table(carriedSegment)
        self.carrierWaitsForCopy = Table(carrierWaitsForCopy)
        carriers = Table(carriedCopy.indices.filter { carriedCopy[$0] >= 0 }.map(Int32.init))
        state = RunState(count: n)
    }

    deinit {
        segmentStart.deallocate()
        segmentBuffer.deallocate()
        segmentOffset.deallocate()
        segmentLength.deallocate()
        queuePredecessor.deallocate()
        queueSuccessor.deallocate()
        streamLow.deallocate()
        messageBytes.deallocate()
        opKind.deallocate()
        opPeer.deallocate()
        opReducing.deallocate()
        predecessorCount.deallocate()
        successorOffsets.deallocate()
        successorList.deallocate()
        segmentCarrier.deallocate()
        carriedCopy.deallocate()
        carriedSegment.deallocate()
        carrierWaitsForCopy.deallocate()
        carriers.deallocate()
        state.deallocate()
    }

    /// The op of instance `x` (`x / pieces`; no division when chunks are whole, as small
    /// messages are: a division costs tens of cycles, and the executor asks on every post and
    /// completion).
    @inline(__always)
    func op(of x: Int) -> Int { pieces == 1 ? x : x / pieces }

    /// The piece of instance `x` (`x % pieces`).
    @inline(__always)
    func piece(of x: Int) -> Int { pieces == 1 ? 0 : x % pieces }

    /// The segments of instance `x` in `role` (0 source, 1 destination, 2 operand).
    @inlinable @inline(__always)
    func segments(_ x: Int, _ role: Int) -> Range<Int> {
        Int(segmentStart[x * 3 + role])..<Int(segmentStart[x * 3 + role + 1])
    }
}

/// Per-call state of a compiled plan's instances. Raw storage, freed by the plan's `deinit`: the
/// executor touches these on every completion, and arrays in a class would pay a uniqueness
/// and an exclusivity check on each write (and a class of its own a retain on each read).
struct RunState {
    let remaining: UnsafeMutablePointer<Int32>
    let posted: UnsafeMutablePointer<Bool>
    let done: UnsafeMutablePointer<Bool>
    /// Staging buffer of a receive that lands outside its destination (index into the pool), `-1`,
    /// or `Executor.combinedByTransport`.
    let staging: UnsafeMutablePointer<Int32>
    /// Per copy instance: segments still to be written by the sends carrying them, less those
    /// already written when the copy is posted (it completes when this reaches 0 once posted).
    let carriedLeft: UnsafeMutablePointer<Int32>

    init(count: Int) {
        let n = max(count, 1)
        remaining = .allocate(capacity: n)
        remaining.initialize(repeating: 0, count: n)
        posted = .allocate(capacity: n)
        posted.initialize(repeating: false, count: n)
        done = .allocate(capacity: n)
        done.initialize(repeating: false, count: n)
        staging = .allocate(capacity: n)
        staging.initialize(repeating: -1, count: n)
        carriedLeft = .allocate(capacity: n)
        carriedLeft.initialize(repeating: 0, count: n)
    }

    func deallocate() {
        remaining.deallocate()
        posted.deallocate()
        done.deallocate()
        staging.deallocate()
        carriedLeft.deallocate()
    }
}
