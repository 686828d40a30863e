import ChorusCore
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Foundation

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
/// by side on two threads, each with its own state. A set is a cyclic run of ranks where it can
/// be (almost always) and a bitset of ranks otherwise (`ranks × chunks × ranks` bits at most).
public enum SymbolicChecker {
    /// Verifies both forms.
    /// - Throws: `ScheduleError.malformed`, `.incorrect` or `.deadlock` with the rank, op and chunk.
    public static func verify(_ schedule: Schedule) throws {
        try checkFitsInMemory(schedule)
        try verify(schedule, programs: schedule.allPrograms())
    }

    /// About what a proof of `schedule` holds in memory: its ops (about 175 bytes each with
    /// the engine's tables and both forms' progress) and both forms' slots (16 bytes each).
    /// Ops are counted from a few ranks' programs, so this is cheap.
    public static func estimatedMemory(_ schedule: Schedule) -> (ops: Int, bytes: Int) {
        let n = schedule.ranks
        guard n >= 1 else { return (0, 0) }
        let sampled = Set([0, n / 2, n - 1]).map { schedule.program(for: $0).count }
        let ops = (sampled.max() ?? 0).multipliedReportingOverflow(by: n)
        let layout = schedule.layout
        let slots = (layout.chunkCount(.output) + layout.chunkCount(.scratch)).multipliedReportingOverflow(by: n)
        guard !ops.overflow, !slots.overflow else { return (Int.max, Int.max) }
        let bytes = ops.partialValue.multipliedReportingOverflow(by: 175)
        let state = slots.partialValue.multipliedReportingOverflow(by: 32)
        guard !bytes.overflow, !state.overflow else { return (ops.partialValue, Int.max) }
        return (ops.partialValue, bytes.partialValue.addingReportingOverflow(state.partialValue).partialValue)
    }

    /// Refuses a proof that would need more than 80% of this machine's memory, before anything
    /// is generated (the alternative is the kernel ending the process).
    /// - Throws: `ScheduleError.unsupported` with the estimate and the machine's memory.
    public static func checkFitsInMemory(_ schedule: Schedule) throws {
        let (ops, bytes) = estimatedMemory(schedule)
        let physical = physicalMemory()
        guard physical > 0, bytes > physical / 5 * 4 else { return }
        func gb(_ b: Int) -> String { b == Int.max ? "more than this machine can address" : String(format: "%.1f GB", Double(b) / 1e9) }
        throw ScheduleError.unsupported("proving \(schedule.algorithm) \(schedule.collective) on \(schedule.ranks) ranks (about \(grouped(ops)) ops) needs about \(gb(bytes)) of memory; this machine has \(gb(physical)). Verify fewer ranks.")
    }

    /// 1234567 → "1,234,567".
    private static func grouped(_ value: Int) -> String {
        var digits = String(value)
        var index = digits.endIndex
        while digits.distance(from: digits.startIndex, to: index) > 3 {
            index = digits.index(index, offsetBy: -3)
            digits.insert(",", at: index)
        }
        return digits
    }

