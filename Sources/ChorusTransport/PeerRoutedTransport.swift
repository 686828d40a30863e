import ChorusCore

/// One transport per peer pair, chosen per peer: shared memory to ranks on this host and TCP
/// (or RDMA) to the others, behind the one `Transport` a communicator drives.
///
/// Each member transport has its own rank numbering (a shared-memory transport over this
/// host's ranks numbers them 0 ..< local count); `routes[peer]` says which member carries
/// messages to `peer` and under which rank. Request ids pass through unchanged, so completions
/// need no translation. Message order per (peer, stream) is the member's, and one peer always
/// uses one member, so the order contract holds.
///
/// Waiting: a member can only block on its own events (a futex for shared memory, `poll` for
/// sockets). When requests are outstanding on one member only, the wait is that member's; when
/// both have some, the wait alternates in slices of `waitSlice`, so a message on either is seen
/// within a slice.
public final class PeerRoutedTransport: Transport, @unchecked Sendable {
    public struct Route: Sendable {
        /// Index into `members`.
        public var member: Int
        /// The peer's rank within that member.
        public var rank: Int

        public init(member: Int, rank: Int) {
            self.member = member
            self.rank = rank
        }
    }

    public let rank: Int
    public let size: Int
    public let members: [Transport]
    public let routes: [Route?]
    /// How long a wait stays on one member when both have outstanding requests.
    public static let waitSlice = Duration.microseconds(50)
    /// How long a wait on one member goes before the others are looked at again.
    public static let idleMemberCheck = Duration.milliseconds(10)

    // Driven by one thread (the communicator's turn); `abort` touches only the members.
    @exclusivity(unchecked) private var outstanding: [Int]
    /// Routed region key → each member's region (only when some member keys its regions).
    @exclusivity(unchecked) private var memberRegions: [UInt64: [TransportRegion]] = [:]
    @exclusivity(unchecked) private var nextRegionKey: UInt64 = 0
    @exclusivity(unchecked) private var scratch: [TransportCompletion] = []

    /// - Parameter routes: for every world rank, the member and rank to reach it (`nil` for self).
    public init(rank: Int, size: Int, members: [Transport], routes: [Route?]) {
        precondition(routes.count == size, "one route per rank")
        self.rank = rank
        self.size = size
        self.members = members
        self.routes = routes
        outstanding = Array(repeating: 0, count: members.count)
    }

    public var kind: String { members.map(\.kind).joined(separator: "+") }

    /// Whether the member that carries messages from `peer` reduces on receive.
    public func reducesOnReceive(from peer: Int) -> Bool {
        guard let route = routes[peer] else { return false }
        return members[route.member].reducesOnReceive(from: route.rank)
    }

    /// Whether the member that carries messages to `peer` copies on send.
    public func copiesOnSend(to peer: Int) -> Bool {
        guard let route = routes[peer] else { return false }
        return members[route.member].copiesOnSend(to: route.rank)
    }

    /// The member's kind that carries messages to `peer` (`self` for this rank).
    public func kind(of peer: Int) -> String {
        guard let route = routes[peer] else { return "self" }
        return members[route.member].kind
    }

    /// Every member registers the memory. When all keep no per-region state (key 0, as shared
    /// memory, TCP and OFI without local registration) the region passes through as it is;
    /// otherwise (verbs, OFI on EFA) the routed region's key names the members' own regions,
    /// and each request reaches its member with that member's region.
    public func network(of peer: Int) -> String {
        guard let route = routes[peer] else { return "self" }
        return members[route.member].network(of: route.rank)
    }

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        var regions: [TransportRegion] = []
        do {
            for m in members { regions.append(try m.register(base, length: length)) }
        } catch {
            for (i, r) in regions.enumerated() { members[i].deregister(r) }
            throw error
        }
        guard regions.contains(where: { $0.key != 0 }) else { return TransportRegion(base: base, length: length) }
        nextRegionKey += 1
        memberRegions[nextRegionKey] = regions
        return TransportRegion(base: base, length: length, key: nextRegionKey)
    }

    public func deregister(_ region: TransportRegion) {
        if region.key != 0, let regions = memberRegions.removeValue(forKey: region.key) {
            for (i, r) in regions.enumerated() { members[i].deregister(r) }
        } else {
            for m in members { m.deregister(region) }
        }
    }

    private func route(_ request: TransportRequest) throws -> (Int, TransportRequest) {
        guard (0..<size).contains(request.peer), let route = routes[request.peer] else {
            throw TransportError(.protocolViolation, peer: request.peer, "rank \(rank) has no transport to rank \(request.peer)")
        }
        var translated = request
        translated.peer = route.rank
        if request.region.key != 0, let regions = memberRegions[request.region.key] {
            translated.region = regions[route.member]
        }
        return (route.member, translated)
    }

    public func postSend(_ request: TransportRequest) throws {
        let (m, r) = try route(request)
        try members[m].postSend(r)
        outstanding[m] += 1
    }

    public func postReceive(_ request: TransportRequest) throws {
        let (m, r) = try route(request)
        try members[m].postReceive(r)
        outstanding[m] += 1
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        for (m, member) in members.enumerated() {
            let before = completions.count
            try member.progress(&completions)
            outstanding[m] = max(0, outstanding[m] - (completions.count - before))
        }
    }

    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        var busy = 0, first = 0
        for m in outstanding.indices where outstanding[m] > 0 {
            if busy == 0 { first = m }
            busy += 1
        }
        if busy <= 1 {
            // Come back now and then even so: the caller's `progress` then reads the other
            // members too (an abort from a peer on another member, say).
            try members[first].waitForActivity(until: min(deadline, ContinuousClock.now + Self.idleMemberCheck))
            return
        }
        for m in outstanding.indices where outstanding[m] > 0 {
            let now = ContinuousClock.now
            guard now < deadline else { return }
            try members[m].waitForActivity(until: min(deadline, now + Self.waitSlice))
        }
    }

    public func abort(_ error: TransportError) {
        for m in members { m.abort(error) }
    }

    public func close() {
        for m in members { m.close() }
    }
}
