import ChorusCore
import Dispatch

extension Schedule {
    /// Checks what can be checked without running: every op names ranks, chunks and channels
    /// that exist; `after` lists earlier ops; out of place, nothing writes the input; sends and
    /// receives pair up per (sender, receiver, channel) with the same count and chunk sizes.
    /// - Throws: `ScheduleError.malformed` naming the rank and op.
    public func validate(programs: [RankProgram]) throws {
        _ = try index(programs: programs)
    }

    /// Validates, and returns every op in one numbering with each message's matching op.
    ///
    /// Ranks are checked in parallel; when several are wrong, the lowest rank's first wrong op
    /// is reported, so the message does not depend on thread timing.
    func index(programs: [RankProgram]) throws -> ScheduleIndex {
        guard ranks >= 1 else { throw ScheduleError.malformed("a schedule needs at least one rank") }
        guard layout.chunksPerBlock >= 1 else { throw ScheduleError.malformed("chunks per block must be at least 1") }
        guard channels >= 1 else { throw ScheduleError.malformed("a schedule needs at least one channel") }
        if collective.hasRoot, !(0..<ranks).contains(root) {
            throw ScheduleError.malformed("root \(root) is not a rank (0...\(ranks - 1))")
        }
        guard programs.count == ranks else {
            throw ScheduleError.malformed("the schedule has \(ranks) ranks but \(programs.count) programs")
        }
        var base = [Int](repeating: 0, count: ranks + 1)
        for r in 0..<ranks { base[r + 1] = base[r] + programs[r].count }

        // Pass 1, per rank: each op on its own, and the rank's message queues. A queue key is
        // (other rank, channel); a queue lists its ops in program order.
        let perRank: [Result<RankQueues, ScheduleError>] = parallelMap(ranks) { r in
            do { return .success(try self.checkOps(of: r, programs[r])) } catch let error as ScheduleError {
                return .failure(error)
            } catch {
                return .failure(.malformed("rank \(r): \(error)"))
            }
        }
        var checked: [RankQueues] = []
        checked.reserveCapacity(ranks)
        for result in perRank {
            switch result {
            case .success(let q): checked.append(q)
            case .failure(let error): throw error
            }
        }
        let queues = checked
        let opBase = base

        // Pass 2, per sender: pair each send queue with its receiver's queue, message by message.
        // Every send and every receive belongs to exactly one pair, so the writes are disjoint.
        let match = FlatArray<Int32>(repeating: -1, count: base[ranks])
        nonisolated(unsafe) let matchOut = match.buffer
        let k = layout.chunksPerBlock
        let pairing: [ScheduleError?] = parallelMap(ranks) { a in
            for key in queues[a].sends.keys.sorted() {
                let list = queues[a].sends[key]!
                let (b, c) = (RankQueues.peer(key), RankQueues.channel(key))
                let matching = queues[b].recvs[RankQueues.key(peer: a, channel: c)] ?? []
                guard list.count == matching.count else {
                    return .malformed("rank \(a) sends \(list.count) message\(list.count == 1 ? "" : "s") to rank \(b)\(c > 0 ? " on channel \(c)" : "") but rank \(b) receives \(matching.count) from rank \(a)")
                }
                for (s32, r32) in zip(list, matching) {
                    let s = Int(s32), r = Int(r32)
                    let sent = programs[a].ops[s].source!.chunks, received = programs[b].ops[r].destination!.chunks
                    if !Schedule.sameProfile(sent, received, k) {
                        return .malformed("rank \(a), op \(s) sends \(sent.count) chunk(s) to rank \(b), whose matching op \(r) receives \(received.count) chunk(s) of different sizes")
                    }
                    matchOut[opBase[a] + s] = Int32(opBase[b] + r)
                    matchOut[opBase[b] + r] = Int32(opBase[a] + s)
                }
            }
            return nil
        }
        for case let error? in pairing { throw error }
        for b in 0..<ranks {
            for key in queues[b].recvs.keys.sorted() where queues[RankQueues.peer(key)].sends[RankQueues.key(peer: b, channel: RankQueues.channel(key))] == nil {
                let (a, c) = (RankQueues.peer(key), RankQueues.channel(key))
                let count = queues[b].recvs[key]!.count
                throw ScheduleError.malformed("rank \(b) receives \(count) message\(count == 1 ? "" : "s") from rank \(a)\(c > 0 ? " on channel \(c)" : "") but rank \(a) sends none to rank \(b)")
            }
        }
        return ScheduleIndex(base: opBase, match: match)
    }

