import CChorusKernels
import CChorusSHM
import ChorusCore
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ranks on one host exchanging messages through POSIX shared memory.
///
/// ## Protocol
/// Every ordered pair of ranks has a single-producer, single-consumer ring in the receiver's
/// segment (`SharedSegment`). A send is cut into fragments of at most a quarter of the ring;
/// each fragment is a record (payload length, message length, stream, tag, payload) copied in
/// by the sender, which publishes it last (`Ring`). The send completes when its last fragment is in the ring (its buffer may be
/// reused). The receiver drains its rings in `progress`: the first fragment of a message
/// matches the oldest posted receive of that (peer, stream), and the fragments are copied
/// straight into its buffer; a message with no receive posted yet is kept in memory until one
/// is (so one stream never blocks another). Rings are FIFO, so messages of one (peer, stream)
/// match in order. A message through the ring moves with two copies (into the ring, out of
/// it); a send that carries a local copy writes it in the same pass as the ring. Fragments of
/// messages of at least `streamingMessage` bytes start at the offset within a cache line that
/// their destination has (`Ring.largeFragment`), and are copied out with non-temporal stores,
/// and written in either with ordinary stores (the receiver then reads each fragment from the
/// sender's cache) or with non-temporal ones (from memory), whichever both ends' timings say
/// costs less at the time (`RingWriteMode`). A message of at least `directThreshold` bytes
/// moves with one copy when direct reads are on: the sender puts only a
/// descriptor (its buffer's address) in the ring, the receiver reads the bytes straight into
/// its destination with `process_vm_readv` and acknowledges in the sender's segment, which
/// completes the send. Both ends must allow it (`SharedSegment.directReadsWork`, off unless
/// `CHORUS_SHM_DIRECT=1`); otherwise everything goes through the rings. A message of at least
/// `directThreshold` bytes sent from a `SharedBuffers` allocation always moves with one copy:
/// the descriptor names the buffer and the offset, and the receiver maps the buffer (keeping
/// the `mappingsPerPeer` most recently used mappings) and copies or reduces straight out of it,
/// then acknowledges as for a direct read.
///
/// ## Waiting
/// `waitForActivity` watches the next record of each of this rank's rings and the doorbell in
/// this rank's segment, which a peer bumps after freeing space in one of the peer's rings that
/// this rank writes (when this rank waits for it), acknowledging a direct read or aborting, and
/// after writing to one of this rank's rings only when this rank sleeps. It spins for up to
/// `spinLimit` (500 µs) when every rank has a CPU of its own among those the ranks may run on
/// (`cpus`, the union of their affinity masks), else checks and yields the core in turn for up
/// to `yieldLimit`; then it sleeps on the doorbell with `futex`. While waiting it
/// checks every 100 ms that the peers it waits for are alive, so a rank that was killed is
/// named at once instead of at the timeout.
///
/// ## Abort
/// `abort` records the reason in every peer's segment and rings every doorbell; each peer's
/// next `progress` throws it.
public final class SharedMemoryTransport: Transport, @unchecked Sendable {
    public let kind = "shm"
    public let rank: Int
    public let size: Int
    private let segments: [SharedSegment]   // indexed by rank; [rank] is this rank's own
    private let pids: [Int32]
    /// The CPUs the job's ranks may run on together (see `waitsSpin`).
    public let cpus: Int
    /// Whether a wait spins (every rank has a CPU: `size <= cpus`) or yields the core between
    /// checks (`spinUntilArrival`) before it sleeps.
    public let waitsSpin: Bool
    private let fragmentBytes: Int

    // State of the thread that drives the transport.
    private struct Outgoing {
        var request: TransportRequest
        var sent: Int
        var started: Bool
        /// The shared buffer the message lies in, and where (it then goes as a descriptor):
        /// looked up once, when the send is posted.
        var inBuffer: (id: UInt64, offset: Int)?
        /// A large message written into the ring with streaming stores (`RingWriteMode`).
        var streaming = false
    }

    private final class Unexpected: EarlyMessage {
        let tag: UInt64
        let total: Int
        /// The bytes so far (a message through the ring), or `nil` (a descriptor).
        let buffer: UnsafeMutableRawPointer?
        /// A descriptor: where the bytes are in the sender, and the sequence number to acknowledge.
        let remote: (source: RemoteBytes, seq: UInt64)?
        // Touched only by the thread driving the transport.
        @exclusivity(unchecked) var received = 0
        /// A receive posted while the message was still arriving.
        @exclusivity(unchecked) var claimant: TransportRequest?
        init(tag: UInt64, total: Int) {
            self.tag = tag
            self.total = total
            buffer = .allocate(byteCount: max(total, 1), alignment: 64)
            remote = nil
        }
        init(tag: UInt64, total: Int, source: RemoteBytes, seq: UInt64) {
            self.tag = tag
            self.total = total
            buffer = nil
            remote = (source, seq)
            received = total
        }
        deinit { buffer?.deallocate() }
        var isComplete: Bool { received == total }
    }

    /// Where a descriptor's bytes lie in the sender.
    private enum RemoteBytes {
        /// At an address of the sender's memory (read with `process_vm_readv`).
        case address(UInt64)
        /// In one of the sender's `SharedBuffers`, from `offset`.
        case buffer(id: UInt64, offset: Int)
    }

    private enum Target {
        case request(TransportRequest)
        case unexpected(Unexpected)
        /// A receive whose length differs: consume the bytes, write nothing, report the length.
        case mismatched(TransportRequest)
    }

