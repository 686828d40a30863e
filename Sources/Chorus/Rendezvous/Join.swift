import ChorusCore
import ChorusTransport
import ChorusTransportSHM
import ChorusTransportTCP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What each rank tells the others at rendezvous.
struct PeerInfo: Equatable, Sendable {
    /// Boot id and network namespace (or `CHORUS_HOSTID`): equal means same host.
    var hostID: String
    var pid: Int32
    /// Random per process: equal means same process.
    var processToken: UInt64
    /// The RDMA network this rank could use between hosts (`ofi:efa`, `verbs`, `ofi:verbs`), or
    /// empty: `auto` uses it only when every rank has the same one. Learnt in a second round,
    /// only for jobs on several hosts.
    var fabric: String = ""

    /// What the first round publishes (`fabric` comes in the second).
    var encoded: [UInt8] { Array("\(hostID)\t\(pid)\t\(processToken)".utf8) }

    init(hostID: String, pid: Int32, processToken: UInt64) {
        self.hostID = hostID
        self.pid = pid
        self.processToken = processToken
    }

    init?(decoding bytes: [UInt8]) {
        let parts = bytes.utf8String.split(separator: "\t", omittingEmptySubsequences: false)
        guard parts.count == 3, let pid = Int32(parts[1]), let token = UInt64(parts[2]) else { return nil }
        self.init(hostID: String(parts[0]), pid: pid, processToken: token)
    }

    /// This process: the host is the boot id plus the network namespace, since network-namespace
    /// test hosts share one kernel (and `/dev/shm`) but not a network.
    static func current(configuration: ChorusConfiguration) -> PeerInfo {
        PeerInfo(hostID: configuration.hostID ?? HostIdentity.current, pid: getpid(), processToken: HostIdentity.processToken)
    }
}

enum HostIdentity {
    static let processToken: UInt64 = UInt64.random(in: 1...UInt64.max)

    static let current: String = {
        let boot = readFirstLine("/proc/sys/kernel/random/boot_id") ?? "unknown-boot"
        var link = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/ns/net", &link, link.count - 1)
        let namespace = n > 0 ? String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "net:unknown"
        return "\(boot)/\(namespace)"
    }()

    private static func readFirstLine(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 128)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return line.isEmpty ? nil : line
    }
}

/// In-process fabrics of jobs whose ranks all run in this process, by job nonce, until every
/// rank has taken its transport.
enum InProcessJobs {
    private static let fabrics = Mutex<[UInt64: (fabric: InProcessFabric, taken: Int)]>([:])

    static func transport(job: UInt64, size: Int, rank: Int) -> InProcessTransport {
        fabrics.withLock { table in
            var entry = table[job] ?? (InProcessFabric(size: size), 0)
            entry.taken += 1
            if entry.taken == size { table.removeValue(forKey: job) } else { table[job] = entry }
            return entry.fabric.transport(rank: rank)
        }
    }
}

