import ChorusCore
import ChorusSchedule
import ChorusTransport

/// One call to run: a compiled plan, its buffers, and where its messages go.
public struct Execution {
    public var compiled: CompiledPlan
    /// The caller's buffers (`nil` when empty). In place, input and output overlap as the
    /// collective's in-place form says; the schedule is valid either way.
    public var input: UnsafeMutableRawPointer?
    public var output: UnsafeMutableRawPointer?
    public var reduceOp: ReduceOp
    /// The call's signature; every message carries it and every receive checks it.
    public var tag: UInt64
    /// High bits of every stream: the communicator and the call's place in a group.
    public var streamBase: UInt64
    /// Transport rank of schedule rank `r` (sub-communicators); identity when `nil`.
    public var worldRanks: [Int]?

    public init(compiled: CompiledPlan, input: UnsafeMutableRawPointer?, output: UnsafeMutableRawPointer?,
                reduceOp: ReduceOp, tag: UInt64, streamBase: UInt64, worldRanks: [Int]? = nil) {
        self.compiled = compiled
        self.input = input
        self.output = output
        self.reduceOp = reduceOp
        self.tag = tag
        self.streamBase = streamBase
        self.worldRanks = worldRanks
    }
}

/// Interprets compiled plans over a transport. Nothing in it knows any algorithm.
///
/// ## Protocol
/// Every instance (op × piece) is *posted* once the instances it depends on are done and the
/// previous message of its queue has been posted. Local copies and reductions run when posted,
/// except the parts of a copy that a send carries (`CompiledPlan.carriedCopy`): the transport
/// writes them as it moves the send's bytes, and the copy completes with its carrying sends.
/// Sends post straight from the caller's buffer when the message is one contiguous segment
/// (gathering into a staging buffer otherwise). Receives land straight in their destination,
/// and a reducing receive then combines in place (`destination = operand ⊕ destination`),
/// unless the operand overlaps the destination in memory (in place) or the destination is in
/// several segments: then it lands in a staging buffer and is combined or scattered from there.
/// Every received message's tag must equal the call's signature.
///
/// ## Threads and waiting
/// `run` drives progress on the calling thread (a communicator's blocking calls run on the
/// caller's thread; its async calls on the communicator's own progress thread, never on Swift's
/// cooperative pool). When nothing completes it asks the transport to wait, which spins briefly
/// and then sleeps; transports do not spin when ranks outnumber cores.
public final class Executor {
    public let transport: Transport
    @exclusivity(unchecked) private var regions: [UnsafeMutableRawPointer: TransportRegion] = [:]
    @exclusivity(unchecked) private var scratch: UnsafeMutableRawBufferPointer?
    @exclusivity(unchecked) private var scratchRegion: TransportRegion?
    @exclusivity(unchecked) private var stagingBuffers: [(memory: UnsafeMutableRawBufferPointer, region: TransportRegion)] = []
    @exclusivity(unchecked) private var freeStaging: [Int] = []
    @exclusivity(unchecked) private var completions: [TransportCompletion] = []
    @exclusivity(unchecked) private var pending: [Int] = []

    public init(transport: Transport) {
        self.transport = transport
    }

    deinit {
        for r in regions.values { transport.deregister(r) }
        if let scratch { scratch.deallocate() }
        if let scratchRegion { transport.deregister(scratchRegion) }
        for s in stagingBuffers {
            transport.deregister(s.region)
            s.memory.deallocate()
        }
        if let zero {
            transport.deregister(zero.1)
            zero.0.deallocate()
        }
    }

    /// The registered region for a caller buffer (registrations are kept across calls, keyed by
    /// address; a buffer that grew is registered again).
    private func region(for base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        // A call's input and output are usually the last call's: skip the hash for them.
        if let r = recentRegions.0, r.base == base, r.length >= length { return r }
        if let r = recentRegions.1, r.base == base, r.length >= length { return r }
        if let r = regions[base], r.length >= length {
            remember(r)
            return r
        }
        if let old = regions[base] {
            transport.deregister(old)
            recentRegions = (nil, nil)
        }
        let r = try transport.register(base, length: max(length, 1))
        regions[base] = r
        remember(r)
        return r
    }

    /// The two regions used last (a call's input and output).
    @exclusivity(unchecked) private var recentRegions: (TransportRegion?, TransportRegion?) = (nil, nil)

