import ChorusCore

/// Collectives on raw buffers with a `DataType`, as NCCL's C API takes them (the C API wraps
/// exactly these).
///
/// Counts are NCCL's: `count` elements per rank's block (all-gather sends `count` and receives
/// `size × count`; reduce-scatter sends `size × count` and receives `count`). A call is in place
/// when `send == receive` (all-reduce, broadcast, reduce), `send == receive + rank × count`
/// (all-gather) or `receive == send + rank × count` (reduce-scatter). Broadcast reads `send`
/// only on the root; reduce writes `receive` only on the root. Inside a group these calls are
/// recorded and run by `groupEnd()`.
extension Communicator {
    public func allReduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType, op: ReduceOp = .sum) throws(ChorusError) {
        try perform(Call(kind: .collective(.allReduce), count: count, dataType: dataType, op: op, root: 0,
                         input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func allGather(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType) throws(ChorusError) {
        try perform(Call(kind: .collective(.allGather), count: count, dataType: dataType, op: .sum, root: 0,
                         input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func reduceScatter(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                              dataType: DataType, op: ReduceOp = .sum) throws(ChorusError) {
        try perform(Call(kind: .collective(.reduceScatter), count: count, dataType: dataType, op: op, root: 0,
                         input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func broadcast(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType, root: Int) throws(ChorusError) {
        try perform(Call(kind: .collective(.broadcast), count: count, dataType: dataType, op: .sum, root: root,
                         input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func reduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                       dataType: DataType, op: ReduceOp = .sum, root: Int) throws(ChorusError) {
        try perform(Call(kind: .collective(.reduce), count: count, dataType: dataType, op: op, root: root,
                         input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    /// Sends `count` elements to `peer`, which must call `receive` with the same count and type.
    /// Messages between two ranks arrive in the order they were sent.
    public func send(_ buffer: UnsafeRawPointer?, count: Int, dataType: DataType, to peer: Int) throws(ChorusError) {
        try perform(Call(kind: .send(peer: peer), count: count, dataType: dataType, op: .sum, root: 0,
                         input: UnsafeMutableRawPointer(mutating: buffer), output: nil))
    }

    public func receive(_ buffer: UnsafeMutableRawPointer?, count: Int, dataType: DataType, from peer: Int) throws(ChorusError) {
        try perform(Call(kind: .receive(peer: peer), count: count, dataType: dataType, op: .sum, root: 0,
                         input: nil, output: buffer))
    }

    /// Returns when every rank has called `barrier`.
    public func barrier() throws(ChorusError) {
        try perform(Call(kind: .barrier, count: 0, dataType: .uint8, op: .max, root: 0, input: nil, output: nil))
    }

    // MARK: async

    /// As the blocking form, run on the communicator's progress thread. The buffers must stay
    /// valid and untouched until the call returns.
    public func allReduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType, op: ReduceOp = .sum) async throws(ChorusError) {
        try await performAsync(Call(kind: .collective(.allReduce), count: count, dataType: dataType, op: op, root: 0,
                                    input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func allGather(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType) async throws(ChorusError) {
        try await performAsync(Call(kind: .collective(.allGather), count: count, dataType: dataType, op: .sum, root: 0,
                                    input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func reduceScatter(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                              dataType: DataType, op: ReduceOp = .sum) async throws(ChorusError) {
        try await performAsync(Call(kind: .collective(.reduceScatter), count: count, dataType: dataType, op: op, root: 0,
                                    input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func broadcast(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                          dataType: DataType, root: Int) async throws(ChorusError) {
        try await performAsync(Call(kind: .collective(.broadcast), count: count, dataType: dataType, op: .sum, root: root,
                                    input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func reduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, count: Int,
                       dataType: DataType, op: ReduceOp = .sum, root: Int) async throws(ChorusError) {
        try await performAsync(Call(kind: .collective(.reduce), count: count, dataType: dataType, op: op, root: root,
                                    input: UnsafeMutableRawPointer(mutating: send), output: receive))
    }

    public func send(_ buffer: UnsafeRawPointer?, count: Int, dataType: DataType, to peer: Int) async throws(ChorusError) {
        try await performAsync(Call(kind: .send(peer: peer), count: count, dataType: dataType, op: .sum, root: 0,
                                    input: UnsafeMutableRawPointer(mutating: buffer), output: nil))
    }

    public func receive(_ buffer: UnsafeMutableRawPointer?, count: Int, dataType: DataType, from peer: Int) async throws(ChorusError) {
        try await performAsync(Call(kind: .receive(peer: peer), count: count, dataType: dataType, op: .sum, root: 0,
                                    input: nil, output: buffer))
    }

    public func barrier() async throws(ChorusError) {
        try await performAsync(Call(kind: .barrier, count: 0, dataType: .uint8, op: .max, root: 0, input: nil, output: nil))
    }
}
