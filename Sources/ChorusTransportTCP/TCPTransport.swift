import ChorusCore
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ranks on different hosts (or any ranks, with `CHORUS_TRANSPORT=tcp`) exchanging messages
/// over TCP: one connection per pair of ranks.
///
/// ## Protocol
/// A frame is a 32-byte header (kind, stream, tag, payload length; little-endian) and the
/// payload. Kind 1 carries a message; kind 2 an abort, whose payload is the reason. Messages
/// of one (peer, stream) match posted receives first-in first-out; a message with no receive
/// posted yet is kept in memory until one is. Sockets are non-blocking, `TCP_NODELAY`, and
/// send with `MSG_NOSIGNAL` (a library in a Python process cannot rely on SIGPIPE being
/// ignored). A payload is received straight into the receive's buffer; a send completes when
/// the kernel has taken all its bytes.
///
/// ## Set-up
/// `TCPTransport.listen` opens this rank's listener before rendezvous publishes its address;
/// `connect` then has rank i connect to every rank j > i and accept every rank j < i, each
/// connection opening with the job's nonce and the connecting rank (a stranger is dropped).
///
/// ## Waiting and failure
/// `waitForActivity` is `poll` on every connection (and on a wake-up pipe `abort` writes to).
/// A connection that closes or resets fails every pending request with an error naming the
/// peer at once. `abort` from another thread wakes the driver, which sends the abort frames;
/// with no call running, `abort` sends them itself.
/// A frame header: kind (1 data, 2 abort), stream, tag, payload length, little-endian.
typealias FrameHeader = (UInt64, UInt64, UInt64, UInt64)

public final class TCPTransport: Transport, @unchecked Sendable {
    public let kind = "tcp"
    public let rank: Int
    public let size: Int
    /// Connections per pair of ranks (`CHORUS_SOCKET_NSTREAMS`). A stream always uses the same
    /// one, so messages of a (peer, stream) stay in order; different channels spread over them.
    public let connections: Int
    /// Indexed by link `peer × connections + c`, as are `outgoing`, `incoming` and `staging`.
    private var sockets: [StreamSocket?]

    private struct Outgoing {
        /// The 32-byte frame header, inline (no allocation per message).
        var header: FrameHeader
        var request: TransportRequest
        var sent: Int
        var total: Int { 32 + request.length }
    }

    private final class Unexpected: EarlyMessage {
        let tag: UInt64
        let length: Int
        let buffer: UnsafeMutableRawBufferPointer
        // Touched only by the thread driving the transport.
        @exclusivity(unchecked) var received = 0
        @exclusivity(unchecked) var claimant: TransportRequest?
        init(tag: UInt64, length: Int) {
            self.tag = tag
            self.length = length
            buffer = .allocate(byteCount: max(length, 1), alignment: 64)
        }
        deinit { buffer.deallocate() }
        var isComplete: Bool { received == length }
    }

    private enum Target {
        case request(TransportRequest)
        case unexpected(Unexpected)
        case mismatched(TransportRequest)
        case abortReason
    }

    /// The frame arriving from one peer. A class, so the receive loop updates it in place.
    private final class Incoming {
        var header: FrameHeader = (0, 0, 0, 0)
        var headerBytes = 0
        var target: Target?
        var stream: UInt64 = 0
        var tag: UInt64 = 0
        var length = 0
        var received = 0
        var reason: [UInt8] = []

        func reset() {
            headerBytes = 0
            target = nil
            stream = 0
            tag = 0
            length = 0
            received = 0
            reason = []
        }
    }

