import Chorus
import Foundation

/// Runs `body` once per communicator, each on its own thread (ranks as threads), and returns
/// every rank's result, errors included.
func onRanks<T: Sendable>(_ comms: [Communicator], _ body: @escaping @Sendable (Communicator) throws -> T) -> [Result<T, Error>] {
    let results = Results<T>(count: comms.count)
    let group = DispatchGroup()
    for comm in comms {
        group.enter()
        let thread = Thread {
            let r: Result<T, Error>
            do { r = .success(try body(comm)) } catch { r = .failure(error) }
            results.set(comm.rank, r)
            group.leave()
        }
        thread.stackSize = 4 << 20
        thread.start()
    }
    group.wait()
    return results.values
}

/// Every rank's value; the first error rethrown.
func onRanksOrThrow<T: Sendable>(_ comms: [Communicator], _ body: @escaping @Sendable (Communicator) throws -> T) throws -> [T] {
    try onRanks(comms, body).map { try $0.get() }
}

final class Results<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<T, Error>?]

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: Result<T, Error>) {
        lock.lock()
        storage[i] = value
        lock.unlock()
    }

    func value(_ i: Int) -> Result<T, Error>? {
        lock.lock()
        defer { lock.unlock() }
        return storage[i]
    }

    var values: [Result<T, Error>] {
        lock.lock()
        defer { lock.unlock() }
        return storage.map { $0! }
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

extension ChorusConfiguration {
    /// A timeout short enough that a hang fails the test instead of stalling the suite.
    static var testing: ChorusConfiguration { ChorusConfiguration(timeout: .seconds(30)) }
}

/// A task executor with a thread of its own, so an async rank runs even while synchronous tests
/// (which block Swift's cooperative threads in `DispatchGroup.wait`) hold every pool thread.
/// `stop()` ends the thread once its jobs are done.
final class RankThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    init() {
        let thread = Thread { [self] in run() }
        thread.stackSize = 4 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
