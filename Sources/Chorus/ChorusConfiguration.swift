import ChorusCore
import ChorusSelect
import ChorusTransportSHM
#if canImport(Glibc)
import Glibc
#endif

/// Every knob Chorus reads from the environment, parsed in one place.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `CHORUS_ALGO` | algorithm override (`SelectionOverride` grammar) | the selector decides |
/// | `CHORUS_TRANSPORT` | `auto`, `shm`, `tcp`, `verbs`, `ofi`, `inproc` | `auto` |
/// | `CHORUS_DEBUG` | `WARN`, `INFO`, `TRACE` | `WARN` |
/// | `CHORUS_TOPO_FILE` | topology the selector models | built from what rendezvous learns |
/// | `CHORUS_SOCKET_IFNAME` | network interface for sockets | the route to the rendezvous host |
/// | `CHORUS_SOCKET_NSTREAMS` | TCP connections per pair of ranks (1-16; every rank the same) | 1 |
/// | `CHORUS_OFI_PROVIDER` | libfabric provider for the OFI transport (`efa`, `tcp`, `shm`, `verbs`, `sockets`) | the first of efa, verbs, tcp offered |
/// | `CHORUS_OFI_LIBRARY` | the libfabric shared library to load | `libfabric.so.1` |
/// | `CHORUS_IB_HCA` | RDMA device (and port, `mlx5_0:1`) for the verbs transport | the first with an active InfiniBand or RoCE port |
/// | `CHORUS_IB_GID_INDEX` | GID index for RoCE | the first RoCE v2 GID with an IPv4-mapped address |
/// | `CHORUS_VERBS_LIBRARY` | the libibverbs shared library to load | `libibverbs.so.1` |
/// | `CHORUS_SHM_RING_WRITES` | how large messages go into shared-memory rings: `measured` (the cheaper of ordinary and streaming stores, by both ends' timings), `ordinary`, `streaming` | `measured` |
/// | `CHORUS_TIMEOUT` | seconds without progress before a collective fails, and the rendezvous deadline | 300 |
/// | `CHORUS_RENDEZVOUS` | `host:port` of the rendezvous store | `MASTER_ADDR:MASTER_PORT`, or the Slurm step's first host |
/// | `CHORUS_JOB_TOKEN` | secret every rank presents to the store | the launcher's job id |
/// | `CHORUS_HOSTID` | overrides host identity (boot id + network namespace) | |
public struct ChorusConfiguration: Sendable {
    public var algorithmOverride: SelectionOverride?
    public var transport: String
    public var debug: LogLevel
    public var topologyFile: String?
    public var socketInterface: String?
    /// TCP connections per pair of ranks; channels spread over them.
    public var socketStreams: Int = 1
    /// The libfabric provider the OFI transport asks for; `nil` for the best offered.
    public var ofiProvider: String?
    /// The RDMA device (`name` or `name:port`) for the verbs transport; `nil` for the first usable.
    public var ibDevice: String?
    /// The GID index for RoCE; `nil` to choose.
    public var ibGIDIndex: Int32?
    /// How large messages are written into shared-memory rings (`SharedMemoryTransport.RingWrites`).
    public var shmRingWrites: SharedMemoryTransport.RingWrites = .measured
    public var timeout: Duration
    public var rendezvous: String?
    public var jobToken: String?
    public var hostID: String?

    public init(algorithmOverride: SelectionOverride? = nil, transport: String = "auto", debug: LogLevel = .warn,
                topologyFile: String? = nil, socketInterface: String? = nil, timeout: Duration = .seconds(300),
                rendezvous: String? = nil, jobToken: String? = nil, hostID: String? = nil) {
        self.algorithmOverride = algorithmOverride
        self.transport = transport
        self.debug = debug
        self.topologyFile = topologyFile
        self.socketInterface = socketInterface
        self.timeout = timeout
        self.rendezvous = rendezvous
        self.jobToken = jobToken
        self.hostID = hostID
    }

    /// Reads the variables above.
    /// - Throws: `ChorusError.configuration` naming the variable and what it expected.
    public init(environment: [String: String]) throws(ChorusError) {
        self.init()
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let algo = value("CHORUS_ALGO") {
            do { algorithmOverride = try SelectionOverride.parse(algo, source: "CHORUS_ALGO") } catch {
                throw ChorusError.configuration("\(error)")
            }
        }
        if let t = value("CHORUS_TRANSPORT") {
            let known = ["auto", "shm", "tcp", "verbs", "ofi", "inproc"]
            guard known.contains(t.lowercased()) else {
                throw ChorusError.configuration("CHORUS_TRANSPORT=\(t) is not a transport; expected one of \(known.joined(separator: ", "))")
            }
            transport = t.lowercased()
        }
        if let d = value("CHORUS_DEBUG") {
            guard let level = LogLevel(name: d) else {
                throw ChorusError.configuration("CHORUS_DEBUG=\(d) is not a level; expected WARN, INFO or TRACE")
            }
            debug = level
        }
        topologyFile = value("CHORUS_TOPO_FILE")
        socketInterface = value("CHORUS_SOCKET_IFNAME")
        /// An integer variable in `range`, or nil when unset; `what` names what it counts.
        func integer(_ name: String, in range: ClosedRange<Int>, _ what: String) throws(ChorusError) -> Int? {
            guard let text = value(name) else { return nil }
            guard let n = Int(text), range.contains(n) else {
                throw ChorusError.configuration("\(name)=\(text) is not \(what) from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        socketStreams = try integer("CHORUS_SOCKET_NSTREAMS", in: 1...16, "a number of connections per peer") ?? socketStreams
        ofiProvider = value("CHORUS_OFI_PROVIDER")
        ibDevice = value("CHORUS_IB_HCA")
        ibGIDIndex = try integer("CHORUS_IB_GID_INDEX", in: 0...255, "a GID index").map(Int32.init)
        if let w = value("CHORUS_SHM_RING_WRITES") {
            guard let writes = SharedMemoryTransport.RingWrites(rawValue: w.lowercased()) else {
                throw ChorusError.configuration("CHORUS_SHM_RING_WRITES=\(w) is not a way of writing the rings; expected measured, ordinary or streaming")
            }
            shmRingWrites = writes
        }
        if let t = value("CHORUS_TIMEOUT") {
            guard let seconds = Double(t), seconds > 0, seconds.isFinite else {
                throw ChorusError.configuration("CHORUS_TIMEOUT=\(t) is not a positive number of seconds")
            }
            timeout = .seconds(seconds)
        }
        rendezvous = value("CHORUS_RENDEZVOUS")
        jobToken = value("CHORUS_JOB_TOKEN")
        hostID = value("CHORUS_HOSTID")
    }

    /// The process environment.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { result[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return result
    }
}
