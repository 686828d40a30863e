import ChorusCore

extension Schedule {
    /// Checks what can be checked without running: every op names ranks, chunks and channels
    /// that exist; `after` lists earlier ops; out of place, nothing writes the input; sends and
    /// receives pair up per (sender, receiver, channel) with the same count and chunk sizes.
    /// - Throws: `ScheduleError.malformed` naming the rank and op.
    public func validate(programs: [RankProgram]) throws {
        guard ranks >= 1 else { throw ScheduleError.malformed("a schedule needs at least one rank") }
        guard layout.chunksPerBlock >= 1 else { throw ScheduleError.malformed("chunks per block must be at least 1") }
        guard channels >= 1 else { throw ScheduleError.malformed("a schedule needs at least one channel") }
        if collective.hasRoot, !(0..<ranks).contains(root) {
            throw ScheduleError.malformed("root \(root) is not a rank (0...\(ranks - 1))")
        }
        let k = layout.chunksPerBlock
        // Per (sender, receiver, channel): the position-in-block profile of each message.
        var sends: [Int64: [(op: Int, profile: [Int32])]] = [:]
        var recvs: [Int64: [(op: Int, profile: [Int32])]] = [:]
        func key(_ a: Int, _ b: Int, _ c: Int) -> Int64 { (Int64(a) << 40) | (Int64(b) << 16) | Int64(c) }

        for (r, program) in programs.enumerated() {
            for (i, op) in program.ops.enumerated() {
                func fail(_ what: String) -> ScheduleError { .malformed("rank \(r), op \(i) (\(describe(op))): \(what)") }
                for slice in [op.source, op.destination].compactMap({ $0 }) {
                    let limit = layout.chunkCount(slice.buffer)
                    if slice.chunks.isEmpty { throw fail("names no chunks") }
                    var seen = Set<Int>()
                    try slice.chunks.forEach { c in
                        guard c >= 0, c < limit else {
                            throw fail(limit == 0 ? "uses the \(slice.buffer) buffer, which this schedule does not have"
                                                  : "chunk \(c) is outside the \(slice.buffer) buffer (chunks 0...\(limit - 1))")
                        }
                        guard seen.insert(c).inserted else { throw fail("names \(slice.buffer) chunk \(c) twice") }
                    }
                }
                switch op.kind {
                case .send, .recv:
                    guard (0..<ranks).contains(Int(op.peer)) else { throw fail("peer \(op.peer) is not a rank (0...\(ranks - 1))") }
                    guard Int(op.peer) != r else { throw fail("a rank cannot message itself; use a copy") }
                    guard (0..<channels).contains(Int(op.channel)) else { throw fail("channel \(op.channel) does not exist (0...\(channels - 1))") }
                    if op.kind == .send {
                        guard let s = op.source, op.destination == nil else { throw fail("a send needs exactly a source") }
                        sends[key(r, Int(op.peer), Int(op.channel)), default: []].append((i, profile(s.chunks, k)))
                    } else {
                        guard let d = op.destination else { throw fail("a receive needs a destination") }
                        if let o = op.source, o.chunks.count != d.chunks.count {
                            throw fail("the reduce operand has \(o.chunks.count) chunks but the destination has \(d.chunks.count)")
                        }
                        if let o = op.source, profile(o.chunks, k) != profile(d.chunks, k) {
                            throw fail("the reduce operand's chunks differ in size from the destination's")
                        }
                        if op.source != nil && !op.reducing { throw fail("only a reducing receive takes an operand") }
                        recvs[key(Int(op.peer), r, Int(op.channel)), default: []].append((i, profile(d.chunks, k)))
                    }
                case .copy, .reduce:
                    guard let s = op.source, let d = op.destination else { throw fail("needs a source and a destination") }
                    guard s.chunks.count == d.chunks.count else {
                        throw fail("reads \(s.chunks.count) chunks but writes \(d.chunks.count)")
                    }
                    guard profile(s.chunks, k) == profile(d.chunks, k) else {
                        throw fail("source and destination chunks differ in size (they must sit at the same positions within their blocks)")
                    }
                }
                for a in op.after where a < 0 || Int(a) >= i {
                    throw fail("'after' names op \(a); it may name only earlier ops (0...\(i - 1))")
                }
            }
        }
        for (k, list) in sends {
            let (a, b, c) = (Int(k >> 40), Int((k >> 16) & 0xFFFFFF), Int(k & 0xFFFF))
            let matching = recvs[k] ?? []
            guard list.count == matching.count else {
                throw ScheduleError.malformed("rank \(a) sends \(list.count) message\(list.count == 1 ? "" : "s") to rank \(b)\(c > 0 ? " on channel \(c)" : "") but rank \(b) receives \(matching.count) from rank \(a)")
            }
            for (s, r) in zip(list, matching) where s.profile != r.profile {
                throw ScheduleError.malformed("rank \(a), op \(s.op) sends \(s.profile.count) chunk(s) to rank \(b), whose matching op \(r.op) receives \(r.profile.count) chunk(s) of different sizes")
            }
        }
        for (k, list) in recvs where sends[k] == nil {
            let (a, b, c) = (Int(k >> 40), Int((k >> 16) & 0xFFFFFF), Int(k & 0xFFFF))
            throw ScheduleError.malformed("rank \(b) receives \(list.count) message\(list.count == 1 ? "" : "s") from rank \(a)\(c > 0 ? " on channel \(c)" : "") but rank \(a) sends none to rank \(b)")
        }
    }

