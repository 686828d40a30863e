import ChorusCore
import Dispatch

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
/// passes is correct in both forms and with any transport buffering. The two runs proceed side
/// by side on two threads, each with its own state. Sets are bitsets of ranks: each state is
/// `ranks × chunks × ranks` bits (a 1,024-rank ring all-reduce: 134 MB).
public enum SymbolicChecker {
    /// Verifies both forms.
    /// - Throws: `ScheduleError.malformed`, `.incorrect` or `.deadlock` with the rank, op and chunk.
    public static func verify(_ schedule: Schedule) throws {
        try verify(schedule, programs: schedule.allPrograms())
    }

    /// Verifies both forms for programs already in hand.
    public static func verify(_ schedule: Schedule, programs: [RankProgram]) throws {
        let index = try schedule.index(programs: programs)
        let runner = RendezvousRunner(schedule: schedule, programs: programs, index: index)
        try run(schedule, programs: programs, runner: runner)
    }

    // MARK: - Symbolic state

    /// Every rank's writable chunk slots (output, then scratch): the input chunk each came from
    /// (`-1`: nothing yet) and its set of ranks as a bitset. Input chunks that are not aliased
    /// into the output are never written, so they have no storage: chunk `c` of rank `r` holds
    /// chunk `c` from rank `r` alone.
    private final class State {
        let ranks: Int
        let words: Int
        let slots: Int
        let outputChunks: Int
        private let originStore: ZeroedMemory<Int32>
        let bits: UnsafeMutableBufferPointer<UInt64>
        private let bitsStore: ZeroedMemory<UInt64>

        init(ranks: Int, words: Int, outputChunks: Int, scratchChunks: Int) {
            self.ranks = ranks
            self.words = words
            self.outputChunks = outputChunks
            slots = outputChunks + scratchChunks
            originStore = ZeroedMemory(count: ranks * slots)
            bitsStore = ZeroedMemory(count: ranks * slots * words)
            bits = bitsStore.buffer
        }

        /// The input chunk slot `g` came from; `-1` when it holds nothing yet. (Stored plus one,
        /// so that freshly mapped zero pages mean "nothing".)
        @inline(__always) func origin(_ g: Int) -> Int32 { originStore.buffer[g] - 1 }
        @inline(__always) func setOrigin(_ g: Int, _ value: Int32) { originStore.buffer[g] = value + 1 }
    }

    /// One form of the proof: out of place or in place, with its own state.
    private struct Form {
        let inPlace: Bool
        let collective: Collective
        let chunksPerBlock: Int
        let state: State
        var label: String { inPlace ? " (in place)" : "" }

        /// Where (buffer, c) of `rank` lives in the state: `-1` for a read-only input chunk.
        @inline(__always) func slot(_ rank: Int, _ buffer: BufferKind, _ c: Int) -> Int {
            switch buffer {
            case .output: return c
            case .scratch: return state.outputChunks + c
            case .input:
                guard inPlace else { return -1 }
                return StorageMap.outputAlias(collective, rank: rank, chunksPerBlock: chunksPerBlock, ofInput: c) ?? -1
            }
        }
    }

    /// Proves out of place and in place; each form checks its postconditions.
    private static func run(_ schedule: Schedule, programs: [RankProgram], runner: RendezvousRunner) throws {
        let n = schedule.ranks
        let layout = schedule.layout
        let words = (n + 63) / 64
        // The two forms share nothing but the read-only programs and engine tables, so they run
        // side by side, each with its own state; the out-of-place failure is reported first.
        let inputChunks = layout.chunkCount(.input)
        let failureSlots = UnsafeMutableBufferPointer<Error?>.allocate(capacity: 2)
        failureSlots.initialize(repeating: nil)
        defer {
            failureSlots.deinitialize()
            failureSlots.deallocate()
        }
        nonisolated(unsafe) let failures = failureSlots  // each form writes only its own slot
        nonisolated(unsafe) let shared = (programs: programs, runner: runner)
        DispatchQueue.concurrentPerform(iterations: 2) { f in
            let inPlace = f == 1
            let state = State(ranks: n, words: words, outputChunks: layout.chunkCount(.output), scratchChunks: layout.chunkCount(.scratch))
            let form = Form(inPlace: inPlace, collective: schedule.collective, chunksPerBlock: layout.chunksPerBlock, state: state)
            if inPlace {
                // Aliased output slots start with the input chunk they alias.
                for r in 0..<n {
                    for c in 0..<inputChunks {
                        guard case let alias = form.slot(r, .input, c), alias >= 0 else { continue }
                        state.setOrigin(r * state.slots + alias, Int32(c))
                        state.bits[(r * state.slots + alias) * words + r / 64] = 1 << UInt64(r % 64)
                    }
                }
            }
            do {
                try run(schedule, programs: shared.programs, runner: shared.runner, form: form, words: words)
                try checkPostconditions(schedule, form: form, words: words)
            } catch {
                failures[f] = error
            }
        }
        for case let failure? in failures { throw failure }
    }

