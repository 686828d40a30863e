import ChorusTransport
#if canImport(Glibc)
import Glibc
#endif

/// A rank's connection to the rendezvous store.
///
/// Connecting retries until the deadline (ranks start in any order, and rank 0 may not be
/// listening yet); every failure after that names the store's address and what to check.
final class RendezvousClient {
    let address: String
    let rank: Int
    let size: Int
    let nonce: UInt64
    private let socket: StreamSocket
    private let deadline: ContinuousClock.Instant

    /// `host:port`, `[v6]:port`.
    static func split(_ address: String) throws(ChorusError) -> (host: String, port: Int) {
        var host = Substring(address), port = Substring("")
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            host = address[address.index(after: address.startIndex)..<close]
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .configuration("rendezvous address '\(address)' has no port; expected [host]:port") }
            port = rest.dropFirst()
        } else if let colon = address.lastIndex(of: ":"), address.firstIndex(of: ":") == colon {
            host = address[..<colon]
            port = address[address.index(after: colon)...]
        } else {
            throw .configuration("rendezvous address '\(address)' is not host:port (IPv6 addresses go in brackets: [::1]:29500)")
        }
        guard !host.isEmpty else { throw .configuration("rendezvous address '\(address)' has no host") }
        guard let p = Int(port), (0...65535).contains(p) else {
            throw .configuration("rendezvous address '\(address)': '\(port)' is not a port number (0-65535)")
        }
        return (String(host), p)
    }

    init(address: String, rank: Int, size: Int, token: String, deadline: ContinuousClock.Instant) throws(ChorusError) {
        self.address = address
        self.rank = rank
        self.size = size
        self.deadline = deadline
        let (host, port) = try Self.split(address)
        var lastError = "no attempt"
        var connected: StreamSocket?
        var delay: Duration = .milliseconds(20)
        while connected == nil {
            do {
                for candidate in try SocketAddress.resolve(host: host, port: port) {
                    do {
                        connected = try StreamSocket.connect(to: candidate, timeout: min(.seconds(2), max(.milliseconds(10), deadline - .now)))
                        break
                    } catch {
                        lastError = "\(error)"
                    }
                }
            } catch {
                lastError = "\(error)"
            }
            if connected != nil { break }
            guard ContinuousClock.now + delay < deadline else {
                throw .rendezvous("rank \(rank) could not reach the rendezvous store at \(address) before the deadline (CHORUS_TIMEOUT): \(lastError); is rank 0 running, and does this host reach that address?")
            }
            sleepFor(delay)
            delay = min(delay * 2, .milliseconds(500))
        }
        socket = connected!
        let (command, fields) = try Self.exchange(socket, RendezvousWire.frame(.hello, strings: [token, String(rank), String(size), RendezvousWire.version]),
                                                  address: address, rank: rank, deadline: deadline)
        guard command == .ok, let first = fields.first, let nonce = UInt64(first.utf8String) else {
            let reason = fields.first?.utf8String ?? "no reason given"
            throw .rendezvous("the rendezvous store at \(address) refused rank \(rank): \(reason)")
        }
        self.nonce = nonce
    }

    private static func exchange(_ socket: StreamSocket, _ frame: [UInt8], address: String, rank: Int,
                                 deadline: ContinuousClock.Instant) throws(ChorusError) -> (RendezvousWire.Command, [[UInt8]]) {
        do {
            try socket.sendAll(frame)
            return try RendezvousWire.read(socket, timeout: max(.milliseconds(100), deadline - .now))
        } catch {
            throw .rendezvous("rank \(rank) lost the rendezvous store at \(address): \(error)")
        }
    }

    private func request(_ command: RendezvousWire.Command, _ fields: [[UInt8]]) throws(ChorusError) -> (RendezvousWire.Command, [[UInt8]]) {
        try Self.exchange(socket, RendezvousWire.frame(command, fields), address: address, rank: rank, deadline: deadline)
    }

    func set(_ key: String, _ value: [UInt8]) throws(ChorusError) {
        let (reply, _) = try request(.set, [Array(key.utf8), value])
        guard reply == .ok else { throw .rendezvous("the rendezvous store at \(address) refused to store '\(key)'") }
    }

    func get(_ key: String) throws(ChorusError) -> [UInt8]? {
        let (reply, fields) = try request(.get, [Array(key.utf8)])
        switch reply {
        case .found where fields.count == 1: return fields[0]
        case .missing: return nil
        default: throw .rendezvous("the rendezvous store at \(address) answered '\(key)' with \(reply)")
        }
    }

    /// What every rank published under `prefix/<rank>`, waiting for late ranks until the
    /// deadline, which names the ranks that never arrived.
    func gather(_ prefix: String) throws(ChorusError) -> [[UInt8]] {
        var values = [[UInt8]?](repeating: nil, count: size)
        var delay: Duration = .milliseconds(1)
        while true {
            for r in 0..<size where values[r] == nil { values[r] = try get("\(prefix)/\(r)") }
            let missing = (0..<size).filter { values[$0] == nil }
            if missing.isEmpty { return values.map { $0! } }
            guard ContinuousClock.now + delay < deadline else {
                throw .rendezvous("rank \(rank): rank\(missing.count == 1 ? "" : "s") \(RankList(missing)) of \(size) never arrived at the rendezvous store at \(address) within CHORUS_TIMEOUT; were they started, with the same store address and job token?")
            }
            sleepFor(delay)
            delay = min(delay * 2, .milliseconds(100))
        }
    }

    /// The host address this rank reaches the store from (the interface other ranks can reach it on).
    var localHost: String { socket.localHost }

    func done() throws(ChorusError) {
        _ = try request(.done, [])
    }
}

func sleepFor(_ d: Duration) {
    let (s, atto) = d.components
    var request = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
