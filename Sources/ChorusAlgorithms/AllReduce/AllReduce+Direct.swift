import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Direct (one-shot): every rank sends its whole buffer to every other rank at once, receives
    /// theirs into scratch, and reduces all `n` contributions locally in rank order. One step of
    /// latency, `(n−1)` times the ring's bytes per rank: for small messages on well-connected
    /// ranks (NCCL's and Neuron's one-shot/mesh all-reduce).
    ///
    /// Every rank adds the contributions in the same order `((x₀ ⊕ x₁) ⊕ x₂) …`, so all ranks end
    /// with identical bits, and they equal what the collective's definition computes. A rank's
    /// own contribution is staged in its scratch slot first: in place, the output that receives
    /// `x₀` is the input that holds it.
    public static func direct(_ spec: CollectiveSpec, algorithm: String = "direct") -> Schedule {
        let n = spec.ranks
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout) { r in
            var program = RankProgram()
            for s in 1..<max(n, 1) { program.append(.send(to: (r + s) % n, .all(.input, layout))) }
            for s in 1..<max(n, 1) {
                let q = (r - s + n) % n
                program.append(.recv(from: q, into: BufferSlice(.scratch, chunk: q)))
            }
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.scratch, chunk: r)))
            program.append(.copy(from: BufferSlice(.scratch, chunk: 0), to: .all(.output, layout)))
            for q in 1..<max(n, 1) { program.append(.reduce(from: BufferSlice(.scratch, chunk: q), into: .all(.output, layout))) }
            return program
        }
    }
}
