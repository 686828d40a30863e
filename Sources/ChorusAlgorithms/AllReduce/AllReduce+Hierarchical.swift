import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Hierarchical: reduce-scatter inside each instance, all-reduce each shard across instances
    /// (between the ranks with the same local index, so every NIC carries `1/g` of the data), and
    /// all-gather inside each instance (NCCL's and Neuron's two-level all-reduce; Horovod's
    /// hierarchical all-reduce).
    ///
    /// With `g` ranks per instance and `m` instances the buffer has `g·m` chunks: local index `L`
    /// owns shard `L` (chunks `L·m ..< (L+1)·m`), and within the shard instance `i` owns chunk
    /// `L·m + i` during the cross-instance ring. Inside an instance the ring follows `groupRing`
    /// (a Hamiltonian cycle of the instance's torus, say), else local index order.
    public static func hierarchical(_ spec: CollectiveSpec, groupSize g: Int, groupRing: [Int]? = nil,
                                    algorithm: String = "hierarchical") -> Schedule {
        let n = spec.ranks
        precondition(g >= 1 && n % g == 0, "the group size must divide the rank count")
        let m = n / g
        let localOrder = groupRing ?? Array(0..<g)
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: g * m)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout) { r in
            let instance = r / g, local = r % g
            let intra = RingPattern(order: localOrder.map { instance * g + $0 }, worldSize: n)
            let inter = RingPattern(order: (0..<m).map { $0 * g + local }, worldSize: n)
            let shard = { (position: Int) in ChunkList.run(localOrder[position] * m, m) }
            let ownShard = local * m
            var program = RankProgram()
            Phases.ringReduceScatter(&program, ring: intra, rank: r, channel: 0,
                                     contribution: { BufferSlice(.input, shard($0)) },
                                     partial: { p, _ in BufferSlice(.output, shard(p)) },
                                     final: { BufferSlice(.output, shard($0)) })
            if m > 1 {
                let piece = { (i: Int) in ChunkList.run(ownShard + i, 1) }
                Phases.ringReduceScatter(&program, ring: inter, rank: r, channel: 0,
                                         contribution: { BufferSlice(.output, piece($0)) },
                                         partial: { i, _ in BufferSlice(.output, piece(i)) },
                                         final: { BufferSlice(.output, piece($0)) })
                Phases.ringAllGather(&program, ring: inter, rank: r, channel: 0,
                                     own: BufferSlice(.output, piece(instance)), slot: { BufferSlice(.output, piece($0)) })
            }
            Phases.ringAllGather(&program, ring: intra, rank: r, channel: 0,
                                 own: BufferSlice(.output, shard(intra.position[r])), slot: { BufferSlice(.output, shard($0)) })
            return program
        }
    }
}
