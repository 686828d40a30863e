import ChorusCore
import ChorusExec
import ChorusSchedule
import ChorusSelect
import ChorusTopology

/// The topology a communicator's selector models: `CHORUS_TOPO_FILE` when set (its first
/// `size` ranks), else one built from where the ranks run.
///
/// The built model: ranks on one host are processes sharing memory (a crossbar of `shm` links
/// to the host's memory system, as `Topologies/localhost.yaml`); hosts join through one NIC
/// each on a switch of the network the transport uses between them: Ethernet for TCP (and
/// libfabric's tcp and sockets providers), EFA for libfabric's efa provider, InfiniBand for
/// verbs. Figures are nominal (the development machine's for shared memory; a 25 Gbit/s
/// Ethernet, a 100 Gbit/s EFA NIC with the ~15 µs inter-node step Neuron documents, a 200 Gbit/s
/// HDR InfiniBand port); calibrate with `chorus sim --calibrate` and point `CHORUS_TOPO_FILE`
/// at a file for real clusters.
enum HostModel {
    static let shm = LinkAttributes(kind: .shm, bandwidth: .gigabytesPerSecond(10), latency: .nanoseconds(200))
    static let hostLink = LinkAttributes(kind: .pcie, bandwidth: .gigabytesPerSecond(16), latency: .nanoseconds(500))
    static let memoryBandwidth: Bandwidth = .gigabytesPerSecond(10)
    static let ethernet = LinkAttributes(kind: .ethernet, bandwidth: .gigabitsPerSecond(25), latency: .microseconds(10))
    static let efa = LinkAttributes(kind: .efa, bandwidth: .gigabitsPerSecond(100), latency: .microseconds(15))
    static let infiniband = LinkAttributes(kind: .infiniband, bandwidth: .gigabitsPerSecond(200), latency: .microseconds(2))

    /// The link between hosts for what `Transport.network(of:)` names.
    static func networkLink(for network: String) -> LinkAttributes {
        if network == "verbs" || network.hasPrefix("ofi:verbs") { return infiniband }
        if network.hasPrefix("ofi:efa") { return efa }
        return ethernet
    }

    /// - Parameters:
    ///   - hosts: the host index of each rank (0-based, dense).
    ///   - network: the link between hosts (`networkLink(for:)`).
    static func topology(hosts: [Int], network: LinkAttributes = ethernet) throws -> Topology {
        let hostCount = (hosts.max() ?? 0) + 1
        // Equal, contiguous hosts (ranks 0..<g on host 0, g..<2g on host 1, ...) become a
        // composition of identical instances, which is what hierarchical algorithms need.
        let perHost = hosts.count / max(hostCount, 1)
        if hostCount > 1, perHost > 1, hosts.count == perHost * hostCount,
           hosts.enumerated().allSatisfy({ $0.element == $0.offset / perHost }) {
            var host = TopologyBuilder(name: "chorus-host", summary: "\(perHost) processes sharing memory, one NIC")
            let procs = try host.addFamily("proc", count: perHost, kind: .cpu)
            for p in procs { host.setMemory(of: p, size: nil, bandwidth: memoryBandwidth) }
            let memory = try host.addNode("memory", kind: .switch)
            let nic = try host.addFamily("nic", count: 1, kind: .nic)[0]
            host.setLineRate(of: nic, network.bandwidth)
            _ = try host.addLink(nic, memory, hostLink)
            for p in procs { _ = try host.addLink(p, memory, shm) }
            host.setRanks(procs)
            return try TopologyBuilder.compose(name: "chorus-job", summary: "\(hosts.count) ranks on \(hostCount) hosts, as the communicator sees them",
                                               instance: try host.build(), count: hostCount, railFamily: "nic",
                                               fabric: FabricDescription(shape: .crossbar, placement: .instance, attributes: network))
        }
        var b = TopologyBuilder(name: "chorus-job", summary: "\(hosts.count) ranks on \(hostCount) host(s), as the communicator sees them")
        let procs = try b.addFamily("proc", count: hosts.count, kind: .cpu, host: { hosts[$0] })
        // What one core streams (the anchors' 1 GiB memcpy, 9.7-10.5 GB/s): reductions cost
        // memory traffic too, which is what makes halving-doubling beat recursive doubling here.
        for p in procs { b.setMemory(of: p, size: nil, bandwidth: memoryBandwidth) }
        if hostCount == 1 {
            _ = try b.addFamily("memory", count: 1, kind: .switch)
            try b.crossbar(over: "proc", switches: "memory", shm)
        } else {
            let fabric = try b.addNode("network", kind: .switch, host: 0)
            for h in 0..<hostCount {
                let memory = try b.addNode("memory\(h)", kind: .switch, host: h)
                let nic = try b.addNode("nic\(h)", kind: .nic, host: h)
                b.setLineRate(of: nic, network.bandwidth)
                _ = try b.addLink(nic, memory, hostLink)
                _ = try b.addLink(nic, fabric, network)
                for (r, p) in procs.enumerated() where hosts[r] == h { _ = try b.addLink(p, memory, shm) }
            }
        }
        b.setRanks(procs)
        return try b.build()
    }
}

