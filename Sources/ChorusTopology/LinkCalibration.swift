import ChorusCore
import Foundation

extension LinkKind {
    /// Software and protocol cost of one message whose route is dominated by this kind of link,
    /// on top of the links' own latencies: posting, completion and polling. Model constants, to
    /// be replaced by measurements (`chorus sim --calibrate` writes a `LinkCalibration`).
    ///
    /// Sources: shm, the 0.26-0.43 µs cache-line round trip measured on the development machine;
    /// EFA, aws-ofi-nccl's 3 µs completion overhead (~2 µs in the device, ~1 µs to the host,
    /// `src/tuner/nccl_ofi_model.cpp`); InfiniBand, ~1 µs host overhead (NCCL `tuning.cc` net
    /// overhead); Ethernet, a TCP send and receive through the kernel (~5 µs, the ~10 µs 8-byte
    /// all-reduce between namespace hosts measured with Open MPI); NeuronLink, NVLink and PCIe,
    /// DMA descriptor and semaphore handling (~0.5-1 µs, UNCERTAIN: not published).
    public var defaultMessageOverhead: Duration {
        switch self {
        case .shm: return .nanoseconds(300)
        case .neuronlink: return .nanoseconds(500)
        case .nvlink: return .nanoseconds(700)
        case .pcie: return .microseconds(1)
        case .efa: return .microseconds(3)
        case .infiniband: return .microseconds(1)
        case .ethernet: return .microseconds(5)
        }
    }
}

extension LinkKind {
    /// The fraction of a link's signalling rate that carries payload once per-packet framing is
    /// paid: the bandwidth a collective can see at best. Topology files give link rates; the cost
    /// model and the simulator multiply them by this unless a calibration gives the bandwidth
    /// (measured bandwidth already includes it).
    ///
    /// Sources: Ethernet, TCP over IPv4 at a 1,500-byte MTU: 1,448 payload bytes (timestamps on)
    /// per 1,538 on the wire (preamble 8, header 14, FCS 4, gap 12, IPv4 20, TCP 32) = 0.941.
    /// InfiniBand, 4,096-byte MTU with LRH 8, BTH 12, ICRC 4, VCRC 2 bytes per packet = 0.994
    /// (rates after line encoding). EFA, SRD in jumbo Ethernet frames of about 8,900 bytes with
    /// ~100 bytes of Ethernet, IP and SRD headers and gap = 0.99 (UNCERTAIN: SRD's header is not
    /// published). PCIe, 256-byte TLP payloads with ~24 bytes of TLP header, sequence number,
    /// LCRC and framing = 0.914. NVLink, the NCCL maintainers' figure for H100: 450 GB/s line
    /// rate, ~20% protocol overhead, 370 GB/s effective (NVIDIA/nccl-tests issue 212) = 0.822.
    /// NeuronLink and shared memory: 1 (not published; use a calibration).
    public var defaultPayloadEfficiency: Double {
        switch self {
        case .ethernet: return 0.941
        case .infiniband: return 0.994
        case .efa: return 0.99
        case .pcie: return 0.914
        case .nvlink: return 0.822
        case .neuronlink, .shm: return 1
        }
    }
}

/// Measured replacements for the topology's figures, per link kind: the whole per-message
/// latency (alpha) of a route dominated by that kind, and the bandwidth its links really carry
/// (1/beta). The simulator and the selector both read it; `chorus sim --calibrate` fits it from
/// `chorus bench --json` output.
///
/// ```yaml
/// calibration: 1
/// source: chorus bench --json, 2 ranks over shm on host x, 2026-11-27
/// kinds:
///   shm:      { alpha: 0.6us, bandwidth: 9.5GB/s }
///   ethernet: { alpha: 12us,  bandwidth: 1.1GB/s }
/// ```
public struct LinkCalibration: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        /// Everything a message on such a route pays besides bytes over bandwidth.
        public var alpha: Duration?
        /// What each link of the kind carries per direction.
        public var bandwidth: Bandwidth?

        public init(alpha: Duration?, bandwidth: Bandwidth?) {
            self.alpha = alpha
            self.bandwidth = bandwidth
        }
    }

    public var entries: [LinkKind: Entry]
    /// Where the figures came from (free text).
    public var source: String?

    public init(entries: [LinkKind: Entry] = [:], source: String? = nil) {
        self.entries = entries
        self.source = source
    }

    /// Reads a calibration file.
    /// - Throws: `TopologyError.invalid` with every problem at `file:line:column`.
    public static func load(file path: String) throws -> LinkCalibration {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TopologyError.invalid(Diagnostics([Diagnostic(.start(of: path), FileManager.default.fileExists(atPath: path) ? "cannot read: not UTF-8 text or not readable" : "cannot read: no such file")]))
        }
        return try LinkCalibration(text: text, file: path)
    }

    public init(text: String, file: String) throws {
        let reader = YAMLReader(file: file)
        guard let root = reader.parseDocument(text) else { throw TopologyError.invalid(Diagnostics(reader.diagnostics)) }
        var entries: [LinkKind: Entry] = [:]
        var source: String?
        if let f = reader.mapping(root, "calibration", allowed: ["calibration", "source", "kinds"], required: ["kinds"]) {
            if let v = f["calibration"], let version = reader.integer(v, "", field: "calibration"), version != 1 {
                reader.report(v, "", "unsupported calibration version \(version); this Chorus reads version 1")
            }
            source = f["source"].flatMap { reader.string($0, "", field: "source") }
            if let kinds = f["kinds"], case .mapping(let m) = kinds.node {
                for (k, v) in m {
                    let key = reader.value(k)
                    guard let kind = reader.choice(key, "kinds", field: "link kind", as: LinkKind.self) else { continue }
                    let context = "kinds.\(kind)"
                    guard let e = reader.mapping(reader.value(v), context, allowed: ["alpha", "bandwidth"]) else { continue }
                    entries[kind] = Entry(alpha: e["alpha"].flatMap { reader.duration($0, context, field: "alpha") },
                                          bandwidth: e["bandwidth"].flatMap { reader.bandwidth($0, context, field: "bandwidth") })
                }
            } else if let kinds = f["kinds"] {
                reader.report(kinds, "", "'kinds' must map link kinds to {alpha, bandwidth}, found \(kinds.shortDescription)")
            }
        }
        guard reader.diagnostics.isEmpty else { throw TopologyError.invalid(Diagnostics(reader.diagnostics)) }
        self.entries = entries
        self.source = source
    }

    /// The file text.
    public var yamlText: String {
        var out = "calibration: 1\n"
        if let source { out += "source: \"\(source.replacingOccurrences(of: "\"", with: "'"))\"\n" }
        out += "kinds:\n"
        for kind in LinkKind.allCases {
            guard let e = entries[kind] else { continue }
            var fields: [String] = []
            if let a = e.alpha { fields.append("alpha: \(formatTrimmed(a.inMicroseconds, maxFractionDigits: 3))us") }
            if let b = e.bandwidth { fields.append("bandwidth: \(formatTrimmed(b.gigabytesPerSecond, maxFractionDigits: 4))GB/s") }
            out += "  \(kind): { \(fields.joined(separator: ", ")) }\n"
        }
        return out
    }
}