    /// Bytes read from a peer's socket ahead of the frame they belong to: one `recv` takes a
    /// small frame's header and payload, and often the next frames too. Payloads at least half
    /// the buffer are read straight into their destination instead.
    private final class Staging {
        static let capacity = 64 << 10
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Staging.capacity, alignment: 64)
        var start = 0
        var end = 0
        deinit { buffer.deallocate() }
    }

    @exclusivity(unchecked) private var outgoing: [[Outgoing]]
    @exclusivity(unchecked) private var incoming: [Incoming]
    @exclusivity(unchecked) private var staging: [Staging]
    @exclusivity(unchecked) private var matcher = ReceiveMatcher<Unexpected>()
    @exclusivity(unchecked) private var ready: [TransportCompletion] = []
    @exclusivity(unchecked) private var failure: TransportError?

    private let localAbort = Mutex<TransportError?>(nil)
    private let aborted = Atomic<Bool>(false)
    private let abortSent = Atomic<Bool>(false)
    /// Set while a thread drives the transport (so `abort` leaves the sockets to it).
    private let driving = Atomic<Bool>(false)
    private let wakePipe: WakePipe
    /// Whether waits may spin: only while this host's ranks can each have a core (an estimate:
    /// the job's size against the cores; ranks on other hosts do not compete).
    private let spins: Bool

    // MARK: Set-up

    /// A listener on `host` (an interface address; any port), for `connect`.
    package static func listen(host: String) throws -> (listener: StreamSocket, address: String) {
        let l = try StreamSocket.listen(host: host, port: 0)
        let shown = host.contains(":") ? "[\(host)]:\(l.localPort)" : "\(host):\(l.localPort)"
        return (l, shown)
    }

    /// How long one connection attempt may take. A peer's listener is up before its address is
    /// published, so an attempt that takes longer meets a network that drops the packets (a
    /// wrong interface, a firewall), and waiting for `CHORUS_TIMEOUT` would only hide that.
    public static let connectTimeout = Duration.seconds(20)

    /// Connects the job: `addresses[r]` is rank r's listener (`host:port`).
    /// - Parameter peerTrouble: asked while waiting for lower ranks to connect; returns a peer's
    ///   report that it could not connect (so this rank fails at once with that report, instead
    ///   of at the deadline).
    /// - Parameter connections: connections per pair of ranks, 1 to 16 (every rank must pass the same).
    package init(rank: Int, size: Int, job: UInt64, listener: StreamSocket, addresses: [String], deadline: ContinuousClock.Instant,
                 connections: Int = 1, peerTrouble: (() -> String?)? = nil) throws {
        precondition((1...16).contains(connections), "1 to 16 connections per peer")
        self.rank = rank
        self.size = size
        self.connections = connections
        let links = size * connections
        sockets = Array(repeating: nil, count: links)
        outgoing = Array(repeating: [], count: links)
        incoming = (0..<links).map { _ in Incoming() }
        staging = (0..<links).map { _ in Staging() }
        spins = size <= onlineCPUs
        wakePipe = try WakePipe()
        // Hello: job nonce, rank, connection index (8 bytes each).
        func hello(_ c: Int) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 24)
            withUnsafeBytes(of: job.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: UInt64(rank).littleEndian) { bytes.replaceSubrange(8..<16, with: $0) }
            withUnsafeBytes(of: UInt64(c).littleEndian) { bytes.replaceSubrange(16..<24, with: $0) }
            return bytes
        }
        for link in (rank + 1) * connections..<max((rank + 1) * connections, links) {
            let peer = link / connections
            let (host, port) = try Self.split(addresses[peer], peer: peer)
            var connected: StreamSocket?
            var lastError: Error?
            for candidate in try SocketAddress.resolve(host: host, port: port) {
                do {
                    connected = try StreamSocket.connect(to: candidate, timeout: max(.milliseconds(100), min(deadline - .now, Self.connectTimeout)))
                    break
                } catch { lastError = error }
            }
            guard let s = connected else {
                throw TransportError(.connect, peer: peer, "cannot connect to rank \(peer) at \(addresses[peer]): \(lastError.map { "\($0)" } ?? "no address"); is the interface reachable from here (CHORUS_SOCKET_IFNAME)?")
            }
            try s.sendAll(hello(link % connections))
            sockets[link] = s
        }
        var pending = rank * connections
        while pending > 0 {
            let remaining = deadline - .now
            let missing = { (0..<rank).filter { p in (0..<connections).contains { self.sockets[p * connections + $0] == nil } } }
            guard remaining > .zero else {
                throw TransportError(.connect, peer: missing().first, "ranks \(missing().map(String.init).joined(separator: ", ")) never connected to rank \(rank) at \(addresses[rank]); can they reach this address (CHORUS_SOCKET_IFNAME)?")
            }
            guard let s = try listener.accept(timeout: min(remaining, .milliseconds(250))) else {
                if let report = peerTrouble?() {
                    throw TransportError(.connect, peer: missing().first, "rank \(rank) (listening at \(addresses[rank])) stops: \(report)")
                }
                continue
            }
            guard let bytes = try? s.receiveExactly(24, timeout: .seconds(5)) else { continue }
            func field(_ i: Int) -> UInt64 { bytes[i * 8..<(i + 1) * 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
            let nonce = field(0), peer = Int(truncatingIfNeeded: field(1)), c = Int(truncatingIfNeeded: field(2))
            // A stranger, a duplicate, or a peer configured with another connection count.
            guard nonce == job, peer >= 0, peer < rank, c >= 0, c < connections, sockets[peer * connections + c] == nil else { continue }
            sockets[peer * connections + c] = s
            pending -= 1
        }
        for s in sockets.compactMap({ $0 }) { try s.setBlocking(false) }
    }

    static func split(_ address: String, peer: Int) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw TransportError(.protocolViolation, peer: peer, "rank \(peer) published '\(address)', which is not host:port")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    deinit { close() }

    // MARK: Transport

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        TransportRegion(base: base, length: length)
    }

    public func deregister(_ region: TransportRegion) {}

    /// The connection (0 ..< `count`) that carries `stream`. The executor's streams hold the
    /// channel copy in bits 0-15 and the schedule channel in bits 16-31 (the communicator and
    /// the call's place in a group above): their sum, so consecutive channels and copies take
    /// consecutive connections, plus the bits above, so one-channel calls of different
    /// communicators spread too.
    static func connection(of stream: UInt64, among count: Int) -> Int {
        guard count > 1 else { return 0 }
        let copy = stream & 0xFFFF, channel = (stream >> 16) & 0xFFFF, rest = stream >> 32
        return Int((copy &+ channel &+ rest) % UInt64(count))
    }

    private static func header(kind: UInt32, stream: UInt64, tag: UInt64, length: Int) -> FrameHeader {
        FrameHeader(UInt64(kind).littleEndian, stream.littleEndian, tag.littleEndian, UInt64(length).littleEndian)
    }

    /// Whether this rank waits for, or still owes, a message on `link` (a peer's streams spread
    /// over its connections, and a peer that finishes closes them one by one: only the
    /// connection's own messages count).
    private func hasPending(onLink link: Int) -> Bool {
        if !outgoing[link].isEmpty { return true }
        let c = link % connections
        return matcher.awaits(peer: link / connections) { Self.connection(of: $0, among: connections) == c }
    }

    private func check(_ peer: Int) throws {
        guard (0..<size).contains(peer), peer != rank, sockets.indices.contains(peer * connections) else {
            throw TransportError(.protocolViolation, peer: peer, "tcp: rank \(rank) has no connection to rank \(peer)")
        }
        if let failure { throw failure }
    }

    private func closedError(_ peer: Int) -> TransportError {
        fail(peer, "tcp: rank \(peer) closed its connection; its process may have exited")
    }

    public func postSend(_ request: TransportRequest) throws {
        try check(request.peer)
        let link = request.peer * connections + Self.connection(of: request.stream, among: connections)
        guard sockets[link] != nil else { throw closedError(request.peer) }
        outgoing[link].append(Outgoing(header: Self.header(kind: 1, stream: request.stream, tag: request.tag, length: request.length),
                                       request: request, sent: 0))
        try flush(link)
    }

    public func postReceive(_ request: TransportRequest) throws {
        try check(request.peer)
        // A message that arrived before its connection closed is still delivered.
        if let arrived = matcher.post(request) {
            deliver(arrived, to: request)
        } else if sockets[request.peer * connections + Self.connection(of: request.stream, among: connections)] == nil {
            throw closedError(request.peer)
        }
    }

    private func deliver(_ m: Unexpected, to request: TransportRequest) {
        if m.length == request.length && m.length > 0 { request.pointer.copyMemory(from: m.buffer.baseAddress!, byteCount: m.length) }
        ready.append(TransportCompletion(id: request.id, tag: m.tag, length: m.length))
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        driving.store(true, ordering: .sequentiallyConsistent)
        defer { driving.store(false, ordering: .sequentiallyConsistent) }
        if aborted.load(ordering: .acquiring) {
            sendAbortFrames()
            if let e = localAbort.withLock({ $0 }) { throw e }
        }
        if let failure { throw failure }
        for link in 0..<(size * connections) where link / connections != rank {
            if !outgoing[link].isEmpty { try flush(link) }
            try receive(from: link)
        }
        completions.append(contentsOf: ready)
        ready.removeAll(keepingCapacity: true)
    }

    private func fail(_ peer: Int, _ message: String, code: Int32? = nil) -> TransportError {
        let e = TransportError(.receive, peer: peer, syscall: code == nil ? nil : "recv/send", code: code, message)
        if failure == nil { failure = e }
        return e
    }

    /// Sends what the socket takes of the frames queued on `link`.
    private func flush(_ link: Int) throws {
        guard let s = sockets[link] else { return }
        let peer = link / connections
        while var o = outgoing[link].first {
            let total = o.total
            while o.sent < total {
                let n: Int
                if o.sent < 32 {
                    // Header and payload in one call.
                    let sent = o.sent, request = o.request
                    n = withUnsafeBytes(of: &o.header) { h -> Int in
                        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress! + sent), iov_len: 32 - sent),
                                   iovec(iov_base: request.pointer, iov_len: request.length))
                        return withUnsafeMutablePointer(to: &iov) { v in
                            var m = msghdr()
                            m.msg_iov = UnsafeMutableRawPointer(v).assumingMemoryBound(to: iovec.self)
                            m.msg_iovlen = request.length > 0 ? 2 : 1
                            return sendmsg(s.fd, &m, Int32(MSG_NOSIGNAL))
                        }
                    }
                } else {
                    n = send(s.fd, o.request.pointer + (o.sent - 32), total - o.sent, Int32(MSG_NOSIGNAL))
                }
                if n < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK { outgoing[link][0] = o; return }
                    if errno == EINTR { continue }
                    throw fail(peer, "tcp: lost the connection to rank \(peer) while sending (\(String(cString: strerror(errno)))); it may have exited", code: errno)
                }
                o.sent += n
            }
            outgoing[link].removeFirst()
            ready.append(TransportCompletion(id: o.request.id, tag: o.request.tag, length: o.request.length))
        }
    }

    /// Reads whatever `peer` has sent: staged bytes first, then the socket, until it is drained
    /// (a short read says so, without another call to find out).
    private func receive(from link: Int) throws {
        guard let s = sockets[link] else { return }
        let peer = link / connections
        let m = incoming[link], st = staging[link]
        while true {
            try consumeStaged(m, st, peer: peer)
            // A large rest of a payload goes straight where it belongs.
            var directInto: UnsafeMutableRawPointer?
            if m.headerBytes == 32, m.length - m.received >= Staging.capacity / 2 {
                switch m.target! {
                case .request(let r): directInto = r.pointer + m.received
                case .unexpected(let u): directInto = u.buffer.baseAddress! + m.received
                case .mismatched, .abortReason: break
                }
            }
            let asked = directInto != nil ? m.length - m.received : Staging.capacity
            let n = recv(s.fd, directInto ?? st.buffer, asked, 0)
            if n == 0 {
                // A peer that finished the job closes its end after its last message: that is an
                // error only while this rank still expects something from it.
                if m.headerBytes > 0 || hasPending(onLink: link) {
                    throw closedError(peer)
                }
                sockets[link] = nil
                return
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                if errno == EINTR { continue }
                throw fail(peer, "tcp: lost the connection to rank \(peer) (\(String(cString: strerror(errno)))); it may have exited", code: errno)
            }
            if directInto != nil {
                m.received += n
                if case .unexpected(let u) = m.target! { u.received = m.received }
                if m.received == m.length { try finishOrAbort(m, peer: peer) }
            } else {
                st.start = 0
                st.end = n
            }
            if n < asked {
                try consumeStaged(m, st, peer: peer)
                return
            }
        }
    }

    /// Hands staged bytes to the frames they belong to.
    private func consumeStaged(_ m: Incoming, _ st: Staging, peer: Int) throws {
        while st.start < st.end {
            let available = st.end - st.start
            let from = st.buffer + st.start
            if m.headerBytes < 32 {
                let k = min(32 - m.headerBytes, available)
                let filled = m.headerBytes
                withUnsafeMutableBytes(of: &m.header) { ($0.baseAddress! + filled).copyMemory(from: from, byteCount: k) }
                m.headerBytes += k
                st.start += k
                if m.headerBytes == 32 {
                    try start(m, peer: peer)
                    if m.length == 0 { try finishOrAbort(m, peer: peer) }
                }
            } else {
                let k = min(m.length - m.received, available)
                switch m.target! {
                case .request(let r): (r.pointer + m.received).copyMemory(from: from, byteCount: k)
                case .unexpected(let u): (u.buffer.baseAddress! + m.received).copyMemory(from: from, byteCount: k)
                case .mismatched: break  // consumed and dropped
                case .abortReason: m.reason += UnsafeRawBufferPointer(start: from, count: k)
                }
                m.received += k
                st.start += k
                if case .unexpected(let u) = m.target! { u.received = m.received }
                if m.received == m.length { try finishOrAbort(m, peer: peer) }
            }
        }
        st.start = 0
        st.end = 0
    }

    private func start(_ m: Incoming, peer: Int) throws {
        let kind = UInt32(truncatingIfNeeded: UInt64(littleEndian: m.header.0))
        m.stream = UInt64(littleEndian: m.header.1)
        m.tag = UInt64(littleEndian: m.header.2)
        m.length = Int(truncatingIfNeeded: UInt64(littleEndian: m.header.3))
        m.received = 0
        guard kind == 1 || kind == 2, m.length >= 0, m.length < 1 << 40 else {
            throw fail(peer, "tcp: rank \(peer) sent a malformed frame (kind \(kind), length \(m.length)); is something else connected?")
        }
        if kind == 2 { m.target = .abortReason; m.reason = []; return }
        if let r = matcher.arrival(peer: peer, stream: m.stream) {
            m.target = r.length == m.length ? .request(r) : .mismatched(r)
        } else {
            let u = Unexpected(tag: m.tag, length: m.length)
            matcher.keep(u, peer: peer, stream: m.stream)
            m.target = .unexpected(u)
        }
    }

    private func finishOrAbort(_ m: Incoming, peer: Int) throws {
        if case .abortReason = m.target! {
            let e = TransportError(.aborted, peer: peer, String(decoding: m.reason, as: UTF8.self))
            if failure == nil { failure = e }
            throw e
        }
        finish(m, peer: peer)
    }

    private func finish(_ m: Incoming, peer: Int) {
        switch m.target! {
        case .request(let r), .mismatched(let r):
            ready.append(TransportCompletion(id: r.id, tag: m.tag, length: m.length))
        case .unexpected(let u):
            if let claimant = matcher.completed(u, peer: peer, stream: m.stream) { deliver(u, to: claimant) }
        case .abortReason:
            break
        }
        m.reset()
    }

    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        var fds: [pollfd] = []
        for (link, s) in sockets.enumerated() {
            guard let s else { continue }
            fds.append(pollfd(fd: s.fd, events: Int16(POLLIN) | (outgoing[link].isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
        }
        // Poll without sleeping for up to 200 µs first (a LAN round trip plus the peer's turn
        // usually fits, and sleeping in the kernel costs a wake-up of tens of microseconds on a
        // VM), when ranks have cores to spare; as MPI libraries do, a core is spent waiting.
        // With more ranks than cores, poll and yield the core between polls for a while first
        // (`spinUntilArrival`).
        if spinUntilArrival(spins: spins, limit: .microseconds(200), { poll(&fds, nfds_t(fds.count), 0) > 0 || aborted.load(ordering: .relaxed) }) {
            return
        }
        wakePipe.sleep(watching: &fds, until: deadline)
    }

    public func abort(_ error: TransportError) {
        let first = localAbort.withLock { e -> Bool in
            guard e == nil else { return false }
            e = error
            return true
        }
        guard first else { return }
        aborted.store(true, ordering: .sequentiallyConsistent)
        if !driving.load(ordering: .sequentiallyConsistent) { sendAbortFrames() }
        wakePipe.wake()
    }

    /// Best effort: tell every peer why, once.
    private func sendAbortFrames() {
        guard !abortSent.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let reason = Array("rank \(rank) aborted: \(localAbort.withLock { $0?.message ?? "" })".utf8)
        var header = Self.header(kind: 2, stream: 0, tag: 0, length: reason.count)
        let frame = withUnsafeBytes(of: &header) { Array($0) } + reason
        for s in sockets.compactMap({ $0 }) {
            // Whole frames only: a peer mid-frame would misread it, so skip sockets with queued bytes.
            _ = frame.withUnsafeBytes { send(s.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
    }

    private var closed = false

    public func close() {
        guard !closed else { return }
        closed = true
        sockets = Array(repeating: nil, count: size * connections)
        wakePipe.close()
    }
}