    /// One rank's message queues: per (other rank, channel), its sends or receives in order.
    struct RankQueues: Sendable {
        var sends: [Int64: [Int32]] = [:]
        var recvs: [Int64: [Int32]] = [:]

        static func key(peer: Int, channel: Int) -> Int64 { (Int64(peer) << 32) | Int64(channel) }
        static func peer(_ key: Int64) -> Int { Int(key >> 32) }
        static func channel(_ key: Int64) -> Int { Int(key & 0xFFFF_FFFF) }
    }

    /// Consecutive ops of one message queue, not yet in the queue dictionary.
    private struct QueueRun {
        var key: Int64 = -1
        var ops: [Int32] = []

        mutating func append(_ op: Int32, key: Int64, flushingInto queues: inout [Int64: [Int32]]) {
            if key != self.key {
                flush(into: &queues)
                self.key = key
            }
            ops.append(op)
        }

        mutating func flush(into queues: inout [Int64: [Int32]]) {
            guard !ops.isEmpty else { return }
            queues[key, default: []].append(contentsOf: ops)
            ops.removeAll(keepingCapacity: true)
        }
    }

    /// The checks of one rank's ops that need no other rank, and its message queues.
    private func checkOps(of r: Int, _ program: RankProgram) throws -> RankQueues {
        let k = layout.chunksPerBlock
        var queues = RankQueues()
        // Runs of messages to one queue are gathered before they go into the dictionary.
        var sendRun = QueueRun(), recvRun = QueueRun()
        try program.ops.withUnsafeBufferPointer { ops in
            for i in 0..<ops.count {
                // The common op is checked through its shape (copying it would retain its arrays).
                let shape = ops[i].shape
                let source = shape.oneRunEach ? shape.sourceSlice : ops[i].source
                let destination = shape.oneRunEach ? shape.destinationSlice : ops[i].destination
                let op = (kind: shape.kind, peer: ops[i].peer, channel: ops[i].channel, reducing: shape.reducing)
                func fail(_ what: String) -> ScheduleError { .malformed("rank \(r), op \(i) (\(describe(ops[i]))): \(what)") }
                func check(_ slice: BufferSlice?) throws {
                    guard let slice else { return }
                    let limit = layout.chunkCount(slice.buffer)
                    if slice.chunks.isEmpty { throw fail("names no chunks") }
                    func inRange(_ run: Range<Int32>) throws {
                        guard run.lowerBound >= 0, Int(run.upperBound) <= limit else {
                            let c = run.lowerBound < 0 ? Int(run.lowerBound) : max(Int(run.lowerBound), limit)
                            throw fail(limit == 0 ? "uses the \(slice.buffer) buffer, which this schedule does not have"
                                                  : "chunk \(c) is outside the \(slice.buffer) buffer (chunks 0...\(limit - 1))")
                        }
                    }
                    try inRange(slice.chunks.first)
                    // One run cannot name a chunk twice; several runs might.
                    if let rest = slice.chunks.rest {
                        for run in rest { try inRange(run) }
                        let all = slice.chunks.chunks.sorted()
                        for j in 1..<all.count where all[j] == all[j - 1] { throw fail("names \(slice.buffer) chunk \(all[j]) twice") }
                    }
                }
                try check(source)
                try check(destination)
                switch op.kind {
                case .send, .recv:
                    guard (0..<ranks).contains(Int(op.peer)) else { throw fail("peer \(op.peer) is not a rank (0...\(ranks - 1))") }
                    guard Int(op.peer) != r else { throw fail("a rank cannot message itself; use a copy") }
                    guard (0..<channels).contains(Int(op.channel)) else { throw fail("channel \(op.channel) does not exist (0...\(channels - 1))") }
                    let key = RankQueues.key(peer: Int(op.peer), channel: Int(op.channel))
                    if op.kind == .send {
                        guard source != nil, destination == nil else { throw fail("a send needs exactly a source") }
                        sendRun.append(Int32(i), key: key, flushingInto: &queues.sends)
                    } else {
                        guard let d = destination else { throw fail("a receive needs a destination") }
                        if let o = source, o.chunks.count != d.chunks.count {
                            throw fail("the reduce operand has \(o.chunks.count) chunks but the destination has \(d.chunks.count)")
                        }
                        if let o = source, !Schedule.sameProfile(o.chunks, d.chunks, k) {
                            throw fail("the reduce operand's chunks differ in size from the destination's")
                        }
                        if source != nil && !op.reducing { throw fail("only a reducing receive takes an operand") }
                        recvRun.append(Int32(i), key: key, flushingInto: &queues.recvs)
                    }
                case .copy, .reduce:
                    guard let s = source, let d = destination else { throw fail("needs a source and a destination") }
                    guard s.chunks.count == d.chunks.count else {
                        throw fail("reads \(s.chunks.count) chunks but writes \(d.chunks.count)")
                    }
                    guard Schedule.sameProfile(s.chunks, d.chunks, k) else {
                        throw fail("source and destination chunks differ in size (they must sit at the same positions within their blocks)")
                    }
                }
                for a in shape.oneRunEach ? [] : ops[i].after where a < 0 || Int(a) >= i {
                    throw fail("'after' names op \(a); it may name only earlier ops (0...\(i - 1))")
                }
            }
        }
        sendRun.flush(into: &queues.sends)
        recvRun.flush(into: &queues.recvs)
        return queues
    }

