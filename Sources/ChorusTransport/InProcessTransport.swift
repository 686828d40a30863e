import ChorusCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ranks as threads of one process, for tests (gloo's `spawn` pattern): messages go straight
/// from the sender's buffer into the receiver's with one copy, made by whichever side finds
/// both halves of a match.
///
/// ```swift
/// let fabric = InProcessFabric(size: 4)
/// let transports = (0..<4).map { fabric.transport(rank: $0) }
/// ```
public final class InProcessFabric: Sendable {
    public let size: Int
    fileprivate let state: SpinLocked<FabricState>
    fileprivate let inboxes: [Inbox]

    /// Whether waiters spin: only while every rank can have a core of its own.
    let spins: Bool

    public init(size: Int) {
        precondition(size >= 1)
        self.size = size
        spins = size <= onlineCPUs
        state = SpinLocked(FabricState())
        inboxes = (0..<size).map { _ in Inbox() }
    }

    /// The transport of `rank`.
    public func transport(rank: Int) -> InProcessTransport {
        precondition((0..<size).contains(rank))
        return InProcessTransport(fabric: self, rank: rank)
    }

    fileprivate struct QueueKey: Hashable {
        var from: Int32
        var to: Int32
        var stream: UInt64
    }

    fileprivate struct Pending {
        var rank: Int
        var request: TransportRequest
    }

    fileprivate struct Queue {
        var sends: [Pending] = []
        var receives: [Pending] = []
        var sendHead = 0
        var receiveHead = 0
    }

    fileprivate struct FabricState {
        var queues: [QueueKey: Queue] = [:]
        var aborted: TransportError?
    }
}

extension Dictionary where Key == InProcessFabric.QueueKey, Value == InProcessFabric.Queue {
    /// `body` on the queue for `key` (created empty if absent), modified in place.
    fileprivate mutating func withQueue<R>(_ key: Key, _ body: (inout Value) -> R) -> R {
        body(&self[key, default: InProcessFabric.Queue()])
    }
}

/// A rank's completions, and a counter its waiting thread watches.
fileprivate final class Inbox: Sendable {
    let completions = SpinLocked<(list: [TransportCompletion], error: TransportError?)>(([], nil))
    /// Bumped on every delivery; a waiter spins on it, then sleeps on `wake`.
    let activity = Atomic<UInt64>(0)
    let sleepers = Atomic<Int>(0)
    /// Set once an error is stored, so `progress` copies the error only when there is one.
    let failed = Atomic<Bool>(false)
    let wake = ConditionSignal()

    func deliver(_ c: TransportCompletion) {
        completions.withLock { $0.list.append(c) }
        poke()
    }

    func fail(_ e: TransportError) {
        completions.withLock { if $0.error == nil { $0.error = e } }
        failed.store(true, ordering: .releasing)
        poke()
    }

    func poke() {
        // Sequentially consistent with the sleeper count (Dekker's pattern): either the waiter
        // sees this bump before it sleeps, or this sees the waiter and wakes it.
        activity.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { wake.broadcast() }
    }
}

public final class InProcessTransport: Transport {
    public let kind = "inproc"
    public let rank: Int
    public var size: Int { fabric.size }
    private let fabric: InProcessFabric
    private let seen = Atomic<UInt64>(0)

    fileprivate init(fabric: InProcessFabric, rank: Int) {
        self.fabric = fabric
        self.rank = rank
    }

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        TransportRegion(base: base, length: length)
    }

    public func deregister(_ region: TransportRegion) {}

    public func postSend(_ request: TransportRequest) throws {
        try post(request, sending: true)
    }

    public func postReceive(_ request: TransportRequest) throws {
        try post(request, sending: false)
    }

    private func post(_ request: TransportRequest, sending: Bool) throws {
        precondition((0..<size).contains(request.peer) && request.peer != rank, "inproc: bad peer \(request.peer)")
        precondition(request.offset >= 0 && request.offset + request.length <= request.region.length, "inproc: request outside its region")
        let key = InProcessFabric.QueueKey(from: Int32(sending ? rank : request.peer), to: Int32(sending ? request.peer : rank), stream: request.stream)
        let me = InProcessFabric.Pending(rank: rank, request: request)
        // Match under the fabric lock; copy outside it.
        let outcome: Result<(send: InProcessFabric.Pending, receive: InProcessFabric.Pending)?, TransportError> = fabric.state.withLock { state in
            if let e = state.aborted { return .failure(e) }
            // One hash lookup, mutating the queue in place.
            return state.queues.withQueue(key) { q -> Result<(send: InProcessFabric.Pending, receive: InProcessFabric.Pending)?, TransportError> in
                if sending {
                    if q.receiveHead < q.receives.count {
                        let r = q.receives[q.receiveHead]
                        q.receiveHead += 1
                        if q.receiveHead == q.receives.count { q.receives.removeAll(keepingCapacity: true); q.receiveHead = 0 }
                        return .success((me, r))
                    }
                    q.sends.append(me)
                } else {
                    if q.sendHead < q.sends.count {
                        let s = q.sends[q.sendHead]
                        q.sendHead += 1
                        if q.sendHead == q.sends.count { q.sends.removeAll(keepingCapacity: true); q.sendHead = 0 }
                        return .success((s, me))
                    }
                    q.receives.append(me)
                }
                return .success(nil)
            }
        }
        switch outcome {
        case .failure(let e): throw e
        case .success(nil): return
        case .success(let pair?):
            let s = pair.send.request, r = pair.receive.request
            // A length disagreement means the ranks run different calls: deliver nothing, and let
            // the receiver compare tags and report it.
            if s.length > 0 && s.length == r.length { r.pointer.copyMemory(from: s.pointer, byteCount: s.length) }
            fabric.inboxes[pair.send.rank].deliver(TransportCompletion(id: s.id, tag: s.tag, length: s.length))
            fabric.inboxes[pair.receive.rank].deliver(TransportCompletion(id: r.id, tag: s.tag, length: s.length))
        }
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        let inbox = fabric.inboxes[rank]
        if inbox.failed.load(ordering: .acquiring) {
            let error: TransportError? = inbox.completions.withLock { $0.error }
            if let error { throw error }
        }
        inbox.completions.withLock { state in
            guard !state.list.isEmpty else { return }
            completions.append(contentsOf: state.list)
            state.list.removeAll(keepingCapacity: true)
        }
    }

    /// Spins while the job's threads fit the machine's cores (a message from a thread on another
    /// core lands within a microsecond), for at most `spinLimit`; then sleeps on the inbox's
    /// condition until a delivery or the deadline. With more ranks than cores it yields the core
    /// between checks instead of spinning (for up to `yieldLimit`), so waiting ranks leave the
    /// cores to the ones with work.
    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        let inbox = fabric.inboxes[rank]
        let last = seen.load(ordering: .relaxed)
        func arrived() -> Bool {
            let now = inbox.activity.load(ordering: .acquiring)
            guard now != last else { return false }
            seen.store(now, ordering: .relaxed)
            return true
        }
        if spinUntilArrival(spins: fabric.spins, limit: Self.spinLimit, arrived) { return }
        inbox.sleepers.add(1, ordering: .sequentiallyConsistent)
        defer { inbox.sleepers.subtract(1, ordering: .sequentiallyConsistent) }
        while ContinuousClock.now < deadline {
            if arrived() { return }
            inbox.wake.wait(timeout: min(.milliseconds(50), deadline - ContinuousClock.now)) {
                inbox.activity.load(ordering: .sequentiallyConsistent) != last
            }
        }
    }

    /// How long a waiter spins before it sleeps, when it may spin at all.
    static let spinLimit: Duration = .microseconds(50)

    public func abort(_ error: TransportError) {
        // Peers are told under the fabric lock, so a rank whose own abort comes second finds the
        // first one's reason already in its inbox.
        fabric.state.withLock { state in
            guard state.aborted == nil else { return }
            let relayed = TransportError(.aborted, peer: rank, "rank \(rank) aborted: \(error.message)")
            state.aborted = relayed
            for (r, inbox) in fabric.inboxes.enumerated() {
                inbox.fail(r == rank ? error : relayed)
            }
        }
    }

    public func close() {}
}
