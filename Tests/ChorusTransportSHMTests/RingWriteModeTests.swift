@testable import ChorusTransportSHM
import Testing

/// The choice between ordinary and streaming ring writes (`RingWriteMode`, `RingCost`).
struct RingWriteModeTests {
    /// Draws `n` choices against fixed costs and counts the streaming ones.
    func streamingChoices(_ mode: inout RingWriteMode, read: RingCost, _ n: Int = 1600) -> Int {
        (0..<n).filter { _ in mode.nextIsStreaming(read: read) }.count
    }

    @Test func eachWayIsTriedBeforeAnyIsPreferred() {
        var mode = RingWriteMode(seed: 1)
        // Nothing measured: ordinary stores.
        let first = mode.nextIsStreaming(read: RingCost())
        #expect(!first)
        // Ordinary measured at the sender only (the receiver has not published yet): still ordinary.
        mode.write.record(streaming: false, bytes: 1 << 18, nanoseconds: 10_000)
        let second = mode.nextIsStreaming(read: RingCost())
        #expect(!second)
        // Ordinary measured at both ends: streaming next, whatever its cost turns out to be.
        let third = mode.nextIsStreaming(read: RingCost(cached: 0.05))
        #expect(third)
    }

    @Test func theCheaperSumWinsAndTheOtherWayIsStillTried() {
        var mode = RingWriteMode(seed: 7)
        mode.write.record(streaming: false, bytes: 1, nanoseconds: 0.10)
        mode.write.record(streaming: true, bytes: 1, nanoseconds: 0.12)
        // Streaming costs 0.12 + 0.05 against 0.10 + 0.20: streaming, but not always.
        let streaming = streamingChoices(&mode, read: RingCost(cached: 0.20, streaming: 0.05))
        #expect(streaming > 1400 && streaming < 1600, "\(streaming) of 1600")
        // The receiver's copy out of cache becomes cheap: back to ordinary stores.
        let back = streamingChoices(&mode, read: RingCost(cached: 0.02, streaming: 0.05))
        #expect(back > 0 && back < 200, "\(back) of 1600")
    }

    @Test func aGainBelowTheMarginDoesNotSwitch() {
        var mode = RingWriteMode(seed: 3)
        mode.write.record(streaming: false, bytes: 1, nanoseconds: 0.100)
        mode.write.record(streaming: true, bytes: 1, nanoseconds: 0.095)
        // Streaming 5% cheaper: ordinary stays preferred.
        let streaming = streamingChoices(&mode, read: RingCost(cached: 0.1, streaming: 0.1))
        #expect(streaming < 200, "\(streaming) of 1600")
    }

    @Test func aPinnedWayIsAlwaysTakenAndNothingIsMeasured() {
        for (policy, streaming) in [(SharedMemoryTransport.RingWrites.ordinary, false), (.streaming, true)] {
            var mode = RingWriteMode(seed: 5, policy: policy)
            #expect(!mode.measures)
            // Costs that would favour the other way change nothing.
            let cheap = streaming ? RingCost(cached: 0.01, streaming: 1) : RingCost(cached: 1, streaming: 0.01)
            mode.write = cheap
            let count = streamingChoices(&mode, read: cheap, 320)
            #expect(count == (streaming ? 320 : 0), "\(policy): \(count) of 320")
        }
        #expect(RingWriteMode(seed: 5).measures)
    }

    @Test func seedsGiveDifferentExplorations() {
        func pattern(_ seed: UInt64) -> [Bool] {
            var mode = RingWriteMode(seed: seed)
            mode.write.record(streaming: false, bytes: 1, nanoseconds: 0.1)
            mode.write.record(streaming: true, bytes: 1, nanoseconds: 0.5)
            return (0..<256).map { _ in mode.nextIsStreaming(read: RingCost(cached: 0.1, streaming: 0.5)) }
        }
        #expect(pattern(1) != pattern(2))
    }

    @Test func costsAverageAndCrossSharedMemoryAsWords() {
        var cost = RingCost()
        cost.record(streaming: false, bytes: 1000, nanoseconds: 800)
        #expect(cost.cached == 0.8 && cost.streaming == nil)
        cost.record(streaming: false, bytes: 1000, nanoseconds: 1600)   // a new fragment weighs 1/8
        #expect(cost.cached == 0.9)
        cost.record(streaming: true, bytes: 0, nanoseconds: 5)   // nothing measured
        cost.record(streaming: true, bytes: 10, nanoseconds: -5)
        #expect(cost.streaming == nil)
        #expect(RingCost(words: cost.words) == cost)
        // A peer's words that are not a positive finite cost read as unmeasured.
        #expect(RingCost(words: (0, Double.nan.bitPattern)) == RingCost())
        #expect(RingCost(words: ((-1.0).bitPattern, Double.infinity.bitPattern)) == RingCost())
    }
}
