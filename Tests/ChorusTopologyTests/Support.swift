import ChorusCore
import ChorusTopology
import Foundation

/// The repository's `Topologies/` folder, found from this file's path.
let topologiesDirectory: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Topologies").path
}()

let shippedLoader = TopologyLoader(searchPaths: [topologiesDirectory])

/// Every shipped topology file name (without extension).
let shippedTopologyNames: [String] = shippedLoader.shippedNames()

func loadShipped(_ name: String, parameters: [String: Int] = [:]) throws -> Topology {
    try shippedLoader.load(name, parameters: parameters)
}

/// Loads a document from text and returns its diagnostics as printed lines (empty when valid).
func diagnostics(_ text: String, file: String = "t.yaml", parameters: [String: Int] = [:]) -> [String] {
    do {
        _ = try TopologyLoader(searchPaths: []).load(text: text, file: file, parameters: parameters)
        return []
    } catch let error as TopologyError {
        return error.diagnostics.map(\.description)
    } catch {
        return ["unexpected error: \(error)"]
    }
}

/// Neighbours of a node over links of one kind.
func neighbours(_ t: Topology, _ node: NodeID, kind: LinkKind) -> Set<NodeID> {
    Set(t.arcs(from: node).filter { t.link($0).kind == kind }.map { t.head($0) })
}
