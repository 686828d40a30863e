/// How a sender writes a large message into a ring: with ordinary stores, or with non-temporal
/// stores that go past the caches to memory.
///
/// With ordinary stores the receiver reads each fragment out of the sender's cache; with
/// streaming stores it reads it from memory, at the cost of a write and a read of memory per
/// byte. Which is faster depends on how quickly the host moves cache lines between the two
/// cores, and on a shared VM that changes from minute to minute: on the development VM a 4 MiB
/// message through a ring written with ordinary stores took from 0.3 to 1.6 ms, run to run and
/// within runs, and one written with streaming stores from 0.4 to 1.6 ms, each way the faster
/// in some stretches.
///
/// ## Measure
/// Both ends time their own copies of each fragment of a large message, which include no wait:
/// the sender its write into the ring (and the carried copy), the receiver its copy or
/// reduction out of it. Each keeps a moving average per way (`RingCost`) and the receiver
/// publishes its own in the ring's control block. A way's cost is the sum of the two (in the
/// collectives that matter, each core both sends and receives, so it does both copies), and
/// the sender takes the cheaper, switching only for a gain of `margin`, so noise does not flip
/// it message by message. About one message in `exploreEvery`, drawn at random (a fixed period
/// would fall on the same message of every call), goes the other way, to keep both costs
/// current.
struct RingWriteMode {
    /// The sender's own cost per byte each way (measured only when `measures`).
    var write = RingCost()
    /// Whether the choice follows the costs; otherwise every message goes one way.
    let measures: Bool
    private var preferStreaming = false
    private var random: UInt64

    static let exploreEvery: UInt64 = 32
    static let margin = 0.1

    /// - Parameter policy: `.measured` chooses by the costs; `.ordinary` and `.streaming` pin one way.
    init(seed: UInt64, policy: SharedMemoryTransport.RingWrites = .measured) {
        measures = policy == .measured
        preferStreaming = policy == .streaming
        // SplitMix64's finalizer: distinct seeds give unrelated streams.
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        random = (z ^ (z >> 31)) | 1
    }

    /// Whether the next large message should be written with streaming stores, given the
    /// receiver's published read costs. A way not yet measured at both ends is tried first.
    mutating func nextIsStreaming(read: RingCost) -> Bool {
        guard measures else { return preferStreaming }
        guard let wc = write.cached, let rc = read.cached else { return false }
        guard let ws = write.streaming, let rs = read.streaming else { return true }
        let cached = wc + rc, streaming = ws + rs
        if preferStreaming ? cached < streaming * (1 - Self.margin) : streaming < cached * (1 - Self.margin) {
            preferStreaming.toggle()
        }
        random ^= random << 13   // xorshift64
        random ^= random >> 7
        random ^= random << 17
        return random % Self.exploreEvery == 0 ? !preferStreaming : preferStreaming
    }
}

/// Moving averages of nanoseconds per byte of the fragment copies at one end of a ring, one
/// for each way of writing it (`nil` until measured). Each new fragment weighs `1 / 8`.
struct RingCost: Equatable {
    var cached: Double?
    var streaming: Double?

    mutating func record(streaming isStreaming: Bool, bytes: Int, nanoseconds: Double) {
        guard bytes > 0, nanoseconds > 0 else { return }
        let perByte = nanoseconds / Double(bytes)
        if isStreaming {
            streaming = streaming.map { $0 + (perByte - $0) / 8 } ?? perByte
        } else {
            cached = cached.map { $0 + (perByte - $0) / 8 } ?? perByte
        }
    }

    /// The two averages as shared-memory words (bit patterns; 0 is "not measured").
    var words: (UInt64, UInt64) { (cached?.bitPattern ?? 0, streaming?.bitPattern ?? 0) }

    init(cached: Double? = nil, streaming: Double? = nil) {
        self.cached = cached
        self.streaming = streaming
    }

    init(words: (UInt64, UInt64)) {
        func value(_ w: UInt64) -> Double? {
            let d = Double(bitPattern: w)
            return w != 0 && d.isFinite && d > 0 ? d : nil
        }
        self.init(cached: value(words.0), streaming: value(words.1))
    }
}
