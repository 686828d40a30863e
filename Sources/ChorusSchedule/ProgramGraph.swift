import ChorusCore

/// Which storage a (buffer, chunk) names on one rank.
///
/// Output chunks come first, then input chunks that do not alias an output chunk, then scratch.
/// With `aliased`, an input chunk that the collective's in-place form places inside the output
/// (all-reduce: the same chunk; all-gather: block `rank` of the output; reduce-scatter: the output
/// is block `rank` of the input) shares its output chunk's slot.
public struct StorageMap: Sendable {
    public let layout: ChunkLayout
    public let aliased: Bool
    @usableFromInline let collective: Collective
    @usableFromInline let rank: Int
    @usableFromInline let outputChunks: Int
    @usableFromInline let inputChunks: Int
    /// Total slots.
    public let slotCount: Int

    public init(layout: ChunkLayout, collective: Collective, rank: Int, aliased: Bool) {
        self.layout = layout
        self.aliased = aliased
        self.collective = collective
        self.rank = rank
        outputChunks = layout.chunkCount(.output)
        inputChunks = layout.chunkCount(.input)
        slotCount = outputChunks + inputChunks + layout.chunkCount(.scratch)
    }

    /// The output chunk an input chunk aliases in place, if any.
    @inlinable
    public func outputAlias(ofInput c: Int) -> Int? {
        StorageMap.outputAlias(collective, rank: rank, chunksPerBlock: layout.chunksPerBlock, ofInput: c)
    }

    /// The output chunk input chunk `c` of `rank` aliases in `collective`'s in-place form, if any.
    @inlinable
    public static func outputAlias(_ collective: Collective, rank: Int, chunksPerBlock k: Int, ofInput c: Int) -> Int? {
        switch collective {
        case .allReduce, .broadcast, .reduce: return c
        case .allGather: return rank * k + c
        case .reduceScatter: return c / k == rank ? c % k : nil
        }
    }

    @inlinable
    public func slot(_ buffer: BufferKind, _ chunk: Int) -> Int {
        switch buffer {
        case .output: return chunk
        case .input:
            if aliased, let alias = outputAlias(ofInput: chunk) { return alias }
            return outputChunks + chunk
        case .scratch: return outputChunks + inputChunks + chunk
        }
    }
}

/// The dependencies of one rank's program: what each op waits for, and its place in its
/// message queue. This is the executable meaning of a schedule; the interpreter, the verifier,
/// the executor and the simulator all run from it.
///
/// - An op waits for the last earlier writer of every chunk it reads or writes, and for every
///   earlier reader of a chunk it writes (storage slots, with input and output aliased as in
///   place), plus its explicit `after` ops.
/// - A send or receive is *posted* in queue order: after the previous op of the same
///   (direction, peer, channel) queue was posted.
public struct ProgramGraph: Sendable {
    /// `predecessors(of: i)` are the ops op `i` waits for to complete.
    public let predecessorOffsets: [Int32]
    public let predecessorList: [Int32]
    /// The ops that wait for op `i`.
    public let successorOffsets: [Int32]
    public let successorList: [Int32]
    /// The previous op in op `i`'s message queue, or `-1`.
    public let queuePredecessor: [Int32]
    /// The next op in op `i`'s message queue, or `-1`.
    public let queueSuccessor: [Int32]

    public var count: Int { queuePredecessor.count }

    public func predecessors(of op: Int) -> ArraySlice<Int32> {
        predecessorList[Int(predecessorOffsets[op])..<Int(predecessorOffsets[op + 1])]
    }

    public func successors(of op: Int) -> ArraySlice<Int32> {
        successorList[Int(successorOffsets[op])..<Int(successorOffsets[op + 1])]
    }

    /// The graphs of ranks `0 ..< programs.count` (every rank's, given every program), derived
    /// on all cores (with the in-place aliasing every engine uses).
    public static func all(_ schedule: Schedule, programs: [RankProgram]) -> [ProgramGraph] {
        parallelMap(programs.count) { r in
            ProgramGraph(program: programs[r], storage: StorageMap(layout: schedule.layout, collective: schedule.collective, rank: r, aliased: true))
        }
    }

    /// Calls `body` with each run of `slice`.
    @inline(__always)
    static func forEachRun(_ slice: BufferSlice?, _ body: (BufferKind, Range<Int32>) -> Void) {
        guard let slice else { return }
        body(slice.buffer, slice.chunks.first)
        if let rest = slice.chunks.rest {
            for run in rest { body(slice.buffer, run) }
        }
    }

