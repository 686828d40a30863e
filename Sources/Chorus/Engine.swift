import ChorusCore
import ChorusExec
import ChorusSchedule
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What one transport endpoint runs: the executor over it, the order calls take, and the error
/// that poisoned it. A communicator and every communicator split from it share one engine.
///
/// ## Order
/// Every call takes a ticket when it is made, and runs when its ticket is served. Blocking
/// calls run on the caller's thread; `async` calls run on the engine's progress thread (created
/// on first use) and their callers resume from there. So calls run in the order they were made,
/// whichever form they take, and never on Swift's cooperative pool.
///
/// ## Errors
/// The first failure (timeout, mismatch, transport error, abort) poisons the engine: the
/// transport is aborted, so every peer's pending call fails at once naming this rank, and every
/// later call here fails with the same error (gloo's rule: a communicator that failed is rebuilt,
/// never reused). Splits share the engine, so an abort reaches parent and children alike.
final class Engine: @unchecked Sendable {
    let transport: Transport
    let configuration: ChorusConfiguration
    let log: Log
    /// Used only by the thread whose ticket is being served.
    private let executor: Executor
    /// Buffers the API does not supply (a non-root's reduce output, a barrier's byte); used only
    /// by the thread whose ticket is being served.
    private var auxiliary: UnsafeMutableRawBufferPointer?
    /// How many times `auxiliary` was reallocated: executions laid out over it are stale once
    /// this moves. Used only by the thread whose ticket is being served.
    @exclusivity(unchecked) private(set) var auxiliaryGeneration: UInt64 = 0

    // Turns: tickets are handed out and served in order. Lock-free: a call on an idle engine
    // takes and returns its turn with two atomic increments.
    private let nextTicket = Atomic<UInt64>(0)
    private let serving = Atomic<UInt64>(0)
    /// Threads sleeping on `turnSignal` (the finisher broadcasts only when there are some).
    private let turnWaiters = Atomic<Int>(0)
    private let poisoned = Atomic<Bool>(false)
    private let poisonState = Mutex<ChorusError?>(nil)
    private let turnSignal = ConditionSignal()
    private let progress = Mutex<ProgressThread?>(nil)

    init(transport: Transport, configuration: ChorusConfiguration) {
        self.transport = transport
        self.configuration = configuration
        self.log = Log(level: configuration.debug, rank: transport.rank)
        self.executor = Executor(transport: transport)
    }

    deinit {
        progress.withLock { $0?.stop() }
        auxiliary?.deallocate()
        transport.close()
    }

    // MARK: Turns

