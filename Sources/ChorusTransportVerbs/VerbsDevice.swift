#if RDMA
import CChorusVerbs
import ChorusCore
import ChorusTransport
#if canImport(Glibc)
import Glibc
#endif

/// An RDMA device port the verbs transport can use: an InfiniBand or RoCE port that is active.
public struct VerbsPort: Sendable {
    public var device: String
    public var port: UInt8
    public var linkLayer: VerbsAddress.LinkLayer
    public var lid: UInt16
    public var gidIndex: Int32
    public var gid: [UInt8]
    /// `ibv_mtu` code of the port's active MTU.
    public var activeMTU: UInt8
    public var maxMessageBytes: Int

    public var summary: String {
        "\(device) port \(port) (\(linkLayer == .infiniband ? "InfiniBand, LID \(lid)" : "RoCE, GID index \(gidIndex)"), MTU \(VerbsAddress.bytes(ofMTU: activeMTU)) B)"
    }
}

/// Finds the device and port to use, or says why there is none.
///
/// `CHORUS_IB_HCA` names a device (optionally `device:port`); otherwise the first device with an
/// active InfiniBand or RoCE port is taken. `CHORUS_IB_GID_INDEX` picks the GID; on RoCE the
/// default is the first RoCE v2 GID holding an IPv4-mapped address (from sysfs), else index 0.
/// Devices that cannot do reliable-connected queue pairs (EFA, iWARP) are skipped: EFA goes
/// through the OFI transport.
public enum VerbsDiscovery {
    /// Loads libibverbs (once per process). Throws, saying why, when it cannot.
    public static func loadLibrary() throws(TransportError) {
        var why = [CChar](repeating: 0, count: 512)
        if chorus_verbs_load(&why, why.count) != 0 {
            throw TransportError(.connect, String(cString: why))
        }
    }

    public static func usablePort(named requested: String? = nil, gidIndex requestedGID: Int32? = nil) throws(TransportError) -> VerbsPort {
        try loadLibrary()
        var count: Int32 = 0, error: Int32 = 0
        guard let list = chorus_ibv_get_device_list(&count, &error) else {
            if error == ENOSYS {
                throw TransportError(.connect, syscall: "ibv_get_device_list", code: error, "no RDMA device: this kernel has no RDMA (InfiniBand/RoCE) support")
            }
            throw TransportError(.connect, syscall: "ibv_get_device_list", code: error, "no RDMA device: ibv_get_device_list failed (\(String(cString: strerror(error))))")
        }
        defer { chorus_ibv_free_device_list(list) }
        guard count > 0 else {
            throw TransportError(.connect, "no RDMA device: ibv_get_device_list found none (is the driver loaded, and a provider package such as ibverbs-providers installed?)")
        }
        var wantedDevice: String?, wantedPort: UInt8?
        if let requested {
            let parts = requested.split(separator: ":", maxSplits: 1).map(String.init)
            wantedDevice = parts.first
            if parts.count == 2 {
                guard let p = UInt8(parts[1]), p >= 1 else {
                    throw TransportError(.connect, "CHORUS_IB_HCA=\(requested): '\(parts[1])' is not a port number (1, 2, …)")
                }
                wantedPort = p
            }
        }
        var names: [String] = []
        var reasons: [String] = []
        for i in 0..<Int(count) {
            guard let device = list[i] else { continue }
            let name = String(cString: chorus_ibv_get_device_name(device))
            names.append(name)
            if let wantedDevice, wantedDevice != name { continue }
            guard device.pointee.transport_type == IBV_TRANSPORT_IB else {
                reasons.append("\(name): not InfiniBand or RoCE (EFA devices go through the OFI transport)")
                continue
            }
            guard let context = chorus_ibv_open_device(device) else {
                reasons.append("\(name): cannot open (\(String(cString: strerror(errno))))")
                continue
            }
            defer { _ = chorus_ibv_close_device(context) }
            for port in UInt8(1)...UInt8(2) {
                if let wantedPort, wantedPort != port { continue }
                var attributes = ibv_port_attr()
                guard chorus_ibv_query_port(context, port, &attributes) == 0 else { break }
                guard attributes.state == IBV_PORT_ACTIVE else {
                    reasons.append("\(name) port \(port): not active (state \(attributes.state.rawValue))")
                    continue
                }
                let layer: VerbsAddress.LinkLayer = attributes.link_layer == UInt8(IBV_LINK_LAYER_ETHERNET) ? .ethernet : .infiniband
                let index = requestedGID ?? (layer == .ethernet ? roceV2GIDIndex(device: name, port: port, tableLength: attributes.gid_tbl_len) : 0)
                var gid = ibv_gid()
                guard chorus_ibv_query_gid(context, port, Int32(index), &gid) == 0 else {
                    reasons.append("\(name) port \(port): cannot read GID index \(index)")
                    continue
                }
                let gidBytes = withUnsafeBytes(of: gid.raw) { Array($0) }
                return VerbsPort(device: name, port: port, linkLayer: layer, lid: attributes.lid, gidIndex: index, gid: gidBytes,
                                 activeMTU: UInt8(attributes.active_mtu.rawValue), maxMessageBytes: Int(attributes.max_msg_sz))
            }
        }
        if let wantedDevice, !names.contains(wantedDevice) {
            throw TransportError(.connect, "CHORUS_IB_HCA=\(requested!): no such RDMA device here (devices: \(names.joined(separator: ", ")))")
        }
        throw TransportError(.connect, "no usable RDMA port: \(reasons.joined(separator: "; "))")
    }

    /// The first GID of the port that sysfs types as RoCE v2 and that holds an IPv4-mapped
    /// address (what routes across IP subnets), else the first RoCE v2 GID, else 0.
    static func roceV2GIDIndex(device: String, port: UInt8, tableLength: Int32) -> Int32 {
        var firstV2: Int32?
        for i in 0..<min(tableLength, 256) {
            let base = "/sys/class/infiniband/\(device)/ports/\(port)"
            guard readLine("\(base)/gid_attrs/types/\(i)")?.lowercased() == "roce v2" else { continue }
            if firstV2 == nil { firstV2 = i }
            if let gid = readLine("\(base)/gids/\(i)"), gid.hasPrefix("0000:0000:0000:0000:0000:ffff:") { return i }
        }
        return firstV2 ?? 0
    }

    private static func readLine(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 128)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
