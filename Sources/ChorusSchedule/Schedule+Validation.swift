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

    /// Validates, and returns every op in flat arrays with each message's matching op.
    func index(programs: [RankProgram]) throws -> ScheduleIndex {
        guard ranks >= 1 else { throw ScheduleError.malformed("a schedule needs at least one rank") }
        guard layout.chunksPerBlock >= 1 else { throw ScheduleError.malformed("chunks per block must be at least 1") }
        guard channels >= 1 else { throw ScheduleError.malformed("a schedule needs at least one channel") }
        if collective.hasRoot, !(0..<ranks).contains(root) {
            throw ScheduleError.malformed("root \(root) is not a rank (0...\(ranks - 1))")
        }
        let k = layout.chunksPerBlock
        // Per (sender, receiver, channel): the ops of each message, in order.
        var sends: [Int64: [Int32]] = [:]
        var recvs: [Int64: [Int32]] = [:]
        func key(_ a: Int, _ b: Int, _ c: Int) -> Int64 { (Int64(a) << 40) | (Int64(b) << 16) | Int64(c) }

        for (r, program) in programs.enumerated() {
            for (i, op) in program.ops.enumerated() {
                func fail(_ what: String) -> ScheduleError { .malformed("rank \(r), op \(i) (\(describe(op))): \(what)") }
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
                try check(op.source)
                try check(op.destination)
                switch op.kind {
                case .send, .recv:
                    guard (0..<ranks).contains(Int(op.peer)) else { throw fail("peer \(op.peer) is not a rank (0...\(ranks - 1))") }
                    guard Int(op.peer) != r else { throw fail("a rank cannot message itself; use a copy") }
                    guard (0..<channels).contains(Int(op.channel)) else { throw fail("channel \(op.channel) does not exist (0...\(channels - 1))") }
                    if op.kind == .send {
                        guard let s = op.source, op.destination == nil else { throw fail("a send needs exactly a source") }
                        sends[key(r, Int(op.peer), Int(op.channel)), default: []].append(Int32(i))
                    } else {
                        guard let d = op.destination else { throw fail("a receive needs a destination") }
                        if let o = op.source, o.chunks.count != d.chunks.count {
                            throw fail("the reduce operand has \(o.chunks.count) chunks but the destination has \(d.chunks.count)")
                        }
                        if let o = op.source, !sameProfile(o.chunks, d.chunks, k) {
                            throw fail("the reduce operand's chunks differ in size from the destination's")
                        }
                        if op.source != nil && !op.reducing { throw fail("only a reducing receive takes an operand") }
                        recvs[key(Int(op.peer), r, Int(op.channel)), default: []].append(Int32(i))
                    }
                case .copy, .reduce:
                    guard let s = op.source, let d = op.destination else { throw fail("needs a source and a destination") }
                    guard s.chunks.count == d.chunks.count else {
                        throw fail("reads \(s.chunks.count) chunks but writes \(d.chunks.count)")
                    }
                    guard sameProfile(s.chunks, d.chunks, k) else {
                        throw fail("source and destination chunks differ in size (they must sit at the same positions within their blocks)")
                    }
                }
                for a in op.explicitAfter ?? [] where a < 0 || Int(a) >= i {
                    throw fail("'after' names op \(a); it may name only earlier ops (0...\(i - 1))")
                }
            }
        }
        var base = [Int](repeating: 0, count: ranks + 1)
        for r in 0..<ranks { base[r + 1] = base[r] + programs[r].count }
        var match = [Int32](repeating: -1, count: base[ranks])
        for (queue, list) in sends {
            let (a, b, c) = (Int(queue >> 40), Int((queue >> 16) & 0xFFFFFF), Int(queue & 0xFFFF))
            let matching = recvs[queue] ?? []
            guard list.count == matching.count else {
                throw ScheduleError.malformed("rank \(a) sends \(list.count) message\(list.count == 1 ? "" : "s") to rank \(b)\(c > 0 ? " on channel \(c)" : "") but rank \(b) receives \(matching.count) from rank \(a)")
            }
            for (s32, r32) in zip(list, matching) {
                let s = Int(s32), r = Int(r32)
                let sent = programs[a].ops[s].source!.chunks, received = programs[b].ops[r].destination!.chunks
                if !sameProfile(sent, received, k) {
                    throw ScheduleError.malformed("rank \(a), op \(s) sends \(sent.count) chunk(s) to rank \(b), whose matching op \(r) receives \(received.count) chunk(s) of different sizes")
                }
                match[base[a] + s] = Int32(base[b] + r)
                match[base[b] + r] = Int32(base[a] + s)
            }
        }
        for (queue, list) in recvs where sends[queue] == nil {
            let (a, b, c) = (Int(queue >> 40), Int((queue >> 16) & 0xFFFFFF), Int(queue & 0xFFFF))
            throw ScheduleError.malformed("rank \(b) receives \(list.count) message\(list.count == 1 ? "" : "s") from rank \(a)\(c > 0 ? " on channel \(c)" : "") but rank \(a) sends none to rank \(b)")
        }
        return ScheduleIndex(base: base, match: match)
    }

    /// Whether two chunk lists have the same length and the same positions within blocks, so
    /// their sizes agree for every message size.
    private func sameProfile(_ a: ChunkList, _ b: ChunkList, _ k: Int) -> Bool {
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
    let match: [Int32]
    var total: Int { base.last ?? 0 }
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
struct RendezvousRunner {
    let programs: [RankProgram]
    let graphs: [ProgramGraph]
    let index: ScheduleIndex
    // Flat, global copies of the graphs, built once (struct copies inside the loop cost more
    // than the work, and a proof runs the engine twice).
    private let rankOf: FlatArray<Int32>
    private let isLocal: FlatArray<Bool>
    private let isSend: FlatArray<Bool>
    private let predecessorCount: FlatArray<Int32>
    private let queuePred: FlatArray<Int32>
    private let queueSucc: FlatArray<Int32>
    private let successorOffsets: FlatArray<Int32>
    private let successorList: FlatArray<Int32>

    init(programs: [RankProgram], graphs: [ProgramGraph], index: ScheduleIndex) {
        self.programs = programs
        self.graphs = graphs
        self.index = index
        let n = programs.count
        let total = index.total
        var successorBase = [Int](repeating: 0, count: n + 1)
        for r in 0..<n { successorBase[r + 1] = successorBase[r] + graphs[r].successorList.count }
        rankOf = FlatArray(repeating: 0, count: total)
        isLocal = FlatArray(repeating: false, count: total)
        isSend = FlatArray(repeating: false, count: total)
        predecessorCount = FlatArray(repeating: 0, count: total)
        queuePred = FlatArray(repeating: -1, count: total)
        queueSucc = FlatArray(repeating: -1, count: total)
        successorOffsets = FlatArray(repeating: 0, count: total + 1)
        successorList = FlatArray(repeating: 0, count: max(successorBase[n], 1))
        // Ranks fill disjoint regions of the flat tables, so they fill them in parallel.
        nonisolated(unsafe) let out = (rankOf: rankOf.buffer, isLocal: isLocal.buffer, isSend: isSend.buffer, preds: predecessorCount.buffer,
                                       qp: queuePred.buffer, qs: queueSucc.buffer, so: successorOffsets.buffer, sl: successorList.buffer)
        let base = index.base
        let successorStart = successorBase
        DispatchQueue.concurrentPerform(iterations: n) { r in
            let g = graphs[r]
            let b = base[r]
            let sb = successorStart[r]
            programs[r].ops.withUnsafeBufferPointer { ops in
                for i in 0..<ops.count {
                    let id = b + i
                    out.rankOf[id] = Int32(r)
                    out.isLocal[id] = ops[i].kind == .copy || ops[i].kind == .reduce
                    out.isSend[id] = ops[i].kind == .send
                    out.preds[id] = g.predecessorOffsets[i + 1] - g.predecessorOffsets[i]
                    if g.queuePredecessor[i] >= 0 { out.qp[id] = Int32(b) + g.queuePredecessor[i] }
                    if g.queueSuccessor[i] >= 0 { out.qs[id] = Int32(b) + g.queueSuccessor[i] }
                    for j in Int(g.successorOffsets[i])..<Int(g.successorOffsets[i + 1]) { out.sl[sb + j] = Int32(b) + g.successorList[j] }
                    out.so[id + 1] = Int32(sb) + g.successorOffsets[i + 1]
                }
            }
        }
    }

    /// - Throws: what the callbacks throw, or `ScheduleError.deadlock` naming stuck ranks.
    func run(local: (_ rank: Int, _ op: Int) throws -> Void,
             transfer: (_ sender: Int, _ send: Int, _ receiver: Int, _ recv: Int) throws -> Void) throws {
        let base = index.base
        let total = index.total
        // Raw per-op state (a proof touches every op several times: no bounds or uniqueness
        // checks on the way). Flags: queued, posted, done.
        let queuedFlag: UInt8 = 1, postedFlag: UInt8 = 2, doneFlag: UInt8 = 4
        let remaining = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(total, 1))
        _ = remaining.initialize(from: predecessorCount.buffer)
        let flags = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(total, 1))
        flags.initialize(repeating: 0)
        let worklist = UnsafeMutablePointer<Int32>.allocate(capacity: max(total, 1))
        defer {
            remaining.deallocate()
            flags.deallocate()
            worklist.deallocate()
        }
        let queuePred = self.queuePred.buffer, queueSucc = self.queueSucc.buffer
        let successorOffsets = self.successorOffsets.buffer, successorList = self.successorList.buffer
        let rankOf = self.rankOf.buffer, isLocal = self.isLocal.buffer, isSend = self.isSend.buffer
        var tail = 0

        @inline(__always) func enqueue(_ id: Int) {
            guard flags[id] & queuedFlag == 0, remaining[id] == 0 else { return }
            let qp = Int(queuePred[id])
            guard qp < 0 || flags[qp] & postedFlag != 0 else { return }
            flags[id] |= queuedFlag
            worklist[tail] = Int32(id)
            tail += 1
        }
        @inline(__always) func complete(_ id: Int) {
            flags[id] |= doneFlag
            for j in Int(successorOffsets[id])..<Int(successorOffsets[id + 1]) {
                let s = Int(successorList[j])
                remaining[s] -= 1
                enqueue(s)
            }
        }
        for id in 0..<total { enqueue(id) }

        try index.match.withUnsafeBufferPointer { match in
            var head = 0
            while head < tail {
                let id = Int(worklist[head])
                head += 1
                flags[id] |= postedFlag
                if queueSucc[id] >= 0 { enqueue(Int(queueSucc[id])) }
                let r = Int(rankOf[id])
                if isLocal[id] {
                    try local(r, id - base[r])
                    complete(id)
                    continue
                }
                let other = Int(match[id])
                guard flags[other] & postedFlag != 0 else { continue }
                let q = Int(rankOf[other])
                if isSend[id] {
                    try transfer(r, id - base[r], q, other - base[q])
                } else {
                    try transfer(q, other - base[q], r, id - base[r])
                }
                complete(id)
                complete(other)
            }
        }
        if tail < total {
            throw ScheduleError.deadlock(stuckReport(base: base, posted: flags.map { $0 & postedFlag != 0 }, done: flags.map { $0 & doneFlag != 0 }))
        }
    }

    /// One line per stuck rank (at most 6): its first unfinished op and what it waits for.
    private func stuckReport(base: [Int], posted: [Bool], done: [Bool]) -> String {
        var lines: [String] = []
        var stuck = 0
        for r in 0..<programs.count {
            guard let i = (0..<programs[r].count).first(where: { !done[base[r] + $0] }) else { continue }
            stuck += 1
            guard lines.count < 6 else { continue }
            let op = programs[r].ops[i]
            var why: String
            if posted[base[r] + i] {
                let peer = Int(op.peer)
                let peerAt = (0..<programs[peer].count).first(where: { !done[base[peer] + $0] })
                let where_ = peerAt.map { "; rank \(peer) is stuck at op \($0) (\(programs[peer].ops[$0].summary))" } ?? ""
                why = "posted, but rank \(peer) has not posted the matching \(op.kind == .send ? "receive" : "send")\(where_)"
            } else if let p = graphs[r].predecessors(of: i).first(where: { !done[base[r] + Int($0)] }) {
                why = "waits for its op \(p) (\(programs[r].ops[Int(p)].summary))"
            } else {
                why = "waits to be posted after op \(graphs[r].queuePredecessor[i]) in its message queue"
            }
            lines.append("rank \(r) at op \(i) (\(op.summary)): \(why)")
        }
        if stuck > lines.count { lines.append("and \(stuck - lines.count) more rank(s)") }
        return "no op can proceed; " + lines.joined(separator: "; ")
    }
}
