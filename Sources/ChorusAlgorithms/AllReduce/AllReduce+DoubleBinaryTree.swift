import ChorusCore
import ChorusSchedule

extension AllReduce {
    /// Double binary tree: each half of the buffer is reduced up one tree and broadcast back down
    /// it; the two trees (channels 0 and 1) are arranged so a rank that forwards in one is a leaf
    /// in the other (NCCL's tree all-reduce). Depth `O(log n)`; with slicing the halves stream
    /// through the trees, so large messages approach full bandwidth too.
    public static func doubleBinaryTree(_ spec: CollectiveSpec, algorithm: String = "double-binary-tree") -> Schedule {
        let n = spec.ranks
        let trees = [BinaryTree(ranks: n), BinaryTree.complement(ranks: n)]
        let layout = ChunkLayout.standard(.allReduce, ranks: n, chunksPerBlock: 2)
        return Schedule(algorithm: algorithm, collective: .allReduce, ranks: n, layout: layout, channels: 2) { r in
            var program = RankProgram()
            for (t, tree) in trees.enumerated() {
                let half = ChunkList(chunk: t)
                Phases.treeReduce(&program, tree: tree, rank: r, channel: t,
                                  contribution: BufferSlice(.input, half), sum: BufferSlice(.output, half))
                Phases.treeBroadcast(&program, tree: tree, rank: r, channel: t,
                                     source: BufferSlice(.output, half), destination: BufferSlice(.output, half))
            }
            return program
        }
    }
}