    /// Whether two chunk lists have the same length and the same positions within blocks, so
    /// their sizes agree for every message size.
    fileprivate static func sameProfile(_ a: ChunkList, _ b: ChunkList, _ k: Int) -> Bool {
        guard a.count == b.count else { return false }
        if k == 1 { return true }
        if a.rest == nil && b.rest == nil {
            // Two runs of consecutive chunks step through positions in lockstep.
            return Int(a.first.lowerBound) % k == Int(b.first.lowerBound) % k
        }
        return a.chunks.map { $0 % k } == b.chunks.map { $0 % k }
    }

    func describe(_ op: Op) -> String { op.summary }
}

// MARK: - The rendezvous engine

/// Every op of a schedule in one numbering (`base[r] + i` is rank r's op i), with the op each
/// send or receive is matched with (`-1` for local ops). Built by validation.
struct ScheduleIndex {
    let base: [Int]
    let match: FlatArray<Int32>
    var total: Int { base.last ?? 0 }
}

/// How the engine numbers ops: rank by rank (`base[r] + i`), or, when every rank has as many
/// ops, op index by op index (`i × ranks + r`), so that ops that run together (step i of every
/// rank) sit together in memory.
struct OpNumbering: Sendable {
    let base: [Int]
    let interleaved: Bool
    let ranks: Int
    var total: Int { base.last ?? 0 }

    init(base: [Int]) {
        self.base = base
        ranks = base.count - 1
        interleaved = ranks > 1 && (1..<base.count).allSatisfy { base[$0] - base[$0 - 1] == base[1] }
    }

    @inline(__always) func id(rank r: Int, op i: Int) -> Int { interleaved ? i * ranks + r : base[r] + i }

    @inline(__always) func position(of id: Int, rank r: Int) -> (rank: Int, op: Int) {
        interleaved ? (r, id / ranks) : (r, id - base[r])
    }
}

/// One op as the engine sees it, in one 52-byte record (a proof visits ops in an order that
/// jumps between ranks, so everything the engine and the checker's common case read about an op
/// sits in one or two cache lines).
struct EngineNode {
    var rank: Int32 = 0
    /// The matched op (global id), `-1` for local ops.
    var match: Int32 = -1
    /// The previous and next op of this op's message queue (global ids), or `-1`.
    var queuePredecessor: Int32 = -1
    var queueSuccessor: Int32 = -1
    /// This op's successors (global ids): up to two inline, more as `successorCount` entries
    /// from `successorStart` in its rank's list (reading a list costs a cache miss, and most
    /// ops have one or two).
    var successor0: Int32 = -1
    var successor1: Int32 = -1
    var successorStart: Int32 = 0
    var successorCount: Int32 = 0
    var predecessorCount: Int32 = 0
    var kind: Op.Kind = .copy
    /// Whether every slice of the op is one run of chunks (`read` and `written` describe it whole).
    var singleRun = false
    /// The slice the op reads: a send's source, a reducing receive's operand, a copy's or
    /// reduce's source (`readBuffer == nil`: none). First chunk of its first run.
    var readBuffer: BufferKind?
    /// The slice the op writes: a receive's, copy's or reduce's destination.
    var writtenBuffer: BufferKind?
    var readFirst: Int32 = 0
    var writtenFirst: Int32 = 0
    /// Chunks in the first run of the op's slices.
    var runLength: Int32 = 0

    var isLocal: Bool { kind == .copy || kind == .reduce }
}

