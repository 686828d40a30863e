import ChorusCore
import Foundation

/// Turns one topology document into a `Topology`, reporting through its `YAMLReader`.
///
/// The schema (see `Topologies/README.md`) has three forms, chosen by the top-level keys:
/// a graph (`nodes`, `links`, `ranks`), a composition (`compose`), or a fabric on its own
/// (`fabric`).
struct TopologyDecoder {
    let reader: YAMLReader
    var session: LoadSession
    /// Names whose declarations failed: references to them are not reported again.
    var failedNames: Set<String> = []

    static let topLevelKeys = ["topology", "summary", "schema", "parameters", "path-policy", "nodes", "links", "ranks", "compose", "fabric"]
    static let linkAttributeKeys = ["kind", "bandwidth", "latency", "count", "path-policy"]
    static let linkShapeKeys = ["from", "ring", "torus", "crossbar", "full-mesh", "attach"]

    // MARK: - Document

    /// - Parameters:
    ///   - inline: an instance written inside a `compose` (no name needed; sees the parent's parameters).
    ///   - asInstance: the topology is a composition's instance, whose ranks may meet only through
    ///     the fabric: connectivity is checked on the composed result instead.
    mutating func decodeTopology(_ root: YAMLValue, overrides: [String: Int], inline: Bool, asInstance: Bool = false) -> Topology? {
        guard let fields = reader.mapping(root, inline ? "instance" : "", allowed: Self.topLevelKeys,
                                          required: inline ? [] : ["topology"]) else { return nil }
        let name = fields["topology"].flatMap { reader.name($0, "", field: "topology") } ?? (inline ? "instance" : "topology")
        var summary = fields["summary"].flatMap { reader.string($0, "", field: "summary") }
        if let schema = fields["schema"], let version = reader.integer(schema, "", field: "schema"), version != 1 {
            reader.report(schema, "", "unsupported schema version \(version); this Chorus reads schema 1")
        }
        decodeParameters(fields, overrides: overrides, inline: inline)
        summary = summary.map(substituteParameters)
        let policy = fields["path-policy"].flatMap { reader.choice($0, "", field: "path-policy", as: PathPolicy.self) } ?? .single

        if let compose = fields["compose"] {
            for key in ["nodes", "links", "ranks", "fabric"] where fields.has(key) {
                reader.report(fields.keyLocation(key)!, "'\(key)' cannot appear beside 'compose': a composed topology takes its nodes, links and ranks from its instances and its fabric")
            }
            return decodeComposition(compose, name: name, summary: summary, defaultPolicy: policy)
        }
        if let fabric = fields["fabric"] {
            for key in ["nodes", "links", "ranks"] where fields.has(key) {
                reader.report(fields.keyLocation(key)!, "'\(key)' cannot appear beside 'fabric': a fabric file describes switches only; compose it with instances to get ranks")
            }
            guard let spec = decodeFabric(fabric, defaultPolicy: policy) else { return nil }
            guard let endpoints = spec.endpoints ?? spec.description.maximumPorts else {
                reader.report(fabric, "fabric", "a fabric loaded on its own needs 'endpoints' (how many hosts to attach), or 'tiers' to fill it")
                return nil
            }
            do {
                return try TopologyBuilder.standaloneFabric(name: name, summary: summary, fabric: spec.description, endpoints: endpoints)
            } catch let error as TopologyError {
                reader.report(fabric, "fabric", error.description)
                return nil
            } catch { return nil }
        }
        if !fields.has("nodes") { reader.report(root, "", "missing 'nodes' (or 'compose', or 'fabric'); a topology needs nodes, links and ranks") }
        if !fields.has("ranks") && fields.has("nodes") { reader.report(root, "", "missing 'ranks'; say which nodes run ranks, e.g. 'ranks: chip'") }

        var builder = TopologyBuilder(name: name, summary: summary)
        if let nodes = fields["nodes"], let entries = reader.sequence(nodes, "", field: "nodes") {
            if entries.isEmpty { reader.report(nodes, "", "'nodes' is empty; declare at least one node") }
            for entry in entries { decodeNode(entry, into: &builder) }
        }
        if let links = fields["links"], let entries = reader.sequence(links, "", field: "links") {
            for entry in entries { decodeLink(entry, into: &builder, defaultPolicy: policy) }
        }
        guard let ranks = fields["ranks"] else { return nil }
        guard let rankNodes = decodeRanks(ranks, builder: builder) else { return nil }
        guard reader.diagnostics.isEmpty else { return nil }
        builder.setRanks(rankNodes)
        let topology = builder.freeze()
        do {
            try topology.checkRanks(connectivity: !asInstance)
        } catch let error as TopologyError {
            reader.report(ranks, "ranks", error.description)
        } catch {}
        return topology
    }

