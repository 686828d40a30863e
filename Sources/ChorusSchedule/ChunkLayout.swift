import ChorusCore

/// The three buffers a rank's program may touch.
public enum BufferKind: UInt8, CaseIterable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// The caller's send buffer (NCCL's `sendbuff`). Out of place it is never written.
    case input
    /// The caller's receive buffer (`recvbuff`).
    case output
    /// Working space the schedule declares (`scratchBlocks`), owned by the library.
    case scratch

    public var description: String {
        switch self {
        case .input: return "input"
        case .output: return "output"
        case .scratch: return "scratch"
        }
    }

    public init?(name: String) {
        guard let b = BufferKind.allCases.first(where: { $0.description == name }) else { return nil }
        self = b
    }
}

/// How buffers divide into chunks.
///
/// Every buffer is a whole number of **blocks**, each of `m` elements (`m` is the collective's
/// per-block count: the all-reduce count, the all-gather send count, the reduce-scatter receive
/// count). Every block divides into the same `chunksPerBlock` chunks, as evenly as integer
/// division allows: chunk `j` of a block covers elements `⌊j·m/k⌋ ..< ⌊(j+1)·m/k⌋`. So two chunks
/// have the same size for every `m` exactly when they sit at the same position in their blocks,
/// which is what lets the verifier check message sizes once for all message sizes.
///
/// | collective | input blocks | output blocks |
/// |---|---|---|
/// | all-reduce, broadcast, reduce | 1 | 1 |
/// | all-gather | 1 | n (block r is rank r's contribution) |
/// | reduce-scatter | n (block r reduces onto rank r) | 1 |
public struct ChunkLayout: Hashable, Sendable {
    public var chunksPerBlock: Int
    public var inputBlocks: Int
    public var outputBlocks: Int
    public var scratchBlocks: Int

    public init(chunksPerBlock: Int, inputBlocks: Int, outputBlocks: Int, scratchBlocks: Int = 0) {
        self.chunksPerBlock = chunksPerBlock
        self.inputBlocks = inputBlocks
        self.outputBlocks = outputBlocks
        self.scratchBlocks = scratchBlocks
    }

    /// The standard layout of `collective` over `ranks` ranks with `chunksPerBlock` chunks per block.
    public static func standard(_ collective: Collective, ranks: Int, chunksPerBlock: Int, scratchBlocks: Int = 0) -> ChunkLayout {
        switch collective {
        case .allReduce, .broadcast, .reduce:
            return ChunkLayout(chunksPerBlock: chunksPerBlock, inputBlocks: 1, outputBlocks: 1, scratchBlocks: scratchBlocks)
        case .allGather:
            return ChunkLayout(chunksPerBlock: chunksPerBlock, inputBlocks: 1, outputBlocks: ranks, scratchBlocks: scratchBlocks)
        case .reduceScatter:
            return ChunkLayout(chunksPerBlock: chunksPerBlock, inputBlocks: ranks, outputBlocks: 1, scratchBlocks: scratchBlocks)
        }
    }

    public func blocks(_ buffer: BufferKind) -> Int {
        switch buffer {
        case .input: return inputBlocks
        case .output: return outputBlocks
        case .scratch: return scratchBlocks
        }
    }

    /// Chunks in a buffer.
    @inlinable
    public func chunkCount(_ buffer: BufferKind) -> Int {
        switch buffer {
        case .input: return inputBlocks * chunksPerBlock
        case .output: return outputBlocks * chunksPerBlock
        case .scratch: return scratchBlocks * chunksPerBlock
        }
    }

    /// Elements in a buffer whose blocks hold `blockElements` elements each.
    public func elementCount(_ buffer: BufferKind, blockElements m: Int) -> Int { blocks(buffer) * m }

    /// The element range of chunk `c`.
    @inlinable
    public func elements(ofChunk c: Int, blockElements m: Int) -> Range<Int> {
        let k = chunksPerBlock
        let block = c / k, j = c % k
        return (block * m + j * m / k)..<(block * m + (j + 1) * m / k)
    }

    /// The element range of piece `t` of `pieces` of chunk `c` (channel copies and slices).
    @inlinable
    public func elements(ofChunk c: Int, piece t: Int, of pieces: Int, blockElements m: Int) -> Range<Int> {
        let whole = elements(ofChunk: c, blockElements: m)
        let n = whole.count
        return (whole.lowerBound + t * n / pieces)..<(whole.lowerBound + (t + 1) * n / pieces)
    }

    /// The largest chunk, in elements.
    public func largestChunk(blockElements m: Int) -> Int { (m + chunksPerBlock - 1) / chunksPerBlock }
}

extension ChunkLayout {
    /// Elements in piece `t` of `pieces` of every chunk in `chunks`, summed, without visiting
    /// chunks one by one: O(runs), where a loop over chunks is O(chunks) (a halving step of a
    /// 65,536-rank schedule sends 32,768 chunks in one run).
    ///
    /// Within a block, chunk `j` holds `⌊(j+1)m/k⌋ − ⌊jm/k⌋` elements, which is `⌊m/k⌋` or one
    /// more, so a run of chunks is counted by how many of each size it holds, and a piece of a
    /// chunk depends only on the chunk's size.
    public func elementCount(of chunks: ChunkList, piece t: Int, of pieces: Int, blockElements m: Int) -> Int {
        let k = chunksPerBlock
        let small = m / k
        @inline(__always) func piece(_ size: Int) -> Int { pieces == 1 ? size : (t + 1) * size / pieces - t * size / pieces }
        /// Elements of piece `t` over chunks `j0 ..< j1` of one block.
        @inline(__always) func within(_ j0: Int, _ j1: Int) -> Int {
            guard j1 > j0 else { return 0 }
            let total = j1 * m / k - j0 * m / k
            if pieces == 1 { return total }
            let count = j1 - j0
            let big = total - count * small
            return big * piece(small + 1) + (count - big) * piece(small)
        }
        var sum = 0
        func run(_ r: Range<Int>) {
            guard !r.isEmpty else { return }
            let firstBlock = r.lowerBound / k, lastBlock = (r.upperBound - 1) / k
            if firstBlock == lastBlock {
                sum += within(r.lowerBound % k, r.upperBound - firstBlock * k)
                return
            }
            sum += within(r.lowerBound % k, k)
            sum += (lastBlock - firstBlock - 1) * within(0, k)
            sum += within(0, r.upperBound - lastBlock * k)
        }
        run(Int(chunks.first.lowerBound)..<Int(chunks.first.upperBound))
        if let rest = chunks.rest { for r in rest { run(Int(r.lowerBound)..<Int(r.upperBound)) } }
        return sum
    }
}