    private func remember(_ r: TransportRegion) { recentRegions = (r, recentRegions.0) }

    /// Forgets registrations of caller buffers (call when buffers may have been freed).
    public func forgetRegistrations() {
        for r in regions.values { transport.deregister(r) }
        regions.removeAll()
        recentRegions = (nil, nil)
    }

    private func scratchMemory(_ bytes: Int) throws -> (UnsafeMutableRawPointer, TransportRegion) {
        if let scratch, scratch.count >= bytes, let scratchRegion { return (scratch.baseAddress!, scratchRegion) }
        if let scratch { scratch.deallocate() }
        if let scratchRegion { transport.deregister(scratchRegion) }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        scratch = memory
        scratchRegion = try transport.register(memory.baseAddress!, length: memory.count)
        return (memory.baseAddress!, scratchRegion!)
    }

    private func acquireStaging(_ bytes: Int, free freeStaging: inout [Int]) throws -> Int {
        if let i = freeStaging.firstIndex(where: { stagingBuffers[$0].memory.count >= bytes }) {
            return freeStaging.remove(at: i)
        }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        let region = try transport.register(memory.baseAddress!, length: memory.count)
        stagingBuffers.append((memory, region))
        return stagingBuffers.count - 1
    }

    /// Runs `executions` together (one call, or a group's calls) until every instance is done.
    /// - Parameters:
    ///   - timeout: how long to wait without any progress before failing, naming the peer waited for.
    ///   - isAborted: checked whenever the executor would wait; a non-nil reason stops the run.
    /// - Throws: `ExecutionError`.
    public func run(_ executions: [Execution], timeout: Duration, isAborted: () -> String?) throws {
        // The reusable lists are lent to the run straight from their properties, which are not
        // checked for exclusive access at run time. (Moving them into locals and back cost a
        // release of each emptied local on every call.) A run that fails leaves them as they
        // are; the next one starts by emptying them.
        if !bound.isEmpty { bound.removeAllKeepingCapacity() }
        if !completions.isEmpty { completions.removeAllKeepingCapacity() }
        if !pending.isEmpty { pending.removeAllKeepingCapacity() }
        try drive(executions, timeout: timeout, isAborted: isAborted,
                  bound: &bound, completions: &completions, pending: &pending, freeStaging: &freeStaging)
    }

