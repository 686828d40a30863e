import ChorusCore
import ChorusTransport

/// A control message between two ranks' queue pairs, sent with an RDMA send into one of the
/// small receive buffers the peer keeps posted. Data itself moves by RDMA write with immediate
/// data straight into the receive's buffer; these messages say where to write.
///
/// Encoded as a 48-byte header, little-endian: kind (1), zero (3), token (4), stream (8),
/// sequence (4), memory key (4), length (8), address (8), call signature (8); an abort's reason
/// (at most `maxReason` bytes of UTF-8) follows.
public enum VerbsControl: Equatable, Sendable {
    /// A receive was posted: the sender may write `length` bytes at `address` (key `key`) and
    /// name the receive by `token` in the write's immediate data.
    case clearToSend(stream: UInt64, sequence: UInt32, token: UInt32, length: UInt64, address: UInt64, key: UInt32, tag: UInt64)
    /// The send matched with receive `token` does not fit it: nothing was written; the sender's
    /// length and call signature, for the receiver's error. Answers the clear-to-send.
    case mismatch(token: UInt32, length: UInt64, tag: UInt64)
    /// The peer aborted.
    case abort(reason: String)

    public static let headerSize = 48
    public static let maxReason = 200
    public static let bufferSize = headerSize + maxReason

    public var encoded: [UInt8] {
        var kind: UInt8 = 0, token: UInt32 = 0, stream: UInt64 = 0, sequence: UInt32 = 0, key: UInt32 = 0
        var length: UInt64 = 0, address: UInt64 = 0, tag: UInt64 = 0, tail: [UInt8] = []
        switch self {
        case let .clearToSend(s, q, t, l, a, k, g):
            (kind, stream, sequence, token, length, address, key, tag) = (1, s, q, t, l, a, k, g)
        case let .mismatch(t, l, g):
            (kind, token, length, tag) = (2, t, l, g)
        case .abort(let reason):
            kind = 3
            tail = Array(reason.utf8.prefix(Self.maxReason))
        }
        var b: [UInt8] = [kind, 0, 0, 0]
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        put(token); put(stream); put(sequence); put(key); put(length); put(address); put(tag)
        return b + tail
    }

    /// Reads a control message; the error names the peer and what is wrong.
    public static func decode(_ bytes: UnsafeRawBufferPointer, from peer: Int) throws(TransportError) -> VerbsControl {
        func bad(_ why: String) -> TransportError {
            TransportError(.protocolViolation, peer: peer, "rank \(peer) sent a control message this rank cannot read: \(why)")
        }
        guard bytes.count >= headerSize else { throw bad("\(bytes.count) bytes, shorter than the \(headerSize)-byte header") }
        guard bytes.count <= bufferSize else { throw bad("\(bytes.count) bytes, longer than \(bufferSize)") }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        guard bytes[1] == 0 && bytes[2] == 0 && bytes[3] == 0 else { throw bad("bytes 1-3 are not zero") }
        let token = get(4, UInt32.self), stream = get(8, UInt64.self), sequence = get(16, UInt32.self)
        let key = get(20, UInt32.self), length = get(24, UInt64.self), address = get(32, UInt64.self), tag = get(40, UInt64.self)
        switch bytes[0] {
        case 1 where bytes.count == headerSize:
            return .clearToSend(stream: stream, sequence: sequence, token: token, length: length, address: address, key: key, tag: tag)
        case 2 where bytes.count == headerSize:
            return .mismatch(token: token, length: length, tag: tag)
        case 3:
            return .abort(reason: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[headerSize...]), as: UTF8.self))
        case 1, 2:
            throw bad("kind \(bytes[0]) with \(bytes.count - headerSize) bytes after the header")
        default:
            throw bad("unknown kind \(bytes[0])")
        }
    }
}