    /// Replaces `$name` in free text with the parameter's value (longest names first, so
    /// `$ranks-per-host` is not read as `$ranks`).
    private func substituteParameters(_ text: String) -> String {
        var result = text
        for (name, value) in reader.parameters.sorted(by: { $0.key.count > $1.key.count }) {
            result = result.replacingOccurrences(of: "$" + name, with: String(value))
        }
        return result
    }

    private func decodeParameters(_ fields: YAMLReader.Fields, overrides: [String: Int], inline: Bool) {
        var declared: [String: Int] = inline ? reader.parameters : [:]
        if let value = fields["parameters"] {
            if case .mapping(let m) = value.node {
                for (k, v) in m {
                    let key = reader.value(k), val = reader.value(v)
                    guard let name = reader.name(key, "parameters", field: "parameter name") else { continue }
                    guard let text = val.scalarText, let n = Int(text) else {
                        reader.report(val, "parameters", "parameter '\(name)' needs an integer default, found \(val.shortDescription)")
                        continue
                    }
                    declared[name] = n
                }
            } else {
                reader.report(value, "", "'parameters' must be a mapping of names to integer defaults, found \(value.shortDescription)")
            }
        }
        for (name, n) in overrides.sorted(by: { $0.key < $1.key }) {
            guard declared[name] != nil else {
                let names = declared.keys.sorted()
                reader.report(fields.keyLocation("parameters") ?? fields.value.location,
                              "parameter '\(name)' was given a value but this topology declares \(names.isEmpty ? "no parameters" : "only \(reader.list(names))")")
                continue
            }
            declared[name] = n
        }
        reader.parameters = declared
    }

    // MARK: - Nodes

    private mutating func decodeNode(_ entry: YAMLValue, into builder: inout TopologyBuilder) {
        let before = reader.diagnostics.count
        let raw = rawName(entry, "name")
        defer { if reader.diagnostics.count > before, let raw { failedNames.insert(raw) } }
        let context = raw.map { "node '\($0)'" } ?? "node"
        guard let f = reader.mapping(entry, context, allowed: ["name", "kind", "count", "host", "per-host", "memory", "memory-bandwidth", "line-rate"],
                                     required: ["name", "kind"]) else { return }
        let name = f["name"].flatMap { reader.name($0, context, field: "name") }
        let kind = f["kind"].flatMap { reader.choice($0, context, field: "kind", as: NodeKind.self) }
        let count = f["count"].flatMap { reader.integer($0, context, field: "count", minimum: 1) }
        // Switches belong to no host unless the file says (a NeuronSwitch or a leaf spans hosts);
        // everything else is on host 0 by default.
        let host = f["host"].flatMap { reader.integer($0, context, field: "host", minimum: 0) } ?? (kind == .switch ? -1 : 0)
        let perHost = f["per-host"].flatMap { reader.integer($0, context, field: "per-host", minimum: 1) }
        let memory = f["memory"].flatMap { reader.size($0, context, field: "memory") }
        let memoryBandwidth = f["memory-bandwidth"].flatMap { reader.bandwidth($0, context, field: "memory-bandwidth") }
        let lineRate = f["line-rate"].flatMap { reader.bandwidth($0, context, field: "line-rate") }
        if f.has("line-rate"), let kind, kind != .nic {
            reader.report(f.keyLocation("line-rate")!, "\(context): 'line-rate' applies to nodes of kind nic, not \(kind)")
        }
        if f.has("per-host") && !f.has("count") {
            reader.report(f.keyLocation("per-host")!, "\(context): 'per-host' applies to a family; add 'count'")
        }
        guard let name, let kind else { return }
        guard (f.has("count") ? count != nil : true) else { return }
        do {
            let members: [NodeID]
            if let count {
                members = try builder.addFamily(name, count: count, kind: kind, host: { i in host < 0 ? host : host + (perHost.map { i / $0 } ?? 0) })
            } else {
                members = [try builder.addNode(name, kind: kind, host: host)]
            }
            if memory != nil || memoryBandwidth != nil {
                for m in members { builder.setMemory(of: m, size: memory, bandwidth: memoryBandwidth) }
            }
            if let lineRate, kind == .nic {
                for m in members { builder.setLineRate(of: m, lineRate) }
            }
        } catch let error as TopologyError {
            reader.report(f["name"]!, context, error.description)
        } catch {}
    }

