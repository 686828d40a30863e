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

    private struct State {
        var nextTicket: UInt64 = 0
        var serving: UInt64 = 0
        var poison: ChorusError?
        var closed = false
    }

    private let state = Mutex(State())
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
        state.withLock { s in
            defer { s.nextTicket += 1 }
            return s.nextTicket
        }
    }

    /// Waits until `ticket` is served. Spins briefly, then sleeps in short timed waits.
    /// A poisoned engine fails at once (nothing will run again, so order no longer matters).
    private func awaitTurn(_ ticket: UInt64) throws(ChorusError) {
        var spins = 0
        while true {
            let (serving, poison) = state.withLock { ($0.serving, $0.poison) }
            if let poison {
                finishTurnIfServing(ticket)
                throw poison
            }
            if serving == ticket { return }
            spins += 1
            if spins < 200 {
                sched_yield()
            } else {
                turnSignal.wait(timeout: .milliseconds(5))
            }
        }
    }

    private func finishTurnIfServing(_ ticket: UInt64) {
        let advanced = state.withLock { s -> Bool in
            guard s.serving == ticket else { return false }
            s.serving += 1
            return true
        }
        if advanced { turnSignal.broadcast() }
    }

    private func finishTurn(_ ticket: UInt64) {
        state.withLock { s in
            precondition(s.serving == ticket, "engine: turn finished out of order")
            s.serving += 1
        }
        turnSignal.broadcast()
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

    var poison: ChorusError? { state.withLock { $0.poison } }

    /// Records `error` as the reason nothing more can run (the first one wins) and aborts the
    /// transport so peers learn of it. Returns the error that is now in force.
    @discardableResult
    func poison(_ error: ChorusError) -> ChorusError {
        let (winner, first) = state.withLock { s -> (ChorusError, Bool) in
            if let p = s.poison { return (p, false) }
            s.poison = error
            return (error, true)
        }
        if first {
            log(.warn, "\(error)")
            let kind: TransportError.Kind
            if case .mismatch = error { kind = .protocolViolation } else { kind = .closed }
            transport.abort(TransportError(kind, "\(error)"))
            turnSignal.broadcast()
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
        let ticket: UInt64? = state.withLock { s in
            guard s.serving == s.nextTicket else { return nil }   // a call is running; it will see any error
            s.nextTicket += 1
            return s.serving
        }
        guard let ticket else { return nil }
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

    func markClosed() { state.withLock { $0.closed = true } }

    // MARK: Running

    /// Runs `executions` (one call, or a group's calls on this engine) on this thread, which
    /// holds the turn. Any failure poisons the engine.
    func run(_ executions: [Execution]) throws(ChorusError) {
        if let p = poison { throw p }
        do {
            try executor.run(executions, timeout: configuration.timeout) { [self] in poison.map { "\($0)" } }
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
