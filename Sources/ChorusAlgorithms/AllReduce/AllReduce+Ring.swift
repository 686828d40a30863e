import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Ring all-reduce on one or more rings side by side: a ring reduce-scatter then a ring
    /// all-gather, `2(n−1)` steps per rank, each moving `1/n` of the ring's share of the buffer.
    ///
    /// Ring `i` is schedule channel `i` and owns chunks `i·n·c ..< (i+1)·n·c`; group `g` of a ring
    /// (the group position `g` ends up reducing) is `c` chunks. Partial sums build up in the
    /// output, each rank adding its input as the sum passes: nothing is copied first, and every
    /// chunk is reduced at exactly one rank, so all ranks end with the same bits.
    /// - Parameters:
    ///   - rings: one ring per channel: `[.natural(n)]` is the classic ring; a ring and its reverse
    ///     is the bidirectional ring; two disjoint Hamiltonian cycles of a torus are `torus-rings`.
    ///   - chunksPerGroup: chunks per ring step (more gives the executor finer pieces).
    public static func ring(_ spec: CollectiveSpec, rings: [RingPattern], algorithm: String = "ring", chunksPerGroup c: Int = 1) -> Schedule {
        let n = spec.ranks
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: rings.count * n * c)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout, channels: rings.count) { r in
            // A send and a receive per step, 2(n−1) steps per ring.
            var program = RankProgram(reservingCapacity: rings.count * 4 * max(n - 1, 0))
            for (i, ring) in rings.enumerated() {
                let group = { (g: Int) in ChunkList.run((i * n + g) * c, c) }
                Phases.ringReduceScatter(&program, ring: ring, rank: r, channel: i,
                                         contribution: { BufferSlice(.input, group($0)) },
                                         partial: { g, _ in BufferSlice(.output, group(g)) },
                                         final: { BufferSlice(.output, group($0)) })
                Phases.ringAllGather(&program, ring: ring, rank: r, channel: i,
                                     own: BufferSlice(.output, group(ring.position[r])),
                                     slot: { BufferSlice(.output, group($0)) })
            }
            return program
        }
    }
}
