import ChorusCore

/// Collectives on Swift arrays. The element type picks the `DataType` (`Float` is f32,
/// `Float16` f16, `BFloat16` bf16, ...).
///
/// Blocking forms work on the arrays in place where they can; `async` forms take arrays and
/// return new ones (their buffers live until the call completes on the progress thread, at the
/// cost of one copy in and one out; the raw-buffer forms avoid it). Typed calls cannot be part
/// of a group, whose calls run later: use the raw-buffer forms there.
extension Communicator {
    private func refuseInGroup(_ what: String) throws(ChorusError) {
        if GroupState.isOpen {
            throw .invalidArgument("\(what) on rank \(rank): array forms cannot be part of a group (the array may move before groupEnd); use the raw-buffer forms")
        }
    }

    // MARK: blocking

    /// Replaces `buffer` on every rank with the reduction of all ranks' buffers.
    public func allReduce<T: ChorusElement>(_ buffer: inout [T], op: ReduceOp = .sum) throws(ChorusError) {
        try refuseInGroup("all-reduce")
        let count = buffer.count
        try withMutableBytes(&buffer) { (p: UnsafeMutableRawPointer?) throws(ChorusError) in
            try allReduce(p, p, count: count, dataType: T.dataType, op: op)
        }
    }

    /// The reduction of all ranks' `input`, out of place.
    public func allReduce<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum) throws(ChorusError) -> [T] {
        var output = input
        try allReduce(&output, op: op)
        return output
    }

    /// Every rank's `input`, concatenated in rank order (`size × input.count` elements).
    public func allGather<T: ChorusElement>(_ input: [T]) throws(ChorusError) -> [T] {
        try refuseInGroup("all-gather")
        var output = [T](unsafeUninitializedCapacity: input.count * size) { _, n in n = input.count * size }
        try withBytes(input) { (i: UnsafeRawBufferPointer) throws(ChorusError) in
            try withMutableBytes(&output) { (o: UnsafeMutableRawPointer?) throws(ChorusError) in
                try allGather(i.baseAddress, o, count: input.count, dataType: T.dataType)
            }
        }
        return output
    }

    /// Block `rank` of the reduction of all ranks' `input`; `input.count` must be a multiple of `size`.
    public func reduceScatter<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum) throws(ChorusError) -> [T] {
        try refuseInGroup("reduce-scatter")
        guard input.count % size == 0 else {
            throw .invalidArgument("reduce-scatter on rank \(rank): \(input.count) elements do not split evenly over \(size) ranks")
        }
        let count = input.count / size
        var output = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        try withBytes(input) { (i: UnsafeRawBufferPointer) throws(ChorusError) in
            try withMutableBytes(&output) { (o: UnsafeMutableRawPointer?) throws(ChorusError) in
                try reduceScatter(i.baseAddress, o, count: count, dataType: T.dataType, op: op)
            }
        }
        return output
    }

    /// Replaces `buffer` on every rank with the root's; every rank passes the same count.
    public func broadcast<T: ChorusElement>(_ buffer: inout [T], root: Int) throws(ChorusError) {
        try refuseInGroup("broadcast")
        let count = buffer.count
        try withMutableBytes(&buffer) { (p: UnsafeMutableRawPointer?) throws(ChorusError) in
            try broadcast(p, p, count: count, dataType: T.dataType, root: root)
        }
    }

    /// The reduction of all ranks' `input` on `root`; `nil` on the other ranks.
    public func reduce<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum, root: Int) throws(ChorusError) -> [T]? {
        try refuseInGroup("reduce")
        var output = input
        let count = input.count
        try withBytes(input) { (i: UnsafeRawBufferPointer) throws(ChorusError) in
            try withMutableBytes(&output) { (o: UnsafeMutableRawPointer?) throws(ChorusError) in
                try reduce(i.baseAddress, o, count: count, dataType: T.dataType, op: op, root: root)
            }
        }
        return rank == root ? output : nil
    }

    public func send<T: ChorusElement>(_ values: [T], to peer: Int) throws(ChorusError) {
        try refuseInGroup("send")
        try withBytes(values) { (v: UnsafeRawBufferPointer) throws(ChorusError) in
            try send(v.baseAddress, count: values.count, dataType: T.dataType, to: peer)
        }
    }

    /// Receives `count` elements from `peer`, which sends the same count and type.
    public func receive<T: ChorusElement>(_ type: T.Type = T.self, count: Int, from peer: Int) throws(ChorusError) -> [T] {
        try refuseInGroup("receive")
        guard count >= 0 else { throw .invalidArgument("receive on rank \(rank): count is \(count); it must be zero or more") }
        var output = [T](unsafeUninitializedCapacity: count) { p, n in
            UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
            n = count
        }
        try withMutableBytes(&output) { (o: UnsafeMutableRawPointer?) throws(ChorusError) in
            try receive(o, count: count, dataType: T.dataType, from: peer)
        }
        return output
    }

    // MARK: async

    public func allReduce<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum) async throws(ChorusError) -> [T] {
        let b = AsyncBuffers(input: input, outputCount: input.count, inPlace: true)
        try await performAsync(Call(kind: .collective(.allReduce), count: input.count, dataType: T.dataType, op: op, root: 0,
                                    input: b.input, output: b.output))
        return b.result
    }

    public func allGather<T: ChorusElement>(_ input: [T]) async throws(ChorusError) -> [T] {
        let b = AsyncBuffers(input: input, outputCount: input.count * size, inPlace: false)
        try await performAsync(Call(kind: .collective(.allGather), count: input.count, dataType: T.dataType, op: .sum, root: 0,
                                    input: b.input, output: b.output))
        return b.result
    }

    public func reduceScatter<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum) async throws(ChorusError) -> [T] {
        guard input.count % size == 0 else {
            throw .invalidArgument("reduce-scatter on rank \(rank): \(input.count) elements do not split evenly over \(size) ranks")
        }
        let b = AsyncBuffers(input: input, outputCount: input.count / size, inPlace: false)
        try await performAsync(Call(kind: .collective(.reduceScatter), count: input.count / size, dataType: T.dataType, op: op,
                                    root: 0, input: b.input, output: b.output))
        return b.result
    }

    /// The root's `values` on every rank (every rank passes an array of the same count).
    public func broadcast<T: ChorusElement>(_ values: [T], root: Int) async throws(ChorusError) -> [T] {
        let b = AsyncBuffers(input: values, outputCount: values.count, inPlace: true)
        try await performAsync(Call(kind: .collective(.broadcast), count: values.count, dataType: T.dataType, op: .sum,
                                    root: root, input: b.input, output: b.output))
        return b.result
    }

    public func reduce<T: ChorusElement>(_ input: [T], op: ReduceOp = .sum, root: Int) async throws(ChorusError) -> [T]? {
        let b = AsyncBuffers(input: input, outputCount: input.count, inPlace: false)
        try await performAsync(Call(kind: .collective(.reduce), count: input.count, dataType: T.dataType, op: op, root: root,
                                    input: b.input, output: b.output))
        return rank == root ? b.result : nil
    }

    public func send<T: ChorusElement>(_ values: [T], to peer: Int) async throws(ChorusError) {
        let b = AsyncBuffers(input: values, outputCount: 0, inPlace: false)
        try await performAsync(Call(kind: .send(peer: peer), count: values.count, dataType: T.dataType, op: .sum, root: 0,
                                    input: b.input, output: nil))
    }

    public func receive<T: ChorusElement>(_ type: T.Type = T.self, count: Int, from peer: Int) async throws(ChorusError) -> [T] {
        guard count >= 0 else { throw .invalidArgument("receive on rank \(rank): count is \(count); it must be zero or more") }
        let b = AsyncBuffers<T>(input: [], outputCount: count, inPlace: false)
        try await performAsync(Call(kind: .receive(peer: peer), count: count, dataType: T.dataType, op: .sum, root: 0,
                                    input: nil, output: b.output))
        return b.result
    }
}