    private struct Incoming {
        var target: Target
        var total: Int
        var tag: UInt64
        var received: Int
    }

    @exclusivity(unchecked) private var outgoing: [[Outgoing]]
    /// Per peer: how many sends `outgoing` holds and how many direct reads `awaiting` holds
    /// (read on every `progress`; reading an inner array's count retains and releases it).
    @exclusivity(unchecked) private var outgoingCount: [Int]
    @exclusivity(unchecked) private var awaitingCount: [Int]
    /// Per peer: the head of this rank's ring in the peer's segment (bytes ever written).
    @exclusivity(unchecked) private var heads: [UInt64]
    /// Per peer: the ring in this rank's segment that the peer writes (unused at this rank).
    private let inbound: [Ring]
    @exclusivity(unchecked) private var outgoingHead: [Int]
    /// Direct-read sends waiting for the receiver's acknowledgement, per peer.
    @exclusivity(unchecked) private var awaiting: [[(request: TransportRequest, seq: UInt64)]]
    @exclusivity(unchecked) private var nextSeq: [UInt64]
    /// Messages at least this long are read by the receiver straight from the sender's buffer
    /// (from a shared buffer; or with `process_vm_readv` when both ends allow it), one copy;
    /// shorter ones go through the ring.
    public static let directThreshold = 128 << 10
    /// How long a wait spins before it sleeps, when every rank has a core. A large transfer's
    /// ranks wait on each other for a fragment's copy at a time (tens of microseconds, more when
    /// other guests load the memory bus); with 50 µs they slept and paid the futex wake-up
    /// (tens of microseconds on a VM) several times per call. In a slow stretch of the
    /// development VM the 64 MiB all-gather's median busbw was 2.7 GB/s with 50 µs against 3.5
    /// with 500 µs (six alternating runs), and context switches fell by two thirds; in quiet
    /// stretches the two measured the same (two rounds of ten alternating pairs). MPI
    /// implementations spin without limit by default.
    static let spinLimit = Duration.microseconds(500)
    /// Per peer, how many of its shared buffers stay mapped here (least recently used first out).
    static let mappingsPerPeer = 16
    /// Per peer: its shared buffers mapped here, by id.
    @exclusivity(unchecked) private var mappings: [[UInt64: MappedBuffer]]
    @exclusivity(unchecked) private var mappingClock: UInt64 = 0
    /// Messages at least this long are copied out of the rings with non-temporal stores, and
    /// written into them the way `ringWriteModes` finds cheaper.
    static let streamingMessage = 1 << 20
    /// Per peer and pass of `progress`, how many fragments of large messages a rank writes into
    /// the peer's ring, and how many it copies out of the peer's ring into this rank, when
    /// every rank has a core (`waitsSpin`); a fragment copied out frees its room at once (the
    /// tail is stored after each). Both ranks of an exchange so alternate between writing a
    /// fragment or two and reading one or two, each finding the other's latest fragment still
    /// in the shared cache and room already freed for its next. Without a limit each wrote a
    /// whole ring (four fragments, 1 MiB for 2 to 8 ranks: twice the development VM's L2 per
    /// core), then read a whole ring, and freed the room only at the end of it. A 2-rank
    /// 256 MiB all-gather, out of place: median busbw 3.75 GB/s without the limit, 4.31 with 2
    /// (twelve alternating runs; the limit was ahead in 15 of 20 pairs over two rounds), while
    /// 1, and 2 with half-size fragments, measured as without it. (Which part of the change
    /// gains is not settled: the same exchange in C, `Tools/Benchmarks/CopyLimit`, with room
    /// freed slot by slot, measured alike with whole-ring and two-slot turns.) Ranks that take
    /// turns on cores do what they can in each turn instead: 4 ranks on 2 cores measured a
    /// 64 MiB reduce-scatter at 1.48 GB/s without the limit and 1.39 with it (medians of five).
    let largeFragmentsPerPass: Int
    /// How large messages are written into the rings: as `RingWriteMode` measures, or always
    /// one way (`CHORUS_SHM_RING_WRITES`, for reproducible comparisons).
    public enum RingWrites: String, Sendable {
        case measured, ordinary, streaming
    }
    /// Per peer: how large messages to it are written into its ring.
    @exclusivity(unchecked) private var ringWriteModes: [RingWriteMode]
    /// Per peer: this rank's cost of copying large messages out of the peer's ring, published
    /// in the ring's control block for the peer.
    @exclusivity(unchecked) private var readCosts: [RingCost]
    @exclusivity(unchecked) private var incoming: [Incoming?]
    /// Per peer: whether the last `push` stopped at `largeFragmentsPerPass` with room left in
    /// the ring (the rank must not sleep then: nothing would wake it).
    @exclusivity(unchecked) private var pushPaused: [Bool]
    /// Per peer: the tail of this rank's ring in the peer's segment, as last read.
    @exclusivity(unchecked) private var tailSeen: [UInt64]
    @exclusivity(unchecked) private var matcher = ReceiveMatcher<Unexpected>()
    @exclusivity(unchecked) private var ready: [TransportCompletion] = []
    @exclusivity(unchecked) private var doorbellSeen: UInt32 = 0
    @exclusivity(unchecked) private var lastLivenessCheck = ContinuousClock.now
    @exclusivity(unchecked) private var peerFailure: TransportError?
    @exclusivity(unchecked) private var peerFailed = false

