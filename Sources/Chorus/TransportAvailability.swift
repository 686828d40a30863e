import ChorusCore
import ChorusTransportVerbs
#if RDMA
import ChorusTransportOFI
#endif

/// Whether a transport can run on this host, and what it would use or why it cannot: the
/// answer to "why did my job fall back to sockets?" before a job runs (`chorus transports`).
public struct TransportAvailability: Sendable, Equatable {
    /// `shm`, `tcp`, `ofi`, `verbs`.
    public var name: String
    public var available: Bool
    /// What it would use (provider, device), or why it cannot run.
    public var detail: String

    /// Every transport of this build, probed on this host with `configuration`'s settings
    /// (`CHORUS_OFI_PROVIDER`, `CHORUS_IB_HCA`, …).
    public static func probe(configuration: ChorusConfiguration = ChorusConfiguration()) -> [TransportAvailability] {
        var result: [TransportAvailability] = []
        result.append(TransportAvailability(name: "shm", available: true, detail: "POSIX shared memory between processes of one host"))
        result.append(TransportAvailability(name: "tcp", available: true, detail: "sockets, on \(configuration.socketInterface.map { "interface \($0)" } ?? "the interface that reaches the rendezvous store")"))
        #if RDMA
        do {
            let offered = try OFITransport.availableProviders()
            let names = Set(offered.map(\.provider)).sorted()
            if let wanted = configuration.ofiProvider {
                let has = offered.contains { $0.provider == wanted || $0.provider.hasPrefix(wanted + ";") }
                result.append(TransportAvailability(name: "ofi", available: has,
                                                    detail: has ? "libfabric provider \(wanted) (CHORUS_OFI_PROVIDER); offered: \(names.joined(separator: ", "))"
                                                                : "CHORUS_OFI_PROVIDER=\(wanted) is not offered here; offered: \(names.joined(separator: ", "))"))
            } else {
                let first = ["efa", "verbs", "tcp"].first { n in offered.contains { $0.provider == n || $0.provider.hasPrefix(n + ";") } }
                result.append(TransportAvailability(name: "ofi", available: first != nil,
                                                    detail: first.map { "libfabric provider \($0) by default; offered: \(names.joined(separator: ", "))" }
                                                        ?? "libfabric offers none of efa, verbs, tcp for reliable-datagram tagged messages (offered: \(names.joined(separator: ", ")))"))
            }
        } catch {
            result.append(TransportAvailability(name: "ofi", available: false, detail: "\(error)"))
        }
        do {
            let port = try VerbsDiscovery.usablePort(named: configuration.ibDevice, gidIndex: configuration.ibGIDIndex)
            result.append(TransportAvailability(name: "verbs", available: true, detail: port.summary))
        } catch {
            result.append(TransportAvailability(name: "verbs", available: false, detail: "\(error)"))
        }
        #else
        for name in ["ofi", "verbs"] {
            result.append(TransportAvailability(name: name, available: false, detail: "this build has no RDMA transports (built without the package's RDMA trait)"))
        }
        #endif
        return result
    }
}
