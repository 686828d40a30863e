import ChorusCore
import ChorusSchedule

/// Building blocks that append one phase of a protocol to a rank's program. Generators string
/// them together; none of them knows which collective it serves.
enum Phases {
    // MARK: - Ring

    /// Ring reduce-scatter: afterwards position `p` holds group `p` reduced over every position.
    ///
    /// Step `s` (0 ..< m−1) at position `p`: send the partial sum of group `p−s−1` to the right,
    /// and receive group `p−s−2`'s partial sum from the left, adding this rank's contribution.
    /// A step's send forwards exactly what the previous step received, so each rank only waits
    /// for its left neighbour: no global barrier.
    /// - Parameters:
    ///   - contribution: this rank's data for group `g` (read-only).
    ///   - partial: where the partial sum of group `g` received at step `s` is kept.
    ///   - final: where this rank's own group ends up (the last step's destination).
    static func ringReduceScatter(_ program: inout RankProgram, ring: RingPattern, rank: Int, channel: Int,
                                  contribution: (Int) -> BufferSlice, partial: (_ group: Int, _ step: Int) -> BufferSlice,
                                  final: (Int) -> BufferSlice) {
        let m = ring.count
        let p = ring.position[rank]
        guard m > 1 else {
            program.append(.copy(from: contribution(p), to: final(p)))
            return
        }
        let right = ring.right(of: rank), left = ring.left(of: rank)
        program.append(.send(to: right, contribution(RingPattern.mod(p - 1, m)), channel: channel))
        for s in 0..<(m - 1) {
            let g = RingPattern.mod(p - s - 2, m)
            let destination = s == m - 2 ? final(g) : partial(g, s)
            program.append(.recvReduce(from: left, into: destination, with: contribution(g), channel: channel))
            if s < m - 2 { program.append(.send(to: right, destination, channel: channel)) }
        }
    }

    /// Ring all-gather: position `p` starts with group `p` (in `own`) and ends with every group
    /// in `slot(g)`.
    ///
    /// Step `s` at position `p`: send group `p−s` to the right (its own at step 0, then what it
    /// just received) and receive group `p−s−1` from the left.
    static func ringAllGather(_ program: inout RankProgram, ring: RingPattern, rank: Int, channel: Int,
                              own: BufferSlice, slot: (Int) -> BufferSlice) {
        let m = ring.count
        let p = ring.position[rank]
        guard m > 1 else { return }
        let right = ring.right(of: rank), left = ring.left(of: rank)
        for s in 0..<(m - 1) {
            program.append(.send(to: right, s == 0 ? own : slot(RingPattern.mod(p - s, m)), channel: channel))
            program.append(.recv(from: left, into: slot(RingPattern.mod(p - s - 1, m)), channel: channel))
        }
    }

    // MARK: - Recursive halving and doubling

    /// Recursive-halving reduce-scatter over the core of a folded hypercube, on `slots` (one chunk
    /// list per core index). Afterwards core index `i` holds slot `i` reduced over every rank.
    ///
    /// Step `t` uses distance `d = core / 2^(t+1)`: partners `i` and `i XOR d` split their current
    /// window of slots; the lower keeps the lower half. Each sends the half it gives up and
    /// receives the partner's copy of the half it keeps, adding it in.
    /// - Parameters:
    ///   - first: where the data lives before the first step (input, or where the folded data went).
    ///   - work: where partial sums go; `final` receives the last step's result.
    static func halvingReduceScatter(_ program: inout RankProgram, cube: FoldedHypercube, index i: Int, channel: Int,
                                     slots: [ChunkList], first: BufferKind, work: BufferKind, final: (Int) -> BufferSlice) {
        var lo = 0, hi = cube.core
        var current = first
        var d = cube.core / 2
        while d >= 1 {
            let mid = (lo + hi) / 2
            let lower = i & d == 0
            let (keep, give) = lower ? (lo..<mid, mid..<hi) : (mid..<hi, lo..<mid)
            let partner = cube.rank(ofCore: i ^ d)
            let giveChunks = ChunkList(runs: give.flatMap { slots[$0].runs })
            let keepChunks = ChunkList(runs: keep.flatMap { slots[$0].runs })
            program.append(.send(to: partner, BufferSlice(current, giveChunks), channel: channel))
            let isLast = d == 1
            let destination = isLast ? final(i) : BufferSlice(work, keepChunks)
            program.append(.recvReduce(from: partner, into: destination, with: BufferSlice(current, keepChunks), channel: channel))
            current = work
            (lo, hi) = (keep.lowerBound, keep.upperBound)
            d /= 2
        }
        if cube.core == 1 {
            program.append(.copy(from: BufferSlice(first, slots[0]), to: final(0)))
        }
    }

    /// Recursive-doubling all-gather over the core: core index `i` starts with slot `i` in
    /// `buffer` and ends with every slot. Step `t` (distance `d = 2^t`) swaps the current window
    /// with partner `i XOR d`; windows double.
    static func doublingAllGather(_ program: inout RankProgram, cube: FoldedHypercube, index i: Int, channel: Int,
                                  slots: [ChunkList], buffer: BufferKind) {
        var lo = i, hi = i + 1
        var d = 1
        while d < cube.core {
            let partner = cube.rank(ofCore: i ^ d)
            let mine = lo..<hi
            let theirs = (i & d == 0) ? hi..<(hi + (hi - lo)) : (lo - (hi - lo))..<lo
            program.append(.send(to: partner, BufferSlice(buffer, ChunkList(runs: mine.flatMap { slots[$0].runs })), channel: channel))
            program.append(.recv(from: partner, into: BufferSlice(buffer, ChunkList(runs: theirs.flatMap { slots[$0].runs })), channel: channel))
            lo = min(lo, theirs.lowerBound)
            hi = max(hi, theirs.upperBound)
            d *= 2
        }
    }

    // MARK: - Trees

    /// Tree reduce of `slice` toward the root: children's sums are added in ascending child order
    /// (a fixed order, so every run reduces alike), then the sum goes to the parent.
    /// - Parameters:
    ///   - contribution: this rank's data; `sum` is where the partial sum is built (the root's result).
    static func treeReduce(_ program: inout RankProgram, tree: BinaryTree, rank r: Int, channel: Int,
                           contribution: BufferSlice, sum: BufferSlice) {
        var current = contribution
        for child in tree.children[r] {
            program.append(.recvReduce(from: child, into: sum, with: current, channel: channel))
            current = sum
        }
        if tree.parent[r] >= 0 {
            program.append(.send(to: tree.parent[r], current, channel: channel))
        } else if tree.children[r].isEmpty {
            program.append(.copy(from: contribution, to: sum))
        }
    }

    /// Tree broadcast of `slice` from the root: receive from the parent, then pass to each child.
    static func treeBroadcast(_ program: inout RankProgram, tree: BinaryTree, rank r: Int, channel: Int,
                              source: BufferSlice, destination: BufferSlice) {
        var current = source
        if tree.parent[r] >= 0 {
            program.append(.recv(from: tree.parent[r], into: destination, channel: channel))
            current = destination
        } else if source != destination {
            program.append(.copy(from: source, to: destination))
        }
        for child in tree.children[r] { program.append(.send(to: child, current, channel: channel)) }
    }
}