    // Set from any thread by `abort`.
    private let localAbort = Mutex<TransportError?>(nil)
    private let localAborted = Atomic<Bool>(false)

    /// Maps the peers' segments. `own` is this rank's segment, created before rendezvous.
    /// - Parameters:
    ///   - pids: every rank's process id (names the segments, and liveness checks).
    ///   - ringWrites: how this rank writes large messages into its peers' rings.
    public init(own: SharedSegmentHandle, rank: Int, size: Int, job: UInt64, pids: [Int32], ringWrites: RingWrites = .measured) throws {
        self.rank = rank
        self.size = size
        self.pids = pids
        var segments: [SharedSegment] = []
        do {
            for r in 0..<size {
                segments.append(r == rank ? own.segment : try SharedSegment.open(job: job, rank: r, pid: pids[r], ranks: size))
            }
        } catch {
            for (r, s) in segments.enumerated() where r != rank { s.unmap() }
            throw error
        }
        self.segments = segments
        // Spin while the ranks have a CPU each: CPUs the ranks may run on together, or the
        // host's online CPUs if no rank could read its mask.
        let usable = SharedSegment.cpusUsable(by: segments)
        cpus = usable > 0 ? usable : onlineCPUs
        waitsSpin = size <= cpus
        largeFragmentsPerPass = waitsSpin ? 2 : .max
        // Whole cache lines, so a fragment is whole elements of every data type.
        fragmentBytes = (own.segment.ringBytes / 4 - Ring.payloadStarts.upperBound) & ~63
        outgoing = Array(repeating: [], count: size)
        outgoingHead = Array(repeating: 0, count: size)
        heads = Array(repeating: 0, count: size)
        outgoingCount = Array(repeating: 0, count: size)
        awaitingCount = Array(repeating: 0, count: size)
        inbound = (0..<size).map { $0 == rank ? Ring(control: own.segment.base, data: own.segment.base, capacity: 0, key: 0) : own.segment.ring(from: $0) }
        // Read once here: the sender keeps `head − tailSeen` within the ring's capacity.
        pushPaused = Array(repeating: false, count: size)
        tailSeen = (0..<size).map { $0 == rank ? 0 : segments[$0].ring(from: rank).tail.pointee.load(ordering: .acquiring) }
        awaiting = Array(repeating: [], count: size)
        nextSeq = Array(repeating: 0, count: size)
        incoming = Array(repeating: nil, count: size)
        mappings = Array(repeating: [:], count: size)
        ringWriteModes = (0..<size).map { RingWriteMode(seed: job &+ UInt64(rank * size + $0), policy: ringWrites) }
        readCosts = Array(repeating: RingCost(), count: size)
    }