    /// The run itself (`run`), with the reused lists lent to it.
    private func drive(_ executions: [Execution], timeout: Duration, isAborted: () -> String?,
                       bound: inout [Bound], completions: inout [TransportCompletion], pending: inout [Int], freeStaging: inout [Int]) throws {
        /// Lends execution j's plan without retaining it: `executions` holds every plan for the
        /// run, and a plan loaded from it was otherwise retained and released around each use
        /// (atomic operations, several per post and completion).
        func withPlan<R>(_ j: Int, _ body: (CompiledPlan) throws -> R) rethrows -> R {
            try Unmanaged.passUnretained(executions[j].compiled)._withUnsafeGuaranteedRef(body)
        }

        // (The closures return what they found instead of updating these: a local mutated
        // inside a closure was checked for exclusive access at run time.)
        var total = 0
        var scratchNeed = 0
        for j in executions.indices {
            let (b, instances, scratch) = try withPlan(j) { c -> (Bound, Int, Int) in
                var b = Bound()
                if c.inputBytes > 0, let input = executions[j].input {
                    b.base.0 = input
                    b.region.0 = try region(for: input, length: c.inputBytes)
                }
                if c.outputBytes > 0, let output = executions[j].output {
                    b.base.1 = output
                    b.region.1 = try region(for: output, length: c.outputBytes)
                }
                return (b, c.instanceCount, c.scratchBytes)
            }
            bound.append(b)
            total += instances
            scratchNeed += (scratch + 63) / 64 * 64
        }
        // Scratch is shared by the group's calls: give each its own slice.
        if scratchNeed > 0 {
            let (base, region) = try scratchMemory(scratchNeed)
            var offset = 0
            for j in executions.indices {
                let bytes = withPlan(j) { $0.scratchBytes }
                guard bytes > 0 else { continue }
                bound[j].base.2 = base + offset
                bound[j].region.2 = TransportRegion(base: base + offset, length: bytes, key: region.key)
                offset += (bytes + 63) / 64 * 64
            }
        }

        for j in executions.indices {
            withPlan(j) { c in
                let s = c.state, T = c.pieces
                for i in 0..<c.opKind.count {
                    let predecessors = c.predecessorCount[i]
                    for t in 0..<T {
                        let x = i * T + t
                        s.remaining[x] = predecessors
                        s.posted[x] = false
                        s.done[x] = false
                        s.staging[x] = -1
                        s.carriedLeft[x] = 0
                    }
                }
            }
        }

        // Instances done so far (a property: as a local, captured by `complete` and used
        // inside closures, it was checked for exclusive access at run time).
        doneCount = 0
        // When something last completed (`ElapsedTime`, not an instant: see there); read from
        // the clock only once the run has to wait (a small call usually never does).
        var lastProgress: Duration?
        var progressed = false
        var quietPolls = 0

        func pointer(_ j: Int, _ c: CompiledPlan, _ segment: Int) -> UnsafeMutableRawPointer {
            let kind = c.segmentBuffer[segment]
            guard let base = bound[j].base(kind) else {
                preconditionFailure("executor: the \(kind) buffer is missing for a plan that uses it")
            }
            return base + c.segmentOffset[segment]
        }
        func regionAndOffset(_ j: Int, _ c: CompiledPlan, _ segment: Int) -> (TransportRegion, Int) {
            let kind = c.segmentBuffer[segment]
            let region = bound[j].region(kind)!
            return (region, (bound[j].base(kind)! - region.base) + c.segmentOffset[segment])
        }
        func ready(_ c: CompiledPlan, _ x: Int) -> Bool {
            let s = c.state
            guard !s.posted[x], s.remaining[x] == 0 else { return false }
            let q = Int(c.queuePredecessor[x])
            return q < 0 || s.posted[q]
        }
        // The nested functions take the execution's plan from their caller, which has it in
        // hand (fetching it from `executions` again retained and released it on every use).
        func complete(_ j: Int, _ c: CompiledPlan, _ x: Int) {
            let s = c.state, T = c.pieces
            s.done[x] = true
            doneCount += 1
            let i = c.op(of: x), t = c.piece(of: x)
            for k in Int(c.successorOffsets[i])..<Int(c.successorOffsets[i + 1]) {
                let y = Int(c.successorList[k]) * T + t
                s.remaining[y] -= 1
                if s.remaining[y] == 0 { pending.append(j << 40 | y) }
            }
        }
        // Transport rank of schedule rank r in execution j. (Fields are read from `executions[j]`
        // one by one, and plans are lent unretained (`_withUnsafeGuaranteedRef`) where they are
        // looked up per completion: copying an `Execution` or loading its plan retained and
        // released them on every post and completion; `executions` keeps them alive for the
        // whole run.)
        let remapped = executions.contains { $0.worldRanks != nil }
        func worldRank(_ j: Int, _ r: Int) -> Int { remapped ? executions[j].worldRanks?[r] ?? r : r }
        /// Where send instance y also writes its bytes for a copy it carries (`CompiledPlan.
        /// carriedCopy`), or `nil`: it carries none, the copy is a no-op (in place), or the
        /// transport does not copy on sends to its peer. The copy decides the same way.
        func carriedCopyDestination(_ j: Int, _ c: CompiledPlan, _ y: Int) -> UnsafeMutableRawPointer? {
            let b = Int(c.carriedSegment[y])
            guard b >= 0, buffersApart(j, c, c.segments(y, 0).lowerBound, b),
                  transport.copiesOnSend(to: worldRank(j, Int(c.opPeer[c.op(of: y)]))) else { return nil }
            return pointer(j, c, b)
        }
        /// Whether segments a and b lie in buffers that do not overlap in memory (input and
        /// output overlap in place; scratch is the executor's own).
        func buffersApart(_ j: Int, _ c: CompiledPlan, _ a: Int, _ b: Int) -> Bool {
            let ka = c.segmentBuffer[a], kb = c.segmentBuffer[b]
            guard ka != kb else { return false }
            if ka == .scratch || kb == .scratch { return true }
            guard let input = bound[j].base.0, let output = bound[j].base.1 else { return false }
            return input + c.inputBytes <= output || output + c.outputBytes <= input
        }

        /// Posts instance x of execution j (which is ready).
        func post(_ j: Int, _ c: CompiledPlan, _ x: Int) throws {
            let s = c.state
            s.posted[x] = true
            let q = Int(c.queueSuccessor[x])
            if q >= 0 { pending.append(j << 40 | q) }
            let i = c.op(of: x)
            let es = c.dataType.size
            switch c.opKind[i] {
            case .copy:
                let src = c.segments(x, 0), dst = c.segments(x, 1)
                var carried: Int32 = 0
                for (a, b) in zip(src, dst) where c.segmentLength[a] > 0 {
                    let y = Int(c.segmentCarrier[a])
                    if y >= 0 && carriedCopyDestination(j, c, y) != nil {
                        carried += 1  // written by send instance y
                        continue
                    }
                    let from = pointer(j, c, a), to = pointer(j, c, b)
                    if from != to { ReductionKernels.copy(to: to, from: from, count: c.segmentLength[a]) }
                }
                // Carrying sends that completed already have counted down.
                s.carriedLeft[x] += carried
                if s.carriedLeft[x] == 0 { complete(j, c, x) }
            case .reduce:
                let src = c.segments(x, 0), dst = c.segments(x, 1)
                for (a, b) in zip(src, dst) where c.segmentLength[a] > 0 {
                    let into = pointer(j, c, b)
                    ReductionKernels.reduce(executions[j].reduceOp, c.dataType, count: c.segmentLength[a] / es, a: into, b: pointer(j, c, a), into: into)
                }
                complete(j, c, x)
            case .send:
                let src = c.segments(x, 0)
                let bytes = c.messageBytes[x]
                // The bytes' own region when they are one segment; else staging (below), or the
                // placeholder for an empty message.
                let (region, offset) = src.count == 1 && bytes > 0 ? regionAndOffset(j, c, src.lowerBound) : (try zeroRegion(), 0)
                var request = TransportRequest(peer: worldRank(j, Int(c.opPeer[i])), stream: executions[j].streamBase | c.streamLow[x],
                                               region: region, offset: offset, length: bytes, tag: executions[j].tag, id: UInt64(j << 40 | x))
                if src.count == 1 && bytes > 0 {
                    if c.carriedCopy[x] >= 0 { request.alsoCopyInto = carriedCopyDestination(j, c, x) }
                } else if bytes > 0 {
                    let k = try acquireStaging(bytes, free: &freeStaging)
                    s.staging[x] = Int32(k)
                    var offset = 0
                    for a in src {
                        (stagingBuffers[k].memory.baseAddress! + offset).copyMemory(from: pointer(j, c, a), byteCount: c.segmentLength[a])
                        offset += c.segmentLength[a]
                    }
                    request.region = stagingBuffers[k].region
                }
                try transport.postSend(request)
            case .recv:
                let dst = c.segments(x, 1), operand = c.segments(x, 2)
                let bytes = c.messageBytes[x]
                let peer = worldRank(j, Int(c.opPeer[i]))
                // The destination's region when the message can land there whole; else staging
                // (below), or the placeholder for an empty message.
                let (region, offset) = dst.count == 1 && bytes > 0 ? regionAndOffset(j, c, dst.lowerBound) : (try zeroRegion(), 0)
                var request = TransportRequest(peer: peer, stream: executions[j].streamBase | c.streamLow[x],
                                               region: region, offset: offset, length: bytes, tag: executions[j].tag, id: UInt64(j << 40 | x))
                if c.opReducing[i] && dst.count == 1 && operand.count == 1 && bytes > 0 && transport.reducesOnReceive(from: peer) {
                    // The transport combines as it delivers: destination = operand ⊕ message,
                    // with no staging and no second pass (the operand is the destination itself
                    // or apart from it).
                    let d = pointer(j, c, dst.lowerBound), o = pointer(j, c, operand.lowerBound)
                    if d == o || o + bytes <= d || d + bytes <= o {
                        request.reduction = ReceiveReduction(operand: o, kernelOp: executions[j].reduceOp.kernelCode, kernelType: c.dataType.kernelCode,
                                                             elementSize: c.dataType.size)
                        s.staging[x] = Executor.combinedByTransport
                        try transport.postReceive(request)
                        return
                    }
                }
                var direct = dst.count == 1 && bytes > 0
                if direct && c.opReducing[i] {
                    // Landing in the destination would overwrite an operand it overlaps.
                    let d = pointer(j, c, dst.lowerBound), o = pointer(j, c, operand.lowerBound)
                    let length = c.segmentLength[dst.lowerBound]
                    direct = o + length <= d || d + length <= o
                }
                if !direct && bytes > 0 {
                    let k = try acquireStaging(bytes, free: &freeStaging)
                    s.staging[x] = Int32(k)
                    (request.region, request.offset) = (stagingBuffers[k].region, 0)
                }
                try transport.postReceive(request)
            }
        }

        /// A receive finished: check its signature, then combine or scatter what arrived.
        func received(_ j: Int, _ c: CompiledPlan, _ x: Int, tag: UInt64, length: Int) throws {
            let s = c.state, ourTag = executions[j].tag
            let i = c.op(of: x), reducing = c.opReducing[i]
            if tag != ourTag {
                let theirs = CallSignature(packed: tag)?.description ?? "an unrecognized call (tag \(tag))"
                let ours = CallSignature(packed: ourTag)?.description ?? "tag \(ourTag)"
                throw ExecutionError.mismatch(peer: worldRank(j, Int(c.opPeer[i])), rank: transport.rank, theirs: theirs, ours: ours)
            }
            guard length == c.messageBytes[x] else {
                let peer = worldRank(j, Int(c.opPeer[i]))
                throw ExecutionError.transport(TransportError(.protocolViolation, peer: peer,
                    "rank \(peer) sent \(length) bytes where rank \(transport.rank) expected \(c.messageBytes[x]) (op \(i), \(c.ops[i].summary)); the ranks run the same call with different plans (is CHORUS_ALGO or CHORUS_TOPO_FILE set differently?)"))
            }
            if s.staging[x] == Executor.combinedByTransport {
                s.staging[x] = -1
                return
            }
            let es = c.dataType.size
            let dst = c.segments(x, 1), operand = c.segments(x, 2)
            if s.staging[x] >= 0 {
                let base = stagingBuffers[Int(s.staging[x])].memory.baseAddress!
                var offset = 0
                for (n, d) in dst.enumerated() {
                    let length = c.segmentLength[d]
                    if length > 0 {
                        let into = pointer(j, c, d)
                        if reducing {
                            ReductionKernels.reduce(executions[j].reduceOp, c.dataType, count: length / es, a: pointer(j, c, operand.lowerBound + n), b: base + offset, into: into)
                        } else {
                            ReductionKernels.copy(to: into, from: base + offset, count: length)
                        }
                    }
                    offset += length
                }
                freeStaging.append(Int(s.staging[x]))
                s.staging[x] = -1
            } else if reducing && c.messageBytes[x] > 0 {
                let d = pointer(j, c, dst.lowerBound)
                ReductionKernels.reduce(executions[j].reduceOp, c.dataType, count: c.messageBytes[x] / es, a: pointer(j, c, operand.lowerBound), b: d, into: d)
            }
        }

        // A carrying send does not wait for the copy it carries (see `CompiledPlan.
        // carrierWaitsForCopy`): the copy completes after it, and its completion then takes
        // the send's count below zero, which nothing reads once the send is posted.
        for j in executions.indices {
            withPlan(j) { c in
                for y in c.carriers where c.carrierWaitsForCopy[Int(y)] && carriedCopyDestination(j, c, Int(y)) != nil {
                    c.state.remaining[Int(y)] -= 1
                }
            }
        }
        // Post everything ready from the start.
        for j in executions.indices {
            try withPlan(j) { c in
                for x in 0..<c.instanceCount where ready(c, x) { try post(j, c, x) }
            }
        }
        func drainPending() throws {
            while let v = pending.popLast() {
                let j = v >> 40, x = v & ((1 << 40) - 1)
                try withPlan(j) { c in
                    if ready(c, x) { try post(j, c, x) }
                }
            }
        }
        do {
            try drainPending()
            while doneCount < total {
                if !completions.isEmpty { completions.removeAllKeepingCapacity() }
                try transport.progress(&completions)
                if completions.isEmpty {
                    // What is awaited is usually moments away: poll again a few times before
                    // the bookkeeping of a wait (abort check, clock, the transport's wait).
                    if quietPolls < Executor.pollsBeforeWaiting {
                        quietPolls += 1
                        continue
                    }
                    quietPolls = 0
                    if let reason = isAborted() { throw ExecutionError.aborted(reason) }
                    try wait(executions, timeout: timeout, lastProgress: &lastProgress, progressed: &progressed)
                    continue
                }
                progressed = true
                for completion in completions {
                    let j = Int(completion.id >> 40), x = Int(completion.id & ((1 << 40) - 1))
                    try withPlan(j) { c in
                        if c.opKind[c.op(of: x)] == .recv {
                            try received(j, c, x, tag: completion.tag, length: completion.length)
                        } else {
                            if c.state.staging[x] >= 0 {
                                freeStaging.append(Int(c.state.staging[x]))
                                c.state.staging[x] = -1
                            }
                            let y = Int(c.carriedCopy[x])
                            if y >= 0 && carriedCopyDestination(j, c, x) != nil {
                                c.state.carriedLeft[y] -= 1
                                if c.state.posted[y] && c.state.carriedLeft[y] == 0 { complete(j, c, y) }
                            }
                        }
                        complete(j, c, x)
                    }
                }
                try drainPending()
            }
        } catch let error as TransportError {
            throw error.kind == .aborted ? ExecutionError.aborted(error.message) : ExecutionError.transport(error)
        }

        // `avg` is a sum divided by the rank count, on the ranks that hold a reduction.
        for j in executions.indices where executions[j].reduceOp == .avg {
            let c = executions[j].compiled
            let schedule = c.plan.schedule
            guard schedule.collective.reduces, let output = bound[j].base.1 else { continue }
            if schedule.collective == .reduce && c.rank != schedule.root { continue }
            ReductionKernels.divide(c.dataType, count: c.outputBytes / c.dataType.size, buffer: output, by: schedule.ranks)
        }
    }

