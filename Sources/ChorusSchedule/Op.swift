import ChorusCore

/// A list of chunks of one buffer, as contiguous runs, in message order.
///
/// Almost every op touches one run, so the first run is stored inline and the array of further
/// runs is `nil` (no allocation) in the common case: a 1,024-rank ring all-reduce is two
/// million ops.
public struct ChunkList: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline var first: Range<Int32>
    @usableFromInline var rest: [Range<Int32>]?

    /// One run of chunks.
    @inlinable
    public init(_ range: Range<Int>) {
        first = Int32(range.lowerBound)..<Int32(range.upperBound)
        rest = nil
    }

    /// One run (no allocation).
    @inlinable
    init(first: Range<Int32>) {
        self.first = first
        rest = nil
    }

    /// A single chunk.
    @inlinable
    public init(chunk: Int) { self.init(chunk..<(chunk + 1)) }

    /// Several runs, concatenated in order. Consecutive chunks merge into one run.
    public init(runs: [Range<Int>]) {
        var merged: [Range<Int32>] = []
        for r in runs where !r.isEmpty {
            let r32 = Int32(r.lowerBound)..<Int32(r.upperBound)
            if let last = merged.last, last.upperBound == r32.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<r32.upperBound
            } else {
                merged.append(r32)
            }
        }
        first = merged.first ?? 0..<0
        rest = merged.count > 1 ? Array(merged.dropFirst()) : nil
    }

    /// Chunks in list order (a run list of single chunks).
    public init(chunks: [Int]) {
        self.init(runs: chunks.map { $0..<($0 + 1) })
    }

    /// The runs, in order.
    public var runs: [Range<Int>] {
        var all = [Range(uncheckedBounds: (Int(first.lowerBound), Int(first.upperBound)))]
        if let rest { all += rest.map { Int($0.lowerBound)..<Int($0.upperBound) } }
        return all.filter { !$0.isEmpty }
    }

    /// Calls `body` with every chunk, in message order.
    @inlinable
    public func forEach(_ body: (Int) throws -> Void) rethrows {
        for c in first { try body(Int(c)) }
        if let rest { for r in rest { for c in r { try body(Int(c)) } } }
    }

    /// Every chunk, in message order.
    public var chunks: [Int] {
        var all: [Int] = []
        forEach { all.append($0) }
        return all
    }

    /// The number of chunks.
    public var count: Int { first.count + (rest?.reduce(0) { $0 + $1.count } ?? 0) }

    public var isEmpty: Bool { count == 0 }

    public var description: String {
        runs.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ",")
    }
}

/// Chunks of one buffer.
public struct BufferSlice: Hashable, Sendable, CustomStringConvertible {
    public var buffer: BufferKind
    public var chunks: ChunkList

    @inlinable
    public init(_ buffer: BufferKind, _ chunks: ChunkList) {
        self.buffer = buffer
        self.chunks = chunks
    }

    @inlinable
    public init(_ buffer: BufferKind, chunk: Int) { self.init(buffer, ChunkList(chunk: chunk)) }

    @inlinable
    public init(_ buffer: BufferKind, _ range: Range<Int>) { self.init(buffer, ChunkList(range)) }

    public var description: String { "\(buffer) chunk\(chunks.count == 1 ? "" : "s") \(chunks)" }
}

/// One step of a rank's program.
///
/// ```
/// send(to: p, from: slice)                  the slice's bytes go to rank p
/// recv(from: p, into: slice)                 received bytes overwrite the slice
/// recv(from: p, into: slice, reducing: o)    slice = o ⊕ received (o may be the slice itself)
/// copy(from: a, to: b)                       b = a
/// reduce(from: a, into: b)                   b = b ⊕ a
/// ```
/// A message is the concatenation of its chunks in list order; a send and the receive it matches
/// must list chunks of the same sizes (the same positions within their blocks).
public struct Op: Hashable, Sendable {
    public enum Kind: UInt8, Hashable, Sendable, BitwiseCopyable {
        case send, recv, copy, reduce
    }

    public var kind: Kind
    /// The other rank of a send or receive; `-1` for local ops.
    public var peer: Int32
    /// The schedule channel (a send and its receive share one).
    public var channel: Int32
    /// What a send sends; what a copy or reduce reads; a reducing receive's other operand.
    public var source: BufferSlice?
    /// What a receive, copy or reduce writes.
    public var destination: BufferSlice?
    /// Whether a receive combines with `source` (or its destination) rather than overwriting.
    public var reducing: Bool
    /// Earlier ops of this rank this op must wait for, beyond those its data and channel order
    /// imply (indices into the program). Stored as an optional so that the common op, with
    /// none, copies without reference counting.
    public var after: [Int32] {
        get { explicitAfter ?? [] }
        set { explicitAfter = newValue.isEmpty ? nil : newValue }
    }
    @usableFromInline var explicitAfter: [Int32]?

    public init(kind: Kind, peer: Int32, channel: Int32, source: BufferSlice?, destination: BufferSlice?, reducing: Bool, after: [Int32] = []) {
        self.kind = kind
        self.peer = peer
        self.channel = channel
        self.source = source
        self.destination = destination
        self.reducing = reducing
        self.explicitAfter = after.isEmpty ? nil : after
    }

    @inlinable
    public static func send(to peer: Int, _ source: BufferSlice, channel: Int = 0) -> Op {
        Op(kind: .send, peer: Int32(peer), channel: Int32(channel), source: source, destination: nil, reducing: false)
    }