/// `body` with the array's bytes (`nil` when empty).
private func withMutableBytes<T>(_ array: inout [T], _ body: (UnsafeMutableRawPointer?) throws(ChorusError) -> Void) throws(ChorusError) {
    var failure: ChorusError?
    array.withUnsafeMutableBytes { b in
        do throws(ChorusError) { try body(b.baseAddress) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// `body` with the array's bytes.
private func withBytes<T>(_ array: [T], _ body: (UnsafeRawBufferPointer) throws(ChorusError) -> Void) throws(ChorusError) {
    var failure: ChorusError?
    array.withUnsafeBytes { b in
        do throws(ChorusError) { try body(b) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Buffers an `async` call owns until it completes (zeroed output, or the input copied in
/// place).
private final class AsyncBuffers<T: ChorusElement>: @unchecked Sendable {
    let inputBuffer: UnsafeMutableBufferPointer<T>
    let outputBuffer: UnsafeMutableBufferPointer<T>
    let inPlace: Bool

    init(input: [T], outputCount: Int, inPlace: Bool) {
        self.inPlace = inPlace
        if inPlace {
            inputBuffer = .allocate(capacity: max(input.count, 1))
            _ = inputBuffer.initialize(from: input)
            outputBuffer = inputBuffer
        } else {
            inputBuffer = .allocate(capacity: max(input.count, 1))
            _ = inputBuffer.initialize(from: input)
            outputBuffer = .allocate(capacity: max(outputCount, 1))
            UnsafeMutableRawBufferPointer(outputBuffer).initializeMemory(as: UInt8.self, repeating: 0)
        }
        self.outputCount = outputCount
    }

    private let outputCount: Int

    var input: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(inputBuffer.baseAddress) }
    var output: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(outputBuffer.baseAddress) }
    var result: [T] { Array(outputBuffer.prefix(outputCount)) }

    deinit {
        inputBuffer.deallocate()
        if !inPlace { outputBuffer.deallocate() }
    }
}
