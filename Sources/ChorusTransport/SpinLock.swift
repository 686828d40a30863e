import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// State behind a test-and-test-and-set spin lock, for critical sections of a few dozen
/// nanoseconds taken by threads that are already spinning for messages. A blocking mutex's
/// slow path (a futex sleep and wake-up) costs microseconds when two ranks post at once; this
/// lock spins briefly, then yields the core, so a preempted holder is not starved.
final class SpinLocked<State>: @unchecked Sendable {
    private let held = Atomic<Bool>(false)
    private var state: State

    init(_ state: State) { self.state = state }

    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        var spins = 0
        while true {
            if !held.load(ordering: .relaxed),
               held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
                break
            }
            spins += 1
            if spins > 1000 { sched_yield() }
        }
        defer { held.store(false, ordering: .releasing) }
        return try body(&state)
    }
}