    /// The scalar under `key` in a mapping entry, before validation (for message contexts).
    private func rawName(_ entry: YAMLValue, _ key: String) -> String? {
        guard case .mapping(let m) = entry.node, let v = m[key], let s = v.scalar?.string else { return nil }
        return s
    }

    // MARK: - Links

    private func decodeLink(_ entry: YAMLValue, into builder: inout TopologyBuilder, defaultPolicy: PathPolicy) {
        guard case .mapping(let m) = entry.node else {
            reader.report(entry, "link", "expected a mapping with 'from' and 'to' (or a generator: ring, torus, crossbar, full-mesh, attach), found \(entry.shortDescription)")
            return
        }
        let present = Self.linkShapeKeys.filter { m[$0] != nil }
        guard present.count == 1, let shape = present.first else {
            if present.isEmpty {
                reader.report(entry, "link", "a link needs 'from' and 'to', or one generator key: ring, torus, crossbar, full-mesh, attach")
            } else {
                reader.report(entry, "link", "one link entry can have only one of \(present.joined(separator: ", ")); split it into separate entries")
            }
            return
        }
        let target = rawName(entry, shape) ?? "?"
        let context: String
        var allowed = Self.linkAttributeKeys + [shape]
        var required = ["kind", "bandwidth", "latency"]
        switch shape {
        case "from":
            context = "link '\(target)'->'\(rawName(entry, "to") ?? "?")'"
            allowed.append("to")
            required.append("to")
        case "torus":
            context = "torus over '\(target)'"
            allowed += ["dims", "wrap", "per-dimension"]
            required.append("dims")
        case "crossbar":
            context = "crossbar over '\(target)'"
            allowed.append("switch")
            required.append("switch")
        case "attach":
            context = "attach '\(target)' to '\(rawName(entry, "to") ?? "?")'"
            allowed.append("to")
            required.append("to")
        default:
            context = "\(shape) over '\(target)'"
        }
        guard let f = reader.mapping(entry, context, allowed: allowed, required: required) else { return }
        // A crossbar's count may be a list (one value per switch); everything else takes one integer.
        var perSwitchCounts: [Int]? = nil
        var fields = f
        if shape == "crossbar", let c = f["count"], case .sequence = c.node {
            perSwitchCounts = reader.sequence(c, context, field: "count")?.compactMap { reader.integer($0, context, field: "count", minimum: 1) }
            fields.entries.removeAll { $0.key == "count" }
        }
        guard let attributes = decodeAttributes(fields, context, defaultPolicy: defaultPolicy) else { return }

        let failed = failedNames
        func group(_ key: String) -> [NodeID]? {
            guard let v = f[key], let name = reader.string(v, context, field: key) else { return nil }
            if let g = builder.group(name) { return g }
            if !failed.contains(name) { reader.report(v, context, "unknown node or family '\(name)'\(nameSuggestion(name, builder))") }
            return nil
        }
        func node(_ key: String) -> NodeID? {
            guard let v = f[key], let name = reader.string(v, context, field: key) else { return nil }
            if let n = builder.lookup(name) { return n }
            if failed.contains(name) || failed.contains(where: { name.hasPrefix($0) && Int(name.dropFirst($0.count)) != nil }) { return nil }
            if builder.families[name] != nil {
                reader.report(v, context, "'\(name)' is a family; a single link joins two nodes (use 'attach', 'crossbar' or a member such as '\(name)0')")
            } else {
                reader.report(v, context, "unknown node '\(name)'\(nameSuggestion(name, builder))")
            }
            return nil
        }

        do {
            switch shape {
            case "from":
                let a = node("from"), b = node("to")
                guard let a, let b else { return }
                try builder.addLink(a, b, attributes)
            case "ring":
                guard group("ring") != nil else { return }
                try builder.ring(over: target, attributes)
            case "full-mesh":
                guard group("full-mesh") != nil else { return }
                try builder.fullMesh(over: target, attributes)
            case "attach":
                let a = group("attach"), b = group("to")
                guard a != nil, b != nil, let to = rawName(entry, "to") else { return }
                try builder.attach(target, to: to, attributes)
            case "crossbar":
                let a = group("crossbar"), b = group("switch")
                guard a != nil, b != nil, let sw = rawName(entry, "switch") else { return }
                if let perSwitchCounts, perSwitchCounts.count != b!.count {
                    reader.report(f["count"]!, context, "'count' lists \(perSwitchCounts.count) values but '\(sw)' has \(b!.count) switch(es); give one per switch")
                    return
                }
                try builder.crossbar(over: target, switches: sw, attributes, counts: perSwitchCounts)
            case "torus":
                guard let members = group("torus") else { return }
                guard let dimsValue = f["dims"], let list = reader.sequence(dimsValue, context, field: "dims") else { return }
                let dims = list.compactMap { reader.integer($0, context, field: "dims", minimum: 1) }
                guard dims.count == list.count, !dims.isEmpty else {
                    if list.isEmpty { reader.report(dimsValue, context, "'dims' must list at least one dimension size") }
                    return
                }
                let product = dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
                guard product == members.count else {
                    reader.report(dimsValue, context, "dims \(dims.map(String.init).joined(separator: "x")) make \(product) positions but '\(target)' has \(members.count) members")
                    return
                }
                var wraps = [Bool](repeating: true, count: dims.count)
                if let w = f["wrap"] {
                    if case .sequence = w.node {
                        let flags = reader.sequence(w, context, field: "wrap")?.compactMap { reader.bool($0, context, field: "wrap") } ?? []
                        guard flags.count == dims.count else {
                            reader.report(w, context, "'wrap' lists \(flags.count) flags for \(dims.count) dimensions; give one per dimension or a single true/false")
                            return
                        }
                        wraps = flags
                    } else if let flag = reader.bool(w, context, field: "wrap") {
                        wraps = [Bool](repeating: flag, count: dims.count)
                    } else { return }
                }
                var perDimension = [LinkAttributes](repeating: attributes, count: dims.count)
                if let pd = f["per-dimension"] {
                    guard let entries = reader.sequence(pd, context, field: "per-dimension") else { return }
                    guard entries.count == dims.count else {
                        reader.report(pd, context, "'per-dimension' has \(entries.count) entries for \(dims.count) dimensions; give one per dimension ({} keeps the defaults)")
                        return
                    }
                    for (d, e) in entries.enumerated() {
                        let dctx = "\(context), dimension \(d)"
                        guard let df = reader.mapping(e, dctx, allowed: Self.linkAttributeKeys) else { return }
                        guard let merged = decodeAttributes(df, dctx, defaultPolicy: attributes.pathPolicy, base: attributes) else { return }
                        perDimension[d] = merged
                    }
                }
                try builder.torus(over: target, dimensions: dims, wraps: wraps, perDimension: perDimension)
            default:
                break
            }
        } catch let error as TopologyError {
            reader.report(entry, context, error.description)
        } catch {}
    }

