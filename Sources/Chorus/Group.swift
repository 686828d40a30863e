import ChorusCore
import ChorusExec
#if canImport(Glibc)
import Glibc
#endif

/// Operations issued together, as NCCL's `ncclGroupStart`/`ncclGroupEnd`.
///
/// Between `groupStart()` and `groupEnd()` the blocking raw-buffer calls of this thread are
/// recorded, not run; `groupEnd()` runs them together and returns when all are done. Calls on
/// one communicator (and its splits) run as one plan, so sends and receives to several peers
/// cannot deadlock on their order; calls on communicators of different transports (one thread
/// driving several in-process ranks) run side by side on their progress threads. Groups nest;
/// only the outermost `groupEnd()` runs. Buffers must stay valid until `groupEnd()` returns.
extension Communicator {
    public static func groupStart() {
        GroupState.current.depth += 1
    }

    /// Runs what the outermost group recorded.
    /// - Throws: `.invalidArgument` without a matching `groupStart()`; otherwise the first error of
    ///   any recorded call (the others' communicators are poisoned with theirs).
    public static func groupEnd() throws(ChorusError) {
        let state = GroupState.current
        guard state.depth > 0 else { throw .invalidArgument("groupEnd() without a matching groupStart() on this thread") }
        state.depth -= 1
        guard state.depth == 0 else { return }
        let recorded = state.calls
        state.calls.removeAll()
        guard !recorded.isEmpty else { return }

        // Calls by engine, in the order each engine was first used.
        var order: [ObjectIdentifier] = []
        var byEngine: [ObjectIdentifier: (engine: Engine, calls: [(Communicator, Call)])] = [:]
        for (comm, call) in recorded {
            let key = ObjectIdentifier(comm.engine)
            if byEngine[key] == nil { order.append(key); byEngine[key] = (comm.engine, []) }
            byEngine[key]!.calls.append((comm, call))
        }
        if order.count == 1 {
            let (engine, calls) = byEngine[order[0]]!
            let ticket = engine.takeTicket()
            try engine.withTurn(ticket) { () throws(ChorusError) in try engine.run(try calls[0].0.executions(calls)) }
            return
        }
        // Several transports: each on its own progress thread, all at once.
        let results = GroupResults(count: order.count)
        for (i, key) in order.enumerated() {
            let (engine, calls) = byEngine[key]!
            let batch = CallBatch(calls: calls)
            engine.submit(engine.takeTicket(), { () throws(ChorusError) in
                try engine.run(try batch.calls[0].0.executions(batch.calls))
            }, completion: { results.finish(i, $0) })
        }
        if let error = results.wait() { throw error }
    }

    /// Runs `body` inside a group: `groupStart()`, `body()`, `groupEnd()`.
    public static func group(_ body: () throws -> Void) throws {
        groupStart()
        do {
            try body()
        } catch {
            // Leave the thread's group state as it was, dropping what `body` recorded.
            let state = GroupState.current
            state.depth -= 1
            if state.depth == 0 { state.calls.removeAll() }
            throw error
        }
        try groupEnd()
    }
}

/// The calls of one group, carried to a progress thread (see `Call` for why this is sendable).
private struct CallBatch: @unchecked Sendable {
    var calls: [(Communicator, Call)]
}

/// Waits for every engine of a group.
private final class GroupResults: @unchecked Sendable {
    private var errors: [ChorusError?]
    private var remaining: Int
    private let lock = ConditionLock()

    init(count: Int) {
        errors = Array(repeating: nil, count: count)
        remaining = count
    }

    func finish(_ i: Int, _ error: ChorusError?) {
        lock.withLock {
            errors[i] = error
            remaining -= 1
        }
        lock.broadcast()
    }

    func wait() -> ChorusError? {
        lock.wait { remaining == 0 }
        return lock.withLock { errors.compactMap { $0 }.first }
    }
}

/// A mutex with a condition, for the rare thread that blocks until others finish.
final class ConditionLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    func broadcast() {
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Blocks until `predicate` (checked under the lock) holds.
    func wait(until predicate: () -> Bool) {
        pthread_mutex_lock(&mutex)
        while !predicate() { pthread_cond_wait(&condition, &mutex) }
        pthread_mutex_unlock(&mutex)
    }
}

/// The group state of one thread (a thread-specific value, as NCCL keeps its group depth).
final class GroupState {
    var depth = 0
    var calls: [(Communicator, Call)] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            Unmanaged<GroupState>.fromOpaque(raw!).release()
        }
        return key
    }()

    static var current: GroupState {
        if let raw = pthread_getspecific(key) { return Unmanaged<GroupState>.fromOpaque(raw).takeUnretainedValue() }
        let state = GroupState()
        pthread_setspecific(key, Unmanaged.passRetained(state).toOpaque())
        return state
    }

    static var isOpen: Bool {
        guard let raw = pthread_getspecific(key) else { return false }
        return Unmanaged<GroupState>.fromOpaque(raw).takeUnretainedValue().depth > 0
    }

    static func record(_ comm: Communicator, _ call: Call) {
        current.calls.append((comm, call))
    }
}