    deinit { close() }

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        TransportRegion(base: base, length: length)
    }

    public func deregister(_ region: TransportRegion) {}

    public func postSend(_ request: TransportRequest) throws {
        try checkPeer(request.peer)
        let inBuffer = request.length >= Self.directThreshold ? SharedBuffers.locate(request.pointer, bytes: request.length) : nil
        if inBuffer == nil && sendsAtOnce(request) { return }
        outgoing[request.peer].append(Outgoing(request: request, sent: 0, started: false, inBuffer: inBuffer))
        outgoingCount[request.peer] += 1
        push(to: request.peer)
    }

    /// The common small send: nothing queued for the peer, one record that fits before the
    /// ring's end and in the room last seen, and not a message the peer reads in place. Written
    /// straight away, without the queue (whose nested arrays cost reference counting on every
    /// access).
    private func sendsAtOnce(_ request: TransportRequest) -> Bool {
        let peer = request.peer, length = request.length
        guard length <= fragmentBytes, outgoingCount[peer] == 0,
              length < Self.directThreshold || !directReads(with: peer) else { return false }
        let ring = segments[peer].ring(from: rank)
        let head = heads[peer]
        let need = UInt64(Ring.recordBytes(payload: length))
        let position = ring.offset(of: head)
        guard UInt64(ring.capacity - position) >= need,  // else it needs a pad first
              Self.fits(need, in: ring, after: head, tail: &tailSeen[peer]) else { return false }
        writeRecord(ring.data + position, of: request, from: 0, payload: length, at: Ring.headerBytes, streaming: false)
        ring.publish(at: head)
        heads[peer] = head + need
        segments[peer].wakeIfAsleep()
        ready.append(TransportCompletion(id: request.id, tag: request.tag, length: length))
        return true
    }

    /// Whether `bytes` more fit in `ring` after `head`, judged by `tail` (the receiver's tail as
    /// last read: it only grows, so this undercounts the room). The shared tail, a line the
    /// receiver writes, is read again into `tail` only when the bytes seem not to fit.
    @inline(__always)
    private static func fits(_ bytes: UInt64, in ring: Ring, after head: UInt64, tail: inout UInt64) -> Bool {
        let capacity = UInt64(ring.capacity)
        if capacity - (head - tail) >= bytes { return true }
        tail = ring.tail.pointee.load(ordering: .acquiring)
        return capacity - (head - tail) >= bytes
    }

    /// Writes the header and `payload` bytes of `request` from `offset` into the record at
    /// `record`, the payload from byte `payloadAt` (`Ring.largeFragment`), with non-temporal
    /// stores when `streaming`, and its carried copy: for a large message in the same pass over
    /// the source (`CChorusKernels_copy_twice`, with non-temporal stores: the destination is a
    /// collective's output), for a smaller one from the fragment just written, still in cache.
    /// The caller publishes the record.
    @inline(__always)
    private func writeRecord(_ record: UnsafeMutableRawPointer, of request: TransportRequest, from offset: Int, payload: Int,
                             at payloadAt: Int, streaming: Bool) {
        record.storeBytes(of: UInt64(payload), toByteOffset: 0, as: UInt64.self)
        record.storeBytes(of: UInt64(request.length), toByteOffset: 8, as: UInt64.self)
        record.storeBytes(of: request.stream, toByteOffset: 16, as: UInt64.self)
        record.storeBytes(of: request.tag, toByteOffset: 24, as: UInt64.self)
        let large = request.length >= Self.streamingMessage
        if large {
            record.storeBytes(of: Ring.largeFragment(streaming: streaming, payloadAt: payloadAt), toByteOffset: Ring.layoutOffset, as: UInt64.self)
        }
        guard payload > 0 else { return }
        let destination = record + payloadAt, source = request.pointer + offset
        if let copy = request.alsoCopyInto, large {
            CChorusKernels_copy_twice(destination, copy + offset, source, payload, streaming ? 1 : 0)
        } else if streaming {
            CChorusKernels_copy_streaming(destination, source, payload)
        } else {
            destination.copyMemory(from: source, byteCount: payload)
            if let copy = request.alsoCopyInto { Self.copy(destination, bytes: payload, into: copy + offset, streaming: false) }
        }
    }

    public func postReceive(_ request: TransportRequest) throws {
        try checkPeer(request.peer)
        if let arrived = matcher.post(request) { try deliver(arrived, to: request, from: request.peer) }
    }

    /// Checked on every post: the test inline, the error out of line.
    @inline(__always)
    private func checkPeer(_ peer: Int) throws {
        if UInt(bitPattern: peer) >= UInt(size) || peer == rank { throw invalidPeer(peer) }
    }

    @inline(never)
    private func invalidPeer(_ peer: Int) -> TransportError {
        TransportError(.protocolViolation, peer: peer, "shm: rank \(rank) cannot exchange messages with rank \(peer)")
    }

    /// Copies a fully arrived message (or reads a direct one) into the receive that claims it
    /// and completes it.
    private func deliver(_ m: Unexpected, to request: TransportRequest, from peer: Int) throws {
        if let remote = m.remote {
            if m.total == request.length && m.total > 0 {
                switch remote.source {
                case .buffer(let id, let offset):
                    let source = try mappedBytes(of: peer, buffer: id, offset: offset, length: m.total)
                    Self.place(source, bytes: m.total, into: request, at: 0, streaming: m.total >= Self.streamingMessage)
                case .address(let address):
                    if let reduction = request.reduction {
                        // Read into a temporary, then combine (the destination may be the operand).
                        let temporary = UnsafeMutableRawPointer.allocate(byteCount: m.total, alignment: 64)
                        defer { temporary.deallocate() }
                        try readDirect(from: peer, address: address, into: temporary, length: m.total)
                        Self.combine(reduction, into: request.pointer, message: temporary, bytes: m.total)
                    } else {
                        try readDirect(from: peer, address: address, into: request.pointer, length: m.total)
                    }
                }
            }
            acknowledge(peer, seq: remote.seq)
        } else if m.total == request.length && m.total > 0 {
            Self.place(m.buffer!, bytes: m.total, into: request, at: 0, streaming: true)
        }
        ready.append(TransportCompletion(id: request.id, tag: m.tag, length: m.total))
    }

    /// `destination = operand ⊕ message` over `bytes` (whole elements), the destination and
    /// operand from `offset` bytes in (a fragment's place in its message).
    @inline(__always)
    private static func combine(_ r: ReceiveReduction, into destination: UnsafeMutableRawPointer, message: UnsafeRawPointer, bytes: Int,
                                at offset: Int = 0) {
        CChorusKernels_reduce(r.kernelOp, r.kernelType, destination + offset, r.operand + offset, message, bytes / r.elementSize)
    }

    /// Puts `bytes` of a message, from `offset` in it, into receive `r`: combined with its
    /// operand when it carries a reduction, else copied (past the cache when `streaming`: large
    /// messages, see `CChorusKernels_copy_streaming`). Every way a message reaches a receive
    /// ends here.
    @inline(__always)
    private static func place(_ data: UnsafeRawPointer, bytes: Int, into r: TransportRequest, at offset: Int, streaming: Bool) {
        if let reduction = r.reduction {
            combine(reduction, into: r.pointer, message: data, bytes: bytes, at: offset)
        } else {
            copy(data, bytes: bytes, into: r.pointer + offset, streaming: streaming)
        }
    }

    @inline(__always)
    private static func copy(_ data: UnsafeRawPointer, bytes: Int, into destination: UnsafeMutableRawPointer, streaming: Bool) {
        if streaming {
            CChorusKernels_copy_streaming(destination, data, bytes)
        } else {
            destination.copyMemory(from: data, byteCount: bytes)
        }
    }

    /// Receives from any peer can carry a reduction: the bytes are combined on their way out of
    /// the ring.
    public func reducesOnReceive(from peer: Int) -> Bool { true }

    /// Sends to any peer can carry a local copy: it is written from each fragment just put in
    /// the ring (from the source, for a direct-read send).
    public func copiesOnSend(to peer: Int) -> Bool { true }

    private func readDirect(from peer: Int, address: UInt64, into destination: UnsafeMutableRawPointer, length: Int) throws {
        let r = chorus_cma_read(pids[peer], destination, address, length)
        guard r == 0 else {
            throw TransportError(.receive, peer: peer, syscall: "process_vm_readv", code: -r,
                                 "shm: cannot read \(length) bytes from rank \(peer)'s buffer: \(String(cString: strerror(-r))) (unset CHORUS_SHM_DIRECT to send everything through the rings)")
        }
    }

    /// `length` bytes from `offset` in `peer`'s shared buffer `id`, mapped here. A buffer not yet
    /// mapped is mapped now, after dropping the mappings of buffers their owners have freed and,
    /// when `peer` has `mappingsPerPeer`, its least recently used.
    private func mappedBytes(of peer: Int, buffer id: UInt64, offset: Int, length: Int) throws -> UnsafeRawPointer {
        mappingClock += 1
        var m: MappedBuffer
        if let known = mappings[peer][id] {
            m = known
        } else {
            for p in mappings.indices {
                for (key, old) in mappings[p] where old.isFreed {
                    old.unmap()
                    mappings[p][key] = nil
                }
            }
            if mappings[peer].count >= Self.mappingsPerPeer,
               let oldest = mappings[peer].min(by: { $0.value.lastUse < $1.value.lastUse }) {
                oldest.value.unmap()
                mappings[peer][oldest.key] = nil
            }
            m = try MappedBuffer.map(id: id, pid: pids[peer], peer: peer)
        }
        m.lastUse = mappingClock
        mappings[peer][id] = m
        guard offset >= 0, length <= m.bytes - offset else {
            throw TransportError(.protocolViolation, peer: peer, "shm: rank \(peer) described \(length) bytes at offset \(offset) of its shared buffer \(id), which has \(m.bytes)")
        }
        return UnsafeRawPointer(m.base + offset)
    }

    /// Tells `peer` that its direct-read send `seq` has been read (its buffer is free).
    private func acknowledge(_ peer: Int, seq: UInt64) {
        segments[peer].ackSlots(from: rank)[Int(seq % UInt64(SharedSegment.ackSlots))].store(seq + 1, ordering: .releasing)
        segments[peer].ring()
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        let own = segments[rank]
        doorbellSeen = own.doorbell.pointee.load(ordering: .sequentiallyConsistent)
        if localAborted.load(ordering: .acquiring), let e = localAbort.withLock({ $0 }) { throw e }
        let by = own.abortedBy.pointee.load(ordering: .acquiring)
        if by >= 0 {
            throw TransportError(.aborted, peer: Int(by), own.abortReason)
        }
        for peer in 0..<size where peer != rank {
            if awaitingCount[peer] > 0 { collectAcknowledgements(from: peer) }
            if outgoingHead[peer] < outgoingCount[peer] { push(to: peer) }
            try drain(from: peer)
        }
        if !ready.isEmpty {
            if completions.isEmpty {
                swap(&completions, &ready)  // the usual case: hand the list over, copy nothing
            } else {
                completions.append(contentsOf: ready)
                ready.removeAllKeepingCapacity()
            }
        } else if peerFailed, let failure = peerFailure {
            throw failure
        }
    }

    private func collectAcknowledgements(from peer: Int) {
        let slots = segments[rank].ackSlots(from: peer)
        awaiting[peer].removeAll { entry in
            guard slots[Int(entry.seq % UInt64(SharedSegment.ackSlots))].load(ordering: .acquiring) == entry.seq + 1 else { return false }
            ready.append(TransportCompletion(id: entry.request.id, tag: entry.request.tag, length: entry.request.length))
            return true
        }
        awaitingCount[peer] = awaiting[peer].count
    }

    /// Writes as many fragments of queued sends to `peer` as its ring has room for. When one
    /// does not fit, raises the ring's `senderWaiting` flag and reads the tail once more: if it
    /// moved since the read that found the ring full, it tries again; else it returns, and the
    /// receiver rings once it frees room. (The receiver stores its tail before it reads the flag,
    /// both sequentially consistent, so either this rank sees the new tail or the receiver sees
    /// the flag. Comparing with any later read of the tail instead would miss room freed between
    /// the two reads, and both ranks would wait.)
    private func push(to peer: Int) {
        while let tailWhenFull = pushOnce(to: peer) {
            let ring = segments[peer].ring(from: rank)
            ring.senderWaiting.pointee.store(1, ordering: .sequentiallyConsistent)
            guard ring.tail.pointee.load(ordering: .sequentiallyConsistent) != tailWhenFull else { return }
            ring.senderWaiting.pointee.store(0, ordering: .relaxed)
        }
    }

    /// One pass of `push`. Returns `nil` when every queued fragment is written, or the tail read
    /// that found the ring too full for the next one.
    private func pushOnce(to peer: Int) -> UInt64? {
        let ring = segments[peer].ring(from: rank)
        var head = heads[peer]
        defer { heads[peer] = head }
        // The receiver's tail as last read: it only grows, so this undercounts the room, and
        // the shared line (which the receiver writes) is read again only when a record seems
        // not to fit.
        var tail = tailSeen[peer]
        defer { tailSeen[peer] = tail }
        let capacity = UInt64(ring.capacity)
        var wrote = false
        var full = false
        var largeFragments = 0
        pushPaused[peer] = false
        while outgoingHead[peer] < outgoingCount[peer] {
            guard largeFragments < largeFragmentsPerPass else {
                pushPaused[peer] = true
                break
            }
            var o = outgoing[peer][outgoingHead[peer]]
            let remaining = o.request.length - o.sent
            // A large message not yet started goes as a descriptor when the peer can read it in
            // place: from a shared buffer, or by a direct read.
            let inBuffer = o.started ? nil : o.inBuffer
            let direct = !o.started && (inBuffer != nil || (o.request.length >= Self.directThreshold && directReads(with: peer)))
            if direct {
                let slot = nextSeq[peer] % UInt64(SharedSegment.ackSlots)
                if awaiting[peer].contains(where: { $0.seq % UInt64(SharedSegment.ackSlots) == slot }) { break }
            }
            let payload = direct ? 24 : min(remaining, fragmentBytes)
            // A large message's fragments line up with the carried copy's destination, or
            // else with the source (`Ring.largeFragment`).
            let large = o.request.length >= Self.streamingMessage
            let payloadAt = direct || !large ? Ring.headerBytes
                : Ring.payloadStart(matching: (o.request.alsoCopyInto ?? o.request.pointer) + o.sent)
            let need = UInt64(Ring.recordBytes(payload: payload, at: payloadAt))
            let position = UInt64(ring.offset(of: head))
            let contiguous = capacity - position
            if need > contiguous {
                // Pad to the end and start over at the beginning.
                guard Self.fits(contiguous + need, in: ring, after: head, tail: &tail) else {
                    full = true
                    break
                }
                (ring.data + Int(position)).storeBytes(of: Ring.pad, as: UInt64.self)
                ring.publish(at: head)
                head += contiguous
                continue
            }
            guard Self.fits(need, in: ring, after: head, tail: &tail) else {
                full = true
                break
            }
            let record = ring.data + Int(position)
            if direct {
                let seq = nextSeq[peer]
                nextSeq[peer] += 1
                record.storeBytes(of: inBuffer == nil ? Ring.direct : Ring.inBuffer, toByteOffset: 0, as: UInt64.self)
                record.storeBytes(of: UInt64(o.request.length), toByteOffset: 8, as: UInt64.self)
                record.storeBytes(of: o.request.stream, toByteOffset: 16, as: UInt64.self)
                record.storeBytes(of: o.request.tag, toByteOffset: 24, as: UInt64.self)
                if let (id, offset) = inBuffer {
                    record.storeBytes(of: id, toByteOffset: Ring.headerBytes, as: UInt64.self)
                    record.storeBytes(of: UInt64(offset), toByteOffset: Ring.headerBytes + 16, as: UInt64.self)
                } else {
                    record.storeBytes(of: UInt64(UInt(bitPattern: o.request.pointer)), toByteOffset: Ring.headerBytes, as: UInt64.self)
                }
                record.storeBytes(of: seq, toByteOffset: Ring.headerBytes + 8, as: UInt64.self)
                ring.publish(at: head)
                head += need
                // The local copy after publishing: the peer reads the source meanwhile, so the
                // two reads of it meet in the shared cache. (The send completes only when the
                // peer acknowledges, after this.)
                if let copy = o.request.alsoCopyInto {
                    segments[peer].wakeIfAsleep()
                    Self.copy(o.request.pointer, bytes: o.request.length, into: copy, streaming: true)
                }
                wrote = true
                awaiting[peer].append((o.request, seq))
                awaitingCount[peer] += 1
                outgoingHead[peer] += 1
                continue
            }
            // A large message's way is chosen at its first fragment; its fragments are timed
            // when the choice follows the costs.
            if large && !o.started { o.streaming = ringWriteModes[peer].nextIsStreaming(read: ring.readCost) }
            let start = large && ringWriteModes[peer].measures ? ElapsedTime.now() : nil
            writeRecord(record, of: o.request, from: o.sent, payload: payload, at: payloadAt, streaming: o.streaming)
            if let start {
                ringWriteModes[peer].write.record(streaming: o.streaming, bytes: payload, nanoseconds: Self.nanoseconds(since: start))
            }
            ring.publish(at: head)
            head += need
            if large { largeFragments += 1 }
            o.sent += payload
            o.started = true
            wrote = true
            if o.sent == o.request.length {
                ready.append(TransportCompletion(id: o.request.id, tag: o.request.tag, length: o.request.length))
                outgoingHead[peer] += 1
            } else {
                outgoing[peer][outgoingHead[peer]] = o
            }
        }
        if outgoingHead[peer] == outgoingCount[peer] && outgoingHead[peer] > 0 {
            outgoing[peer].removeAllKeepingCapacity()
            outgoingCount[peer] = 0
            outgoingHead[peer] = 0
        }
        if wrote { segments[peer].wakeIfAsleep() }
        return full ? tail : nil
    }

    /// Nanoseconds since `start` (`ElapsedTime`, which keeps instants out of `drain`'s frame:
    /// they cost calls for their type's metadata on every drain, small messages included).
    private static func nanoseconds(since start: Duration) -> Double { (ElapsedTime.now() - start).inSeconds * 1e9 }

    /// Whether messages to `peer` may be read by it straight from this rank's memory.
    private func directReads(with peer: Int) -> Bool {
        segments[rank].acceptsDirectReads && segments[peer].acceptsDirectReads
    }

    /// Consumes every record `peer` has written to this rank's ring from it.
    private func drain(from peer: Int) throws {
        let ring = inbound[peer]
        var tail = ring.tail.pointee.load(ordering: .relaxed)
        guard ring.hasRecord(at: tail) else { return }
        let capacity = UInt64(ring.capacity)
        // At most one ring's worth per call (the sender may go on writing meanwhile).
        let end = tail + capacity
        var largeFragments = 0
        while tail < end && largeFragments < largeFragmentsPerPass && ring.hasRecord(at: tail) {
            let position = UInt64(ring.offset(of: tail))
            let record = ring.data + Int(position)
            let length = record.load(fromByteOffset: 0, as: UInt64.self)
            if length == Ring.pad {
                tail += capacity - position
                continue
            }
            if length == Ring.direct || length == Ring.inBuffer {
                guard incoming[peer] == nil else {
                    throw TransportError(.protocolViolation, peer: peer, "shm: rank \(peer) started a message inside another")
                }
                let total = Int(record.load(fromByteOffset: 8, as: UInt64.self))
                let stream = record.load(fromByteOffset: 16, as: UInt64.self)
                let tag = record.load(fromByteOffset: 24, as: UInt64.self)
                let location = record.load(fromByteOffset: Ring.headerBytes, as: UInt64.self)
                let seq = record.load(fromByteOffset: Ring.headerBytes + 8, as: UInt64.self)
                let offset = record.load(fromByteOffset: Ring.headerBytes + 16, as: UInt64.self)
                guard length == Ring.direct || offset <= UInt64(Int.max) else {
                    throw TransportError(.protocolViolation, peer: peer, "shm: rank \(peer) wrote a malformed shared-buffer descriptor (offset \(offset))")
                }
                let source: RemoteBytes = length == Ring.direct ? .address(location) : .buffer(id: location, offset: Int(offset))
                tail += UInt64(Ring.recordBytes(payload: 24))
                // Free the ring before the (possibly long) read, so the sender can go on.
                ring.tail.pointee.store(tail, ordering: .releasing)
                let descriptor = Unexpected(tag: tag, total: total, source: source, seq: seq)
                if let r = matcher.arrival(peer: peer, stream: stream) {
                    try deliver(descriptor, to: r, from: peer)
                } else {
                    matcher.keep(descriptor, peer: peer, stream: stream)
                }
                continue
            }
            let total = Int(record.load(fromByteOffset: 8, as: UInt64.self))
            let stream = record.load(fromByteOffset: 16, as: UInt64.self)
            let tag = record.load(fromByteOffset: 24, as: UInt64.self)
            let payload = Int(length)
            guard payload <= fragmentBytes, total >= payload else {
                throw TransportError(.protocolViolation, peer: peer, "shm: rank \(peer) wrote a malformed record (fragment \(payload) of \(total) bytes)")
            }
            let large = total >= Self.streamingMessage
            let layout = large ? record.load(fromByteOffset: Ring.layoutOffset, as: UInt64.self) : 0
            let payloadAt = large ? Ring.payloadAt(layout: layout) : Ring.headerBytes
            guard Ring.payloadStarts.contains(payloadAt) else {
                throw TransportError(.protocolViolation, peer: peer, "shm: rank \(peer) wrote a malformed record (payload at byte \(payloadAt))")
            }
            let data = record + payloadAt
            if payload == total && payload > 0 && incoming[peer] == nil, let r = matcher.arrival(peer: peer, stream: stream) {
                // A whole message in one record for a posted receive (every small message):
                // straight into place, without the state of a message in fragments.
                if r.length == total {
                    Self.place(data, bytes: payload, into: r, at: 0, streaming: large)
                }
                ready.append(TransportCompletion(id: r.id, tag: tag, length: total))
                tail += UInt64(Ring.recordBytes(payload: payload, at: payloadAt))
                continue
            }
            if incoming[peer] == nil { incoming[peer] = start(peer: peer, stream: stream, tag: tag, total: total) }
            var m = incoming[peer]!
            if case .unexpected(let u) = m.target, let claimant = u.claimant, claimant.length == total, let staged = u.buffer {
                // A receive claimed the message while it arrived: the part kept so far goes to
                // it now, the rest straight out of the ring (not all of it through memory first).
                if m.received > 0 { Self.place(staged, bytes: m.received, into: claimant, at: 0, streaming: large) }
                _ = matcher.completed(u, peer: peer, stream: stream)
                m.target = .request(claimant)
            }
            switch m.target {
            case .request(let r):
                // Straight out of the ring (fragments are whole elements of any type). The copy
                // of a large message's fragment is timed for the sender (`RingWriteMode`).
                if payload > 0 {
                    let start = large ? ElapsedTime.now() : nil
                    Self.place(data, bytes: payload, into: r, at: m.received, streaming: large)
                    if let start {
                        readCosts[peer].record(streaming: Ring.isStreaming(layout: layout),
                                               bytes: payload, nanoseconds: Self.nanoseconds(since: start))
                        if m.received + payload == m.total { ring.readCost = readCosts[peer] }
                    }
                }
            case .unexpected(let u):
                if payload > 0 { (u.buffer! + m.received).copyMemory(from: data, byteCount: payload) }
                u.received += payload
            case .mismatched:
                break
            }
            m.received += payload
            tail += UInt64(Ring.recordBytes(payload: payload, at: payloadAt))
            if large {
                // Free the fragment's room now, not after the pass (`largeFragmentsPerPass`).
                largeFragments += 1
                ring.tail.pointee.store(tail, ordering: .releasing)
            }
            if m.received == m.total {
                try finish(m, peer: peer, stream: stream)
                incoming[peer] = nil
            } else {
                incoming[peer] = m
            }
        }
        ring.tail.pointee.store(tail, ordering: .sequentiallyConsistent)
        // Ring the sender only if it is waiting for room (see `push`).
        if ring.senderWaiting.pointee.load(ordering: .sequentiallyConsistent) != 0,
           ring.senderWaiting.pointee.exchange(0, ordering: .sequentiallyConsistent) != 0 {
            segments[peer].ring()
        }
    }

    private func start(peer: Int, stream: UInt64, tag: UInt64, total: Int) -> Incoming {
        if let r = matcher.arrival(peer: peer, stream: stream) {
            return Incoming(target: r.length == total ? .request(r) : .mismatched(r), total: total, tag: tag, received: 0)
        }
        let u = Unexpected(tag: tag, total: total)
        matcher.keep(u, peer: peer, stream: stream)
        return Incoming(target: .unexpected(u), total: total, tag: tag, received: 0)
    }

    private func finish(_ m: Incoming, peer: Int, stream: UInt64) throws {
        switch m.target {
        case .request(let r), .mismatched(let r):
            ready.append(TransportCompletion(id: r.id, tag: m.tag, length: m.total))
        case .unexpected(let u):
            if let claimant = matcher.completed(u, peer: peer, stream: stream) { try deliver(u, to: claimant, from: peer) }
        }
    }

    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        let own = segments[rank]
        let seen = doorbellSeen
        // A send stopped at the pass limit goes on at the next `progress`, with no one to wake this rank.
        if pushPaused.contains(true) { return }
        // A peer rings the doorbell for freed space, acknowledgements and aborts, and for new
        // records only when this rank sleeps: spinning, it reads its rings' next records.
        func arrived() -> Bool {
            if own.doorbell.pointee.load(ordering: .sequentiallyConsistent) != seen { return true }
            for peer in 0..<size where peer != rank {
                let ring = inbound[peer]
                if ring.hasRecord(at: ring.tail.pointee.load(ordering: .relaxed)) { return true }
            }
            return false
        }
        if spinUntilArrival(spins: waitsSpin, limit: Self.spinLimit, arrived) { return }
        own.sleepers.pointee.add(1, ordering: .sequentiallyConsistent)
        defer { own.sleepers.pointee.subtract(1, ordering: .sequentiallyConsistent) }
        while !arrived() {
            let now = ContinuousClock.now
            if now >= deadline { return }
            if now - lastLivenessCheck >= .milliseconds(100) {
                lastLivenessCheck = now
                if let dead = deadPeerWaitedFor() {
                    peerFailed = true
                    peerFailure = TransportError(.receive, peer: dead, "rank \(dead) (pid \(pids[dead])) is gone: its process exited while rank \(rank) was exchanging data with it")
                    return
                }
            }
            let nanos = min(deadline - now, .milliseconds(100)).components
            _ = chorus_futex_wait(own.doorbellWord, seen, nanos.seconds * 1_000_000_000 + nanos.attoseconds / 1_000_000_000)
        }
    }

    /// A peer this rank has unfinished business with whose process no longer exists.
    private func deadPeerWaitedFor() -> Int? {
        var involved = Set<Int>()
        for (peer, m) in incoming.enumerated() where m != nil { involved.insert(peer) }
        for peer in 0..<size where outgoingHead[peer] < outgoing[peer].count || !awaiting[peer].isEmpty { involved.insert(peer) }
        involved.formUnion(matcher.awaitedPeers)
        for peer in involved.sorted() where kill(pids[peer], 0) != 0 && errno == ESRCH { return peer }
        return nil
    }

    public func abort(_ error: TransportError) {
        let first = localAbort.withLock { e -> Bool in
            guard e == nil else { return false }
            e = error
            return true
        }
        guard first else { return }
        localAborted.store(true, ordering: .releasing)
        let relayed = "rank \(rank) aborted: \(error.message)"
        for (r, s) in segments.enumerated() where r != rank {
            // The reason is written before the rank that claims the slot is published.
            if s.abortedBy.pointee.load(ordering: .acquiring) < 0 {
                s.setAbortReason(relayed)
                _ = s.abortedBy.pointee.compareExchange(expected: -1, desired: Int64(rank), ordering: .acquiringAndReleasing)
            }
            s.ring()
        }
        segments[rank].ring()
    }

    private var closed = false

    public func close() {
        guard !closed else { return }
        closed = true
        for s in segments { s.unmap() }
        for peer in mappings { for m in peer.values { m.unmap() } }
        mappings = []
    }
}

/// This rank's segment, created before rendezvous so peers can map it once they learn of it.
public final class SharedSegmentHandle: @unchecked Sendable {
    let segment: SharedSegment
    private var linked = true

    /// Creates this rank's segment for job `job` (removing stale segments of dead jobs first).
    public init(job: UInt64, rank: Int, ranks: Int) throws {
        segment = try SharedSegment.create(job: job, rank: rank, ranks: ranks)
    }

    /// Reserves the segment's memory and maps all of it (`SharedSegment.reserve`): call once
    /// the job is to use shared memory, before the transport is made.
    public func reserve() throws { try segment.reserve() }

    /// Removes the name (mappings stay valid). Call once every peer has mapped it.
    public func unlink() {
        if linked { segment.unlink() }
        linked = false
    }

    /// Removes the name and the mapping (when the job will not use shared memory).
    public func discard() {
        unlink()
        segment.unmap()
    }

    /// Segments of dead jobs removed from `/dev/shm`.
    @discardableResult
    public static func removeStale() -> Int { SharedSegment.removeStale() }
}
