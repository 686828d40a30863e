import ChorusCore

/// Proves that a schedule computes its collective and cannot deadlock.
///
/// The proof runs the schedule on *sets of contributions* instead of numbers: every chunk slot
/// holds the chunk it came from and the set of ranks whose contributions it sums. A reduce
/// of two slots must combine the same chunk from disjoint sets (otherwise a contribution would be
/// counted twice); reading a slot that holds nothing yet is an error; at the end every output
/// chunk must hold exactly what the collective promises:
///
/// | collective | rank r's output chunk c holds |
/// |---|---|
/// | all-reduce | input chunk c of every rank |
/// | all-gather | input chunk c mod k of rank ⌊c/k⌋ |
/// | reduce-scatter | input chunk r·k + c of every rank |
/// | broadcast | input chunk c of the root |
/// | reduce | (root only) input chunk c of every rank |
///
/// It runs twice, out of place (input never written) and in place (input aliased into the
/// output as the collective's in-place form does), under rendezvous semantics, so a schedule that
/// passes is correct in both forms and with any transport buffering. Sets are bitsets of ranks:
/// memory is `ranks × chunks × ranks` bits (a 1,024-rank ring all-reduce: about 270 MB).
public enum SymbolicChecker {
    /// Verifies both forms.
    /// - Throws: `ScheduleError.malformed`, `.incorrect` or `.deadlock` with the rank, op and chunk.
    public static func verify(_ schedule: Schedule) throws {
        let programs = schedule.allPrograms()
        try verify(schedule, programs: programs)
    }

    /// Verifies both forms for programs already in hand.
    public static func verify(_ schedule: Schedule, programs: [RankProgram]) throws {
        try schedule.validate(programs: programs)
        let graphs = (0..<schedule.ranks).map { r in
            ProgramGraph(program: programs[r], storage: StorageMap(layout: schedule.layout, collective: schedule.collective, rank: r, aliased: true))
        }
        try run(schedule, programs: programs, graphs: graphs, inPlace: false)
        try run(schedule, programs: programs, graphs: graphs, inPlace: true)
    }

    // MARK: - Symbolic state

    /// Slots of every rank: the chunk each came from (`-1`: nothing yet) and its rank bitset.
    private struct State {
        let words: Int
        var origin: [[Int32]]
        var bits: [[UInt64]]

        func isEmpty(_ r: Int, _ s: Int) -> Bool { origin[r][s] < 0 }
    }

