/// A message that arrived before its receive was posted, held by a transport until one is.
public protocol EarlyMessage: AnyObject {
    /// All of it has arrived (a transport may hold a message still arriving).
    var isComplete: Bool { get }
    /// The receive posted while it was still arriving, which gets it when it completes.
    var claimant: TransportRequest? { get set }
}

/// The matching rule every transport keeps: messages from one peer on one stream meet posted
/// receives first-in first-out, and a message that arrives first waits (as the transport's
/// `Early` value) for the receive that will take it, so one stream never blocks another.
///
/// A transport calls `arrival` when a message starts arriving (it lands in the receive returned,
/// or the transport keeps it with `keep`), `post` for each posted receive, and `completed` when a
/// kept message has fully arrived.
public struct ReceiveMatcher<Early: EarlyMessage> {
    @usableFromInline struct Key: Hashable {
        @usableFromInline var peer: Int
        @usableFromInline var stream: UInt64
        @inlinable init(peer: Int, stream: UInt64) {
            self.peer = peer
            self.stream = stream
        }
    }

    // Queues stay in the tables once made (a collective reuses its streams call after call) and
    // are changed in place, never copied out. The methods are inlinable so that each transport
    // gets them specialized for its message type (generic dictionary code looked up type
    // metadata on every message).
    @usableFromInline var posted: [Key: [TransportRequest]] = [:]
    @usableFromInline var early: [Key: [Early]] = [:]

    public init() {}

    /// A message from `peer` on `stream` starts arriving: the oldest receive posted for it, or
    /// `nil` (then `keep` the message).
    @inlinable
    public mutating func arrival(peer: Int, stream: UInt64) -> TransportRequest? {
        let key = Key(peer: peer, stream: stream)
        guard let r = posted[key]?.first else { return nil }
        posted[key]!.removeFirst()
        return r
    }

    /// Holds a message no receive was posted for.
    @inlinable
    public mutating func keep(_ message: Early, peer: Int, stream: UInt64) {
        early[Key(peer: peer, stream: stream), default: []].append(message)
    }

    /// A receive is posted. Returns a held message that has fully arrived, for the transport to
    /// deliver now (it is no longer held); or `nil`, when the receive waits (queued, or claiming
    /// the message still arriving).
    @inlinable
    public mutating func post(_ request: TransportRequest) -> Early? {
        let key = Key(peer: request.peer, stream: request.stream)
        if let first = early[key]?.first, first.claimant == nil {
            if first.isComplete {
                early[key]!.removeFirst()
                return first
            }
            first.claimant = request
            return nil
        }
        posted[key, default: []].append(request)
        return nil
    }

    /// A held message has fully arrived: the receive that claimed it (it is no longer held), or
    /// `nil` (it stays until a receive is posted).
    @inlinable
    public mutating func completed(_ message: Early, peer: Int, stream: UInt64) -> TransportRequest? {
        guard let claimant = message.claimant else { return nil }
        // Claims go in order and one peer's messages arrive one at a time, so it is the oldest.
        early[Key(peer: peer, stream: stream)]?.removeFirst()
        return claimant
    }

    /// Whether a posted receive waits for `peer` on a stream `matching` accepts.
    @inlinable
    public func awaits(peer: Int, where matching: (UInt64) -> Bool) -> Bool {
        posted.contains { $0.key.peer == peer && !$0.value.isEmpty && matching($0.key.stream) }
    }

    /// The peers some posted receive waits for.
    @inlinable
    public var awaitedPeers: Set<Int> {
        Set(posted.lazy.filter { !$0.value.isEmpty }.map(\.key.peer))
    }
}
