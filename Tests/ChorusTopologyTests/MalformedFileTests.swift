import ChorusCore
import ChorusTopology
import Foundation
import Testing

/// A bad topology file and exactly what Chorus must say about it.
struct MalformedCase: CustomTestStringConvertible, Sendable {
    let name: String
    let text: String
    let expected: [String]
    init(_ name: String, _ text: String, _ expected: [String]) {
        self.name = name
        self.text = text
        self.expected = expected
    }
    var testDescription: String { name }
}

@Suite("Malformed topology files")
struct MalformedFileTests {
    static let cases: [MalformedCase] = [
        MalformedCase("empty",
                      "",
                      ["t.yaml:1:1: the file is empty; expected a topology mapping with at least a 'topology' name"]),
        MalformedCase("comment_only",
                      "# nothing here\n\n# still nothing\n",
                      ["t.yaml:1:1: the file is empty; expected a topology mapping with at least a 'topology' name"]),
        MalformedCase("syntax",
                      "topology: t\nnodes: [\n  - a\n",
                      ["t.yaml:3:3: syntax error: did not find expected node content (while parsing a flow node at line 3)"]),
        MalformedCase("not_mapping",
                      "- a\n- b\n",
                      ["t.yaml:1:1: expected a mapping with keys topology, summary, schema, parameters, path-policy, nodes, links, ranks, compose, fabric, found a list"]),
        MalformedCase("unknown_top_key",
                      "topology: t\nnode: []\n",
                      ["t.yaml:1:1: missing 'nodes' (or 'compose', or 'fabric'); a topology needs nodes, links and ranks", "t.yaml:2:1: unknown key 'node' (did you mean 'nodes'?); expected one of topology, summary, schema, parameters, path-policy, nodes, links, ranks, compose, fabric"]),
        MalformedCase("missing_name",
                      "nodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:1:1: missing required key 'topology'"]),
        MalformedCase("unknown_node_key",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator, hbm: 96GiB }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:3:45: node 'c': unknown key 'hbm'; expected one of name, kind, count, host, per-host, memory, memory-bandwidth, line-rate"]),
        MalformedCase("unknown_node_kind",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: gpu }\nranks: c\n",
                      ["t.yaml:3:32: node 'c': 'kind' has unknown value 'gpu' (did you mean 'cpu'?); expected one of accelerator, cpu, nic, switch"]),
        MalformedCase("bare_bandwidth",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 200, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:45: ring over 'c': 'bandwidth' needs a unit, found '200'; write e.g. 200Gbps (bits) or 200GB/s (bytes)"]),
        MalformedCase("unknown_bw_unit",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 200Gbit, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:45: ring over 'c': 'bandwidth' has unknown unit 'Gbit'; expected one of bps, Kbps, Mbps, Gbps, Tbps (bits); B/s, KB/s, MB/s, GB/s, TB/s (10^3 bytes); KiB/s, MiB/s, GiB/s, TiB/s (2^10 bytes)"]),
        MalformedCase("zero_bandwidth",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 0GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:45: ring over 'c': 'bandwidth' must be positive, found '0GB/s'"]),
        MalformedCase("negative_bandwidth",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: -5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:45: ring over 'c': 'bandwidth' must be positive, found '-5GB/s'"]),
        MalformedCase("bare_latency",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 5GB/s, latency: 1.5 }\nranks: c\n",
                      ["t.yaml:5:61: ring over 'c': 'latency' needs a unit, found '1.5'; write e.g. 1.5us or 1.5ns"]),
        MalformedCase("zero_latency",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 5GB/s, latency: 0us }\nranks: c\n",
                      ["t.yaml:5:61: ring over 'c': 'latency' must be positive, found '0us'"]),
        MalformedCase("dangling",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\n  - { from: c3, to: c9, kind: pcie, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:6:21: link 'c3'->'c9': unknown node 'c9'; family 'c' has members c0 to c3"]),
        MalformedCase("duplicate_name",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\n  - { name: c2, kind: cpu }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:4:13: node 'c2': duplicate node name 'c2': member 2 of family 'c' already has that name"]),
        MalformedCase("disconnected",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\n  - { name: d, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: [c, d]\n",
                      ["t.yaml:7:8: ranks: rank 4 ('d') cannot reach rank 0 ('c0'): no chain of links joins them"]),
        MalformedCase("unknown_link_kind",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: nvlnk, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:22: ring over 'c': 'kind' has unknown value 'nvlnk' (did you mean 'nvlink'?); expected one of neuronlink, nvlink, pcie, efa, infiniband, ethernet, shm"]),
        MalformedCase("unknown_rank_node",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: [c, chip7]\n",
                      ["t.yaml:6:12: ranks: unknown node or family 'chip7'"]),
        MalformedCase("dims_wrong_type",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { torus: c, dims: 2x2, kind: neuronlink, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:23: torus over 'c': 'dims' must be a list, found '2x2'"]),
        MalformedCase("dims_mismatch",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { torus: c, dims: [3, 2], kind: neuronlink, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:23: torus over 'c': dims 3x2 make 6 positions but 'c' has 4 members"]),
        MalformedCase("self_loop",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\n  - { from: c1, to: c1, kind: pcie, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:6:5: link 'c1'->'c1': a link cannot join 'c1' to itself"]),
        MalformedCase("duplicate_key",
                      "topology: t\ntopology: u\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:2:1: duplicate key 'topology' in one mapping; each key may appear once"]),
        MalformedCase("count_not_int",
                      "topology: t\nnodes:\n  - { name: c, count: many, kind: accelerator }\nranks: c\n",
                      ["t.yaml:3:23: node 'c': 'count' must be an integer, found 'many'"]),
        MalformedCase("schema",
                      "topology: t\nschema: 2\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:2:9: unsupported schema version 2; this Chorus reads schema 1"]),
        MalformedCase("policy",
                      "topology: t\npath-policy: scatter\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:2:14: 'path-policy' has unknown value 'scatter'; expected one of spray, single"]),
        MalformedCase("rank_on_switch",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\n  - { name: s, kind: switch }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\n  - { crossbar: c, switch: s, kind: pcie, bandwidth: 5GB/s, latency: 1us }\nranks: [c, s]\n",
                      ["t.yaml:8:8: ranks: rank 4 is on 's', a switch; ranks run on accelerators or CPUs"]),
        MalformedCase("family_as_endpoint",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\n  - { name: n, kind: nic }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\n  - { from: c, to: n, kind: pcie, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:7:13: link 'c'->'n': 'c' is a family; a single link joins two nodes (use 'attach', 'crossbar' or a member such as 'c0')"]),
        MalformedCase("unknown_param",
                      "topology: t\nnodes:\n  - { name: c, count: $rnks, kind: accelerator }\nparameters: { ranks: 2 }\nranks: c\n",
                      ["t.yaml:3:23: node 'c': 'count' refers to unknown parameter '$rnks' (did you mean 'ranks'?); declared parameters: ranks"]),
        MalformedCase("nodes_and_compose",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\ncompose: { instance: x.yaml, count: 2, fabric: y.yaml, rails: n }\n",
                      ["t.yaml:2:1: 'nodes' cannot appear beside 'compose': a composed topology takes its nodes, links and ranks from its instances and its fabric", "t.yaml:4:22: cannot read 'x.yaml': no such file", "t.yaml:4:48: cannot read 'y.yaml': no such file"]),
        MalformedCase("missing_ranks",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\n",
                      ["t.yaml:1:1: missing 'ranks'; say which nodes run ranks, e.g. 'ranks: chip'"]),
        MalformedCase("missing_link_field",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, kind: neuronlink, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:5: ring over 'c': missing required key 'bandwidth'"]),
        MalformedCase("two_shapes",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\nlinks:\n  - { ring: c, torus: c, dims: [4], kind: neuronlink, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:5:5: link: one link entry can have only one of ring, torus; split it into separate entries"]),
        MalformedCase("line_rate_on_chip",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator, line-rate: 100Gbps }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 100GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:3:45: node 'c': 'line-rate' applies to nodes of kind nic, not accelerator"]),
        MalformedCase("crossbar_counts",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: accelerator }\n  - { name: s, count: 2, kind: switch }\nlinks:\n  - { crossbar: c, switch: s, count: [1, 2, 3], kind: pcie, bandwidth: 5GB/s, latency: 1us }\nranks: c\n",
                      ["t.yaml:6:38: crossbar over 'c': 'count' lists 3 values but 's' has 2 switch(es); give one per switch"]),
        MalformedCase("several",
                      "topology: t\nnodes:\n  - { name: c, count: 4, kind: acelerator }\n  - { name: d, count: 0, kind: cpu }\nlinks:\n  - { ring: c, kind: neuronlink, bandwidth: 5, latency: 1 }\nranks: c\n",
                      ["t.yaml:3:32: node 'c': 'kind' has unknown value 'acelerator' (did you mean 'accelerator'?); expected one of accelerator, cpu, nic, switch", "t.yaml:4:23: node 'd': 'count' must be at least 1, found 0", "t.yaml:6:45: ring over 'c': 'bandwidth' needs a unit, found '5'; write e.g. 5Gbps (bits) or 5GB/s (bytes)", "t.yaml:6:57: ring over 'c': 'latency' needs a unit, found '1'; write e.g. 1us or 1ns"]),
    ]

    @Test(arguments: cases)
    func reportsExactlyWhatIsWrongAndWhere(_ c: MalformedCase) {
        #expect(diagnostics(c.text) == c.expected)
    }

    @Test func thereAreAtLeastTwentyKinds() {
        #expect(Self.cases.count >= 20)
        #expect(Self.cases.allSatisfy { !$0.expected.isEmpty })
    }

    @Test func includeCyclesAreReportedWithTheChain() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "topology: a\ncompose: { instance: b.yaml, count: 2, fabric: f.yaml, rails: n }\n".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try "topology: b\ncompose: { instance: a.yaml, count: 2, fabric: f.yaml, rails: n }\n".write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        try "topology: f\nfabric: { shape: crossbar, kind: ethernet, bandwidth: 10Gbps, latency: 1us }\n".write(toFile: dir + "/f.yaml", atomically: true, encoding: .utf8)
        let error = try #require(throws: TopologyError.self) { try TopologyLoader(searchPaths: []).load(dir + "/a.yaml") }
        #expect(error.diagnostics.map(\.description) == ["\(dir)/b.yaml:2:22: include cycle: \(dir)/a.yaml -> \(dir)/b.yaml -> \(dir)/a.yaml"])
    }

    @Test func aMissingIncludeIsReportedWhereItIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "topology: a\ncompose:\n  instance: nowhere.yaml\n  count: 2\n  fabric: { shape: crossbar, kind: ethernet, bandwidth: 10Gbps, latency: 1us }\n  rails: n\n".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let error = try #require(throws: TopologyError.self) { try TopologyLoader(searchPaths: []).load(dir + "/a.yaml") }
        #expect(error.diagnostics.map(\.description) == ["\(dir)/a.yaml:3:13: cannot read '\(dir)/nowhere.yaml': no such file"])
    }

    @Test func aMissingFileOrShippedNameIsReportedAtItsStart() {
        let error = #expect(throws: TopologyError.self) { try shippedLoader.load("aws-trn2.48xlarg") }
        #expect(error?.diagnostics.map(\.description) == ["aws-trn2.48xlarg:1:1: cannot read: no such file, and no shipped topology of that name (did you mean 'aws-trn2.48xlarge'?)"])
    }

    @Test func compositionProblemsPointAtTheirKeys() {
        let inline = """
            topology: c
            compose:
              count: 2
              rails: nics
              instance:
                nodes: [ { name: chip, count: 2, kind: accelerator }, { name: nic, count: 2, kind: nic } ]
                links: [ { attach: chip, to: nic, kind: pcie, bandwidth: 8GB/s, latency: 1us } ]
                ranks: chip
              fabric: { shape: clos, radix: 2, tiers: 1, kind: ethernet, bandwidth: 10Gbps, latency: 1us }
            """
        #expect(diagnostics(inline) == ["t.yaml:4:10: compose: the instance 'instance' has no family 'nics' (did you mean 'nic'?); its families are chip, nic"])
        let tooSmall = inline.replacingOccurrences(of: "rails: nics", with: "rails: nic")
        #expect(diagnostics(tooSmall) == ["t.yaml:9:11: compose: a clos of radix 2 with 1 tier and oversubscription 1 holds at most 2 endpoint ports; this topology needs 4"])
        let fits = tooSmall.replacingOccurrences(of: "tiers: 1", with: "tiers: 2")
        #expect(diagnostics(fits) == ["t.yaml:9:11: compose: a clos of radix 2 with 2 tiers and oversubscription 1 holds at most 2 endpoint ports; this topology needs 4"])
        let grown = tooSmall.replacingOccurrences(of: "radix: 2, tiers: 1", with: "radix: 4, tiers: 2")
        #expect(diagnostics(grown).isEmpty)
    }

    @Test func jsonFilesUseTheSameSchemaAndPositions() throws {
        let json = """
            {
              "topology": "pair",
              "nodes": [ { "name": "c", "count": 2, "kind": "accelerator" } ],
              "links": [ { "from": "c0", "to": "c1", "kind": "pcie", "bandwidth": "16GB/s", "latency": "1us" } ],
              "ranks": "c"
            }
            """
        let t = try TopologyLoader(searchPaths: []).load(text: json, file: "pair.json")
        #expect(t.rankCount == 2)
        let bad = json.replacingOccurrences(of: "\"16GB/s\"", with: "16")
        #expect(diagnostics(bad, file: "pair.json") == ["pair.json:4:71: link 'c0'->'c1': 'bandwidth' needs a unit, found '16'; write e.g. 16Gbps (bits) or 16GB/s (bytes)"])
    }

    @Test func parametersCanBeSetAndUnknownOnesAreRefused() throws {
        let text = "topology: p\nparameters: { n: 3 }\nnodes: [ { name: c, count: $n, kind: cpu }, { name: m, kind: switch, host: 0 } ]\nlinks: [ { crossbar: c, switch: m, kind: shm, bandwidth: 1GB/s, latency: 1us } ]\nranks: c\n"
        #expect(try TopologyLoader(searchPaths: []).load(text: text, file: "p.yaml").rankCount == 3)
        #expect(try TopologyLoader(searchPaths: []).load(text: text, file: "p.yaml", parameters: ["n": 7]).rankCount == 7)
        #expect(diagnostics(text, file: "p.yaml", parameters: ["m": 2]) == ["p.yaml:2:1: parameter 'm' was given a value but this topology declares only n"])
    }

    /// Truncations and byte flips of every shipped file must give diagnostics, never a crash.
    @Test func mangledShippedFilesNeverCrash() throws {
        var checked = 0
        for name in shippedTopologyNames where name != "aws-trn2-cluster-4096" {
            let path = try #require(shippedLoader.resolve(name))
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let bytes = Array(text.utf8)
            var generator = SplitMix(seed: 0xC0FFEE ^ UInt64(name.count))
            for _ in 0..<40 {
                var mangled = bytes
                switch generator.next() % 3 {
                case 0: mangled = Array(mangled.prefix(Int(generator.next() % UInt64(mangled.count))))
                case 1:
                    let i = Int(generator.next() % UInt64(mangled.count))
                    mangled[i] = UInt8(truncatingIfNeeded: generator.next() % 94 + 32)
                default:
                    let i = Int(generator.next() % UInt64(mangled.count))
                    mangled.remove(at: i)
                }
                let text = String(decoding: mangled, as: UTF8.self)
                _ = try? TopologyLoader(searchPaths: [topologiesDirectory]).load(text: text, file: name + ".yaml")
                checked += 1
            }
        }
        #expect(checked > 400)
    }
}

/// SplitMix64, for seeded test inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "chorus-topology-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