    /// Derives the graph. `program` must be structurally valid (chunks in range).
    public init(program: RankProgram, storage: StorageMap) {
        let n = program.ops.count
        var tracker = SlotTracker(storage: storage, ops: n)
        var offsets = [Int32](repeating: 0, count: n + 1)
        var list: [Int32] = []
        list.reserveCapacity(n * 2)
        var queuePred = [Int32](repeating: -1, count: n)
        var queueSucc = [Int32](repeating: -1, count: n)
        var queues = MessageQueueTails(program)

        // Ops are read through their shapes (copying an op would retain its optional arrays;
        // this runs for every op of a several-million-op proof).
        program.ops.withUnsafeBufferPointer { ops in
            for i in 0..<n {
                let shape = ops[i].shape
                let kind = shape.kind
                tracker.clearFound()
                if shape.oneRunEach {
                    // The common op: whole slices in the shape, nothing to copy.
                    if let (b, run) = shape.read { tracker.dependOnRead(b, run) }
                    if kind == .reduce, let (b, run) = shape.written { tracker.dependOnRead(b, run) }
                    if let (b, run) = shape.written { tracker.dependOnWrite(b, run) }
                    tracker.appendFound(to: &list, except: Int32(i))
                    if let (b, run) = shape.read { tracker.recordRead(b, run, by: Int32(i)) }
                    if kind == .reduce, let (b, run) = shape.written { tracker.recordRead(b, run, by: Int32(i)) }
                    if let (b, run) = shape.written { tracker.recordWrite(b, run, by: Int32(i)) }
                } else {
                    let op = ops[i]
                    // Reads: the shape's read slice, and a reduce's destination; then the write.
                    let read = op.kind == .recv ? (op.reducing ? (op.source ?? op.destination) : nil) : op.source
                    ProgramGraph.forEachRun(read) { tracker.dependOnRead($0, $1) }
                    if kind == .reduce { ProgramGraph.forEachRun(op.destination) { tracker.dependOnRead($0, $1) } }
                    ProgramGraph.forEachRun(op.writes) { tracker.dependOnWrite($0, $1) }
                    for p in op.explicitAfter ?? [] { tracker.found(p) }
                    tracker.appendFound(to: &list, except: Int32(i))
                    // Record this op's reads, then its write (a read-modify-write leaves itself as writer).
                    ProgramGraph.forEachRun(read) { tracker.recordRead($0, $1, by: Int32(i)) }
                    if kind == .reduce { ProgramGraph.forEachRun(op.destination) { tracker.recordRead($0, $1, by: Int32(i)) } }
                    ProgramGraph.forEachRun(op.writes) { tracker.recordWrite($0, $1, by: Int32(i)) }
                }
                offsets[i + 1] = Int32(list.count)
                if kind == .send || kind == .recv {
                    let tail = queues.exchange(send: kind == .send, peer: Int(ops[i].peer), channel: Int(ops[i].channel), with: Int32(i))
                    if tail >= 0 {
                        queuePred[i] = tail
                        queueSucc[Int(tail)] = Int32(i)
                    }
                }
            }
        }
        predecessorOffsets = offsets
        predecessorList = list
        queuePredecessor = queuePred
        queueSuccessor = queueSucc

        // Reverse edges.
        var counts = [Int32](repeating: 0, count: n + 1)
        for p in list { counts[Int(p) + 1] += 1 }
        for i in 0..<n { counts[i + 1] += counts[i] }
        var cursor = counts
        var successors = [Int32](repeating: 0, count: list.count)
        for i in 0..<n {
            for j in Int(offsets[i])..<Int(offsets[i + 1]) {
                let p = Int(list[j])
                successors[Int(cursor[p])] = Int32(i)
                cursor[p] += 1
            }
        }
        successorOffsets = counts
        successorList = successors
    }
}

/// The last op of each (direction, peer, channel) message queue of one program: a flat table
/// when the program's peers and channels are few enough, a dictionary otherwise (a direct
/// exchange on many ranks).
private struct MessageQueueTails {
    private var table: [Int32]
    private var map: [Int64: Int32] = [:]
    private let peers: Int
    private let useTable: Bool

    init(_ program: RankProgram) {
        var maxPeer = 0, maxChannel = 0
        program.ops.withUnsafeBufferPointer { ops in
            for i in ops.indices where ops[i].kind == .send || ops[i].kind == .recv {
                maxPeer = max(maxPeer, Int(ops[i].peer))
                maxChannel = max(maxChannel, Int(ops[i].channel))
            }
        }
        peers = maxPeer + 1
        let size = 2 * peers * (maxChannel + 1)
        useTable = size <= 1 << 16
        table = [Int32](repeating: -1, count: useTable ? size : 0)
    }