    /// Runs the engine once, applying every op to `form`'s symbolic state.
    private static func run(_ schedule: Schedule, programs: [RankProgram], runner: RendezvousRunner, form: Form, words: Int) throws {
        let slots = form.state.slots

        // Reusable staging for one message: origins and bitsets of its chunks, in order.
        var stagedOrigin: [Int32] = []
        var stagedBits: [UInt64] = []
        var chunkScratch: [Int] = []

        func where_(_ form: Form, _ r: Int, _ i: Int) -> String { "rank \(r), op \(i) (\(programs[r].ops[i].summary))\(form.label)" }

        /// Appends the value of (buffer, c) on rank r to the staging area.
        func stage(_ form: Form, _ r: Int, _ i: Int, _ buffer: BufferKind, _ c: Int) throws {
            let state = form.state
            let s = form.slot(r, buffer, c)
            if s < 0 {
                stagedOrigin.append(Int32(c))
                let start = stagedBits.count
                stagedBits.append(contentsOf: repeatElement(0, count: words))
                stagedBits[start + r / 64] = 1 << UInt64(r % 64)
                return
            }
            let g = r * slots + s
            guard state.origin(g) >= 0 else {
                throw ScheduleError.incorrect("\(where_(form, r, i)): reads \(buffer) chunk \(c), which holds nothing yet")
            }
            stagedOrigin.append(state.origin(g))
            stagedBits.append(contentsOf: state.bits[(g * words)..<((g + 1) * words)])
        }

        /// Writes staged value `j` into (buffer, c) on rank r, combining with `operand` if given.
        func write(_ form: Form, _ r: Int, _ i: Int, _ buffer: BufferKind, _ c: Int, staged j: Int, operand: (BufferKind, Int)?) throws {
            let state = form.state
            let s = form.slot(r, buffer, c)
            guard s >= 0 else {
                throw ScheduleError.incorrect("\(where_(form, r, i)): writes \(buffer) chunk \(c) of the input buffer, which \(form.inPlace ? "outside the output's place " : "out of place ")belongs to the caller")
            }
            let g = r * slots + s
            let incomingOrigin = stagedOrigin[j]
            guard let (ob, oc) = operand else {
                state.setOrigin(g, incomingOrigin)
                for w in 0..<words { state.bits[g * words + w] = stagedBits[j * words + w] }
                return
            }
            // dest = operand ⊕ incoming
            let os = form.slot(r, ob, oc)
            var operandOrigin: Int32
            if os < 0 {
                operandOrigin = Int32(oc)
            } else {
                operandOrigin = state.origin(r * slots + os)
                guard operandOrigin >= 0 else {
                    throw ScheduleError.incorrect("\(where_(form, r, i)): reads \(ob) chunk \(oc), which holds nothing yet")
                }
            }
            guard operandOrigin == incomingOrigin else {
                throw ScheduleError.incorrect("\(where_(form, r, i)): combines data of chunk \(operandOrigin) with data of chunk \(incomingOrigin) into \(buffer) chunk \(c)")
            }
            // The operand's word w (a read-only input chunk holds just this rank's bit).
            func operandWord(_ w: Int) -> UInt64 {
                os < 0 ? (w == r / 64 ? UInt64(1) << UInt64(r % 64) : 0) : state.bits[(r * slots + os) * words + w]
            }
            var doubled: [Int] = []
            for w in 0..<words {
                var x = operandWord(w) & stagedBits[j * words + w]
                while x != 0 {
                    doubled.append(w * 64 + x.trailingZeroBitCount)
                    x &= x - 1
                }
            }
            if doubled.isEmpty {
                // Operand and destination may be the same slot: read the operand before writing.
                for w in 0..<words { state.bits[g * words + w] = operandWord(w) | stagedBits[j * words + w] }
            } else {
                let list = doubled.prefix(8).map(String.init).joined(separator: ", ")
                throw ScheduleError.incorrect("\(where_(form, r, i)): the contribution of rank\(doubled.count == 1 ? "" : "s") \(list) to chunk \(incomingOrigin) would be counted twice in \(buffer) chunk \(c)")
            }
            state.setOrigin(g, incomingOrigin)
        }

        let nodes = runner.nodes.buffer
        try runner.run(local: { id in
            let (r, i) = runner.position(of: id)
            let op = programs[r].ops[i]
            let src = op.source!, dst = op.destination!
            stagedOrigin.removeAll(keepingCapacity: true)
            stagedBits.removeAll(keepingCapacity: true)
            try src.chunks.forEach { try stage(form, r, i, src.buffer, $0) }
            var j = 0
            try dst.chunks.forEach { c in
                try write(form, r, i, dst.buffer, c, staged: j, operand: op.kind == .reduce ? (dst.buffer, c) : nil)
                j += 1
            }
        }, transfer: { sendID, recvID in
            let send = nodes[sendID], recv = nodes[recvID]
            // Fast path: one run of chunks on each side (almost every op), read from the engine's
            // records. Sender and receiver are different ranks, so source and destination never
            // overlap: no staging.
            if send.singleRun && recv.singleRun {
                let a = Int(send.rank), b = Int(recv.rank)
                let s0 = Int(send.readFirst), d0 = Int(recv.writtenFirst), o0 = Int(recv.readFirst)
                let reducing = recv.readBuffer != nil
                for j in 0..<Int(send.runLength) {
                    try move(form, from: a, send: sendID, send.readBuffer!, s0 + j, to: b, recv: recvID, recv.writtenBuffer!, d0 + j,
                             operand: reducing ? (recv.readBuffer!, o0 + j) : nil)
                }
                return
            }
            let (a, si) = runner.position(of: sendID), (b, ri) = runner.position(of: recvID)
            let sendOp = programs[a].ops[si], recvOp = programs[b].ops[ri]
            let src = sendOp.source!, dst = recvOp.destination!
            let operand = recvOp.reducing ? (recvOp.source ?? dst) : nil
            chunkScratch.removeAll(keepingCapacity: true)
            operand?.chunks.forEach { chunkScratch.append($0) }
            stagedOrigin.removeAll(keepingCapacity: true)
            stagedBits.removeAll(keepingCapacity: true)
            try src.chunks.forEach { try stage(form, a, si, src.buffer, $0) }
            var j = 0
            try dst.chunks.forEach { c in
                try write(form, b, ri, dst.buffer, c, staged: j, operand: operand.map { ($0.buffer, chunkScratch[j]) })
                j += 1
            }
        })

        /// One chunk of a transfer: (buffer, c) on rank `to` receives (buffer, c) of rank `from`,
        /// combined with `operand` on the receiver if given.
        func move(_ form: Form, from a: Int, send sendID: Int, _ sb: BufferKind, _ sc: Int, to b: Int, recv recvID: Int, _ db: BufferKind, _ dc: Int,
                  operand: (BufferKind, Int)?) throws {
            func whereSend() -> String { let (r, i) = runner.position(of: sendID); return where_(form, r, i) }
            func whereRecv() -> String { let (r, i) = runner.position(of: recvID); return where_(form, r, i) }
            let state = form.state
            let bits = state.bits.baseAddress!
            let ss = form.slot(a, sb, sc)
            let sourceOrigin: Int32
            if ss < 0 {
                sourceOrigin = Int32(sc)
            } else {
                sourceOrigin = state.origin(a * slots + ss)
                guard sourceOrigin >= 0 else {
                    throw ScheduleError.incorrect("\(whereSend()): reads \(sb) chunk \(sc), which holds nothing yet")
                }
            }
            @inline(__always) func sourceWord(_ w: Int) -> UInt64 {
                ss < 0 ? (w == a >> 6 ? UInt64(1) << UInt64(a & 63) : 0) : bits[(a * slots + ss) * words + w]
            }
            let ds = form.slot(b, db, dc)
            guard ds >= 0 else {
                throw ScheduleError.incorrect("\(whereRecv()): writes \(db) chunk \(dc) of the input buffer, which \(form.inPlace ? "outside the output's place " : "out of place ")belongs to the caller")
            }
            let g = b * slots + ds
            guard let (ob, oc) = operand else {
                state.setOrigin(g, sourceOrigin)
                for w in 0..<words { bits[g * words + w] = sourceWord(w) }
                return
            }
            let os = form.slot(b, ob, oc)
            let operandOrigin: Int32
            if os < 0 {
                operandOrigin = Int32(oc)
            } else {
                operandOrigin = state.origin(b * slots + os)
                guard operandOrigin >= 0 else {
                    throw ScheduleError.incorrect("\(whereRecv()): reads \(ob) chunk \(oc), which holds nothing yet")
                }
            }
            guard operandOrigin == sourceOrigin else {
                throw ScheduleError.incorrect("\(whereRecv()): combines data of chunk \(operandOrigin) with data of chunk \(sourceOrigin) into \(db) chunk \(dc)")
            }
            @inline(__always) func operandWord(_ w: Int) -> UInt64 {
                os < 0 ? (w == b >> 6 ? UInt64(1) << UInt64(b & 63) : 0) : bits[(b * slots + os) * words + w]
            }
            var overlap: UInt64 = 0
            for w in 0..<words { overlap |= operandWord(w) & sourceWord(w) }
            guard overlap == 0 else {
                var doubled: [Int] = []
                for w in 0..<words {
                    var x = operandWord(w) & sourceWord(w)
                    while x != 0 {
                        doubled.append(w * 64 + x.trailingZeroBitCount)
                        x &= x - 1
                    }
                }
                let list = doubled.prefix(8).map(String.init).joined(separator: ", ")
                throw ScheduleError.incorrect("\(whereRecv()): the contribution of rank\(doubled.count == 1 ? "" : "s") \(list) to chunk \(sourceOrigin) would be counted twice in \(db) chunk \(dc)")
            }
            for w in 0..<words { bits[g * words + w] = operandWord(w) | sourceWord(w) }
            state.setOrigin(g, sourceOrigin)
        }
    }

    private static func checkPostconditions(_ schedule: Schedule, form: Form, words: Int) throws {
        let n = schedule.ranks
        let layout = schedule.layout
        let state = form.state
        let slots = state.slots
        let formLabel = form.label
        // Compared as bitsets; lists are built only to describe a failure.
        let k = layout.chunksPerBlock
        let outputChunks = layout.chunkCount(.output)
        var everyone = [UInt64](repeating: 0, count: words)
        for q in 0..<n { everyone[q / 64] |= 1 << UInt64(q % 64) }
        func ranksIn(_ g: Int) -> [Int] {
            var out: [Int] = []
            for w in 0..<words {
                var x = state.bits[g * words + w]
                while x != 0 {
                    out.append(w * 64 + x.trailingZeroBitCount)
                    x &= x - 1
                }
            }
            return out
        }
        for r in 0..<n {
            if schedule.collective == .reduce && r != schedule.root { continue }
            for c in 0..<outputChunks {
                let g = r * slots + c
                let expectedOrigin: Int
                var owner = -1
                switch schedule.collective {
                case .allReduce, .reduce: expectedOrigin = c
                case .allGather: (expectedOrigin, owner) = (c % k, c / k)
                case .reduceScatter: expectedOrigin = r * k + c
                case .broadcast: (expectedOrigin, owner) = (c, schedule.root)
                }
                func expectation() -> String {
                    describeExpectation(expectedOrigin, owner >= 0 ? [owner] : Array(0..<n), n)
                }
                let origin = Int(state.origin(g))
                guard origin >= 0 else {
                    throw ScheduleError.incorrect("after every op\(formLabel), rank \(r)'s output chunk \(c) holds nothing; it should hold \(expectation())")
                }
                guard origin == expectedOrigin else {
                    throw ScheduleError.incorrect("after every op\(formLabel), rank \(r)'s output chunk \(c) holds data of input chunk \(origin); it should hold \(expectation())")
                }
                var equal = true
                for w in 0..<words {
                    let want = owner >= 0 ? (w == owner / 64 ? UInt64(1) << UInt64(owner % 64) : 0) : everyone[w]
                    if state.bits[g * words + w] != want { equal = false; break }
                }
                if !equal {
                    let have = ranksIn(g)
                    let wanted = owner >= 0 ? [owner] : Array(0..<n)
                    let missing = Set(wanted).subtracting(have).sorted()
                    let extra = Set(have).subtracting(wanted).sorted()
                    var parts: [String] = []
                    if !missing.isEmpty { parts.append("is missing the contribution\(missing.count == 1 ? "" : "s") of rank\(missing.count == 1 ? "" : "s") \(listRanks(missing))") }
                    if !extra.isEmpty { parts.append("also holds rank\(extra.count == 1 ? "" : "s") \(listRanks(extra))") }
                    throw ScheduleError.incorrect("after every op\(formLabel), rank \(r)'s output chunk \(c) \(parts.joined(separator: " and ")); it should hold \(expectation())")
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
