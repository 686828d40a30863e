#if canImport(Glibc)
import Glibc
#endif

/// The first phase of every transport's wait: check `arrived` in a tight loop for up to
/// `limit` when the job's ranks each have a core (`spins`), or yield the core between checks
/// when they do not. The clock is read only every 64 checks. Returns whether something
/// arrived; on `false` the caller goes to sleep.
public func spinUntilArrival(spins: Bool, limit: Duration = .microseconds(50), _ arrived: () -> Bool) -> Bool {
    var spinUntil: ContinuousClock.Instant?
    var i = 0
    while true {
        if arrived() { return true }
        i += 1
        if i & 63 == 0 {
            let now = ContinuousClock.now
            if spinUntil == nil { spinUntil = now + (spins ? limit : .zero) }
            if now >= spinUntil! { return false }
            if !spins { sched_yield() }
        }
    }
}
