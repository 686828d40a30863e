/// A simulated instant, in integer picoseconds. Integer time makes runs reproducible bit for
/// bit and lets events of symmetric ranks that finish together be processed together.
public typealias Picoseconds = Int64

extension Picoseconds {
    static func from(_ d: Duration) -> Picoseconds {
        let (s, atto) = d.components
        return s * 1_000_000_000_000 + atto / 1_000_000
    }

    /// `seconds` rounded up to whole picoseconds (a transfer never finishes early).
    static func ceiling(seconds: Double) -> Picoseconds {
        Picoseconds((seconds * 1e12).rounded(.up))
    }

    var duration: Duration {
        Duration(secondsComponent: self / 1_000_000_000_000, attosecondsComponent: (self % 1_000_000_000_000) * 1_000_000)
    }
}

/// What an event does when its time comes.
enum EventKind: UInt8 {
    /// The sender has paid its per-message overhead: the message enters the network.
    case flowStart
    /// A flow's last byte has left (valid only if `version` is the flow's current one).
    case flowDrained
    /// A message's last byte has arrived: the send completes, the receive reduces or completes.
    case delivered
    /// A local op or a reducing receive has finished.
    case complete
}

struct Event {
    var time: Picoseconds
    /// Tie-breaker: events of one instant run in the order they were scheduled.
    var sequence: UInt64
    var id: Int32
    var version: UInt32
    var kind: EventKind

    @inline(__always)
    static func before(_ a: Event, _ b: Event) -> Bool {
        a.time != b.time ? a.time < b.time : a.sequence < b.sequence
    }
}

/// A binary min-heap of events ordered by (time, sequence): the engine's whole notion of order.
struct EventQueue {
    private var heap: [Event] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextTime: Picoseconds? { heap.first?.time }

    mutating func schedule(_ kind: EventKind, at time: Picoseconds, id: Int32, version: UInt32 = 0) {
        let event = Event(time: time, sequence: nextSequence, id: id, version: version, kind: kind)
        nextSequence &+= 1
        heap.append(event)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Event.before(event, heap[parent]) else { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = event
    }

    mutating func pop() -> Event? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            var parent = 0
            let n = heap.count
            while true {
                var child = 2 * parent + 1
                if child >= n { break }
                if child + 1 < n && Event.before(heap[child + 1], heap[child]) { child += 1 }
                guard Event.before(heap[child], last) else { break }
                heap[parent] = heap[child]
                parent = child
            }
            heap[parent] = last
        }
        return top
    }
}