    /// Makes op `op` the queue's last and returns the previous last (`-1`: none).
    mutating func exchange(send: Bool, peer: Int, channel: Int, with op: Int32) -> Int32 {
        if useTable {
            let k = (channel * peers + peer) * 2 + (send ? 1 : 0)
            let old = table[k]
            table[k] = op
            return old
        }
        let key = (Int64(send ? 1 : 0) << 62) | (Int64(peer) << 24) | Int64(channel)
        let old = map[key] ?? -1
        map[key] = op
        return old
    }
}

/// Per storage slot of one program: its last writer and its readers since, as linked lists in
/// flat arrays; and the dependencies found for the op being derived. Raw buffers: this runs
/// for every chunk of every op, and array appends check uniqueness each time.
private struct SlotTracker: ~Copyable {
    let storage: StorageMap
    private let lastWriter: UnsafeMutableBufferPointer<Int32>
    private let readerHead: UnsafeMutableBufferPointer<Int32>
    /// Reader list nodes: op and next node.
    private var readerOp: UnsafeMutableBufferPointer<Int32>
    private var readerNext: UnsafeMutableBufferPointer<Int32>
    private var readers = 0
    private var foundList: UnsafeMutableBufferPointer<Int32>
    private var foundCount = 0

    init(storage: StorageMap, ops: Int) {
        self.storage = storage
        lastWriter = .allocate(capacity: max(storage.slotCount, 1))
        lastWriter.initialize(repeating: -1)
        readerHead = .allocate(capacity: max(storage.slotCount, 1))
        readerHead.initialize(repeating: -1)
        readerOp = .allocate(capacity: max(ops, 16))
        readerNext = .allocate(capacity: max(ops, 16))
        foundList = .allocate(capacity: 16)
    }

    deinit {
        lastWriter.deallocate()
        readerHead.deallocate()
        readerOp.deallocate()
        readerNext.deallocate()
        foundList.deallocate()
    }

    private static func grow(_ buffer: inout UnsafeMutableBufferPointer<Int32>, keeping count: Int) {
        let bigger = UnsafeMutableBufferPointer<Int32>.allocate(capacity: buffer.count * 2)
        _ = bigger.initialize(from: buffer[0..<count])
        buffer.deallocate()
        buffer = bigger
    }

    mutating func clearFound() { foundCount = 0 }

    mutating func found(_ op: Int32) {
        if foundCount == foundList.count { SlotTracker.grow(&foundList, keeping: foundCount) }
        foundList[foundCount] = op
        foundCount += 1
    }

    /// A read waits for the last writer.
    mutating func dependOnRead(_ buffer: BufferKind, _ run: Range<Int32>) {
        for c in run {
            let w = lastWriter[storage.slot(buffer, Int(c))]
            if w >= 0 { found(w) }
        }
    }

    /// A write waits for the last writer and every reader since.
    mutating func dependOnWrite(_ buffer: BufferKind, _ run: Range<Int32>) {
        for c in run {
            let s = storage.slot(buffer, Int(c))
            if lastWriter[s] >= 0 { found(lastWriter[s]) }
            var r = readerHead[s]
            while r >= 0 {
                found(readerOp[Int(r)])
                r = readerNext[Int(r)]
            }
        }
    }

    mutating func recordRead(_ buffer: BufferKind, _ run: Range<Int32>, by op: Int32) {
        for c in run {
            let s = storage.slot(buffer, Int(c))
            if readers == readerOp.count {
                SlotTracker.grow(&readerOp, keeping: readers)
                SlotTracker.grow(&readerNext, keeping: readers)
            }
            readerOp[readers] = op
            readerNext[readers] = readerHead[s]
            readerHead[s] = Int32(readers)
            readers += 1
        }
    }

    mutating func recordWrite(_ buffer: BufferKind, _ run: Range<Int32>, by op: Int32) {
        for c in run {
            let s = storage.slot(buffer, Int(c))
            lastWriter[s] = op
            readerHead[s] = -1
        }
    }

    /// Appends the dependencies found, sorted and without repeats, leaving out `op` itself.
    mutating func appendFound(to list: inout [Int32], except op: Int32) {
        var found = UnsafeMutableBufferPointer(rebasing: foundList[0..<foundCount])
        if found.count > 1 { found.sort() }
        var previous: Int32 = -1
        for p in found where p != previous {
            previous = p
            if p != op { list.append(p) }
        }
    }
}
