import ChorusCore
import ChorusTransport
#if RDMA
import ChorusTransportOFI
#endif

extension Communicator {
    /// Whether this build has the OFI and verbs transports (the package's RDMA trait).
    static var hasRDMATransports: Bool {
        #if RDMA
        true
        #else
        false
        #endif
    }

    /// libfabric between every pair: open an endpoint, publish its address, add every peer's.
    ///
    /// Each rank publishes `ok PROVIDER DOMAIN HEXADDRESS` or `error REASON` under `ofi/RANK`
    /// (`exchange`), so a rank that cannot open an endpoint makes every rank fail at once with its
    /// reason, and ranks that found different providers are told which.
    static func connectOFI(rank: Int, size: Int, peers: [PeerInfo], client: RendezvousClient, configuration: ChorusConfiguration,
                           log: Log) throws(ChorusError) -> Transport {
        #if RDMA
        let host = try Self.interfaceAddress(configuration.socketInterface) ?? client.localHost
        // DATA is "PROVIDER DOMAIN HEXADDRESS": provider names contain ";" but no spaces; a domain
        // name's spaces become "_" (it is only shown).
        let (transport, published) = try Self.exchange("ofi", transport: "OFI", rank: rank, client: client,
            open: { try OFITransport(rank: rank, size: size, provider: configuration.ofiProvider, host: host) },
            describe: { "\($0.provider) \(String($0.domainName.map { $0 == " " ? "_" : $0 })) \(Self.encodeHex($0.address))" },
            close: { $0.close() })
        var addresses: [[UInt8]] = []
        for (r, entry) in published.enumerated() {
            let fields = entry.split(separator: " ", maxSplits: 2).map(String.init)
            guard fields.count == 3, let bytes = Self.decodeHex(fields[2]) else {
                transport.close()
                throw .rendezvous("rank \(r) published an OFI address this rank cannot read: '\(entry.prefix(80))'")
            }
            guard fields[0] == transport.provider else {
                transport.close()
                throw .configuration("rank \(rank) uses libfabric provider '\(transport.provider)' but rank \(r) uses '\(fields[0])'; set CHORUS_OFI_PROVIDER to the same provider on every rank")
            }
            addresses.append(bytes)
        }
        do {
            try transport.connect(addresses: addresses)
        } catch {
            transport.close()
            throw .transport("rank \(rank): \(error)")
        }
        // Peers on this host (same boot and network namespace, or CHORUS_HOSTID) are watched by pid.
        transport.watchLocalProcesses(peers.enumerated().map { r, p in
            r != rank && p.hostID == peers[rank].hostID ? p.pid : nil
        })
        log(.info, "ofi: provider \(transport.provider) on \(transport.domainName), address \(String(decoding: transport.address.map { $0 >= 32 && $0 < 127 ? $0 : 46 }, as: UTF8.self)), \(size - 1) peer(s) in the address vector")
        return transport
        #else
        throw .unsupported("CHORUS_TRANSPORT=ofi: this build of Chorus has no OFI transport (it was built without the package's RDMA trait)")
        #endif
    }

    /// The RDMA network this rank could use between hosts: `ofi:NAME` when `CHORUS_OFI_PROVIDER`
    /// names a provider offered here (the user asked for it); else `ofi:efa` when libfabric
    /// offers efa, `verbs` when an InfiniBand or RoCE port is active, `ofi:verbs` when libfabric
    /// offers its verbs provider; else "".
    static func rdmaFabric(configuration: ChorusConfiguration) -> String {
        #if RDMA
        let offered = (try? OFITransport.availableProviders()) ?? []
        func offers(_ name: String) -> Bool { offered.contains { $0.provider == name || $0.provider.hasPrefix(name + ";") } }
        if let named = configuration.ofiProvider { return offers(named) ? "ofi:\(named)" : "" }
        if offers("efa") { return "ofi:efa" }
        if verbsAbsence(configuration: configuration) == nil { return "verbs" }
        if offers("verbs") { return "ofi:verbs" }
        #endif
        return ""
    }

    /// Why this rank has no RDMA network, in a few words.
    static func rdmaAbsence(configuration: ChorusConfiguration) -> String {
        #if RDMA
        let verbs = verbsAbsence(configuration: configuration) ?? "a verbs device is usable"
        do {
            let offered = Set(try OFITransport.availableProviders().map(\.provider)).sorted()
            return "verbs: \(verbs); libfabric offers \(offered.isEmpty ? "no provider" : offered.joined(separator: ", ")) but no efa provider\(configuration.ofiProvider.map { " (CHORUS_OFI_PROVIDER=\($0))" } ?? "")"
        } catch {
            return "verbs: \(verbs); \(error)"
        }
        #else
        return "this build has no RDMA transports (built without the package's RDMA trait)"
        #endif
    }

    static func decodeHex(_ s: String) -> [UInt8]? {
        let digits = Array(s.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
            i += 2
        }
        return bytes
    }
}
