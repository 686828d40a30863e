import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The key-value store ranks meet at, hosted by rank 0 on its own thread.
///
/// It admits only connections that present the job token (a refused peer is logged with its
/// address), keeps what ranks publish, and answers lookups. It stops when every rank has said
/// `done`, or at its deadline. One thread serves every connection with `poll`; each frame is
/// small and sent whole, so reading one never waits long on a well-behaved peer (a peer that
/// stalls mid-frame is dropped after `frameTimeout`).
final class RendezvousStore: @unchecked Sendable {
    let port: Int
    private let listener: StreamSocket
    private let size: Int
    private let token: String
    private let deadline: ContinuousClock.Instant
    private let log: Log
    /// A random number naming this job (shared-memory segments, in-process fabrics).
    let nonce: UInt64
    static let frameTimeout: Duration = .seconds(5)

    private struct Client {
        var socket: StreamSocket
        var rank: Int?
    }

    /// Listens on `port` of every local address of `host`'s family.
    /// - Throws: `ChorusError.rendezvous` when the port cannot be bound.
    init(host: String, port: Int, size: Int, token: String, deadline: ContinuousClock.Instant, log: Log) throws(ChorusError) {
        let wildcard = host.contains(":") ? "::" : "0.0.0.0"
        do {
            listener = try StreamSocket.listen(host: wildcard, port: port)
        } catch {
            var message = "rank 0 cannot host the rendezvous store on port \(port): \(error)"
            if (error as? TransportError)?.code == EADDRINUSE {
                message += "; another process holds the port (under torchrun its agent holds MASTER_PORT): set CHORUS_RENDEZVOUS=host:port to a free port"
            }
            throw .rendezvous(message)
        }
        self.port = listener.localPort
        self.size = size
        self.token = token
        self.deadline = deadline
        self.log = log
        var n: UInt64 = 0
        while n == 0 { n = UInt64.random(in: 1...UInt64.max) }
        nonce = n
    }

    /// Serves on a new thread until every rank is done or the deadline passes.
    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let store = Unmanaged<RendezvousStore>.fromOpaque(raw!).takeRetainedValue()
            store.serve()
            return nil
        }, box.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            box.release()
            log(.warn, "cannot start the rendezvous store's thread (pthread_create: \(created))")
        }
    }

    private func serve() {
        var clients: [Client] = []
        var values: [String: [UInt8]] = [:]
        var done = Set<Int>()
        while done.count < size && ContinuousClock.now < deadline {
            var fds = [pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)]
            fds += clients.map { pollfd(fd: $0.socket.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready <= 0 { continue }
            if fds[0].revents != 0, let socket = try? listener.accept(timeout: .zero) {
                clients.append(Client(socket: socket))
            }
            var closing: [Int] = []
            for i in 0..<(fds.count - 1) where fds[i + 1].revents != 0 {
                let socket = clients[i].socket
                do {
                    let (command, fields) = try RendezvousWire.read(socket, timeout: Self.frameTimeout)
                    let reply = handle(command, fields, client: &clients[i], values: &values, done: &done)
                    try socket.sendAll(reply.frame)
                    if reply.close { closing.append(i) }
                } catch {
                    // Ranks close their connection when finished; anything else is logged.
                    if clients[i].rank == nil || !done.contains(clients[i].rank!) {
                        log(.info, "rendezvous store: dropping \(socket.peerDescription): \(error)")
                    }
                    closing.append(i)
                }
            }
            for i in closing.reversed() { clients.remove(at: i) }
        }
        if done.count < size {
            let missing = (0..<size).filter { !done.contains($0) }
            log(.info, "rendezvous store closing at its deadline; ranks not done: \(RankList(missing))")
        }
    }

    private func handle(_ command: RendezvousWire.Command, _ fields: [[UInt8]], client: inout Client,
                        values: inout [String: [UInt8]], done: inout Set<Int>) -> (frame: [UInt8], close: Bool) {
        func refuse(_ reason: String) -> ([UInt8], Bool) {
            log(.warn, "rendezvous store refused \(client.socket.peerDescription): \(reason)")
            return (RendezvousWire.frame(.refused, strings: [reason]), true)
        }
        guard let rank = client.rank else {
            guard command == .hello, fields.count == 4 else { return refuse("a peer must say hello with the job token first") }
            guard fields[3].utf8String == RendezvousWire.version else {
                return refuse("speaks \(fields[3].utf8String), this store speaks \(RendezvousWire.version)")
            }
            guard fields[0].utf8String == token else { return refuse("wrong job token (check CHORUS_JOB_TOKEN or the launcher's job id)") }
            guard let r = Int(fields[1].utf8String), let n = Int(fields[2].utf8String) else { return refuse("malformed hello") }
            guard n == size else { return refuse("rank \(r) says the job has \(n) ranks, but rank 0 says \(size)") }
            guard (0..<size).contains(r) else { return refuse("rank \(r) is not in 0..<\(size)") }
            guard !done.contains(r) else { return refuse("rank \(r) already finished the rendezvous; two processes claim rank \(r)") }
            client.rank = r
            return (RendezvousWire.frame(.ok, strings: [String(nonce)]), false)
        }
        switch command {
        case .set where fields.count == 2:
            values[fields[0].utf8String] = fields[1]
            return (RendezvousWire.frame(.ok, []), false)
        case .get where fields.count == 1:
            if let v = values[fields[0].utf8String] { return (RendezvousWire.frame(.found, [v]), false) }
            return (RendezvousWire.frame(.missing, []), false)
        case .done:
            done.insert(rank)
            return (RendezvousWire.frame(.ok, []), false)
        default:
            return refuse("rank \(rank) sent a malformed request")
        }
    }
}

/// Ranks printed compactly: `0-3, 7, 9-10`.
struct RankList: CustomStringConvertible {
    var ranks: [Int]
    init(_ ranks: [Int]) { self.ranks = ranks.sorted() }

    var description: String {
        var parts: [String] = []
        var i = 0
        while i < ranks.count {
            var j = i
            while j + 1 < ranks.count && ranks[j + 1] == ranks[j] + 1 { j += 1 }
            parts.append(i == j ? "\(ranks[i])" : "\(ranks[i])-\(ranks[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }
}
