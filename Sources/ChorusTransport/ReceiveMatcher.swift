import ChorusCore

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

    /// One (peer, stream)'s receives waiting for messages and messages waiting for receives
    /// (one of the two is empty).
    @usableFromInline struct Queue {
        @usableFromInline var key: Key
        @usableFromInline var posted = FIFO<TransportRequest>()
        @usableFromInline var early = FIFO<Early>()

        @inlinable init(key: Key) { self.key = key }
    }

    // Queues stay once made (a collective reuses its streams call after call) and are changed
    // in place, never copied out. The two queues used last are found without hashing (a call
    // sends and receives on a few streams, over and over). The methods are inlinable so that
    // each transport gets them specialized for its message type (generic dictionary code looked
    // up type metadata on every message).
    @usableFromInline var queues: [Queue] = []
    @usableFromInline var indexOf: [Key: Int] = [:]
    @usableFromInline var recent: (Int, Int) = (-1, -1)

    public init() {}

    /// The index of `key`'s queue, made on first use.
    @inlinable
    mutating func queue(_ key: Key) -> Int {
        if recent.0 >= 0 && queues[recent.0].key == key { return recent.0 }
        if recent.1 >= 0 && queues[recent.1].key == key {
            recent = (recent.1, recent.0)
            return recent.0
        }
        let q: Int
        if let found = indexOf[key] {
            q = found
        } else {
            q = queues.count
            queues.append(Queue(key: key))
            indexOf[key] = q
        }
        recent = (q, recent.0)
        return q
    }

    /// A message from `peer` on `stream` starts arriving: the oldest receive posted for it, or
    /// `nil` (then `keep` the message).
    @inlinable
    public mutating func arrival(peer: Int, stream: UInt64) -> TransportRequest? {
        let q = queue(Key(peer: peer, stream: stream))
        guard let r = queues[q].posted.first else { return nil }
        queues[q].posted.dropFirst()
        return r
    }

    /// Holds a message no receive was posted for.
    @inlinable
    public mutating func keep(_ message: Early, peer: Int, stream: UInt64) {
        let q = queue(Key(peer: peer, stream: stream))
        queues[q].early.append(message)
    }

    /// A receive is posted. Returns a held message that has fully arrived, for the transport to
    /// deliver now (it is no longer held); or `nil`, when the receive waits (queued, or claiming
    /// the message still arriving).
    @inlinable
    public mutating func post(_ request: TransportRequest) -> Early? {
        let q = queue(Key(peer: request.peer, stream: request.stream))
        if let first = queues[q].early.first, first.claimant == nil {
            if first.isComplete {
                queues[q].early.dropFirst()
                return first
            }
            first.claimant = request
            return nil
        }
        queues[q].posted.append(request)
        return nil
    }

    /// A held message has fully arrived: the receive that claimed it (it is no longer held), or
    /// `nil` (it stays until a receive is posted).
    @inlinable
    public mutating func completed(_ message: Early, peer: Int, stream: UInt64) -> TransportRequest? {
        guard let claimant = message.claimant else { return nil }
        // Claims go in order and one peer's messages arrive one at a time, so it is the oldest.
        let q = queue(Key(peer: peer, stream: stream))
        if queues[q].early.first != nil { queues[q].early.dropFirst() }
        return claimant
    }

    /// Whether a posted receive waits for `peer` on a stream `matching` accepts.
    @inlinable
    public func awaits(peer: Int, where matching: (UInt64) -> Bool) -> Bool {
        queues.contains { $0.key.peer == peer && !$0.posted.isEmpty && matching($0.key.stream) }
    }

    /// The peers some posted receive waits for.
    @inlinable
    public var awaitedPeers: Set<Int> {
        Set(queues.lazy.filter { !$0.posted.isEmpty }.map(\.key.peer))
    }
}

/// A first-in first-out queue whose oldest entry is taken by moving an index, not the array.
/// Taken entries are dropped when the queue empties, or in one move once they are half of it
/// (a queue that never drains stays bounded).
@usableFromInline
struct FIFO<Element> {
    @usableFromInline var items: [Element] = []
    @usableFromInline var head = 0

    @inlinable init() {}

    @inlinable var first: Element? { head < items.count ? items[head] : nil }
    @inlinable var isEmpty: Bool { head == items.count }

    @inlinable mutating func append(_ element: Element) { items.append(element) }

    @inlinable mutating func dropFirst() {
        head += 1
        if head == items.count {
            items.removeAllKeepingCapacity()
            head = 0
        } else if head >= 32 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}