    private static func physicalMemory() -> Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return 0 }
        return pages.multipliedReportingOverflow(by: size).overflow ? Int.max : pages * size
    }

    /// Verifies both forms for programs already in hand.
    public static func verify(_ schedule: Schedule, programs: [RankProgram]) throws {
        let index = try schedule.index(programs: programs)
        let runner = RendezvousRunner(schedule: schedule, programs: programs, index: index)
        try run(schedule, programs: programs, runner: runner)
    }

    // MARK: - Symbolic state

    /// A set of ranks whose contributions a slot sums: a cyclic run of ranks
    /// `lo, lo + 1, … lo + count − 1` (mod n), which is what rings, trees, halving and doubling
    /// build almost everywhere, or a bitset of ranks. A bitset view points into the state and
    /// is valid until its slot is written.
    private struct Contributions {
        var lo: Int32
        /// Ranks in the run; `-1`: the set is `bits`.
        var count: Int32
        var bits: UnsafePointer<UInt64>?

        static func run(_ lo: Int, _ count: Int) -> Contributions { Contributions(lo: Int32(lo), count: Int32(count), bits: nil) }
        static func only(_ rank: Int) -> Contributions { .run(rank, 1) }

        /// Word `w` of the set as a bitset over `n` ranks.
        @inline(__always) func word(_ w: Int, _ n: Int) -> UInt64 {
            if let bits { return bits[w] }
            let lo = Int(lo), end = lo + Int(count)
            return Contributions.mask(lo, min(end, n), w) | (end > n ? Contributions.mask(0, end - n, w) : 0)
        }

        /// Bits `start ..< end` that fall in word `w`.
        @inline(__always) static func mask(_ start: Int, _ end: Int, _ w: Int) -> UInt64 {
            let a = max(start, w * 64), b = min(end, w * 64 + 64)
            guard a < b else { return 0 }
            let width = b - a
            return (width == 64 ? ~UInt64(0) : (UInt64(1) << UInt64(width)) - 1) << UInt64(a - w * 64)
        }

        func ranks(_ n: Int, words: Int) -> [Int] {
            var out: [Int] = []
            for w in 0..<words {
                var x = word(w, n)
                while x != 0 {
                    out.append(w * 64 + x.trailingZeroBitCount)
                    x &= x - 1
                }
            }
            return out
        }
    }

    /// Every rank's writable chunk slots (output, then scratch): the input chunk each came from
    /// (`-1`: nothing yet) and the set of ranks it sums. Input chunks that are not aliased into
    /// the output are never written, so they have no storage: chunk `c` of rank `r` holds chunk
    /// `c` from rank `r` alone.
    ///
    /// A slot is 16 bytes; a slot whose set stops being a run gets a bitset of its own from a
    /// pool reserved for every slot but touched only as used, so a 1,024-rank ring all-reduce
    /// needs 16 MB per form instead of 134 MB of bitsets.
    private final class State {
        /// Fields stored so that freshly mapped zero pages mean "nothing, no bitset".
        struct Slot {
            var originPlusOne: Int32
            var lo: Int32
            var count: Int32
            var entryPlusOne: Int32
        }

        let ranks: Int
        let words: Int
        let slots: Int
        let outputChunks: Int
        private let slotStore: ZeroedMemory<Slot>
        private let pool: ZeroedMemory<UInt64>
        private var entriesUsed = 0

        init(ranks: Int, words: Int, outputChunks: Int, scratchChunks: Int) {
            self.ranks = ranks
            self.words = words
            self.outputChunks = outputChunks
            slots = outputChunks + scratchChunks
            slotStore = ZeroedMemory(count: ranks * slots)
            pool = ZeroedMemory(count: ranks * slots * words)
        }

        /// The input chunk slot `g` came from; `-1` when it holds nothing yet.
        @inline(__always) func origin(_ g: Int) -> Int32 { slotStore.buffer[g].originPlusOne - 1 }

        @inline(__always) func contributions(_ g: Int) -> Contributions {
            let slot = slotStore.buffer[g]
            if slot.count > 0 { return Contributions(lo: slot.lo, count: slot.count, bits: nil) }
            return Contributions(lo: 0, count: -1, bits: UnsafePointer(bitset(g)))
        }

        /// Slot `g`'s own bitset, taken from the pool the first time.
        @inline(__always) private func bitset(_ g: Int) -> UnsafeMutablePointer<UInt64> {
            var entry = Int(slotStore.buffer[g].entryPlusOne) - 1
            if entry < 0 {
                entry = entriesUsed
                entriesUsed += 1
                slotStore.buffer[g].entryPlusOne = Int32(entry + 1)
            }
            return pool.buffer.baseAddress! + entry * words
        }

        /// Slot `g` = `set` from chunk `origin`. `set` must not view `g`'s own bitset.
        @inline(__always) func store(_ g: Int, origin: Int32, _ set: Contributions) {
            slotStore.buffer[g].originPlusOne = origin + 1
            if let bits = set.bits {
                let out = bitset(g)
                for w in 0..<words { out[w] = bits[w] }
                slotStore.buffer[g].count = -1
            } else {
                slotStore.buffer[g].lo = set.lo
                slotStore.buffer[g].count = set.count
            }
        }

        /// Slot `g` = `a ∪ b` from chunk `origin` if they are disjoint; otherwise slot `g` is left
        /// as it was and the ranks in both are returned. `a` or `b` may view `g`'s own bitset.
        @inline(__always) func storeUnion(_ g: Int, origin: Int32, _ a: Contributions, _ b: Contributions) -> [Int]? {
            let n = ranks
            if a.count > 0 && b.count > 0 {
                // Runs: b starts d ranks after a; disjoint when b fits in the gap after a.
                let d = ((Int(b.lo) - Int(a.lo)) % n + n) % n
                let total = Int(a.count) + Int(b.count)
                guard d >= Int(a.count) && d + Int(b.count) <= n else { return doubled(a, b) }
                var run: Contributions? = nil
                if d == Int(a.count) {
                    run = .run(Int(a.lo), total)
                } else if ((Int(a.lo) - Int(b.lo)) % n + n) % n == Int(b.count) {
                    run = .run(Int(b.lo), total)
                }
                if var run {
                    if total == n { run.lo = 0 }
                    store(g, origin: origin, run)
                    return nil
                }
            }
            for w in 0..<words where a.word(w, n) & b.word(w, n) != 0 { return doubled(a, b) }
            let out = bitset(g)
            for w in 0..<words { out[w] = a.word(w, n) | b.word(w, n) }
            slotStore.buffer[g].originPlusOne = origin + 1
            slotStore.buffer[g].count = -1
            return nil
        }

        private func doubled(_ a: Contributions, _ b: Contributions) -> [Int] {
            Set(a.ranks(ranks, words: words)).intersection(b.ranks(ranks, words: words)).sorted()
        }
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
                        state.store(r * state.slots + alias, origin: Int32(c), .only(r))
                    }
                }
            }
            do {
                try run(schedule, programs: shared.programs, runner: shared.runner, form: form)
                try checkPostconditions(schedule, form: form)
            } catch {
                failures[f] = error
            }
        }
        for case let failure? in failures { throw failure }
    }

    /// Runs the engine once, applying every op to `form`'s symbolic state.
    private static func run(_ schedule: Schedule, programs: [RankProgram], runner: RendezvousRunner, form: Form) throws {
        let state = form.state
        let slots = state.slots
        let n = schedule.ranks
        let words = state.words

        /// Where op `id` is, for messages.
        func describe(_ id: Int) -> String {
            let (r, i) = runner.position(of: id)
            return "rank \(r), op \(i) (\(programs[r].ops[i].summary))\(form.label)"
        }
        func countedTwice(_ ranks: [Int], _ origin: Int32, _ buffer: BufferKind, _ c: Int) -> String {
            let list = ranks.prefix(8).map(String.init).joined(separator: ", ")
            return "the contribution\(ranks.count == 1 ? "" : "s") of rank\(ranks.count == 1 ? "" : "s") \(list) to chunk \(origin) would be counted twice in \(buffer) chunk \(c)"
        }

        /// What (buffer, c) of rank r holds: its origin and set (a read-only input chunk holds
        /// chunk c of rank r alone).
        @inline(__always) func read(_ r: Int, _ buffer: BufferKind, _ c: Int, at id: Int) throws -> (Int32, Contributions) {
            let s = form.slot(r, buffer, c)
            if s < 0 { return (Int32(c), .only(r)) }
            let origin = state.origin(r * slots + s)
            guard origin >= 0 else {
                throw ScheduleError.incorrect("\(describe(id)): reads \(buffer) chunk \(c), which holds nothing yet")
            }
            return (origin, state.contributions(r * slots + s))
        }

        /// (buffer, c) of rank r = `incoming` from chunk `origin`, combined with (operand) of rank r
        /// if given. `incoming` must not view the destination's own bitset.
        @inline(__always) func write(_ r: Int, _ buffer: BufferKind, _ c: Int, origin: Int32, _ incoming: Contributions,
                                     operand: (BufferKind, Int)?, at id: Int) throws {
            let s = form.slot(r, buffer, c)
            guard s >= 0 else {
                throw ScheduleError.incorrect("\(describe(id)): writes \(buffer) chunk \(c) of the input buffer, which \(form.inPlace ? "outside the output's place " : "out of place ")belongs to the caller")
            }
            let g = r * slots + s
            guard let (ob, oc) = operand else {
                state.store(g, origin: origin, incoming)
                return
            }
            let (operandOrigin, operandSet) = try read(r, ob, oc, at: id)
            guard operandOrigin == origin else {
                throw ScheduleError.incorrect("\(describe(id)): combines data of chunk \(operandOrigin) with data of chunk \(origin) into \(buffer) chunk \(c)")
            }
            if let twice = state.storeUnion(g, origin: origin, operandSet, incoming) {
                throw ScheduleError.incorrect("\(describe(id)): \(countedTwice(twice, origin, buffer, c))")
            }
        }

        // Staging for one message whose slices may overlap (local ops, several runs): each
        // chunk's origin and set, bitsets copied out so later writes cannot change them.
        var staged: [(origin: Int32, lo: Int32, count: Int32)] = []
        var stagedBits: [UInt64] = []
        var chunkScratch: [Int] = []

        /// Stages `slice` of rank r, then writes chunk j of it into chunk j of `destination` of
        /// rank `to`, combined with chunk j of `operand` of rank `to` if given.
        func stagedMove(from r: Int, _ slice: BufferSlice, readAt readID: Int,
                        to b: Int, _ destination: BufferSlice, operand: BufferSlice?, writeAt writeID: Int) throws {
            staged.removeAll(keepingCapacity: true)
            stagedBits.removeAll(keepingCapacity: true)
            try slice.chunks.forEach { c in
                let (origin, set) = try read(r, slice.buffer, c, at: readID)
                if set.bits != nil {
                    staged.append((origin, Int32(stagedBits.count), -1))
                    for w in 0..<words { stagedBits.append(set.word(w, n)) }
                } else {
                    staged.append((origin, set.lo, set.count))
                }
            }
            chunkScratch.removeAll(keepingCapacity: true)
            operand?.chunks.forEach { chunkScratch.append($0) }
            try stagedBits.withUnsafeBufferPointer { bits in
                var j = 0
                try destination.chunks.forEach { c in
                    let item = staged[j]
                    let set = item.count > 0 ? Contributions(lo: item.lo, count: item.count, bits: nil)
                                             : Contributions(lo: 0, count: -1, bits: bits.baseAddress! + Int(item.lo))
                    try write(b, destination.buffer, c, origin: item.origin, set,
                              operand: operand.map { ($0.buffer, chunkScratch[j]) }, at: writeID)
                    j += 1
                }
            }
        }

        let nodes = runner.nodes.buffer
        try runner.run(local: { id in
            let (r, i) = runner.position(of: id)
            let op = programs[r].ops[i]
            try stagedMove(from: r, op.source!, readAt: id, to: r, op.destination!,
                           operand: op.kind == .reduce ? op.destination! : nil, writeAt: id)
        }, transfer: { sendID, recvID in
            let send = nodes[sendID], recv = nodes[recvID]
            // Fast path: one run of chunks on each side (almost every op), read from the engine's
            // records. Sender and receiver are different ranks, so a set read from the sender
            // never views the receiver's storage: no staging.
            if send.singleRun && recv.singleRun {
                let a = Int(send.rank), b = Int(recv.rank)
                let s0 = Int(send.readFirst), d0 = Int(recv.writtenFirst), o0 = Int(recv.readFirst)
                let reducing = recv.readBuffer != nil
                for j in 0..<Int(send.runLength) {
                    let (origin, set) = try read(a, send.readBuffer!, s0 + j, at: sendID)
                    try write(b, recv.writtenBuffer!, d0 + j, origin: origin, set,
                              operand: reducing ? (recv.readBuffer!, o0 + j) : nil, at: recvID)
                }
                return
            }
            let (a, si) = runner.position(of: sendID), (b, ri) = runner.position(of: recvID)
            let sendOp = programs[a].ops[si], recvOp = programs[b].ops[ri]
            try stagedMove(from: a, sendOp.source!, readAt: sendID, to: b, recvOp.destination!,
                           operand: recvOp.reducing ? (recvOp.source ?? recvOp.destination!) : nil, writeAt: recvID)
        })
    }

    private static func checkPostconditions(_ schedule: Schedule, form: Form) throws {
        let n = schedule.ranks
        let layout = schedule.layout
        let state = form.state
        let slots = state.slots
        let words = state.words
        let formLabel = form.label
        // Compared as runs or bitsets; lists are built only to describe a failure.
        let k = layout.chunksPerBlock
        let outputChunks = layout.chunkCount(.output)
        let everyone = Contributions.run(0, n)
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
                let have = state.contributions(g)
                let want = owner >= 0 ? Contributions.only(owner) : everyone
                var equal: Bool
                if have.count > 0 {
                    equal = have.count == want.count && (have.count == n || have.lo == want.lo)
                } else {
                    equal = true
                    for w in 0..<words where have.word(w, n) != want.word(w, n) { equal = false; break }
                }
                if !equal {
                    let held = have.ranks(n, words: words)
                    let wanted = owner >= 0 ? [owner] : Array(0..<n)
                    let missing = Set(wanted).subtracting(held).sorted()
                    let extra = Set(held).subtracting(wanted).sorted()
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
