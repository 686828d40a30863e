import ChorusCore
import ChorusTransport
import ChorusTransportVerbs

extension Communicator {
    /// RDMA verbs between every pair: open the device port, publish an address for each peer's
    /// queue pair, connect to the addresses the peers published for this rank.
    ///
    /// Each rank publishes `ok HEX` (its `size` addresses, 36 bytes each, zeros for itself) or
    /// `error REASON` under `verbs/RANK` (`exchange`), so a rank without a usable device makes every rank
    /// fail at once with its reason.
    static func connectVerbs(rank: Int, size: Int, client: RendezvousClient, configuration: ChorusConfiguration,
                             log: Log) throws(ChorusError) -> Transport {
        #if RDMA
        let (transport, published) = try Self.exchange("verbs", transport: "verbs", rank: rank, client: client,
            open: {
                let port = try VerbsDiscovery.usablePort(named: configuration.ibDevice, gidIndex: configuration.ibGIDIndex)
                return try VerbsTransport(rank: rank, size: size, port: port)
            },
            describe: { Self.encodeHex($0.localAddresses().flatMap { $0?.encoded ?? [UInt8](repeating: 0, count: VerbsAddress.encodedSize) }) },
            close: { $0.close() })
        var addresses: [VerbsAddress?] = Array(repeating: nil, count: size)
        let n = VerbsAddress.encodedSize
        for (r, entry) in published.enumerated() where r != rank {
            guard let bytes = Self.decodeHex(entry), bytes.count == size * n else {
                transport.close()
                throw .rendezvous("rank \(r) published verbs addresses this rank cannot read: '\(entry.prefix(80))'")
            }
            do {
                addresses[r] = try VerbsAddress(decoding: Array(bytes[rank * n..<(rank + 1) * n]), from: r)
            } catch {
                transport.close()
                throw .transport("\(error)")
            }
        }
        do {
            try transport.connect(peerAddresses: addresses)
        } catch {
            transport.close()
            throw .transport("rank \(rank): \(error)")
        }
        log(.info, "verbs: \(transport.port.summary), \(size - 1) queue pair(s)")
        return transport
        #else
        throw .unsupported("CHORUS_TRANSPORT=verbs: this build of Chorus has no verbs transport (it was built without the package's RDMA trait)")
        #endif
    }

    static func encodeHex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Why this rank cannot use verbs, or `nil` when it can.
    static func verbsAbsence(configuration: ChorusConfiguration) -> String? {
        #if RDMA
        do {
            _ = try VerbsDiscovery.usablePort(named: configuration.ibDevice, gidIndex: configuration.ibGIDIndex)
            return nil
        } catch {
            return "\(error)"
        }
        #else
        return "built without the RDMA trait"
        #endif
    }
}