extension Communicator {
    /// Joins a job: meets the other ranks at the rendezvous store (hosted by rank 0 at
    /// `rendezvous`), learns where they run, and connects the transport. Blocks until every
    /// rank has arrived or `CHORUS_TIMEOUT` passes (the error names the ranks that did not).
    ///
    /// - Parameters:
    ///   - rendezvous: `host:port` of the store (`[v6]:port` for IPv6). Rank 0 listens on that
    ///     port; port 0 is allowed only for a one-rank job.
    ///   - jobToken: a secret every rank of the job presents; the store refuses other peers.
    /// - Throws: `ChorusError.rendezvous` (store unreachable, token refused, ranks missing),
    ///   `.unsupported` (no transport can connect these ranks), `.configuration`.
    public convenience init(rank: Int, size: Int, rendezvous: String, jobToken: String?,
                            configuration: ChorusConfiguration = ChorusConfiguration()) throws(ChorusError) {
        guard size >= 1 else { throw .invalidArgument("a communicator needs at least one rank, not \(size)") }
        guard (0..<size).contains(rank) else { throw .invalidArgument("rank \(rank) is not in 0..<\(size)") }
        let log = Log(level: configuration.debug, rank: rank)
        let token = jobToken ?? ""
        if jobToken == nil && rank == 0 {
            log(.warn, "no job token (CHORUS_JOB_TOKEN or a launcher's job id): any process that reaches the rendezvous store can join this job")
        }
        let deadline = ContinuousClock.now + configuration.timeout
        var (host, port) = try RendezvousClient.split(rendezvous)
        var store: RendezvousStore?
        if rank == 0 {
            guard port != 0 || size == 1 else {
                throw .configuration("rendezvous address '\(rendezvous)' has port 0; other ranks need a fixed port to find rank 0")
            }
            let s = try RendezvousStore(host: host, port: port, size: size, token: token, deadline: deadline, log: log)
            port = s.port
            s.start()
            store = s
            if host == "0.0.0.0" || host == "::" { host = host == "::" ? "::1" : "127.0.0.1" }
        }
        _ = store
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let client = try RendezvousClient(address: address, rank: rank, size: size, token: token, deadline: deadline)
        // This rank's shared-memory segment exists before anyone learns of it, so peers on this
        // host can map it as soon as the gather below returns.
        // A rank that cannot make one says why when the ranks reserve their segments (below).
        var segment: SharedSegmentHandle?
        var segmentTrouble = "no shared-memory segment was made"
        if size > 1 && (configuration.transport == "auto" || configuration.transport == "shm") {
            do {
                segment = try SharedSegmentHandle(job: client.nonce, rank: rank, ranks: size)
            } catch {
                segmentTrouble = "\(error)"
                log(.info, "shared memory is not available here: \(error)")
            }
        }
        defer { segment?.discard() }
        let me = PeerInfo.current(configuration: configuration)
        try client.set("peer/\(rank)", me.encoded)
        let raw = try client.gather("peer")
        var peers: [PeerInfo] = []
        for (r, bytes) in raw.enumerated() {
            guard let info = PeerInfo(decoding: bytes) else {
                throw .rendezvous("rank \(r) published something that is not a Chorus peer description at \(address)")
            }
            peers.append(info)
        }

        // Hosts, densely numbered in rank order.
        var hostIndex: [String: Int] = [:]
        let hosts = peers.map { p -> Int in
            if let h = hostIndex[p.hostID] { return h }
            hostIndex[p.hostID] = hostIndex.count
            return hostIndex.count - 1
        }
        // Only a job on several hosts under auto asks what RDMA each rank could use (probing
        // libfabric and the verbs devices takes a few hundred milliseconds), in a second round.
        if configuration.transport == "auto" && Set(hosts).count > 1 {
            try client.set("fabric/\(rank)", Array(Self.rdmaFabric(configuration: configuration).utf8))
            let fabrics = try client.gather("fabric").map(\.utf8String)
            for i in peers.indices { peers[i].fabric = fabrics[i] }
        }
        let choice = try Self.chooseTransport(rank: rank, peers: peers, hosts: hosts, configuration: configuration, log: log)
        let transport: Transport
        switch choice {
        case .inProcess:
            transport = InProcessJobs.transport(job: client.nonce, size: size, rank: rank)
        case .sharedMemory:
            // Reserve this rank's segment and tell the others how it went (or why it has none):
            // a peer's segment is touched only once every rank has reserved its own (touching an
            // unreserved page of a full /dev/shm is SIGBUS). Every rank reads the same answers,
            // so under auto all go over TCP when one could not.
            var reservation = "ok"
            if let own = segment {
                do { try own.reserve() } catch { reservation = "\(error)" }
            } else {
                reservation = segmentTrouble
            }
            try client.set("shm-reserved/\(rank)", Array(reservation.utf8))
            let reservations = try client.gather("shm-reserved").map(\.utf8String)
            if let bad = reservations.firstIndex(where: { $0 != "ok" }) {
                guard configuration.transport == "auto" else {
                    throw .transport("rank \(bad) could not set up the job's shared memory: \(reservations[bad])")
                }
                if rank == 0 { log(.warn, "rank \(bad) could not set up the job's shared memory (\(reservations[bad])): using TCP") }
                transport = try Self.connectTCP(rank: rank, size: size, client: client, configuration: configuration, deadline: deadline, log: log)
                break
            }
            let own = segment!   // every rank reserved one
            // Map every peer's segment, tell the others how it went, and unlink the names once
            // every rank has mapped them (from then on a crash leaves nothing in /dev/shm).
            var mapped: SharedMemoryTransport?
            var status = "ok"
            do {
                mapped = try SharedMemoryTransport(own: own, rank: rank, size: size, job: client.nonce, pids: peers.map(\.pid),
                                                   ringWrites: configuration.shmRingWrites)
            } catch {
                status = "\(error)"
            }
            try client.set("shm/\(rank)", Array(status.utf8))
            let statuses = try client.gather("shm").map(\.utf8String)
            if let bad = statuses.firstIndex(where: { $0 != "ok" }) {
                // The transport unmaps this rank's segment as it closes: the handle must not again.
                if let m = mapped {
                    own.unlink()
                    m.close()
                    segment = nil
                }
                throw .transport("rank \(bad) could not map the job's shared memory: \(statuses[bad])")
            }
            own.unlink()
            segment = nil
            transport = mapped!
            if rank == 0, let m = mapped {
                log(.info, "shared memory: \(size) ranks on \(m.cpus) CPU(s) they may run on: waits \(m.waitsSpin ? "spin" : "yield the core") before they sleep")
            }
        case .ofi:
            transport = try Self.connectOFI(rank: rank, size: size, peers: peers, client: client, configuration: configuration, log: log)
        case .verbs:
            transport = try Self.connectVerbs(rank: rank, size: size, client: client, configuration: configuration, log: log)
        case .tcp:
            transport = try Self.connectTCP(rank: rank, size: size, client: client, configuration: configuration, deadline: deadline, log: log)
        case .mixed(let network):
            // The segment made before rendezvous was sized for the whole job; this host's ranks
            // make new ones, sized for themselves.
            segment?.discard()
            segment = nil
            transport = try Self.connectMixed(rank: rank, size: size, hosts: hosts, peers: peers, client: client, network: network,
                                              configuration: configuration, deadline: deadline, log: log)
        }
        try client.done()
        self.init(engine: Engine(transport: transport, configuration: configuration), rank: rank, size: size,
                  worldRanks: nil, hosts: hosts, id: 1)
    }

