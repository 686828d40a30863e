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
        let k = layout.chunksPerBlock
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

    /// Derives the graph. `program` must be structurally valid (chunks in range).
    public init(program: RankProgram, storage: StorageMap) {
        let n = program.ops.count
        var lastWriter = [Int32](repeating: -1, count: storage.slotCount)
        // Readers since the last write, as linked lists in flat arrays.
        var readerHead = [Int32](repeating: -1, count: storage.slotCount)
        var readerNext: [Int32] = []
        var readerOp: [Int32] = []
        var offsets = [Int32](repeating: 0, count: n + 1)
        var list: [Int32] = []
        list.reserveCapacity(n * 2)
        var queuePred = [Int32](repeating: -1, count: n)
        var queueSucc = [Int32](repeating: -1, count: n)
        var queueTail: [Int64: Int32] = [:]
        var scratch: [Int32] = []

        for (i, op) in program.ops.enumerated() {
            scratch.removeAll(keepingCapacity: true)
            op.forEachRead { slice in
                slice.chunks.forEach { c in
                    let s = storage.slot(slice.buffer, c)
                    if lastWriter[s] >= 0 { scratch.append(lastWriter[s]) }
                }
            }
            if let w = op.writes {
                w.chunks.forEach { c in
                    let s = storage.slot(w.buffer, c)
                    if lastWriter[s] >= 0 { scratch.append(lastWriter[s]) }
                    var r = readerHead[s]
                    while r >= 0 {
                        scratch.append(readerOp[Int(r)])
                        r = readerNext[Int(r)]
                    }
                }
            }
            if let after = op.explicitAfter { scratch.append(contentsOf: after) }
            if scratch.count > 1 {
                scratch.sort()
                var unique = 0
                for v in scratch where unique == 0 || scratch[unique - 1] != v {
                    scratch[unique] = v
                    unique += 1
                }
                scratch.removeLast(scratch.count - unique)
            }
            list.append(contentsOf: scratch.lazy.filter { $0 != Int32(i) })
            offsets[i + 1] = Int32(list.count)

            // Record this op's reads, then its write (a read-modify-write leaves itself as writer).
            op.forEachRead { slice in
                slice.chunks.forEach { c in
                    let s = storage.slot(slice.buffer, c)
                    readerOp.append(Int32(i))
                    readerNext.append(readerHead[s])
                    readerHead[s] = Int32(readerOp.count - 1)
                }
            }
            if let w = op.writes {
                w.chunks.forEach { c in
                    let s = storage.slot(w.buffer, c)
                    lastWriter[s] = Int32(i)
                    readerHead[s] = -1
                }
            }
            if op.kind == .send || op.kind == .recv {
                let key = (Int64(op.kind == .send ? 1 : 0) << 62) | (Int64(op.peer) << 24) | Int64(op.channel)
                if let tail = queueTail[key] {
                    queuePred[i] = tail
                    queueSucc[Int(tail)] = Int32(i)
                }
                queueTail[key] = Int32(i)
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
