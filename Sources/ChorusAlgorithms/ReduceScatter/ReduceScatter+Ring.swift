import ChorusCore
import ChorusSchedule

extension ReduceScatter {
    /// Ring reduce-scatter on one or more rings side by side: `n−1` steps, after which every rank
    /// holds its own block reduced over all ranks. Partial sums
    /// alternate between two scratch blocks (the step that receives into one waits only for the
    /// send that emptied it two steps before), so scratch is two blocks, not `n`.
    public static func ring(_ spec: CollectiveSpec, rings: [RingPattern], algorithm: String = "ring", chunksPerGroup c: Int = 1) -> Schedule {
        let n = spec.ranks
        let k = rings.count * c
        let layout = ChunkLayout.standard(.reduceScatter, ranks: n, chunksPerBlock: k, scratchBlocks: 2)
        return Schedule(algorithm: algorithm, collective: .reduceScatter, ranks: n, layout: layout, channels: rings.count) { r in
            var program = RankProgram()
            for (i, ring) in rings.enumerated() {
                let part = { (block: Int) in ChunkList.blocks([block], chunksPerBlock: k, offset: i * c, count: c) }
                Phases.ringReduceScatter(&program, ring: ring, rank: r, channel: i,
                                         contribution: { BufferSlice(.input, part(ring.order[$0])) },
                                         partial: { _, s in BufferSlice(.scratch, part(s % 2)) },
                                         final: { _ in BufferSlice(.output, part(0)) })
            }
            return program
        }
    }

    /// Recursive halving (the reduce-scatter half of Rabenseifner): `log₂ p` steps, each sending
    /// half of the current window of blocks to the partner and adding in its half. Extra ranks
    /// fold in; a core rank that stands for two ranks receives both blocks and forwards one.
    public static func halvingDoubling(_ spec: CollectiveSpec, algorithm: String = "halving-doubling") -> Schedule {
        halvingDoublingLabelled(spec, labels: nil, algorithm: algorithm)
    }