    private func nameSuggestion(_ name: String, _ builder: TopologyBuilder) -> String {
        // `c9` when family `c` has 4 members: say what the members are.
        for family in builder.familyOrder where name.hasPrefix(family) {
            if let index = Int(name.dropFirst(family.count)), index >= 0, let members = builder.families[family] {
                return "; family '\(family)' has members \(family)0 to \(family)\(members.count - 1)"
            }
        }
        guard builder.nodeCount < 5000 else { return "" }
        let candidates = Array(builder.names.keys) + builder.familyOrder
        return reader.suggestion(name, among: candidates)
    }

    /// Reads kind, bandwidth, latency, count and path-policy; with `base`, missing fields keep the base's values.
    private func decodeAttributes(_ f: YAMLReader.Fields, _ context: String, defaultPolicy: PathPolicy, base: LinkAttributes? = nil) -> LinkAttributes? {
        let kind = f["kind"].map { reader.choice($0, context, field: "kind", as: LinkKind.self) } ?? base?.kind
        let bandwidth = f["bandwidth"].map { reader.bandwidth($0, context, field: "bandwidth") } ?? base?.bandwidth
        let latency = f["latency"].map { reader.duration($0, context, field: "latency") } ?? base?.latency
        let count = f["count"].map { reader.integer($0, context, field: "count", minimum: 1) } ?? base?.count ?? 1
        let policy = f["path-policy"].map { reader.choice($0, context, field: "path-policy", as: PathPolicy.self) } ?? defaultPolicy
        guard let kind, let bandwidth, let latency, let count, let policy else { return nil }
        return LinkAttributes(kind: kind, bandwidth: bandwidth, latency: latency, count: count, pathPolicy: policy)
    }