    private static func run(_ schedule: Schedule, programs: [RankProgram], graphs: [ProgramGraph], inPlace: Bool) throws {
        let n = schedule.ranks
        let layout = schedule.layout
        let words = (n + 63) / 64
        let maps = (0..<n).map { StorageMap(layout: layout, collective: schedule.collective, rank: $0, aliased: inPlace) }
        var state = State(words: words, origin: [], bits: [])
        state.origin.reserveCapacity(n)
        state.bits.reserveCapacity(n)
        let inputChunks = layout.chunkCount(.input)
        for r in 0..<n {
            let map = maps[r]
            var origin = [Int32](repeating: -1, count: map.slotCount)
            var bits = [UInt64](repeating: 0, count: map.slotCount * words)
            for c in 0..<inputChunks {
                let s = map.slot(.input, c)
                origin[s] = Int32(c)
                bits[s * words + r / 64] = 1 << UInt64(r % 64)
            }
            state.origin.append(origin)
            state.bits.append(bits)
        }
        let form = inPlace ? " (in place)" : ""

        func where_(_ r: Int, _ i: Int) -> String { "rank \(r), op \(i) (\(programs[r].ops[i].summary))\(form)" }
        func requireFilled(_ r: Int, _ i: Int, _ buffer: BufferKind, _ c: Int) throws -> Int {
            let s = maps[r].slot(buffer, c)
            guard state.origin[r][s] >= 0 else {
                throw ScheduleError.incorrect("\(where_(r, i)): reads \(buffer) chunk \(c), which holds nothing yet")
            }
            return s
        }
        func requireWritable(_ r: Int, _ i: Int, _ buffer: BufferKind) throws {
            if buffer == .input && !inPlace {
                throw ScheduleError.incorrect("\(where_(r, i)): writes the input buffer, which out of place belongs to the caller")
            }
        }
        func ranks(_ r: Int, _ s: Int) -> [Int] {
            var out: [Int] = []
            for w in 0..<words {
                var x = state.bits[r][s * words + w]
                while x != 0 {
                    let b = x.trailingZeroBitCount
                    out.append(w * 64 + b)
                    x &= x - 1
                }
            }
            return out
        }
        /// dst (on rank rd, slot sd) = a ⊕ b, where a and b are given as (origin, bits of rank ra slot sa).
        func combine(_ r: Int, _ i: Int, destRank rd: Int, destSlot sd: Int, destChunk: (BufferKind, Int),
                     _ oa: Int32, _ bitsA: ArraySlice<UInt64>, _ ob: Int32, _ bitsB: ArraySlice<UInt64>) throws {
            guard oa == ob else {
                throw ScheduleError.incorrect("\(where_(r, i)): combines data of chunk \(oa) with data of chunk \(ob) into \(destChunk.0) chunk \(destChunk.1)")
            }
            var doubled: [Int] = []
            for w in 0..<words {
                var x = bitsA[bitsA.startIndex + w] & bitsB[bitsB.startIndex + w]
                while x != 0 {
                    doubled.append(w * 64 + x.trailingZeroBitCount)
                    x &= x - 1
                }
            }
            guard doubled.isEmpty else {
                let list = doubled.prefix(8).map(String.init).joined(separator: ", ")
                throw ScheduleError.incorrect("\(where_(r, i)): the contribution of rank\(doubled.count == 1 ? "" : "s") \(list) to chunk \(oa) would be counted twice in \(destChunk.0) chunk \(destChunk.1)")
            }
            state.origin[rd][sd] = oa
            for w in 0..<words { state.bits[rd][sd * words + w] = bitsA[bitsA.startIndex + w] | bitsB[bitsB.startIndex + w] }
        }

        let runner = RendezvousRunner(programs: programs, graphs: graphs)
        var messageOrigin: [Int32] = []
        var messageBits: [UInt64] = []
        try runner.run(local: { r, i in
            let op = programs[r].ops[i]
            let src = op.source!, dst = op.destination!
            try requireWritable(r, i, dst.buffer)
            let from = src.chunks.chunks, to = dst.chunks.chunks
            // Read every source first: source and destination may overlap.
            messageOrigin.removeAll(keepingCapacity: true)
            messageBits.removeAll(keepingCapacity: true)
            for c in from {
                let s = try requireFilled(r, i, src.buffer, c)
                messageOrigin.append(state.origin[r][s])
                messageBits.append(contentsOf: state.bits[r][(s * words)..<((s + 1) * words)])
            }
            for (j, c) in to.enumerated() {
                let sd = maps[r].slot(dst.buffer, c)
                let incoming = messageBits[(j * words)..<((j + 1) * words)]
                if op.kind == .copy {
                    state.origin[r][sd] = messageOrigin[j]
                    for w in 0..<words { state.bits[r][sd * words + w] = incoming[incoming.startIndex + w] }
                } else {
                    _ = try requireFilled(r, i, dst.buffer, c)
                    let current = Array(state.bits[r][(sd * words)..<((sd + 1) * words)])
                    try combine(r, i, destRank: r, destSlot: sd, destChunk: (dst.buffer, c), state.origin[r][sd], current[...], messageOrigin[j], incoming)
                }
            }
        }, transfer: { a, si, b, ri in
            let send = programs[a].ops[si], recv = programs[b].ops[ri]
            let src = send.source!, dst = recv.destination!
            try requireWritable(b, ri, dst.buffer)
            messageOrigin.removeAll(keepingCapacity: true)
            messageBits.removeAll(keepingCapacity: true)
            for c in src.chunks.chunks {
                let s = try requireFilled(a, si, src.buffer, c)
                messageOrigin.append(state.origin[a][s])
                messageBits.append(contentsOf: state.bits[a][(s * words)..<((s + 1) * words)])
            }
            let operand = recv.reducing ? (recv.source ?? dst) : nil
            let operandChunks = operand?.chunks.chunks
            for (j, c) in dst.chunks.chunks.enumerated() {
                let sd = maps[b].slot(dst.buffer, c)
                let incoming = messageBits[(j * words)..<((j + 1) * words)]
                if let operand, let operandChunks {
                    let so = try requireFilled(b, ri, operand.buffer, operandChunks[j])
                    let current = Array(state.bits[b][(so * words)..<((so + 1) * words)])
                    try combine(b, ri, destRank: b, destSlot: sd, destChunk: (dst.buffer, c), state.origin[b][so], current[...], messageOrigin[j], incoming)
                } else {
                    state.origin[b][sd] = messageOrigin[j]
                    for w in 0..<words { state.bits[b][sd * words + w] = incoming[incoming.startIndex + w] }
                }
            }
        })

        // Postconditions.
        let k = layout.chunksPerBlock
        let outputChunks = layout.chunkCount(.output)
        for r in 0..<n {
            if schedule.collective == .reduce && r != schedule.root { continue }
            for c in 0..<outputChunks {
                let s = maps[r].slot(.output, c)
                let expectedOrigin: Int
                let expectedRanks: [Int]
                switch schedule.collective {
                case .allReduce, .reduce: (expectedOrigin, expectedRanks) = (c, Array(0..<n))
                case .allGather: (expectedOrigin, expectedRanks) = (c % k, [c / k])
                case .reduceScatter: (expectedOrigin, expectedRanks) = (r * k + c, Array(0..<n))
                case .broadcast: (expectedOrigin, expectedRanks) = (c, [schedule.root])
                }
                let origin = Int(state.origin[r][s])
                guard origin >= 0 else {
                    throw ScheduleError.incorrect("after every op\(form), rank \(r)'s output chunk \(c) holds nothing; it should hold \(describeExpectation(expectedOrigin, expectedRanks, n))")
                }
                guard origin == expectedOrigin else {
                    throw ScheduleError.incorrect("after every op\(form), rank \(r)'s output chunk \(c) holds data of input chunk \(origin); it should hold \(describeExpectation(expectedOrigin, expectedRanks, n))")
                }
                let have = ranks(r, s)
                if have != expectedRanks {
                    let missing = Set(expectedRanks).subtracting(have).sorted()
                    let extra = Set(have).subtracting(expectedRanks).sorted()
                    var parts: [String] = []
                    if !missing.isEmpty { parts.append("is missing the contribution\(missing.count == 1 ? "" : "s") of rank\(missing.count == 1 ? "" : "s") \(listRanks(missing))") }
                    if !extra.isEmpty { parts.append("also holds rank\(extra.count == 1 ? "" : "s") \(listRanks(extra))") }
                    throw ScheduleError.incorrect("after every op\(form), rank \(r)'s output chunk \(c) \(parts.joined(separator: " and ")); it should hold \(describeExpectation(expectedOrigin, expectedRanks, n))")
                }
            }
        }
    }

    private static func describeExpectation(_ origin: Int, _ ranks: [Int], _ n: Int) -> String {
        ranks.count == n && n > 1 ? "input chunk \(origin) of every rank" : "input chunk \(origin) of rank \(listRanks(ranks))"
    }

    private static func listRanks(_ ranks: [Int]) -> String {
        ranks.count <= 8 ? ranks.map(String.init).joined(separator: ", ") : ranks.prefix(8).map(String.init).joined(separator: ", ") + " and \(ranks.count - 8) more"
    }
}
