import ChorusCore
import ChorusSchedule

extension Broadcast {
    /// Chain (a ring without its last link) from the root: each rank receives from its
    /// predecessor and forwards; with slicing the buffer streams down the chain.
    public static func ring(_ spec: CollectiveSpec, algorithm: String = "ring") -> Schedule {
        let n = spec.ranks, root = spec.root
        let layout = ChunkLayout.standard(.broadcast, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .broadcast, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            let j = (r - root + n) % n
            let output = BufferSlice.all(.output, layout)
            if j == 0 {
                program.append(.copy(from: .all(.input, layout), to: output))
                if n > 1 { program.append(.send(to: (root + 1) % n, .all(.input, layout))) }
            } else {
                program.append(.recv(from: (r - 1 + n) % n, into: output))
                if j < n - 1 { program.append(.send(to: (r + 1) % n, output)) }
            }
            return program
        }
    }

    /// Binary tree from the root (the first tree of the double binary tree, rotated so the root
    /// is the tree's root): `O(log n)` depth; slicing pipelines it.
    public static func binaryTree(_ spec: CollectiveSpec, algorithm: String = "binary-tree") -> Schedule {
        let n = spec.ranks, root = spec.root
        let tree = BinaryTree(ranks: n).rotated(to: root)
        let layout = ChunkLayout.standard(.broadcast, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .broadcast, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            Phases.treeBroadcast(&program, tree: tree, rank: r, channel: 0,
                                 source: r == root ? .all(.input, layout) : .all(.output, layout), destination: .all(.output, layout))
            return program
        }
    }

    /// Direct: the root sends to every rank at once.
    public static func direct(_ spec: CollectiveSpec, algorithm: String = "direct") -> Schedule {
        let n = spec.ranks, root = spec.root
        let layout = ChunkLayout.standard(.broadcast, ranks: n, chunksPerBlock: 1)
        return Schedule(algorithm: algorithm, collective: .broadcast, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            if r == root {
                program.append(.copy(from: .all(.input, layout), to: .all(.output, layout)))
                for s in 1..<max(n, 1) { program.append(.send(to: (root + s) % n, .all(.input, layout))) }
            } else {
                program.append(.recv(from: root, into: .all(.output, layout)))
            }
            return program
        }
    }
}

extension Reduce {
    /// Chain ending at the root: each rank adds its input to what its predecessor sends and
    /// passes it on; partial sums live in scratch (a non-root's output may be absent, as NCCL
    /// allows).
    public static func ring(_ spec: CollectiveSpec, algorithm: String = "ring") -> Schedule {
        let n = spec.ranks, root = spec.root
        let layout = ChunkLayout.standard(.reduce, ranks: n, chunksPerBlock: 1, scratchBlocks: 1)
        return Schedule(algorithm: algorithm, collective: .reduce, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            let j = (r - root - 1 + 2 * n) % n          // position along the chain; the root is last
            let input = BufferSlice.all(.input, layout)
            if n == 1 {
                program.append(.copy(from: input, to: .all(.output, layout)))
            } else if j == 0 {
                program.append(.send(to: (r + 1) % n, input))
            } else if j < n - 1 {
                program.append(.recvReduce(from: (r - 1 + n) % n, into: .all(.scratch, layout), with: input))
                program.append(.send(to: (r + 1) % n, .all(.scratch, layout)))
            } else {
                program.append(.recvReduce(from: (r - 1 + n) % n, into: .all(.output, layout), with: input))
            }
            return program
        }
    }

    /// Binary tree toward the root; children's sums are added in ascending order.
    public static func binaryTree(_ spec: CollectiveSpec, algorithm: String = "binary-tree") -> Schedule {
        let n = spec.ranks, root = spec.root
        let tree = BinaryTree(ranks: n).rotated(to: root)
        let layout = ChunkLayout.standard(.reduce, ranks: n, chunksPerBlock: 1, scratchBlocks: 1)
        return Schedule(algorithm: algorithm, collective: .reduce, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            Phases.treeReduce(&program, tree: tree, rank: r, channel: 0, contribution: .all(.input, layout),
                              sum: r == root ? .all(.output, layout) : .all(.scratch, layout))
            return program
        }
    }

    /// Direct: every rank sends to the root at once; the root adds them in rank order.
    public static func direct(_ spec: CollectiveSpec, algorithm: String = "direct") -> Schedule {
        let n = spec.ranks, root = spec.root
        let layout = ChunkLayout.standard(.reduce, ranks: n, chunksPerBlock: 1, scratchBlocks: n)
        return Schedule(algorithm: algorithm, collective: .reduce, ranks: n, root: root, layout: layout) { r in
            var program = RankProgram()
            if r != root {
                program.append(.send(to: root, .all(.input, layout)))
                return program
            }
            program.append(.copy(from: .all(.input, layout), to: BufferSlice(.scratch, chunk: root)))
            for s in 1..<max(n, 1) {
                let q = (root + s) % n
                program.append(.recv(from: q, into: BufferSlice(.scratch, chunk: q)))
            }
            program.append(.copy(from: BufferSlice(.scratch, chunk: 0), to: .all(.output, layout)))
            for q in 1..<max(n, 1) { program.append(.reduce(from: BufferSlice(.scratch, chunk: q), into: .all(.output, layout))) }
            return program
        }
    }
}