    /// Receive into `destination`, overwriting it.
    @inlinable
    public static func recv(from peer: Int, into destination: BufferSlice, channel: Int = 0) -> Op {
        Op(kind: .recv, peer: Int32(peer), channel: Int32(channel), source: nil, destination: destination, reducing: false)
    }

    /// Receive and reduce: `destination = operand ⊕ received`; `operand` defaults to `destination`.
    @inlinable
    public static func recvReduce(from peer: Int, into destination: BufferSlice, with operand: BufferSlice? = nil, channel: Int = 0) -> Op {
        Op(kind: .recv, peer: Int32(peer), channel: Int32(channel), source: operand, destination: destination, reducing: true)
    }

    @inlinable
    public static func copy(from source: BufferSlice, to destination: BufferSlice) -> Op {
        Op(kind: .copy, peer: -1, channel: 0, source: source, destination: destination, reducing: false)
    }

    /// `destination = destination ⊕ source`.
    @inlinable
    public static func reduce(from source: BufferSlice, into destination: BufferSlice) -> Op {
        Op(kind: .reduce, peer: -1, channel: 0, source: source, destination: destination, reducing: true)
    }

    /// The same op with extra explicit dependencies.
    public func after(_ ops: [Int]) -> Op {
        var copy = self
        copy.after = ops.map(Int32.init)
        return copy
    }

    /// The op without its arrays: what the engines' hot loops need, copied without reference
    /// counting. `oneRunEach` says the first runs are the whole slices and there is no `after`.
    @usableFromInline
    struct Shape {
        var kind: Kind
        var reducing: Bool
        var oneRunEach: Bool
        var sourceBuffer: BufferKind?
        var destinationBuffer: BufferKind?
        var sourceFirst: Range<Int32> = 0..<0
        var destinationFirst: Range<Int32> = 0..<0

        /// A send's, copy's or reduce's source; a reducing receive's operand (`nil` if none).
        @inline(__always) var read: (BufferKind, Range<Int32>)? {
            switch kind {
            case .send, .copy, .reduce: return sourceBuffer.map { ($0, sourceFirst) }
            case .recv:
                guard reducing else { return nil }
                if let b = sourceBuffer { return (b, sourceFirst) }
                return destinationBuffer.map { ($0, destinationFirst) }
            }
        }

        /// The source as a slice, when `oneRunEach`.
        @inline(__always) var sourceSlice: BufferSlice? {
            sourceBuffer.map { BufferSlice($0, ChunkList(first: sourceFirst)) }
        }

        /// The destination as a slice, when `oneRunEach`.
        @inline(__always) var destinationSlice: BufferSlice? {
            destinationBuffer.map { BufferSlice($0, ChunkList(first: destinationFirst)) }
        }

        /// What a receive, copy or reduce writes.
        @inline(__always) var written: (BufferKind, Range<Int32>)? {
            kind == .send ? nil : destinationBuffer.map { ($0, destinationFirst) }
        }
    }

    @inline(__always) var shape: Shape {
        var shape = Shape(kind: kind, reducing: reducing,
                          oneRunEach: source?.chunks.rest == nil && destination?.chunks.rest == nil && explicitAfter == nil,
                          sourceBuffer: source?.buffer, destinationBuffer: destination?.buffer)
        if let first = source?.chunks.first { shape.sourceFirst = first }
        if let first = destination?.chunks.first { shape.destinationFirst = first }
        return shape
    }

    /// The slice a reducing op reads besides the received or source data.
    public var reduceOperand: BufferSlice? {
        switch kind {
        case .recv: return reducing ? (source ?? destination) : nil
        case .reduce: return destination
        default: return nil
        }
    }

    /// Calls `body` with each slice this op reads (no allocation: this runs once per op of a
    /// two-million-op schedule).
    @inlinable
    public func forEachRead(_ body: (BufferSlice) throws -> Void) rethrows {
        switch kind {
        case .send: if let source { try body(source) }
        case .recv: if reducing { try body(source ?? destination!) }
        case .copy: if let source { try body(source) }
        case .reduce:
            try body(source!)
            try body(destination!)
        }
    }

    /// Slices this op reads.
    public var reads: [BufferSlice] {
        switch kind {
        case .send: return source.map { [$0] } ?? []
        case .recv: return reducing ? [source ?? destination!] : []
        case .copy: return source.map { [$0] } ?? []
        case .reduce: return [source!, destination!]
        }
    }

    /// The slice this op writes.
    public var writes: BufferSlice? { kind == .send ? nil : destination }

    /// A short description for messages: `send to rank 2 (output chunk 5)`.
    public var summary: String {
        switch kind {
        case .send:
            return "send to rank \(peer)\(channel > 0 ? " on channel \(channel)" : "") (\(source!))"
        case .recv:
            let how = reducing ? (source.map { ", reducing with \($0)" } ?? ", reducing") : ""
            return "recv from rank \(peer)\(channel > 0 ? " on channel \(channel)" : "") (into \(destination!)\(how))"
        case .copy:
            return "copy \(source!) to \(destination!)"
        case .reduce:
            return "reduce \(source!) into \(destination!)"
        }
    }
}

/// One rank's ordered ops.
public struct RankProgram: Hashable, Sendable {
    public var ops: [Op]

    public init(_ ops: [Op] = []) { self.ops = ops }

    /// An empty program with room for `capacity` ops.
    public init(reservingCapacity capacity: Int) {
        ops = []
        ops.reserveCapacity(capacity)
    }

    @inlinable public var count: Int { ops.count }

    /// Appends an op and returns its index.
    @discardableResult
    public mutating func append(_ op: Op) -> Int {
        ops.append(op)
        return ops.count - 1
    }
}