/// The protocol state between this rank and one peer, without the device: which receives wait
/// for data, which sends wait for a clear-to-send, and the slots that keep either side from
/// overrunning the other's posted receive buffers. The transport feeds it what it posts and what
/// arrives and carries out the actions it returns; tests drive two of them against each other.
///
/// ## Matching
/// A receive posted for a stream sends a clear-to-send naming a token, its buffer, length and
/// call signature. Clear-to-sends of one stream arrive in posting order (a reliable-connected
/// queue pair delivers in order; the sequence number checks it) and meet that stream's sends first
/// in, first out. A send that fits writes its bytes with the token as immediate data (zero-copy
/// from the caller's registered buffer into the receiver's); one that does not answers with
/// `mismatch`, and both sides report the disagreement.
///
/// ## Flow control
/// Every RDMA send and every write with immediate data consumes one receive buffer posted on the
/// peer's queue pair. Each clear-to-send is answered by exactly one write or mismatch, so at most
/// `slots` clear-to-sends are outstanding per direction (more wait here until answers come back),
/// and each side keeps `2 × slots + 1` buffers posted, reposting each as it is consumed: `slots`
/// for the peer's clear-to-sends, `slots` for answers to its own, one for an abort. No credit
/// messages are needed and neither side can wait on the other for buffers.
public struct VerbsPeerFlow: Sendable {
    /// What the transport should put on the wire, in order.
    public enum Action: Equatable, Sendable {
        case control(VerbsControl)
        /// RDMA write with immediate data `token`: send `sendID`'s bytes to `address`/`key`.
        case write(sendID: UInt64, address: UInt64, key: UInt32, length: UInt64, token: UInt32)
    }

    /// Completions the transport reports.
    public enum Event: Equatable, Sendable {
        case receiveDone(id: UInt64, length: Int, tag: UInt64)
        /// A send that did not fit its receive completes here (its peer reports the error).
        case sendDone(id: UInt64)
    }

    public let peer: Int
    public let slots: Int
    /// Receive buffers each side keeps posted on the queue pair.
    public var receiveBuffers: Int { 2 * slots + 1 }

    private struct Receive { var id: UInt64; var tag: UInt64 }
    private struct Send { var id: UInt64; var length: Int; var tag: UInt64 }
    private struct Clearance { var token: UInt32; var length: UInt64; var address: UInt64; var key: UInt32; var tag: UInt64 }

    private var nextToken: UInt32 = 0
    private var awaitingData: [UInt32: Receive] = [:]
    private var receiveSequence: [UInt64: UInt32] = [:]
    private var clearanceSequence: [UInt64: UInt32] = [:]
    private var sends: [UInt64: [Send]] = [:]
    private var clearances: [UInt64: [Clearance]] = [:]
    /// Clear-to-sends not yet sent (over the slot limit).
    private var heldClearances: [VerbsControl] = []
    private var heldHead = 0
    /// Clear-to-sends sent and not yet answered.
    public private(set) var outstanding = 0
    private var ready: [Action] = []
    private var readyHead = 0

    public init(peer: Int, slots: Int = 64) {
        precondition(slots >= 1)
        self.peer = peer
        self.slots = slots
    }

    /// Tokens are the immediate data (32 bits).
    public mutating func receivePosted(id: UInt64, stream: UInt64, length: Int, address: UInt64, key: UInt32, tag: UInt64) {
        var token = nextToken
        while awaitingData[token] != nil { token &+= 1 }
        nextToken = token &+ 1
        awaitingData[token] = Receive(id: id, tag: tag)
        let sequence = receiveSequence[stream, default: 0]
        receiveSequence[stream] = sequence &+ 1
        heldClearances.append(.clearToSend(stream: stream, sequence: sequence, token: token, length: UInt64(length), address: address, key: key, tag: tag))
    }

    public mutating func sendPosted(id: UInt64, stream: UInt64, length: Int, tag: UInt64) -> [Event] {
        sends[stream, default: []].append(Send(id: id, length: length, tag: tag))
        return match(stream)
    }

    /// A control message arrived.
    public mutating func controlArrived(_ message: VerbsControl) throws(TransportError) -> [Event] {
        switch message {
        case let .clearToSend(stream, sequence, token, length, address, key, tag):
            let expected = clearanceSequence[stream, default: 0]
            guard sequence == expected else {
                throw TransportError(.protocolViolation, peer: peer, "rank \(peer)'s clear-to-send on stream \(stream) is number \(sequence), expected \(expected)")
            }
            guard clearances.values.reduce(0, { $0 + $1.count }) < slots else {
                throw TransportError(.protocolViolation, peer: peer, "rank \(peer) sent more than \(slots) clear-to-sends without answers")
            }
            clearanceSequence[stream] = expected &+ 1
            clearances[stream, default: []].append(Clearance(token: token, length: length, address: address, key: key, tag: tag))
            return match(stream)
        case let .mismatch(token, length, tag):
            let r = try answered(token)
            return [.receiveDone(id: r.id, length: Int(clamping: length), tag: tag)]
        case .abort(let reason):
            throw TransportError(.aborted, peer: peer, reason)
        }
    }