    func takeTicket() -> UInt64 {
        nextTicket.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Waits until `ticket` is served. Spins briefly, then sleeps in short timed waits.
    /// A poisoned engine fails at once (nothing will run again, so order no longer matters).
    private func awaitTurn(_ ticket: UInt64) throws(ChorusError) {
        var spins = 0
        while true {
            if serving.load(ordering: .acquiring) == ticket {
                if poisoned.load(ordering: .acquiring), let p = poison {
                    finishTurn(ticket)
                    throw p
                }
                return
            }
            if poisoned.load(ordering: .acquiring), let p = poison {
                throw p
            }
            spins += 1
            if spins < 200 {
                sched_yield()
            } else {
                turnWaiters.add(1, ordering: .sequentiallyConsistent)
                turnSignal.wait(timeout: .milliseconds(5)) { self.serving.load(ordering: .sequentiallyConsistent) == ticket }
                turnWaiters.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }

    private func finishTurn(_ ticket: UInt64) {
        serving.store(ticket + 1, ordering: .sequentiallyConsistent)
        if turnWaiters.load(ordering: .sequentiallyConsistent) > 0 { turnSignal.broadcast() }
    }

    /// Runs `body` when `ticket` is served, on this thread.
    func withTurn<T>(_ ticket: UInt64, _ body: () throws(ChorusError) -> T) throws(ChorusError) -> T {
        try awaitTurn(ticket)
        defer { finishTurn(ticket) }
        return try body()
    }

    /// Runs `body` on the progress thread when `ticket` is served, then `completion` with its
    /// result, on the progress thread.
    func submit(_ ticket: UInt64, _ body: @escaping @Sendable () throws(ChorusError) -> Void,
                completion: @escaping @Sendable (ChorusError?) -> Void) {
        let thread = progress.withLock { p -> ProgressThread in
            if let p { return p }
            let t = ProgressThread(name: "chorus-\(transport.rank)")
            p = t
            return t
        }
        thread.enqueue { [self] in
            do throws(ChorusError) {
                try withTurn(ticket) { () throws(ChorusError) in try body() }
                completion(nil)
            } catch {
                completion(error)
            }
        }
    }

    // MARK: Poison and abort

    var poison: ChorusError? {
        guard poisoned.load(ordering: .acquiring) else { return nil }
        return poisonState.withLock { $0 }
    }

    /// Records `error` as the reason nothing more can run (the first one wins) and aborts the
    /// transport so peers learn of it. Returns the error that is now in force.
    @discardableResult
    func poison(_ error: ChorusError) -> ChorusError {
        let (winner, first) = poisonState.withLock { p -> (ChorusError, Bool) in
            if let p { return (p, false) }
            p = error
            return (error, true)
        }
        if first {
            // Peers are told before the poison shows here: whoever sees this rank's calls fail
            // can count on every peer having been told.
            let kind: TransportError.Kind
            if case .mismatch = error { kind = .protocolViolation } else { kind = .closed }
            transport.abort(TransportError(kind, "\(error)"))
            poisoned.store(true, ordering: .releasing)
            log(.warn, "\(error)")
            turnSignal.broadcast()
        } else {
            // Another thread is telling the peers (the transport may fail this rank's own
            // requests first); return only once they have been told, so a caller that saw the
            // failure can count on every peer knowing. Telling takes microseconds; bounded anyway.
            let until = ContinuousClock.now + .seconds(1)
            while !poisoned.load(ordering: .acquiring) && ContinuousClock.now < until { sched_yield() }
        }
        return winner
    }

    /// The application's abort: returns at once; any call in flight returns with `.aborted`.
    func abort(reason: String) {
        poison(.aborted("rank \(transport.rank) aborted the communicator: \(reason)"))
    }

    /// The engine's error, if any, looking for one a peer has already sent when no call is
    /// running here (so an idle rank learns that a peer failed).
    func asyncError() -> ChorusError? {
        if let p = poison { return p }
        // Take a turn only if no call holds or awaits one.
        let ticket = serving.load(ordering: .acquiring)
        guard nextTicket.compareExchange(expected: ticket, desired: ticket + 1, ordering: .acquiringAndReleasing).exchanged else {
            return nil   // a call is running; it will see any error
        }
        var stray: [TransportCompletion] = []
        do {
            try transport.progress(&stray)
        } catch {
            finishTurn(ticket)
            return poison(Engine.classify(error))
        }
        finishTurn(ticket)
        return nil
    }

    // MARK: Running

    /// Runs `executions` (one call, or a group's calls on this engine) on this thread, which
    /// holds the turn. Any failure poisons the engine.
    func run(_ executions: [Execution]) throws(ChorusError) {
        if let p = poison { throw p }
        do {
            try executor.run(executions, timeout: configuration.timeout) { [self] in
                poisoned.load(ordering: .acquiring) ? poison.map { "\($0)" } : nil
            }
        } catch {
            // An abort here (or a peer's) explains whatever the executor saw.
            if let p = poison { throw p }
            var failure = Engine.classify(error)
            if case .timeout = failure {
                // A peer that failed first has usually said so already: report its reason.
                var stray: [TransportCompletion] = []
                do { try transport.progress(&stray) } catch let peerError {
                    let cause = Engine.classify(peerError)
                    if case .timeout = cause {} else { failure = cause }
                }
            }
            throw poison(failure)
        }
    }

    /// A registered buffer of at least `bytes`, owned by the engine (zeroed on growth).
    func auxiliaryBuffer(_ bytes: Int) -> UnsafeMutableRawPointer {
        if let a = auxiliary, a.count >= bytes { return a.baseAddress! }
        auxiliary?.deallocate()
        auxiliaryGeneration &+= 1
        executor.forgetRegistrations()
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        auxiliary = memory
        return memory.baseAddress!
    }

    /// Maps what the executor or transport threw to the public error.
    static func classify(_ error: any Error) -> ChorusError {
        if let e = error as? ChorusError { return e }
        if let e = error as? ExecutionError {
            if case .aborted(let reason) = e, reason.contains(ExecutionError.mismatchPhrase) {
                return .mismatch(e.description)
            }
            return ChorusError(e)
        }
        if let e = error as? TransportError {
            if e.kind == .aborted {
                return e.message.contains(ExecutionError.mismatchPhrase) ? .mismatch(e.message) : .aborted(e.message)
            }
            return .transport(e.description)
        }
        return .transport("\(error)")
    }
}

/// A dedicated thread running closures in order (pthread, not the cooperative pool).
final class ProgressThread: @unchecked Sendable {
    private let queue = Mutex<(work: [@Sendable () -> Void], stopping: Bool)>(([], false))
    private let signal = ConditionSignal()
    private var thread = pthread_t()

    init(name: String) {
        let box = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 4 << 20)
        let created = pthread_create(&thread, &attributes, { raw in
            let me = Unmanaged<ProgressThread>.fromOpaque(raw!).takeRetainedValue()
            me.loop()
            return nil
        }, box.toOpaque())
        pthread_attr_destroy(&attributes)
        precondition(created == 0, "chorus: cannot start a progress thread (pthread_create: \(created))")
        pthread_detach(thread)
        _ = name
    }

    func enqueue(_ work: @escaping @Sendable () -> Void) {
        queue.withLock { $0.work.append(work) }
        signal.broadcast()
    }

    /// Lets the thread finish what is queued and exit.
    func stop() {
        queue.withLock { $0.stopping = true }
        signal.broadcast()
    }

    private func loop() {
        while true {
            let (next, stopping) = queue.withLock { q -> ((@Sendable () -> Void)?, Bool) in
                q.work.isEmpty ? (nil, q.stopping) : (q.work.removeFirst(), false)
            }
            if let next {
                next()
            } else if stopping {
                return
            } else {
                signal.wait(timeout: .milliseconds(100))
            }
        }
    }
}
