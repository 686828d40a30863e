import ArgumentParser
import ChorusCore
import ChorusTopology

/// `chorus topo`: check, summarize and draw topology files.
struct Topo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate, summarize and draw topology files.",
        discussion: "FILE is a path, or the name of a shipped topology (see 'chorus topo list').",
        subcommands: [Validate.self, Show.self, Dot.self, List.self]
    )

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check topology files; print every problem as FILE:LINE:COLUMN: message.",
            discussion: "Exits 0 when every file is valid, 1 otherwise.")

        @Argument(help: "Topology files or shipped names.")
        var files: [String]

        @OptionGroup var parameters: TopologyParameterOptions

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one topology file to validate") }
        }

        func run() throws {
            let overrides = try parameters.parsed()
            var failed = false
            for file in files {
                do {
                    let t = try TopologyLoader().load(file, parameters: overrides)
                    print("\(file): ok (\(t.name): \(t.rankCount) ranks, \(t.nodes.count) nodes, \(t.links.count) links)")
                } catch let error as TopologyError {
                    printError(error.description)
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarize a topology: ranks, nodes and links by kind, injection and bisection bandwidth, diameter.")

        @Argument(help: "A topology file or shipped name.")
        var file: String

        @Flag(help: "Write one JSON object instead of the table.")
        var json = false

        @OptionGroup var parameters: TopologyParameterOptions

        func run() throws {
            let topology = try loadTopologyOrExit(file, parameters: try parameters.parsed())
            let summary = topology.summarize()
            print(json ? TopologyReport.json(summary).rendered : TopologyReport.text(summary))
        }
    }

    struct Dot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the topology as a Graphviz graph (render with 'dot -Tsvg').")

        @Argument(help: "A topology file or shipped name.")
        var file: String

        @OptionGroup var parameters: TopologyParameterOptions

        func run() throws {
            let topology = try loadTopologyOrExit(file, parameters: try parameters.parsed())
            if topology.nodes.count > 5000 {
                printError("note: \(topology.nodes.count) nodes; Graphviz is slow on graphs this large")
            }
            print(topology.graphviz(), terminator: "")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the shipped topologies.")

        func run() throws {
            let loader = TopologyLoader()
            for name in loader.shippedNames() { print(name) }
        }
    }
}

/// Renders a `TopologySummary` as the `topo show` table or JSON.
enum TopologyReport {
    static func text(_ s: TopologySummary) -> String {
        var lines: [String] = []
        lines.append(s.name + (s.summary.map { ": \($0)" } ?? ""))
        func row(_ label: String, _ value: String) { lines.append("  " + padRight(label, 12) + value) }
        row("ranks", "\(s.rankCount) on \(s.hostCount) host\(s.hostCount == 1 ? "" : "s")")
        row("nodes", s.nodeCounts.map { "\($0.count) \($0.kind)" }.joined(separator: ", "))
        for (i, l) in s.linkCounts.enumerated() {
            let lanes = l.lanes != l.links ? " (\(l.lanes) lanes)" : ""
            row(i == 0 ? "links" : "", "\(l.links) \(l.kind)\(lanes), \(l.capacity) per direction in total")
        }
        if let c = s.composition { row("instances", c) }
        if let f = s.fabric { row("fabric", f) }
        for (i, inj) in s.injection.enumerated() {
            let range = inj.minimum == inj.maximum ? "\(inj.minimum)" : "\(inj.minimum) to \(inj.maximum)"
            row(i == 0 ? "injection" : "", "\(inj.kind) \(range) per rank")
        }
        if let so = s.scaleOutPerRank { row("scale-out", "\(so) per rank over the network") }
        let b = s.bisection
        let over = b.kind.map { " over \($0)" } ?? ""
        let bLabel = b.exactness == .exact ? "" : "at most "
        row("bisection", "\(bLabel)\(b.bandwidth) per direction\(over) (\(b.basis))")
        let d = s.diameter
        if d.exactness == .exact {
            row("diameter", "\(d.hops) hops, \(d.latency.chorusDescription) (\(d.basis))")
        } else {
            row("diameter", "\(d.hops) to \(d.hopsUpperBound) hops, \(d.latency.chorusDescription) to \(d.latencyUpperBound.chorusDescription) (\(d.basis))")
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ s: TopologySummary) -> JSONValue {
        func gb(_ b: Bandwidth) -> JSONValue { .double(b.gigabytesPerSecond) }
        var fields: [(String, JSONValue)] = [
            ("topology", .string(s.name)),
            ("ranks", .int(s.rankCount)),
            ("hosts", .int(s.hostCount)),
            ("nodes", .object(s.nodeCounts.map { ($0.kind.rawValue, .int($0.count)) })),
            ("links", .object(s.linkCounts.map { ($0.kind.rawValue, .object([("links", .int($0.links)), ("lanes", .int($0.lanes)), ("capacity_gbps", gb($0.capacity))])) })),
            ("injection_gbps", .object(s.injection.map { ($0.kind.rawValue, .object([("min", gb($0.minimum)), ("max", gb($0.maximum))])) })),
            ("scale_out_gbps", s.scaleOutPerRank.map(gb) ?? .null),
            ("bisection", .object([
                ("gbps", gb(s.bisection.bandwidth)), ("exactness", .string(s.bisection.exactness.rawValue)),
                ("kind", s.bisection.kind.map { .string($0.rawValue) } ?? .null), ("basis", .string(s.bisection.basis)),
            ])),
            ("diameter", .object([
                ("hops", .int(s.diameter.hops)), ("hops_upper", .int(s.diameter.hopsUpperBound)),
                ("latency_us", .double(s.diameter.latency.inMicroseconds)),
                ("latency_upper_us", .double(s.diameter.latencyUpperBound.inMicroseconds)),
                ("exactness", .string(s.diameter.exactness.rawValue)), ("basis", .string(s.diameter.basis)),
            ])),
        ]
        if let c = s.composition { fields.append(("composition", .string(c))) }
        if let f = s.fabric { fields.append(("fabric", .string(f))) }
        return .object(fields)
    }
}
