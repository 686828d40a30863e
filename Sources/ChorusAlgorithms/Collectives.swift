import ChorusCore
import ChorusSchedule

/// Namespaces for the generators, one per collective.
public enum AllReduce {}
public enum AllGather {}
public enum ReduceScatter {}
public enum Broadcast {}
public enum Reduce {}

extension ChunkList {
    /// Chunks `start ..< start + count`.
    static func run(_ start: Int, _ count: Int) -> ChunkList { ChunkList(start..<(start + count)) }

    /// The chunks of several blocks, each contributing chunks `offset ..< offset + count` of the block.
    static func blocks(_ blocks: [Int], chunksPerBlock k: Int, offset: Int = 0, count: Int? = nil) -> ChunkList {
        let c = count ?? k
        return ChunkList(runs: blocks.map { ($0 * k + offset)..<($0 * k + offset + c) })
    }
}

extension BufferSlice {
    /// Every chunk of a buffer.
    static func all(_ buffer: BufferKind, _ layout: ChunkLayout) -> BufferSlice {
        BufferSlice(buffer, 0..<layout.chunkCount(buffer))
    }
}