    /// Joins the job the launcher describes (`LaunchEnvironment`), with the knobs of
    /// `ChorusConfiguration` read from the same environment.
    public static func fromEnvironment(_ environment: [String: String] = ChorusConfiguration.processEnvironment()) throws(ChorusError) -> Communicator {
        let configuration = try ChorusConfiguration(environment: environment)
        let launch = try LaunchEnvironment(environment: environment)
        return try Communicator(rank: launch.rank, size: launch.size, rendezvous: launch.rendezvous,
                                jobToken: launch.jobToken, configuration: configuration)
    }

    /// What carries messages between hosts.
    enum Network: String { case tcp = "TCP", ofi = "OFI", verbs = "verbs" }
    enum TransportChoice: Equatable { case inProcess, sharedMemory, tcp, ofi, verbs, mixed(Network) }

    /// TCP between every pair: listen, publish the address, connect.
    static func connectTCP(rank: Int, size: Int, client: RendezvousClient, configuration: ChorusConfiguration,
                           deadline: ContinuousClock.Instant, log: Log) throws(ChorusError) -> TCPTransport {
        let host = try Self.interfaceAddress(configuration.socketInterface) ?? client.localHost
        let listening: (listener: StreamSocket, address: String)
        do { listening = try TCPTransport.listen(host: host) } catch {
            throw .transport("rank \(rank) cannot listen for peers on \(host): \(error)")
        }
        // Each rank publishes "address streams": every rank must open the same number of
        // connections per pair, so a difference is an error naming both.
        try client.set("tcp/\(rank)", Array("\(listening.address) \(configuration.socketStreams)".utf8))
        let published = try client.gather("tcp").map { $0.utf8String.split(separator: " ").map(String.init) }
        let addresses = published.map { $0.first ?? "" }
        if let other = published.indices.first(where: { published[$0].count > 1 && Int(published[$0][1]) != configuration.socketStreams }) {
            throw .configuration("rank \(rank) has CHORUS_SOCKET_NSTREAMS=\(configuration.socketStreams) but rank \(other) has \(published[other][1]); every rank must use the same")
        }
        let transport: TCPTransport
        // A rank that cannot connect says so in the store, so the ranks waiting for it to
        // connect fail at once with its reason instead of at CHORUS_TIMEOUT.
        let trouble = { () -> String? in
            do {
                return try client.get("tcp-trouble").map { String(decoding: $0, as: UTF8.self) }
            } catch {
                // The store lives in rank 0 until every rank is connected: losing it means rank 0 stopped.
                return "rank 0 stopped while the ranks were connecting (its rendezvous store is gone: \(error))"
            }
        }
        do {
            transport = try TCPTransport(rank: rank, size: size, job: client.nonce, listener: listening.listener,
                                         addresses: addresses, deadline: deadline, connections: configuration.socketStreams,
                                         peerTrouble: trouble)
        } catch {
            let report = "rank \(rank) (address \(listening.address)): \(error)"
            try? client.set("tcp-trouble", Array(report.utf8))
            throw .transport(report)
        }
        log(.info, "tcp: listening on \(listening.address), connected to \(size - 1) peer(s), \(configuration.socketStreams) connection(s) each")
        return transport
    }

