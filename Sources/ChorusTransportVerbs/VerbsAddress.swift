import ChorusCore
import ChorusTransport

/// What one rank publishes at rendezvous so a peer can connect a reliable-connected queue pair
/// to it: the port's LID (InfiniBand) and GID (RoCE v2, or InfiniBand across subnets), the queue
/// pair number and starting packet sequence number for that peer, and the path MTU.
///
/// Encoded as 36 bytes, little-endian: version (1), MTU code (1), LID (2), QPN (4), PSN (4),
/// GID index (4), GID (16), link layer (1: 1 InfiniBand, 2 Ethernet), 3 bytes of zeros; in the
/// store as hexadecimal, one entry per peer.
public struct VerbsAddress: Equatable, Sendable {
    public enum LinkLayer: UInt8, Sendable {
        case infiniband = 1
        case ethernet = 2
    }

    public var lid: UInt16
    public var queuePair: UInt32
    public var packetSequence: UInt32
    public var gidIndex: Int32
    public var gid: [UInt8]
    /// `ibv_mtu` code: 1 = 256 B … 5 = 4096 B.
    public var mtu: UInt8
    public var linkLayer: LinkLayer

    public static let encodedSize = 36
    static let version: UInt8 = 1

    public init(lid: UInt16, queuePair: UInt32, packetSequence: UInt32, gidIndex: Int32, gid: [UInt8], mtu: UInt8, linkLayer: LinkLayer) {
        self.lid = lid
        self.queuePair = queuePair
        self.packetSequence = packetSequence & 0xFF_FFFF
        self.gidIndex = gidIndex
        self.gid = gid
        self.mtu = mtu
        self.linkLayer = linkLayer
    }

    /// RoCE needs a GID to route by; InfiniBand within a subnet uses the LID.
    public var usesGlobalRouting: Bool { linkLayer == .ethernet || lid == 0 }

    public var encoded: [UInt8] {
        var b: [UInt8] = [Self.version, mtu]
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        put(lid)
        put(queuePair)
        put(packetSequence)
        put(gidIndex)
        b += gid.count == 16 ? gid : [UInt8](repeating: 0, count: 16)
        b += [linkLayer.rawValue, 0, 0, 0]
        return b
    }

    /// Reads an address a peer published; the error says what is wrong with it.
    public init(decoding bytes: [UInt8], from peer: Int) throws(TransportError) {
        func bad(_ why: String) -> TransportError {
            TransportError(.protocolViolation, peer: peer, "rank \(peer)'s verbs address is unusable: \(why)")
        }
        guard bytes.count == Self.encodedSize else { throw bad("\(bytes.count) bytes, expected \(Self.encodedSize)") }
        guard bytes[0] == Self.version else { throw bad("format version \(bytes[0]), this rank reads version \(Self.version)") }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
            return v
        }
        guard (1...5).contains(bytes[1]) else { throw bad("MTU code \(bytes[1]) is not one of 1 (256 B) to 5 (4096 B)") }
        guard let layer = LinkLayer(rawValue: bytes[32]) else { throw bad("link layer \(bytes[32]) is neither 1 (InfiniBand) nor 2 (Ethernet)") }
        let psn = get(8, UInt32.self)
        guard psn <= 0xFF_FFFF else { throw bad("packet sequence number \(psn) does not fit in 24 bits") }
        let qpn = get(4, UInt32.self)
        guard qpn != 0, qpn <= 0xFF_FFFF else { throw bad("queue pair number \(qpn) is not a 24-bit number above 0") }
        self.init(lid: get(2, UInt16.self), queuePair: qpn, packetSequence: psn, gidIndex: get(12, Int32.self),
                  gid: Array(bytes[16..<32]), mtu: bytes[1], linkLayer: layer)
        if linkLayer == .ethernet && gid.allSatisfy({ $0 == 0 }) { throw bad("an Ethernet (RoCE) port with no GID") }
        if linkLayer == .infiniband && lid == 0 && gid.allSatisfy({ $0 == 0 }) { throw bad("an InfiniBand port with neither LID nor GID") }
    }
}

extension VerbsAddress {
    /// The smaller of two MTU codes: both ends of a queue pair must use one path MTU.
    public static func pathMTU(_ a: UInt8, _ b: UInt8) -> UInt8 { min(a, b) }

    /// Bytes of an `ibv_mtu` code.
    public static func bytes(ofMTU code: UInt8) -> Int { 128 << Int(code) }
}