    /// One wait of `run` for the transport: restarts the timeout when something completed
    /// since the last wait (`progressed`), fails once nothing has for `timeout`, else waits for
    /// activity for at most 100 ms.
    @inline(never)
    private func wait(_ executions: [Execution], timeout: Duration, lastProgress: inout Duration?, progressed: inout Bool) throws {
        let sinceEpoch = ElapsedTime.now()
        if progressed || lastProgress == nil {
            lastProgress = sinceEpoch
            progressed = false
        }
        let quiet = sinceEpoch - lastProgress!
        if quiet > timeout { throw timeoutError(executions, after: quiet) }
        try transport.waitForActivity(until: ElapsedTime.epoch + sinceEpoch + min(.milliseconds(100), timeout - quiet))
    }

    /// How many times `run` polls the transport in vain before it waits.
    static let pollsBeforeWaiting = 8

    /// `RunState.staging` of a receive whose transport combines it with its operand as it
    /// delivers (`ReceiveReduction`).
    static let combinedByTransport: Int32 = -2

    @exclusivity(unchecked) private var doneCount = 0

    /// Per execution of the current run: its buffers (see `Bound`).
    @exclusivity(unchecked) private var bound: [Bound] = []

    @exclusivity(unchecked) private var zero: (UnsafeMutableRawBufferPointer, TransportRegion)?