    /// Shared memory among the ranks of this host, `network` to the ranks of other hosts.
    static func connectMixed(rank: Int, size: Int, hosts: [Int], peers: [PeerInfo], client: RendezvousClient, network: Network,
                             configuration: ChorusConfiguration, deadline: ContinuousClock.Instant, log: Log) throws(ChorusError) -> Transport {
        let local = (0..<size).filter { hosts[$0] == hosts[rank] }
        let localIndex = local.firstIndex(of: rank)!
        var shared: SharedMemoryTransport?
        var segment: SharedSegmentHandle?
        defer { segment?.discard() }
        var trouble = ""
        if local.count > 1 {
            do {
                segment = try SharedSegmentHandle(job: client.nonce, rank: localIndex, ranks: local.count)
                try segment?.reserve()
            } catch {
                segment?.discard()
                segment = nil
                trouble = "\(error)"
            }
        }
        // Everyone's segment exists before anyone maps: publish, then gather. A host where a
        // rank could not make one (such as a full /dev/shm) uses the network between its own
        // ranks too; every rank of it reads the same answers, so they all decide alike.
        try client.set("mixed-shm/\(rank)", Array((segment == nil ? "none \(trouble)" : "ready").utf8))
        let published = try client.gather("mixed-shm").map(\.utf8String)
        if local.count > 1, let without = local.first(where: { published[$0] != "ready" }) {
            if rank == local[0] {
                log(.warn, "rank \(without) has no shared-memory segment (\(published[without].dropFirst("none ".count))): the \(local.count) ranks of its host use \(network.rawValue) between them too")
            }
            segment?.discard()
            segment = nil
        }
        var status = "ok"
        if let own = segment {
            do {
                shared = try SharedMemoryTransport(own: own, rank: localIndex, size: local.count, job: client.nonce, pids: local.map { peers[$0].pid },
                                                   ringWrites: configuration.shmRingWrites)
            } catch {
                status = "\(error)"
            }
        }
        try client.set("mixed-shm-mapped/\(rank)", Array(status.utf8))
        let statuses = try client.gather("mixed-shm-mapped").map(\.utf8String)
        if let bad = local.first(where: { statuses[$0] != "ok" }) {
            throw .transport("rank \(bad) could not map its host's shared memory: \(statuses[bad])")
        }
        segment?.unlink()
        segment = nil
        let between: Transport = switch network {
        case .ofi: try connectOFI(rank: rank, size: size, peers: peers, client: client, configuration: configuration, log: log)
        case .verbs: try connectVerbs(rank: rank, size: size, client: client, configuration: configuration, log: log)
        case .tcp: try connectTCP(rank: rank, size: size, client: client, configuration: configuration, deadline: deadline, log: log)
        }
        var members: [Transport] = [between]
        var routes: [PeerRoutedTransport.Route?] = (0..<size).map { $0 == rank ? nil : PeerRoutedTransport.Route(member: 0, rank: $0) }
        if let shared {
            members.append(shared)
            for (i, r) in local.enumerated() where r != rank { routes[r] = PeerRoutedTransport.Route(member: 1, rank: i) }
            log(.info, "shared memory with rank(s) \(local.filter { $0 != rank }.map(String.init).joined(separator: ", ")) on this host; \(network.rawValue) with the \(size - local.count) rank(s) on other hosts")
        } else {
            log(.info, "\(network.rawValue) with all \(size - 1) peer(s)")
        }
        return PeerRoutedTransport(rank: rank, size: size, members: members, routes: routes)
    }

