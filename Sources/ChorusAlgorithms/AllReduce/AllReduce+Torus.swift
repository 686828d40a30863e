import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Dimension by dimension on a torus: reduce-scatter along dimension 0's rings, then along
    /// dimension 1's on what is left, and so on; then all-gather back in reverse order. Every
    /// message crosses one torus link, and each phase moves `1/(k₀·…·k_d)` of the buffer (the 2-D
    /// and 3-D torus all-reduce of torus machines).
    ///
    /// Chunk `c` (one per rank) has mixed-radix digits in the torus' shape. In phase `d`, the
    /// ring along dimension `d` through rank `x` works on the chunks whose first `d` digits equal
    /// `x`'s; position `a` of that ring ends with the chunks whose digit `d` is `a`. After the last
    /// phase rank `x` holds chunk `x`, reduced over every rank.
    public static func torusDimensions(_ spec: CollectiveSpec, torus: TorusPattern, algorithm: String = "torus-dimensions") -> Schedule {
        let n = spec.ranks
        precondition(torus.count == n, "the torus must hold every rank")
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: n)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout) { r in
            var program = RankProgram()
            for d in torus.dimensions.indices {
                let ring = RingPattern(order: torus.line(through: r, dimension: d), worldSize: n)
                let group = { (g: Int) in TorusGroups.chunks(torus, rank: r, dimension: d, position: g) }
                Phases.ringReduceScatter(&program, ring: ring, rank: r, channel: 0,
                                         contribution: { BufferSlice(d == 0 ? .input : .output, group($0)) },
                                         partial: { g, _ in BufferSlice(.output, group(g)) },
                                         final: { BufferSlice(.output, group($0)) })
            }
            for d in torus.dimensions.indices.reversed() {
                let ring = RingPattern(order: torus.line(through: r, dimension: d), worldSize: n)
                let group = { (g: Int) in TorusGroups.chunks(torus, rank: r, dimension: d, position: g) }
                Phases.ringAllGather(&program, ring: ring, rank: r, channel: 0,
                                     own: BufferSlice(.output, group(ring.position[r])), slot: { BufferSlice(.output, group($0)) })
            }
            return program
        }
    }
}

/// The chunk (or block) groups of dimension-ordered torus phases.
enum TorusGroups {
    /// Indices whose digits before `d` equal `rank`'s, whose digit `d` is `position`, and whose
    /// later digits are anything, ascending.
    static func indices(_ torus: TorusPattern, rank: Int, dimension d: Int, position: Int) -> [Int] {
        var x = torus.coordinates(of: rank)
        x[d] = position
        // Enumerate the free digits after d.
        let free = Array((d + 1)..<torus.dimensions.count)
        let span = free.reduce(1) { $0 * torus.dimensions[$1] }
        var result: [Int] = []
        result.reserveCapacity(span)
        for v in 0..<span {
            var rest = v
            for f in free.reversed() {
                x[f] = rest % torus.dimensions[f]
                rest /= torus.dimensions[f]
            }
            result.append(torus.rank(at: x))
        }
        return result
    }

    static func chunks(_ torus: TorusPattern, rank: Int, dimension d: Int, position: Int) -> ChunkList {
        ChunkList(chunks: indices(torus, rank: rank, dimension: d, position: position))
    }
}