    /// A write with immediate data `token` arrived: `length` bytes are in place.
    public mutating func writeArrived(token: UInt32, length: Int) throws(TransportError) -> Event {
        let r = try answered(token)
        return .receiveDone(id: r.id, length: length, tag: r.tag)
    }

    /// The next thing to put on the wire: answers first (they free the peer's slots), then
    /// clear-to-sends while fewer than `slots` are outstanding.
    public mutating func next() -> Action? {
        if readyHead < ready.count {
            let a = ready[readyHead]
            readyHead += 1
            if readyHead == ready.count {
                ready.removeAll(keepingCapacity: true)
                readyHead = 0
            }
            return a
        }
        guard heldHead < heldClearances.count, outstanding < slots else { return nil }
        outstanding += 1
        let c = heldClearances[heldHead]
        heldHead += 1
        if heldHead == heldClearances.count {
            heldClearances.removeAll(keepingCapacity: true)
            heldHead = 0
        }
        return .control(c)
    }

    /// Receives waiting for data, sends waiting for a clear-to-send.
    public var pending: (receives: Int, sends: Int) {
        (awaitingData.count, sends.values.reduce(0) { $0 + $1.count })
    }

    private mutating func answered(_ token: UInt32) throws(TransportError) -> Receive {
        guard let r = awaitingData.removeValue(forKey: token) else {
            throw TransportError(.protocolViolation, peer: peer, "rank \(peer) answered receive token \(token), which is not waiting")
        }
        outstanding -= 1
        return r
    }

    private mutating func match(_ stream: UInt64) -> [Event] {
        var events: [Event] = []
        while let s = sends[stream]?.first, let c = clearances[stream]?.first {
            sends[stream]!.removeFirst()
            clearances[stream]!.removeFirst()
            if UInt64(s.length) == c.length && s.tag == c.tag {
                ready.append(.write(sendID: s.id, address: c.address, key: c.key, length: c.length, token: c.token))
            } else {
                ready.append(.control(.mismatch(token: c.token, length: UInt64(s.length), tag: s.tag)))
                events.append(.sendDone(id: s.id))
            }
        }
        return events
    }
}

/// The words for a work completion's status (`enum ibv_wc_status`; values from verbs.h, stable
/// across rdma-core releases), with what usually causes it.
public enum WorkCompletionStatus {
    public static func describe(_ status: UInt32, peer: Int) -> String {
        let (name, hint): (String, String) = switch status {
        case 0: ("success", "")
        case 1: ("local length error", "a receive buffer was too small")
        case 2: ("local QP operation error", "a malformed work request")
        case 4: ("local protection error", "a buffer outside its memory registration")
        case 5: ("work request flushed", "the queue pair had already failed")
        case 6: ("memory window bind error", "")
        case 7: ("bad response", "")
        case 8: ("local access error", "")
        case 9: ("remote invalid request", "the peer refused the operation")
        case 10: ("remote access error", "the peer's memory key or range is wrong (a stale registration?)")
        case 11: ("remote operation error", "")
        case 12: ("transport retry counter exceeded", "rank \(peer) is unreachable or gone")
        case 13: ("receiver-not-ready retry counter exceeded", "rank \(peer) had no receive posted (flow control broken, or the peer stopped)")
        case 14: ("local RDD violation", "")
        case 15: ("remote invalid RD request", "")
        case 16: ("remote aborted", "")
        case 17: ("invalid EE context number", "")
        case 18: ("invalid EE context state", "")
        case 19: ("fatal error", "the device failed")
        case 20: ("response timeout", "rank \(peer) did not answer")
        case 21: ("general error", "")
        default: ("status \(status)", "")
        }
        return hint.isEmpty ? name : "\(name): \(hint)"
    }
}
