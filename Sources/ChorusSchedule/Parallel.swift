import Dispatch

/// `(0 ..< count).map(body)`, computed on all cores (Dispatch's worker threads, not Swift's
/// cooperative pool). Used for per-rank work that is independent across ranks: generating
/// programs and deriving their dependency graphs.
func parallelMap<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    guard count > 1 else { return (0..<count).map(body) }
    let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
    results.initialize(repeating: nil)
    defer {
        results.deinitialize()  // release the elements the map below copied, then the buffer
        results.deallocate()
    }
    // Each index is written by exactly one iteration.
    nonisolated(unsafe) let slots = results
    DispatchQueue.concurrentPerform(iterations: count) { i in slots[i] = body(i) }
    return results.map { $0! }
}