    // MARK: - Ranks

    private func decodeRanks(_ value: YAMLValue, builder: TopologyBuilder) -> [NodeID]? {
        let entries: [YAMLValue]
        if case .sequence = value.node {
            entries = reader.sequence(value, "ranks", field: "ranks") ?? []
            if entries.isEmpty { reader.report(value, "ranks", "'ranks' is empty; list the nodes or families that run ranks") }
        } else {
            entries = [value]
        }
        var nodes: [NodeID] = []
        for entry in entries {
            guard let name = reader.string(entry, "ranks", field: "ranks") else { continue }
            guard let group = builder.group(name) else {
                if !failedNames.contains(name) {
                    reader.report(entry, "ranks", "unknown node or family '\(name)'\(nameSuggestion(name, builder))")
                }
                continue
            }
            nodes += group
        }
        return nodes
    }

    // MARK: - Fabric

    struct FabricSpec {
        var description: FabricDescription
        var endpoints: Int?
    }

    func decodeFabric(_ value: YAMLValue, defaultPolicy: PathPolicy) -> FabricSpec? {
        let context = "fabric"
        guard let f = reader.mapping(value, context, allowed: ["shape", "radix", "tiers", "oversubscription", "placement", "endpoints"] + Self.linkAttributeKeys,
                                     required: ["shape", "kind", "bandwidth", "latency"]) else { return nil }
        let shapeName = f["shape"].flatMap { reader.choice($0, context, field: "shape", as: FabricShapeName.self) }
        let radix = f["radix"].flatMap { reader.integer($0, context, field: "radix", minimum: 2) }
        let tiers = f["tiers"].flatMap { reader.integer($0, context, field: "tiers", minimum: 1) }
        let oversubscription = f["oversubscription"].flatMap { reader.number($0, context, field: "oversubscription", minimum: 1) } ?? 1
        let endpoints = f["endpoints"].flatMap { reader.integer($0, context, field: "endpoints", minimum: 1) }
        let placement = f["placement"].flatMap { reader.choice($0, context, field: "placement", as: RailPlacement.self) }
        let attributes = decodeAttributes(f, context, defaultPolicy: defaultPolicy)
        guard let shapeName, let attributes else { return nil }
        let shape: FabricShape
        switch shapeName {
        case .crossbar:
            for key in ["radix", "tiers", "oversubscription"] where f.has(key) {
                reader.report(f.keyLocation(key)!, "\(context): '\(key)' does not apply to a crossbar (one switch with a port per endpoint)")
            }
            shape = .crossbar
        case .clos, .railOptimized:
            guard let radix else {
                if !f.has("radix") { reader.report(value, context, "missing required key 'radix' (ports per switch) for a \(shapeName.rawValue) fabric") }
                return nil
            }
            shape = .clos(radix: radix, tiers: tiers, oversubscription: oversubscription)
        }
        let chosenPlacement = placement ?? (shapeName == .railOptimized ? .rail : .instance)
        let description = FabricDescription(shape: shape, placement: chosenPlacement, attributes: attributes)
        if let t = tiers, case .clos(let k, _, _) = shape, t >= 3, k % 2 != 0 {
            reader.report(f["radix"]!, context, "a clos of 3 or more tiers needs an even radix, got \(k)")
            return nil
        }
        return FabricSpec(description: description, endpoints: endpoints)
    }

