import ChorusCore
import ChorusExec
import ChorusSchedule

/// One operation as the API received it, checked and ready to plan.
///
/// Counts follow NCCL: all-reduce, broadcast and reduce move `count` elements; all-gather
/// sends `count` and receives `size × count`; reduce-scatter sends `size × count` and receives
/// `count`; send and receive move `count`.
///
/// `@unchecked Sendable`: the pointers are the caller's buffers, which the caller keeps alive
/// and untouched until the call returns (blocking) or its task resumes (`async`).
struct Call: Equatable, @unchecked Sendable {
    enum Kind: Sendable, Equatable {
        case collective(Collective)
        case send(peer: Int)
        case receive(peer: Int)
        case barrier
    }

    var kind: Kind
    var count: Int
    var dataType: DataType
    var op: ReduceOp
    var root: Int
    var input: UnsafeMutableRawPointer?
    var output: UnsafeMutableRawPointer?

    /// The signature every message of the call carries.
    var signature: CallSignature {
        switch kind {
        case .collective(let c): return CallSignature(c, count: count, dataType: dataType, op: op, root: root)
        case .send, .receive: return CallSignature(kind: .pointToPoint, count: count, dataType: dataType)
        case .barrier: return CallSignature(kind: .barrier, count: 0, dataType: .uint8)
        }
    }

    var name: String {
        switch kind {
        case .collective(let c): return c.description
        case .send: return "send"
        case .receive: return "receive"
        case .barrier: return "barrier"
        }
    }
}

extension Call {
    /// The largest count a call's signature can carry.
    static let maximumCount = (1 << 36) - 1

    /// Checks what can be checked on one rank, naming the argument that is wrong.
    func validate(rank: Int, size: Int) throws(ChorusError) {
        var what: String { "\(name) on rank \(rank)" }
        guard count >= 0 else { throw .invalidArgument("\(what): count is \(count); it must be zero or more") }
        guard count <= Call.maximumCount else {
            throw .invalidArgument("\(what): count \(count) is more than \(Call.maximumCount) elements, the most one call can move")
        }
        let es = dataType.size
        let (inputBytes, outputBytes) = bytes(size: size, rank: rank)
        guard count.multipliedReportingOverflow(by: es * size).overflow == false else {
            throw .invalidArgument("\(what): \(count) elements of \(dataType.ncclName) overflow the address space")
        }
        switch kind {
        case .collective(let c) where c.hasRoot:
            guard (0..<size).contains(root) else {
                throw .invalidArgument("\(what): root \(root) is not a rank of this communicator (0..<\(size))")
            }
        case .send(let peer), .receive(let peer):
            guard (0..<size).contains(peer) else {
                throw .invalidArgument("\(what): peer \(peer) is not a rank of this communicator (0..<\(size))")
            }
            guard peer != rank else {
                throw .invalidArgument("\(what): peer \(peer) is this rank; a rank cannot send to or receive from itself")
            }
        default: break
        }
        if inputBytes > 0 && input == nil { throw .invalidArgument("\(what): the send buffer is null but \(inputBytes) bytes are to be sent") }
        if outputBytes > 0 && output == nil { throw .invalidArgument("\(what): the receive buffer is null but \(outputBytes) bytes are to be received") }
        // Out of place, the buffers must not overlap except in the collective's in-place form.
        if let input, let output, inputBytes > 0, outputBytes > 0, input != output {
            let overlaps = input < output + outputBytes && output < input + inputBytes
            if overlaps && !isInPlace(rank: rank) {
                throw .invalidArgument("\(what): the send and receive buffers overlap, which is allowed only in the in-place form (\(inPlaceRule))")
            }
        }
    }

    /// Bytes read from `input` and written to `output` on `rank`.
    func bytes(size: Int, rank: Int) -> (input: Int, output: Int) {
        let b = count * dataType.size
        switch kind {
        case .collective(.allReduce): return (b, b)
        case .collective(.allGather): return (b, b * size)
        case .collective(.reduceScatter): return (b * size, b)
        case .collective(.broadcast): return (rank == root ? b : 0, b)
        case .collective(.reduce): return (b, rank == root ? b : 0)
        case .send: return (b, 0)
        case .receive: return (0, b)
        case .barrier: return (0, 0)
        }
    }

    func isInPlace(rank: Int) -> Bool {
        guard let input, let output else { return false }
        let b = count * dataType.size
        switch kind {
        case .collective(.allGather): return input == output + rank * b
        case .collective(.reduceScatter): return output == input + rank * b
        default: return input == output
        }
    }

    var inPlaceRule: String {
        switch kind {
        case .collective(.allGather): return "all-gather is in place when the send buffer is the rank's block of the receive buffer, recvbuff + rank × count"
        case .collective(.reduceScatter): return "reduce-scatter is in place when the receive buffer is the rank's block of the send buffer, sendbuff + rank × count"
        default: return "send and receive buffers are the same pointer"
        }
    }
}