    /// The address of the interface `CHORUS_SOCKET_IFNAME` names (IPv4 first), or `nil` when unset.
    static func interfaceAddress(_ name: String?) throws(ChorusError) -> String? {
        guard let name else { return nil }
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else {
            throw .configuration("CHORUS_SOCKET_IFNAME=\(name): cannot list this host's interfaces")
        }
        defer { freeifaddrs(first) }
        var found: [(family: Int32, host: String)] = []
        var names = Set<String>()
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = p {
            let ifName = String(cString: entry.pointee.ifa_name)
            names.insert(ifName)
            if ifName == name, let address = entry.pointee.ifa_addr {
                let family = Int32(address.pointee.sa_family)
                if family == AF_INET || family == AF_INET6 {
                    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
                    if getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                        found.append((family, String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
                    }
                }
            }
            p = entry.pointee.ifa_next
        }
        guard let best = found.first(where: { $0.family == AF_INET }) ?? found.first else {
            throw .configuration("CHORUS_SOCKET_IFNAME=\(name): no interface of that name with an address here (interfaces: \(names.sorted().joined(separator: ", ")))")
        }
        return best.host.split(separator: "%").first.map(String.init)
    }

    /// The transport for this rank given where every rank runs. A transport named in
    /// `CHORUS_TRANSPORT` that cannot connect these ranks is an error saying why; `auto` takes
    /// the best available and says which at INFO: in-process when every rank is a thread of
    /// this process, shared memory when every rank is on this host.
    static func chooseTransport(rank: Int, peers: [PeerInfo], hosts: [Int],
                                configuration: ChorusConfiguration, log: Log) throws(ChorusError) -> TransportChoice {
        let size = peers.count
        let oneProcess = peers.allSatisfy { $0.processToken == peers[0].processToken }
        let hostCount = Set(hosts).count
        switch configuration.transport {
        case "inproc":
            guard oneProcess else {
                let other = peers.firstIndex { $0.processToken != peers[0].processToken }!
                throw .unsupported("CHORUS_TRANSPORT=inproc needs every rank in one process, but rank 0 is pid \(peers[0].pid) and rank \(other) is pid \(peers[other].pid)")
            }
            return .inProcess
        case "shm":
            guard hostCount == 1 else {
                let other = hosts.firstIndex { $0 != hosts[0] }!
                throw .unsupported("CHORUS_TRANSPORT=shm needs every rank on one host, but ranks 0 and \(other) run on different hosts (\(peers[0].hostID) and \(peers[other].hostID); CHORUS_HOSTID overrides)")
            }
            if rank == 0 { log(.info, "CHORUS_TRANSPORT=shm: all \(size) ranks use shared memory") }
            return .sharedMemory
        case "auto":
            if oneProcess || size == 1 {
                if rank == 0 { log(.info, "all \(size) ranks run in this process: using the in-process transport") }
                return .inProcess
            }
            if hostCount == 1 {
                if rank == 0 { log(.info, "all \(size) ranks run on this host in separate processes: using shared memory") }
                return .sharedMemory
            }
            let largestHost = Dictionary(grouping: hosts, by: { $0 }).values.map(\.count).max() ?? 1
            // RDMA between hosts only when every rank has the same kind; otherwise say who lacks it.
            let network: Network
            let why: String
            if !peers[0].fabric.isEmpty && peers.allSatisfy({ $0.fabric == peers[0].fabric }) {
                network = peers[0].fabric == "verbs" ? .verbs : .ofi
                why = "every rank has \(peers[0].fabric)"
            } else {
                network = .tcp
                if let without = peers.firstIndex(where: { $0.fabric.isEmpty }) {
                    why = "no RDMA transport on rank \(without)'s host: \(rank == without ? Self.rdmaAbsence(configuration: configuration) : "see its INFO log")"
                } else {
                    let other = peers.firstIndex { $0.fabric != peers[0].fabric }!
                    why = "ranks 0 and \(other) have different RDMA networks (\(peers[0].fabric), \(peers[other].fabric))"
                }
            }
            if largestHost > 1 {
                if rank == 0 { log(.info, "the ranks run on \(hostCount) hosts: shared memory between ranks of one host, \(network.rawValue) between hosts (\(why))") }
                return .mixed(network)
            }
            if rank == 0 { log(.info, "the ranks run on \(hostCount) hosts, one each: using \(network.rawValue) between every pair (\(why))") }
            return switch network { case .ofi: .ofi; case .verbs: .verbs; case .tcp: .tcp }
        case "ofi":
            guard Self.hasRDMATransports else {
                throw .unsupported("CHORUS_TRANSPORT=ofi: this build of Chorus has no OFI transport (it was built without the package's RDMA trait)")
            }
            if rank == 0 { log(.info, "CHORUS_TRANSPORT=ofi: all \(size) ranks use libfabric\(configuration.ofiProvider.map { " (provider \($0))" } ?? "")") }
            return .ofi
        case "verbs":
            guard Self.hasRDMATransports else {
                throw .unsupported("CHORUS_TRANSPORT=verbs: this build of Chorus has no verbs transport (it was built without the package's RDMA trait)")
            }
            if rank == 0 { log(.info, "CHORUS_TRANSPORT=verbs: all \(size) ranks use RDMA verbs") }
            return .verbs
        case "tcp":
            if rank == 0 { log(.info, "CHORUS_TRANSPORT=tcp: all \(size) ranks use TCP") }
            return .tcp
        default:
            throw .unsupported("CHORUS_TRANSPORT=\(configuration.transport): not a transport; use auto, shm, tcp, ofi, verbs or inproc")
        }
    }
}