    /// Reads the `fabric` section of a fabric file named by a composition.
    mutating func loadFabricFile(_ path: String, includedFrom: YAMLValue, defaultPolicy: PathPolicy) -> FabricSpec? {
        guard let text = session.readText(path, includedFrom: includedFrom.location) else { return nil }
        let sub = YAMLReader(file: path)
        defer { session.diagnostics += sub.diagnostics }
        guard let root = sub.parseDocument(text) else { return nil }
        guard let f = sub.mapping(root, "", allowed: ["topology", "summary", "schema", "path-policy", "fabric", "parameters"], required: ["topology", "fabric"]) else { return nil }
        let policy = f["path-policy"].flatMap { sub.choice($0, "", field: "path-policy", as: PathPolicy.self) } ?? defaultPolicy
        guard let fabric = f["fabric"] else { return nil }
        let decoder = TopologyDecoder(reader: sub, session: session)
        return decoder.decodeFabric(fabric, defaultPolicy: policy)
    }

    // MARK: - Composition

    private mutating func decodeComposition(_ value: YAMLValue, name: String, summary: String?, defaultPolicy: PathPolicy) -> Topology? {
        let context = "compose"
        guard let f = reader.mapping(value, context, allowed: ["instance", "count", "fabric", "rails"],
                                     required: ["instance", "count", "fabric", "rails"]) else { return nil }
        let count = f["count"].flatMap { reader.integer($0, context, field: "count", minimum: 1) }
        let rails = f["rails"].flatMap { reader.name($0, context, field: "rails") }

        var instance: Topology?
        if let iv = f["instance"] {
            if case .mapping = iv.node {
                var nested = TopologyDecoder(reader: reader, session: session)
                instance = nested.decodeTopology(iv, overrides: [:], inline: true, asInstance: true)
                session = nested.session
            } else if let path = reader.string(iv, context, field: "instance") {
                instance = session.loadFile(resolveInclude(path, from: reader.file), overrides: [:], includedFrom: iv.location, asInstance: true)
            }
        }
        var fabric: FabricSpec?
        if let fv = f["fabric"] {
            if case .mapping = fv.node {
                fabric = decodeFabric(fv, defaultPolicy: defaultPolicy)
            } else if let path = reader.string(fv, context, field: "fabric") {
                fabric = loadFabricFile(resolveInclude(path, from: reader.file), includedFrom: fv, defaultPolicy: defaultPolicy)
            }
        }
        guard let instance, let fabric, let count, let rails, reader.diagnostics.isEmpty, session.diagnostics.isEmpty else { return nil }
        // A fabric file's `endpoints` sizes it when shown on its own; composed, the instances' NICs are its endpoints.
        guard let railNodes = instance.families[rails] ?? instance.node(named: rails).map({ [$0] }) else {
            let known = instance.families.keys.sorted()
            reader.report(f["rails"]!, context, "the instance '\(instance.name)' has no family '\(rails)'\(reader.suggestion(rails, among: known)); its families are \(known.isEmpty ? "none" : reader.list(known))")
            return nil
        }
        do {
            _ = try fabric.description.plan(ports: count * railNodes.count)
        } catch let error as TopologyError {
            reader.report(f["fabric"]!, context, error.description)
            return nil
        } catch { return nil }
        do {
            let topology = try TopologyBuilder.compose(name: name, summary: summary, instance: instance, count: count,
                                                       railFamily: rails, fabric: fabric.description)
            try topology.checkRanks()
            return topology
        } catch let error as TopologyError {
            reader.report(value, context, error.description)
            return nil
        } catch { return nil }
    }
}

/// The fabric shapes a file can name.
enum FabricShapeName: String, CaseIterable {
    case crossbar
    case clos
    case railOptimized = "rail-optimized"
}

extension FabricDescription {
    /// The most endpoint ports this fabric can hold, when its tiers are fixed.
    public var maximumPorts: Int? {
        guard case .clos(let k, let t?, let o) = shape else { return nil }
        if t == 1 { return k }
        let d1 = min(k - 1, max(1, Int((Double(k) * o / (o + 1)).rounded())))
        var c = d1 * k
        for _ in 0..<(t - 2) { c *= k / 2 }
        return c
    }
}