/// Runs every rank's program to completion under the schedule semantics, calling back for
/// local ops and matched transfers. The verifier and the reference interpreter are this engine
/// with different payloads.
///
/// An op is *posted* once the ops it depends on are complete and the previous op of its message
/// queue has been posted; a local op completes when posted, and a send and its receive complete
/// together once both are posted (rendezvous). Order of execution is deterministic (a FIFO
/// worklist), but results do not depend on it: dependencies come from data, so every valid order
/// computes the same bytes.
///
/// Ops are named by global ids (`OpNumbering`). The tables are read-only once built, so several
/// runs may proceed at once on different threads.
struct RendezvousRunner {
    let schedule: Schedule
    let programs: [RankProgram]
    let numbering: OpNumbering
    let nodes: FlatArray<EngineNode>
    private let successors: SuccessorLists

    /// Each rank's successor lists (global ids), one allocation per rank.
    final class SuccessorLists {
        let lists: UnsafeMutableBufferPointer<UnsafeMutableBufferPointer<Int32>>
        init(ranks: Int) {
            lists = .allocate(capacity: max(ranks, 1))
            lists.initialize(repeating: UnsafeMutableBufferPointer(start: nil, count: 0))
        }
        deinit {
            for list in lists { list.deallocate() }
            lists.deallocate()
        }
    }

