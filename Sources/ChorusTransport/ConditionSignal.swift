#if canImport(Glibc)
import Glibc
#endif

/// A condition variable with a timed wait, for waiters that have stopped spinning.
/// (pthread; the lock only orders the wait against a broadcast, the state lives elsewhere.)
public final class ConditionSignal: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    public init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// Waits for a broadcast or `timeout`, whichever comes first (spurious wake-ups allowed),
    /// unless `ready` already holds. `ready` is checked under the signal's lock, so a state
    /// change made before a `broadcast` is never missed.
    public func wait(timeout: Duration, unless ready: () -> Bool) {
        var deadline = Self.deadline(after: timeout)
        pthread_mutex_lock(&mutex)
        if !ready() { pthread_cond_timedwait(&condition, &mutex, &deadline) }
        pthread_mutex_unlock(&mutex)
    }

    private static func deadline(after timeout: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = max(timeout, .zero).components
        var nanos = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var deadline = timespec(tv_sec: now.tv_sec + Int(seconds) + nanos / 1_000_000_000, tv_nsec: 0)
        nanos %= 1_000_000_000
        deadline.tv_nsec = nanos
        return deadline
    }

    /// Waits for a broadcast or `timeout`, whichever comes first (spurious wake-ups allowed).
    public func wait(timeout: Duration) {
        wait(timeout: timeout) { false }
    }

    public func broadcast() {
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
