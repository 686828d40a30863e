#if canImport(Glibc)
import Glibc
#endif

/// The first phase of every transport's wait. When the job's ranks each have a core (`spins`),
/// check `arrived` in a tight loop for up to `limit`. When they do not, yield the core after
/// each check, for up to `yieldLimit` (or `limit` if shorter): the ranks with work, often the
/// one waited for, run at once instead of after this one has gone to sleep, and a sleeper's
/// wake-up costs tens of microseconds on a VM. (With 3 and 4 ranks on 2 cores an 8-byte
/// all-reduce over shared memory took 38 and 59 µs sleeping at once, 8 and 11 µs yielding.)
/// The clock is read every 64 checks, or every 8 yields. Returns whether something arrived; on
/// `false` the caller goes to sleep.
public func spinUntilArrival(spins: Bool, limit: Duration = .microseconds(50), _ arrived: () -> Bool) -> Bool {
    var spinUntil: ContinuousClock.Instant?
    var i = 0
    while true {
        if arrived() { return true }
        i += 1
        if !spins { sched_yield() }
        if i & (spins ? 63 : 7) == 0 {
            let now = ContinuousClock.now
            if spinUntil == nil { spinUntil = now + (spins ? limit : min(limit, yieldLimit)) }
            if now >= spinUntil! { return false }
        }
    }
}

/// The host's online CPUs: what a transport compares its rank count with to decide whether
/// its waits spin, when it knows nothing narrower (shared memory counts the CPUs the ranks may
/// run on together).
public var onlineCPUs: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

/// How long a wait yields the core before it sleeps, when ranks outnumber cores. Longer waits
/// are large transfers or a late peer: sleeping then leaves the cores to the ranks with work
/// without a system call per check.
public let yieldLimit = Duration.microseconds(50)
