import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Recursive doubling: `log₂ p` steps in which partners at distance `1, 2, 4, …` swap their
    /// whole buffers and add. Latency-optimal for small messages (few steps, no splitting), at
    /// `log₂ p` times the ring's bytes.
    ///
    /// A rank's send of step `t` and its receive of step `t` run at once, so the receive must not
    /// land where the send reads (in place, input and output are one buffer): steps receive into
    /// scratch and output alternately, starting with scratch, and an odd number of steps ends
    /// with a copy into the output. Both partners compute `a ⊕ b` and `b ⊕ a`, which are equal
    /// bit for bit, so every rank ends with the same result. Other rank counts fold as in
    /// halving-doubling (the fold lands in scratch too).
    public static func recursiveDoubling(_ spec: CollectiveSpec, algorithm: String = "recursive-doubling") -> Schedule {
        let n = spec.ranks
        let cube = FoldedHypercube(ranks: n)
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: 1, scratchBlocks: 1)
        let steps = cube.dimensions
        // Step t writes scratch when t is even (step 0 reads the input, which may be the output).
        @Sendable func target(_ t: Int) -> BufferKind { t % 2 == 0 ? .scratch : .output }
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout) { r in
            var program = RankProgram()
            switch cube.role(of: r) {
            case .foldedOut(let partner):
                program.append(.send(to: partner, .all(.input, layout)))
                program.append(.recv(from: partner, into: .all(.output, layout)))
            case .core(let i, let foldedFrom):
                var current = BufferKind.input
                if let foldedFrom {
                    // The fold lands in output, which step 0 (writing scratch) does not touch.
                    program.append(.recvReduce(from: foldedFrom, into: .all(.output, layout), with: .all(.input, layout)))
                    current = .output
                }
                for t in 0..<steps {
                    let partner = cube.rank(ofCore: i ^ (1 << t))
                    // Step t's target must differ from what it sends: after a fold, current is the
                    // output at step 0, so step 0 writes scratch; the alternation keeps them apart.
                    program.append(.send(to: partner, .all(current, layout)))
                    program.append(.recvReduce(from: partner, into: .all(target(t), layout), with: .all(current, layout)))
                    current = target(t)
                }
                if current != .output { program.append(.copy(from: .all(current, layout), to: .all(.output, layout))) }
                if let foldedFrom { program.append(.send(to: foldedFrom, .all(.output, layout))) }
            }
            return program
        }
    }
}
