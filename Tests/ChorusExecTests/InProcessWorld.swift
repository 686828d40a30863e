import ChorusTransport
import Foundation

/// Ranks as threads of this process over an `InProcessFabric` (gloo's `spawn`): runs `body`
/// once per rank, each on its own thread, and returns when all have finished.
struct InProcessWorld {
    let size: Int
    let fabric: InProcessFabric

    init(size: Int) {
        self.size = size
        fabric = InProcessFabric(size: size)
    }

    /// Runs `body(rank, transport)` on `size` threads; rethrows the first error.
    func run<T: Sendable>(_ body: @escaping @Sendable (Int, InProcessTransport) throws -> T) throws -> [T] {
        let results = ResultBox<T>(count: size)
        var threads: [Thread] = []
        for r in 0..<size {
            let transport = fabric.transport(rank: r)
            let thread = Thread {
                do { results.set(r, .success(try body(r, transport))) } catch { results.set(r, .failure(error)) }
                results.done.signal()
            }
            thread.stackSize = 4 << 20
            threads.append(thread)
        }
        for t in threads { t.start() }
        for _ in 0..<size { results.done.wait() }
        return try results.values.map { try $0!.get() }
    }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<T, Error>?]
    let done = DispatchSemaphore(value: 0)

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: Result<T, Error>) {
        lock.lock()
        storage[i] = value
        lock.unlock()
    }

    var values: [Result<T, Error>?] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
