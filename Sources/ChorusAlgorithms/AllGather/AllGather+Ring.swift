import ChorusCore
import ChorusSchedule

extension AllGather {
    /// Ring all-gather on one or more rings side by side: `n−1` steps, each forwarding the block
    /// received in the previous step to the right. Ring `i` (channel `i`) carries chunks
    /// `i·c ..< (i+1)·c` of every block.
    public static func ring(_ spec: CollectiveSpec, rings: [RingPattern], algorithm: String = "ring", chunksPerGroup c: Int = 1) -> Schedule {
        let n = spec.ranks
        let k = rings.count * c
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: k)
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout, channels: rings.count) { r in
            var program = RankProgram()
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, ChunkList.run(r * k, k))))
            for (i, ring) in rings.enumerated() {
                Phases.ringAllGather(&program, ring: ring, rank: r, channel: i,
                                     own: BufferSlice(.input, ChunkList.run(i * c, c)),
                                     slot: { BufferSlice(.output, ChunkList.blocks([ring.order[$0]], chunksPerBlock: k, offset: i * c, count: c)) })
            }
            return program
        }
    }

    /// Recursive doubling: `log₂ p` steps swapping windows of blocks that double each step;
    /// extra ranks fold in (send their block first) and out (receive everything last).
    public static func recursiveDoubling(_ spec: CollectiveSpec, algorithm: String = "recursive-doubling") -> Schedule {
        let n = spec.ranks
        let cube = FoldedHypercube(ranks: n)
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: 1)
        let slots = (0..<cube.core).map { ChunkList(chunks: cube.members(ofCore: $0)) }
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout) { r in
            var program = RankProgram()
            switch cube.role(of: r) {
            case .foldedOut(let partner):
                program.append(.send(to: partner, .all(.input, layout)))
                program.append(.recv(from: partner, into: .all(.output, layout)))
            case .core(let i, let foldedFrom):
                program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, chunk: r)))
                if let foldedFrom { program.append(.recv(from: foldedFrom, into: BufferSlice(.output, chunk: foldedFrom))) }
                Phases.doublingAllGather(&program, cube: cube, index: i, channel: 0, slots: slots, buffer: .output)
                if let foldedFrom { program.append(.send(to: foldedFrom, .all(.output, layout))) }
            }
            return program
        }
    }

    /// Bruck: `⌈log₂ n⌉` steps for any rank count. At step `t` rank `r` holds blocks
    /// `r, r+1, …, r+2^t−1` (mod n); it sends them to `r − 2^t` and receives the next `2^t` (fewer
    /// on the last step) from `r + 2^t`. Blocks land at their final places, so no rotation at the end.
    public static func bruck(_ spec: CollectiveSpec, algorithm: String = "bruck") -> Schedule {
        let n = spec.ranks
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout) { r in
            var program = RankProgram()
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, chunk: r)))
            var have = 1
            while have < n {
                let count = min(have, n - have)
                let sendBlocks = (0..<count).map { (r + $0) % n }
                let recvBlocks = (0..<count).map { (r + have + $0) % n }
                program.append(.send(to: (r - have + n) % n, BufferSlice(.output, ChunkList(chunks: sendBlocks))))
                program.append(.recv(from: (r + have) % n, into: BufferSlice(.output, ChunkList(chunks: recvBlocks))))
                have += count
            }
            return program
        }
    }

    /// Direct: every rank sends its block to every other rank at once (one step).
    public static func direct(_ spec: CollectiveSpec, algorithm: String = "direct") -> Schedule {
        let n = spec.ranks
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout) { r in
            var program = RankProgram()
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, chunk: r)))
            for s in 1..<max(n, 1) { program.append(.send(to: (r + s) % n, .all(.input, layout))) }
            for s in 1..<max(n, 1) {
                let q = (r - s + n) % n
                program.append(.recv(from: q, into: BufferSlice(.output, chunk: q)))
            }
            return program
        }
    }

    /// Dimension by dimension on a torus: gather along the last dimension's rings, then the one
    /// before on the gathered lines, and so on; every message crosses one torus link.
    public static func torusDimensions(_ spec: CollectiveSpec, torus: TorusPattern, algorithm: String = "torus-dimensions") -> Schedule {
        let n = spec.ranks
        precondition(torus.count == n, "the torus must hold every rank")
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout) { r in
            var program = RankProgram()
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, chunk: r)))
            for d in torus.dimensions.indices.reversed() {
                let ring = RingPattern(order: torus.line(through: r, dimension: d), worldSize: n)
                let group = { (g: Int) in TorusGroups.chunks(torus, rank: r, dimension: d, position: g) }
                Phases.ringAllGather(&program, ring: ring, rank: r, channel: 0,
                                     own: BufferSlice(.output, group(ring.position[r])), slot: { BufferSlice(.output, group($0)) })
            }
            return program
        }
    }

    /// Hierarchical: gather across instances between ranks of the same local index (each rank
    /// collects the blocks of its counterparts), then inside each instance (each local rank
    /// contributes the `m` blocks it collected).
    public static func hierarchical(_ spec: CollectiveSpec, groupSize g: Int, groupRing: [Int]? = nil, algorithm: String = "hierarchical") -> Schedule {
        let n = spec.ranks
        precondition(g >= 1 && n % g == 0, "the group size must divide the rank count")
        let m = n / g
        let localOrder = groupRing ?? Array(0..<g)
        let layout = ChunkLayout.standard(.allGather, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .allGather, ranks: n, layout: layout) { r in
            let instance = r / g, local = r % g
            let intra = RingPattern(order: localOrder.map { instance * g + $0 }, worldSize: n)
            let inter = RingPattern(order: (0..<m).map { $0 * g + local }, worldSize: n)
            var program = RankProgram()
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.output, chunk: r)))
            Phases.ringAllGather(&program, ring: inter, rank: r, channel: 0,
                                 own: BufferSlice(.output, chunk: r), slot: { BufferSlice(.output, chunk: inter.order[$0]) })
            let column = { (p: Int) in BufferSlice(.output, ChunkList(chunks: (0..<m).map { $0 * g + localOrder[p] })) }
            Phases.ringAllGather(&program, ring: intra, rank: r, channel: 0, own: column(intra.position[r]), slot: column)
            return program
        }
    }
}
