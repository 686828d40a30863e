import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Recursive halving-doubling (Rabenseifner): a recursive-halving reduce-scatter then a
    /// recursive-doubling all-gather over the power-of-two core, `2·log₂ p` steps moving
    /// `S/2, S/4, …` then back up: bandwidth-optimal like the ring with logarithmically many steps.
    ///
    /// Other rank counts fold first: each extra rank sends its whole buffer to a core partner and
    /// gets the result back at the end (two extra steps for them, none for the rest of the core).
    /// - Parameter labels: hypercube labels of the ranks (a torus seen as a hypercube), identity
    ///   by default.
    public static func halvingDoubling(_ spec: CollectiveSpec, labels: [Int]? = nil, algorithm: String = "halving-doubling",
                                       chunksPerGroup c: Int = 1) -> Schedule {
        let n = spec.ranks
        let cube = FoldedHypercube(ranks: n, labels: labels)
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: cube.core * c)
        let slots = (0..<cube.core).map { ChunkList.run($0 * c, c) }
        let everything = BufferSlice.all(.output, layout)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout) { r in
            var program = RankProgram()
            switch cube.role(of: r) {
            case .foldedOut(let partner):
                program.append(.send(to: partner, .all(.input, layout)))
                program.append(.recv(from: partner, into: everything))
            case .core(let i, let foldedFrom):
                if let foldedFrom {
                    program.append(.recvReduce(from: foldedFrom, into: everything, with: .all(.input, layout)))
                }
                Phases.halvingReduceScatter(&program, cube: cube, index: i, channel: 0, slots: slots,
                                            first: foldedFrom == nil ? .input : .output, work: .output,
                                            final: { BufferSlice(.output, slots[$0]) })
                Phases.doublingAllGather(&program, cube: cube, index: i, channel: 0, slots: slots, buffer: .output)
                if let foldedFrom { program.append(.send(to: foldedFrom, everything)) }
            }
            return program
        }
    }
}
