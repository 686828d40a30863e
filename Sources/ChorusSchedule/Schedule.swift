import ChorusCore

/// An algorithm as data: what every rank sends, receives and reduces, chunk by chunk.
///
/// A schedule is verified (`SymbolicChecker`), costed (the selector's closed forms), executed
/// (the runtime) and simulated (the network model), all from this one value.
///
/// ## Semantics
/// - **Order.** A rank's ops mean what they say in program order. An op waits for every earlier
///   op of its rank that conflicts with it on a buffer chunk (it reads what the earlier op writes,
///   or writes what the earlier op reads or writes) and for the ops in its `after` list; ops that
///   do not conflict may overlap. `ProgramGraph` derives these dependencies; every engine uses it.
///   Input and output count as one storage wherever the collective's in-place form aliases them,
///   so every schedule means the same in place and out of place.
/// - **Messages.** Sends from rank a to rank b on channel c are matched with b's receives from a
///   on c first-in, first-out. A send completes when its matching receive has consumed it
///   (rendezvous): a schedule that cannot deadlock this way cannot deadlock with any buffering.
/// - **Size.** Programs are produced on demand (`program(for:)`), so a 65,536-rank schedule never
///   sits in memory whole unless a caller asks for every program.
public struct Schedule: Sendable {
    /// The registry id of the algorithm that generated it, or a user's name.
    public let algorithm: String
    public let collective: Collective
    public let ranks: Int
    /// The root of a broadcast or reduce (0 otherwise).
    public let root: Int
    public let layout: ChunkLayout
    /// Independent sub-schedules on disjoint chunks, each with its own message order.
    public let channels: Int
    /// Rank translations that map the schedule onto itself, when its generator declares them
    /// (the simulator then runs one rank per orbit); `nil` when none is declared.
    public var symmetry: RankSymmetry?
    private let source: Source

    private enum Source: Sendable {
        case generated(@Sendable (Int) -> RankProgram)
        case stored([RankProgram])
    }

    /// A schedule whose programs a generator produces on demand.
    public init(algorithm: String, collective: Collective, ranks: Int, root: Int = 0, layout: ChunkLayout,
                channels: Int = 1, generator: @escaping @Sendable (Int) -> RankProgram) {
        self.algorithm = algorithm
        self.collective = collective
        self.ranks = ranks
        self.root = root
        self.layout = layout
        self.channels = channels
        self.source = .generated(generator)
    }

    /// A schedule with its programs in hand (from JSON, or materialized).
    public init(algorithm: String, collective: Collective, ranks: Int, root: Int = 0, layout: ChunkLayout,
                channels: Int = 1, programs: [RankProgram]) {
        precondition(programs.count == ranks, "a schedule needs one program per rank")
        self.algorithm = algorithm
        self.collective = collective
        self.ranks = ranks
        self.root = root
        self.layout = layout
        self.channels = channels
        self.source = .stored(programs)
    }

    /// Rank `rank`'s program.
    public func program(for rank: Int) -> RankProgram {
        switch source {
        case .generated(let make): return make(rank)
        case .stored(let programs): return programs[rank]
        }
    }

    /// Every program (generated on all cores; memory linear in the total ops).
    public func allPrograms() -> [RankProgram] { programs(ofFirst: ranks) }

    /// The programs of ranks `0 ..< count`, generated on all cores.
    public func programs(ofFirst count: Int) -> [RankProgram] {
        let schedule = self
        return parallelMap(min(count, ranks)) { schedule.program(for: $0) }
    }

    /// The same schedule with `symmetry` declared (`nil` clears it).
    public func declaring(_ symmetry: RankSymmetry?) -> Schedule {
        var copy = self
        copy.symmetry = symmetry
        return copy
    }

    /// The total number of ops over all ranks.
    public func totalOps() -> Int { (0..<ranks).reduce(0) { $0 + program(for: $1).count } }
}

/// A schedule, how many copies of it run side by side on disjoint parts of every chunk, and how
/// finely each op is sliced for pipelining.
///
/// Every chunk splits into `channels × slices` pieces; piece `(k, p)` belongs to channel copy `k`
/// and slice `p`. Copy `k` runs the whole schedule on its pieces with its own message order;
/// slices pipeline: slice `p` of an op may run once slice `p` of the ops it depends on is done.
/// Messages between two ranks on one (schedule channel, copy) go in op order, then slice order.
/// Pieces are disjoint and every piece sees the same sequence of operations, so a plan computes
/// exactly what its schedule computes, bit for bit, whatever its channels and slices.
public struct Plan: Sendable {
    public var schedule: Schedule
    /// Channel copies (NCCL's nChannels), at least 1.
    public var channels: Int
    /// The largest piece of a chunk one message carries; `nil` sends each chunk whole.
    public var sliceBytes: Int?

    public init(schedule: Schedule, channels: Int = 1, sliceBytes: Int? = nil) {
        precondition(channels >= 1, "a plan needs at least one channel")
        precondition(sliceBytes.map { $0 > 0 } ?? true, "slice size must be positive")
        self.schedule = schedule
        self.channels = channels
        self.sliceBytes = sliceBytes
    }

    /// Slices per channel copy for blocks of `blockElements` elements of `elementSize` bytes.
    public func slices(blockElements m: Int, elementSize: Int) -> Int {
        guard let sliceBytes else { return 1 }
        let chunkBytes = schedule.layout.largestChunk(blockElements: m) * elementSize
        let perChannel = (chunkBytes + channels - 1) / channels
        return max(1, (perChannel + sliceBytes - 1) / sliceBytes)
    }

    /// Pieces per chunk: `channels × slices`.
    public func pieces(blockElements m: Int, elementSize: Int) -> Int {
        channels * slices(blockElements: m, elementSize: elementSize)
    }
}