    private func profile(_ chunks: ChunkList, _ k: Int) -> [Int32] {
        var p: [Int32] = []
        chunks.forEach { p.append(Int32($0 % k)) }
        return p
    }

    func describe(_ op: Op) -> String { op.summary }
}

// MARK: - The rendezvous engine

/// Runs every rank's program to completion under the schedule semantics, calling back for
/// local ops and matched transfers. The verifier and the reference interpreter are this engine
/// with different payloads.
///
/// Order of execution is deterministic (a FIFO worklist, ranks in index order), but results do
/// not depend on it: dependencies come from data, so every valid order computes the same bytes.
struct RendezvousRunner {
    let programs: [RankProgram]
    let graphs: [ProgramGraph]

    private struct Queue {
        var sends: [Int32] = []
        var recvs: [Int32] = []
        var matched = 0
    }

    /// - Throws: what the callbacks throw, or `ScheduleError.deadlock` naming stuck ranks.
    func run(local: (_ rank: Int, _ op: Int) throws -> Void,
             transfer: (_ sender: Int, _ send: Int, _ receiver: Int, _ recv: Int) throws -> Void) throws {
        let n = programs.count
        var base = [Int](repeating: 0, count: n + 1)
        for r in 0..<n { base[r + 1] = base[r] + programs[r].count }
        let total = base[n]
        var remaining = [Int32](repeating: 0, count: total)
        var posted = [Bool](repeating: false, count: total)
        var queued = [Bool](repeating: false, count: total)
        var done = [Bool](repeating: false, count: total)
        var worklist: [(Int32, Int32)] = []
        worklist.reserveCapacity(total)
        var queues: [Int64: Queue] = [:]

        func ready(_ r: Int, _ i: Int) -> Bool {
            let g = graphs[r]
            let qp = Int(g.queuePredecessor[i])
            return remaining[base[r] + i] == 0 && (qp < 0 || posted[base[r] + qp])
        }
        func enqueue(_ r: Int, _ i: Int) {
            let id = base[r] + i
            if !queued[id] && ready(r, i) {
                queued[id] = true
                worklist.append((Int32(r), Int32(i)))
            }
        }
        for r in 0..<n {
            let g = graphs[r]
            for i in 0..<programs[r].count { remaining[base[r] + i] = Int32(g.predecessors(of: i).count) }
        }
        for r in 0..<n { for i in 0..<programs[r].count { enqueue(r, i) } }

        func complete(_ r: Int, _ i: Int) {
            done[base[r] + i] = true
            for s in graphs[r].successors(of: i) {
                remaining[base[r] + Int(s)] -= 1
                enqueue(r, Int(s))
            }
        }

        var head = 0
        while head < worklist.count {
            let (r32, i32) = worklist[head]
            head += 1
            let r = Int(r32), i = Int(i32)
            posted[base[r] + i] = true
            let next = graphs[r].queueSuccessor[i]
            if next >= 0 { enqueue(r, Int(next)) }
            let op = programs[r].ops[i]
            switch op.kind {
            case .copy, .reduce:
                try local(r, i)
                complete(r, i)
            case .send, .recv:
                let (a, b) = op.kind == .send ? (r, Int(op.peer)) : (Int(op.peer), r)
                let key = (Int64(a) << 40) | (Int64(b) << 16) | Int64(op.channel)
                var q = queues[key] ?? Queue()
                if op.kind == .send { q.sends.append(i32) } else { q.recvs.append(i32) }
                while q.matched < q.sends.count && q.matched < q.recvs.count {
                    let s = Int(q.sends[q.matched]), v = Int(q.recvs[q.matched])
                    q.matched += 1
                    try transfer(a, s, b, v)
                    complete(a, s)
                    complete(b, v)
                }
                queues[key] = q
            }
        }

        if done.contains(false) {
            throw ScheduleError.deadlock(stuckReport(base: base, posted: posted, done: done))
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
