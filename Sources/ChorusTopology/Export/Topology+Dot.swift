import ChorusCore

extension Topology {
    /// The topology as a Graphviz `graph`: ranks in bold, one cluster per host, link labels
    /// with kind and capacity per direction. Render with `dot -Tsvg`.
    public func graphviz() -> String {
        var out = "graph \"\(escape(name))\" {\n"
        out += "  graph [overlap=false, splines=true, fontname=\"Helvetica\", label=\"\(escape(name))\"];\n"
        out += "  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n"
        var rankOf = [Int: Int]()
        for (r, node) in ranks.enumerated() { rankOf[node.index] = r }
        var byHost: [Int: [Int]] = [:]
        for (i, n) in nodes.enumerated() { byHost[n.host, default: []].append(i) }
        for host in byHost.keys.sorted() {
            let members = byHost[host]!
            let clustered = host >= 0 && byHost.count > 1
            if clustered { out += "  subgraph \"cluster_host\(host)\" {\n    label=\"host \(host)\"; style=rounded; color=gray;\n" }
            for i in members {
                let n = nodes[i]
                var label = n.name
                if let r = rankOf[i] { label += "\\nrank \(r)" }
                let shape: String
                switch n.kind {
                case .accelerator: shape = "box"
                case .cpu: shape = "component"
                case .nic: shape = "ellipse"
                case .switch: shape = "diamond"
                }
                let style = rankOf[i] != nil ? ", style=bold" : ""
                out += "\(clustered ? "    " : "  ")n\(i) [label=\"\(escape(label))\", shape=\(shape)\(style)];\n"
            }
            if clustered { out += "  }\n" }
        }
        for l in links {
            let lanes = l.count > 1 ? " x\(l.count)" : ""
            out += "  n\(l.a.index) -- n\(l.b.index) [label=\"\(l.kind) \(l.bandwidth)\(lanes)\"];\n"
        }
        out += "}\n"
        return out
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}