    /// Recursive halving with ranks relabelled (`labels[rank]` is its hypercube label), as on a
    /// torus seen as a hypercube.
    public static func halvingDoublingLabelled(_ spec: CollectiveSpec, labels: [Int]?, algorithm: String = "torus-hypercube") -> Schedule {
        let n = spec.ranks
        let cube = FoldedHypercube(ranks: n, labels: labels)
        let layout = ChunkLayout.standard(.reduceScatter, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        let slots = (0..<cube.core).map { ChunkList(chunks: cube.members(ofCore: $0)) }
        return Schedule(algorithm: algorithm, collective: .reduceScatter, ranks: n, layout: layout) { r in
            var program = RankProgram()
            let own = BufferSlice(.output, chunk: 0)
            switch cube.role(of: r) {
            case .foldedOut(let partner):
                program.append(.send(to: partner, .all(.input, layout)))
                program.append(.recv(from: partner, into: own))
            case .core(let i, let foldedFrom):
                if let foldedFrom {
                    program.append(.recvReduce(from: foldedFrom, into: .all(.scratch, layout), with: .all(.input, layout)))
                }
                let twoBlocks = foldedFrom != nil
                Phases.halvingReduceScatter(&program, cube: cube, index: i, channel: 0, slots: slots,
                                            first: twoBlocks ? .scratch : .input, work: .scratch,
                                            final: { twoBlocks ? BufferSlice(.scratch, slots[$0]) : own })
                if let foldedFrom {
                    program.append(.copy(from: BufferSlice(.scratch, chunk: r), to: own))
                    program.append(.send(to: foldedFrom, BufferSlice(.scratch, chunk: foldedFrom)))
                }
            }
            return program
        }
    }

    /// Direct: every rank sends block `q` of its input to rank `q` at once, then adds the `n`
    /// contributions to its own block in rank order (the own block staged in scratch first, since
    /// in place it is the output).
    public static func direct(_ spec: CollectiveSpec, algorithm: String = "direct") -> Schedule {
        let n = spec.ranks
        let layout = ChunkLayout.standard(.reduceScatter, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        return Schedule(algorithm: algorithm, collective: .reduceScatter, ranks: n, layout: layout) { r in
            var program = RankProgram()
            for s in 1..<max(n, 1) {
                let q = (r + s) % n
                program.append(.send(to: q, BufferSlice(.input, chunk: q)))
            }
            program.append(.copy(from: BufferSlice(.input, chunk: r), to: BufferSlice(.scratch, chunk: r)))
            for s in 1..<max(n, 1) {
                let q = (r - s + n) % n
                program.append(.recv(from: q, into: BufferSlice(.scratch, chunk: q)))
            }
            let own = BufferSlice(.output, chunk: 0)
            program.append(.copy(from: BufferSlice(.scratch, chunk: 0), to: own))
            for q in 1..<max(n, 1) { program.append(.reduce(from: BufferSlice(.scratch, chunk: q), into: own)) }
            return program
        }
    }

    /// Dimension by dimension on a torus: reduce-scatter along dimension 0's rings, then
    /// dimension 1's on the blocks that remain, and so on; partial sums live in scratch.
    public static func torusDimensions(_ spec: CollectiveSpec, torus: TorusPattern, algorithm: String = "torus-dimensions") -> Schedule {
        let n = spec.ranks
        precondition(torus.count == n, "the torus must hold every rank")
        let layout = ChunkLayout.standard(.reduceScatter, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        let last = torus.dimensions.count - 1
        return Schedule(algorithm: algorithm, collective: .reduceScatter, ranks: n, layout: layout) { r in
            var program = RankProgram()
            for d in torus.dimensions.indices {
                let ring = RingPattern(order: torus.line(through: r, dimension: d), worldSize: n)
                let group = { (g: Int) in TorusGroups.chunks(torus, rank: r, dimension: d, position: g) }
                Phases.ringReduceScatter(&program, ring: ring, rank: r, channel: 0,
                                         contribution: { BufferSlice(d == 0 ? .input : .scratch, group($0)) },
                                         partial: { g, _ in BufferSlice(.scratch, group(g)) },
                                         final: { d == last ? BufferSlice(.output, chunk: 0) : BufferSlice(.scratch, group($0)) })
            }
            return program
        }
    }

    /// Hierarchical: reduce-scatter inside each instance onto the local rank that will own each
    /// column of blocks, then across instances between ranks of the same local index.
    public static func hierarchical(_ spec: CollectiveSpec, groupSize g: Int, groupRing: [Int]? = nil, algorithm: String = "hierarchical") -> Schedule {
        let n = spec.ranks
        precondition(g >= 1 && n % g == 0, "the group size must divide the rank count")
        let m = n / g
        let localOrder = groupRing ?? Array(0..<g)
        let layout = ChunkLayout.standard(.reduceScatter, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        return Schedule(algorithm: algorithm, collective: .reduceScatter, ranks: n, layout: layout) { r in
            let instance = r / g, local = r % g
            let intra = RingPattern(order: localOrder.map { instance * g + $0 }, worldSize: n)
            let inter = RingPattern(order: (0..<m).map { $0 * g + local }, worldSize: n)
            let own = BufferSlice(.output, chunk: 0)
            // Local position p reduces the column of blocks {i·g + localOrder[p]}, one per instance.
            var program = RankProgram()
            let column = { (p: Int) in ChunkList(chunks: (0..<m).map { $0 * g + localOrder[p] }) }
            Phases.ringReduceScatter(&program, ring: intra, rank: r, channel: 0,
                                     contribution: { BufferSlice(.input, column($0)) },
                                     partial: { p, _ in BufferSlice(.scratch, column(p)) },
                                     final: { m == 1 ? own : BufferSlice(.scratch, column($0)) })
            if m > 1 {
                Phases.ringReduceScatter(&program, ring: inter, rank: r, channel: 0,
                                         contribution: { BufferSlice(.scratch, chunk: inter.order[$0]) },
                                         partial: { i, _ in BufferSlice(.scratch, chunk: inter.order[i]) },
                                         final: { _ in own })
            }
            return program
        }
    }
}