/// Compiled plans of one communicator, keyed by what selects them; least recently used ones
/// go first. Used only by the thread whose turn it is.
final class PlanCache {
    /// What a plan does: a collective the selector plans, or ops the communicator spells out.
    enum Shape: Hashable {
        case collective(Collective, root: Int)
        case send(to: Int)
        case receive(from: Int)
        /// The empty signed message rooted collectives pass round a ring (`Communicator`).
        case signatureRing
    }

    struct Key: Hashable {
        var shape: Shape
        var count: Int
        var dataType: DataType
    }

    let rank: Int
    let size: Int
    private let configuration: ChorusConfiguration
    private let hosts: [Int]
    /// The link between hosts in the built model.
    private let network: LinkAttributes
    // Used by one thread at a time (the engine's turn), so not checked for exclusive access
    // at run time (a lookup happens on every call).
    @exclusivity(unchecked) private var selector: Selector?
    @exclusivity(unchecked) private var entries: [Key: (plan: CompiledPlan, used: UInt64)] = [:]
    @exclusivity(unchecked) private var clock: UInt64 = 0
    @exclusivity(unchecked) private var last: (key: Key, plan: CompiledPlan)?
    static let capacity = 128

    init(rank: Int, size: Int, hosts: [Int], network: LinkAttributes = HostModel.ethernet, configuration: ChorusConfiguration) {
        self.rank = rank
        self.size = size
        self.hosts = hosts
        self.network = network
        self.configuration = configuration
    }

    private func makeSelector() throws(ChorusError) -> Selector {
        if let selector { return selector }
        let topology: Topology
        if let file = configuration.topologyFile {
            do {
                topology = try TopologyLoader().load(file)
            } catch {
                throw .configuration("CHORUS_TOPO_FILE=\(file): \(error)")
            }
            guard topology.rankCount >= size else {
                throw .configuration("CHORUS_TOPO_FILE=\(file) describes \(topology.rankCount) ranks but the communicator has \(size)")
            }
        } else {
            do { topology = try HostModel.topology(hosts: hosts, network: network) } catch {
                throw .configuration("cannot model the job's hosts: \(error)")
            }
        }
        let s = Selector(topology: topology, ranks: size)
        selector = s
        return s
    }

    /// The selector's decision for a call (used by `explain`).
    func selection(_ collective: Collective, count: Int, dataType: DataType, root: Int) throws(ChorusError) -> Selection {
        let selector = try makeSelector()
        var bytes = count * dataType.size
        if collective == .allGather || collective == .reduceScatter { bytes *= size }
        do {
            return try selector.select(collective, bytes: bytes, root: root, override: configuration.algorithmOverride)
        } catch {
            throw .configuration("\(error)")
        }
    }

    /// The compiled plan for a call. `fresh` forces a new copy (a group that runs one key twice
    /// needs two, since a compiled plan holds per-run state).
    func compiled(_ key: Key, fresh: Bool = false) throws(ChorusError) -> CompiledPlan {
        clock += 1
        // Training loops repeat one call: skip the hash for a repeat of the last one.
        if !fresh, let last, last.key == key { return last.plan }
        // The repeated call ends: stamp its entry as just used.
        if let last { entries[last.key]?.used = clock }
        if !fresh, let hit = entries[key] {
            self.last = (key, hit.plan)
            entries[key]!.used = clock
            return hit.plan
        }
        let compiled = try make(key)
        if fresh { return compiled }
        if entries.count >= Self.capacity, let oldest = entries.min(by: { $0.value.used < $1.value.used }) {
            entries.removeValue(forKey: oldest.key)
            if last?.key == oldest.key { last = nil }
        }
        entries[key] = (compiled, clock)
        last = (key, compiled)
        return compiled
    }

    private func make(_ key: Key) throws(ChorusError) -> CompiledPlan {
        switch key.shape {
        case .collective(let collective, let root):
            let selection = try selection(collective, count: key.count, dataType: key.dataType, root: root)
            let plan: Plan
            do { plan = try selection.plan() } catch { throw .configuration("\(error)") }
            return CompiledPlan(plan: plan, rank: rank, blockElements: key.count, dataType: key.dataType)
        case .send(let peer):
            return explicit([.send(to: peer, BufferSlice(.input, chunk: 0))], key)
        case .receive(let peer):
            return explicit([.recv(from: peer, into: BufferSlice(.output, chunk: 0))], key)
        case .signatureRing:
            // The receive names another chunk than the send, so it does not wait for it.
            return explicit([.send(to: (rank + 1) % size, BufferSlice(.input, chunk: 0)),
                             .recv(from: (rank + size - 1) % size, into: BufferSlice(.output, chunk: 1))], key, chunks: 2)
        }
    }

    /// A plan that runs exactly `ops` on this rank: input and output of `count` elements in
    /// `chunks` chunks.
    private func explicit(_ ops: [Op], _ key: Key, chunks: Int = 1) -> CompiledPlan {
        let layout = ChunkLayout.standard(.broadcast, ranks: size, chunksPerBlock: chunks)
        let schedule = Schedule(algorithm: "point-to-point", collective: .broadcast, ranks: size, layout: layout) { _ in RankProgram() }
        return CompiledPlan(plan: Plan(schedule: schedule), rank: rank, blockElements: key.count, dataType: key.dataType, program: RankProgram(ops))
    }
}