    /// A registered placeholder for zero-byte messages.
    private func zeroRegion() throws -> TransportRegion {
        if let zero { return zero.1 }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 64)
        let region = try transport.register(memory.baseAddress!, length: 64)
        zero = (memory, region)
        return region
    }

    /// The timeout, naming the peer of the first receive still waiting.
    private func timeoutError(_ executions: [Execution], after: Duration) -> ExecutionError {
        for e in executions {
            let c = e.compiled, s = c.state
            for x in 0..<c.instanceCount where s.posted[x] && !s.done[x] && c.opKind[x / c.pieces] != .copy {
                let op = c.ops[x / c.pieces]
                let peer = e.worldRanks?[Int(op.peer)] ?? Int(op.peer)
                return .timeout(rank: transport.rank, peer: peer, after: after, waitingFor: "op \(x / c.pieces), \(op.summary)")
            }
        }
        return .timeout(rank: transport.rank, peer: nil, after: after, waitingFor: "no message in flight")
    }
}

/// Input, output and scratch of one execution (fields, not arrays: no allocation per call).
private struct Bound {
    var base: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil, nil)
    var region: (TransportRegion?, TransportRegion?, TransportRegion?) = (nil, nil, nil)

    func base(_ kind: BufferKind) -> UnsafeMutableRawPointer? {
        kind == .input ? base.0 : (kind == .output ? base.1 : base.2)
    }

    func region(_ kind: BufferKind) -> TransportRegion? {
        kind == .input ? region.0 : (kind == .output ? region.1 : region.2)
    }
}