    /// Derives every rank's dependencies (in parallel) into the engine's tables. `programs` must
    /// have passed `index`.
    init(schedule: Schedule, programs: [RankProgram], index: ScheduleIndex) {
        self.schedule = schedule
        self.programs = programs
        let numbering = OpNumbering(base: index.base)
        self.numbering = numbering
        let n = programs.count
        nodes = FlatArray(repeating: EngineNode(), count: max(index.total, 1))
        successors = SuccessorLists(ranks: n)
        // Ranks fill disjoint regions of the tables.
        nonisolated(unsafe) let out = nodes.buffer
        nonisolated(unsafe) let lists = successors.lists
        nonisolated(unsafe) let match = index.match.buffer
        let base = index.base
        DispatchQueue.concurrentPerform(iterations: n) { r in
            let g = ProgramGraph(program: programs[r], storage: StorageMap(layout: schedule.layout, collective: schedule.collective, rank: r, aliased: true))
            @inline(__always) func id(_ i: Int32) -> Int32 { Int32(numbering.id(rank: r, op: Int(i))) }
            let list = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(g.successorList.count, 1))
            for j in 0..<g.successorList.count { list[j] = id(g.successorList[j]) }
            lists[r] = list
            programs[r].ops.withUnsafeBufferPointer { ops in
                for i in 0..<ops.count {
                    var node = EngineNode()
                    node.rank = Int32(r)
                    let m = Int(match[base[r] + i])
                    if m >= 0 {
                        let q = Int(ops[i].peer)
                        node.match = Int32(numbering.id(rank: q, op: m - base[q]))
                    }
                    node.kind = ops[i].kind
                    node.predecessorCount = g.predecessorOffsets[i + 1] - g.predecessorOffsets[i]
                    if g.queuePredecessor[i] >= 0 { node.queuePredecessor = id(g.queuePredecessor[i]) }
                    if g.queueSuccessor[i] >= 0 { node.queueSuccessor = id(g.queueSuccessor[i]) }
                    node.successorStart = g.successorOffsets[i]
                    node.successorCount = g.successorOffsets[i + 1] - g.successorOffsets[i]
                    if node.successorCount >= 1 { node.successor0 = list[Int(node.successorStart)] }
                    if node.successorCount >= 2 { node.successor1 = list[Int(node.successorStart) + 1] }
                    // Field by field: copying the op would retain its arrays.
                    let shape = ops[i].shape
                    if let (buffer, run) = shape.read {
                        node.readBuffer = buffer
                        node.readFirst = run.lowerBound
                        node.runLength = Int32(run.count)
                    }
                    if let (buffer, run) = shape.written {
                        node.writtenBuffer = buffer
                        node.writtenFirst = run.lowerBound
                        node.runLength = Int32(run.count)
                    }
                    node.singleRun = shape.oneRunEach
                    out[numbering.id(rank: r, op: i)] = node
                }
            }
        }
    }

    /// Rank `r`'s dependency graph, derived again (for failure reports; the tables keep only
    /// what a run needs).
    func graph(of r: Int) -> ProgramGraph {
        ProgramGraph(program: programs[r], storage: StorageMap(layout: schedule.layout, collective: schedule.collective, rank: r, aliased: true))
    }

    /// The rank and program index of op `id`.
    @inline(__always) func position(of id: Int) -> (rank: Int, op: Int) {
        numbering.position(of: id, rank: Int(nodes.buffer[id].rank))
    }

    /// - Throws: what the callbacks throw, or `ScheduleError.deadlock` naming stuck ranks.
    func run(local: (_ id: Int) throws -> Void, transfer: (_ send: Int, _ recv: Int) throws -> Void) throws {
        let total = numbering.total
        // Per-op run state: predecessors not yet complete, and flags (queued, posted, done).
        struct Progress {
            var remaining: Int32
            var flags: UInt8
        }
        let queuedFlag: UInt8 = 1, postedFlag: UInt8 = 2, doneFlag: UInt8 = 4
        let nodes = self.nodes.buffer
        let progress = UnsafeMutableBufferPointer<Progress>.allocate(capacity: max(total, 1))
        for id in 0..<total { progress[id] = Progress(remaining: nodes[id].predecessorCount, flags: 0) }
        let worklist = UnsafeMutablePointer<Int32>.allocate(capacity: max(total, 1))
        defer {
            progress.deallocate()
            worklist.deallocate()
        }
        let lists = successors.lists
        var tail = 0

        @inline(__always) func enqueue(_ id: Int) {
            guard progress[id].flags & queuedFlag == 0, progress[id].remaining == 0 else { return }
            let qp = Int(nodes[id].queuePredecessor)
            guard qp < 0 || progress[qp].flags & postedFlag != 0 else { return }
            progress[id].flags |= queuedFlag
            worklist[tail] = Int32(id)
            tail += 1
        }
        @inline(__always) func complete(_ id: Int) {
            progress[id].flags |= doneFlag
            let node = nodes[id]
            @inline(__always) func release(_ s: Int) {
                progress[s].remaining -= 1
                enqueue(s)
            }
            if node.successorCount <= 2 {
                if node.successorCount >= 1 { release(Int(node.successor0)) }
                if node.successorCount == 2 { release(Int(node.successor1)) }
                return
            }
            let list = lists[Int(node.rank)]
            for j in Int(node.successorStart)..<Int(node.successorStart + node.successorCount) { release(Int(list[j])) }
        }
        for id in 0..<total { enqueue(id) }

        var head = 0
        while head < tail {
            let id = Int(worklist[head])
            head += 1
            progress[id].flags |= postedFlag
            let node = nodes[id]
            if node.queueSuccessor >= 0 { enqueue(Int(node.queueSuccessor)) }
            if node.isLocal {
                try local(id)
                complete(id)
                continue
            }
            let other = Int(node.match)
            guard progress[other].flags & postedFlag != 0 else { continue }
            if node.kind == .send {
                try transfer(id, other)
            } else {
                try transfer(other, id)
            }
            complete(id)
            complete(other)
        }
        if tail < total {
            throw ScheduleError.deadlock(stuckReport(posted: progress.map { $0.flags & postedFlag != 0 }, done: progress.map { $0.flags & doneFlag != 0 }))
        }
    }

    /// One line per stuck rank (at most 6): its first unfinished op and what it waits for.
    private func stuckReport(posted: [Bool], done: [Bool]) -> String {
        var lines: [String] = []
        var stuck = 0
        for r in 0..<programs.count {
            let id = { (r: Int, i: Int) in numbering.id(rank: r, op: i) }
            guard let i = (0..<programs[r].count).first(where: { !done[id(r, $0)] }) else { continue }
            stuck += 1
            guard lines.count < 6 else { continue }
            let op = programs[r].ops[i]
            var why: String
            if posted[id(r, i)] {
                let peer = Int(op.peer)
                let peerAt = (0..<programs[peer].count).first(where: { !done[id(peer, $0)] })
                let where_ = peerAt.map { "; rank \(peer) is stuck at op \($0) (\(programs[peer].ops[$0].summary))" } ?? ""
                why = "posted, but rank \(peer) has not posted the matching \(op.kind == .send ? "receive" : "send")\(where_)"
            } else if let p = graph(of: r).predecessors(of: i).first(where: { !done[id(r, Int($0))] }) {
                why = "waits for its op \(p) (\(programs[r].ops[Int(p)].summary))"
            } else {
                why = "waits to be posted after op \(graph(of: r).queuePredecessor[i]) in its message queue"
            }
            lines.append("rank \(r) at op \(i) (\(op.summary)): \(why)")
        }
        if stuck > lines.count { lines.append("and \(stuck - lines.count) more rank(s)") }
        return "no op can proceed; " + lines.joined(separator: "; ")
    }
}
