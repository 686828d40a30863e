import ChorusCore
import Foundation

/// Loads topology files (YAML or JSON; one schema, documented in `Topologies/README.md`).
///
/// Every problem is reported as `file:line:column: context: what is wrong; what was expected`,
/// and a bad file never crashes: the loader collects all the problems it can find in one pass and
/// throws them together as `TopologyError.invalid`.
///
/// Names of shipped topologies (`aws-trn2.48xlarge`) resolve through `searchPaths` as well as
/// plain paths.
public struct TopologyLoader: Sendable {
    /// Directories searched for a topology given by name rather than path.
    public var searchPaths: [String]

    public init(searchPaths: [String] = TopologyLoader.defaultSearchPaths()) {
        self.searchPaths = searchPaths
    }

    /// `$CHORUS_TOPOLOGY_PATH` (colon-separated), `./Topologies`, and the `Topologies` folder of
    /// the source tree the running executable was built in.
    public static func defaultSearchPaths() -> [String] {
        var paths: [String] = []
        if let env = ProcessInfo.processInfo.environment["CHORUS_TOPOLOGY_PATH"] {
            paths += env.split(separator: ":").map(String.init)
        }
        paths.append("Topologies")
        // The executable lives in <root>/.build/<triple>/<config>/; walk up to a folder with Topologies/.
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("Topologies")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("README.md").path) {
                paths.append(candidate.path)
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        return paths
    }

    /// The file a user means: `pathOrName` itself if it exists, else a shipped topology of that
    /// name (with `.yaml` or `.json` added) on the search path.
    public func resolve(_ pathOrName: String) -> String? {
        let fm = FileManager.default
        if fm.fileExists(atPath: pathOrName) { return pathOrName }
        guard !pathOrName.contains("/") else { return nil }
        for dir in searchPaths {
            for candidate in [pathOrName, pathOrName + ".yaml", pathOrName + ".yml", pathOrName + ".json"] {
                let path = dir + "/" + candidate
                if fm.fileExists(atPath: path) { return path }
            }
        }
        return nil
    }

    /// The names of the topologies shipped on the search path, sorted.
    public func shippedNames() -> [String] {
        var names = Set<String>()
        for dir in searchPaths {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                for ext in [".yaml", ".yml", ".json"] where file.hasSuffix(ext) {
                    names.insert(String(file.dropLast(ext.count)))
                }
            }
        }
        return names.sorted()
    }

    /// Loads a topology file, or a shipped topology by name.
    /// - Parameter parameters: values for the parameters the file declares (`parameters:`).
    /// - Throws: `TopologyError.invalid` with every problem found.
    public func load(_ pathOrName: String, parameters: [String: Int] = [:]) throws -> Topology {
        guard let path = resolve(pathOrName) else {
            var message = "cannot read: no such file"
            if !pathOrName.contains("/") {
                let names = shippedNames()
                let hint = YAMLReader(file: pathOrName).suggestion(pathOrName, among: names)
                message += ", and no shipped topology of that name\(hint)"
            }
            throw TopologyError.invalid(Diagnostics([Diagnostic(.start(of: pathOrName), message)]))
        }
        var session = LoadSession()
        let topology = session.loadFile(path, overrides: parameters, includedFrom: nil)
        if !session.diagnostics.isEmpty || topology == nil {
            throw TopologyError.invalid(Diagnostics(session.sortedDiagnostics()))
        }
        return topology!
    }

    /// Loads a topology from text, as if read from `file` (for tests and inline use).
    public func load(text: String, file: String, parameters: [String: Int] = [:]) throws -> Topology {
        var session = LoadSession()
        let topology = session.loadText(text, file: file, overrides: parameters, includedFrom: nil)
        if !session.diagnostics.isEmpty || topology == nil {
            throw TopologyError.invalid(Diagnostics(session.sortedDiagnostics()))
        }
        return topology!
    }
}

// MARK: - One load, with its include stack

/// State of one top-level load: diagnostics from every file, and the chain of files being
/// included (for cycle detection).
struct LoadSession {
    var diagnostics: [Diagnostic] = []
    /// Canonical paths of the files being loaded, outermost first.
    var stack: [(canonical: String, shown: String)] = []

    func sortedDiagnostics() -> [Diagnostic] {
        // File order within each file; files in the order first reported.
        var fileOrder: [String: Int] = [:]
        for d in diagnostics where fileOrder[d.location.file] == nil { fileOrder[d.location.file] = fileOrder.count }
        var seen = Set<Diagnostic>()
        return diagnostics.filter { seen.insert($0).inserted }.sorted {
            let fa = fileOrder[$0.location.file]!, fb = fileOrder[$1.location.file]!
            if fa != fb { return fa < fb }
            if $0.location.line != $1.location.line { return $0.location.line < $1.location.line }
            return $0.location.column < $1.location.column
        }
    }

    mutating func loadFile(_ path: String, overrides: [String: Int], includedFrom: SourceLocation?, asInstance: Bool = false) -> Topology? {
        guard let text = readText(path, includedFrom: includedFrom) else { return nil }
        return loadText(text, file: path, overrides: overrides, includedFrom: includedFrom, asInstance: asInstance)
    }

    mutating func readText(_ path: String, includedFrom: SourceLocation?) -> String? {
        func fail(_ message: String) -> String? {
            if let includedFrom {
                diagnostics.append(Diagnostic(includedFrom, "cannot read '\(path)': \(message)"))
            } else {
                diagnostics.append(Diagnostic(.start(of: path), "cannot read: \(message)"))
            }
            return nil
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return fail("no such file") }
        guard !isDirectory.boolValue else { return fail("it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else { return fail("permission denied or unreadable") }
        guard data.count <= 64 << 20 else { return fail("the file is larger than 64 MiB; topology files are descriptions, not dumps") }
        guard let text = String(data: data, encoding: .utf8) else { return fail("the file is not UTF-8 text") }
        return text
    }

    mutating func loadText(_ text: String, file: String, overrides: [String: Int], includedFrom: SourceLocation?, asInstance: Bool = false) -> Topology? {
        let canonical = canonicalPath(file)
        if let index = stack.firstIndex(where: { $0.canonical == canonical }) {
            let chain = (stack[index...].map(\.shown) + [file]).joined(separator: " -> ")
            diagnostics.append(Diagnostic(includedFrom ?? .start(of: file), "include cycle: \(chain)"))
            return nil
        }
        stack.append((canonical, file))
        defer { stack.removeLast() }

        let reader = YAMLReader(file: file)
        guard let root = reader.parseDocument(text) else {
            diagnostics += reader.diagnostics
            return nil
        }
        var decoder = TopologyDecoder(reader: reader, session: self)
        let topology = decoder.decodeTopology(root, overrides: overrides, inline: false, asInstance: asInstance)
        self = decoder.session
        diagnostics += reader.diagnostics
        return topology
    }

    private func canonicalPath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}

/// Joins an include path to the directory of the file that names it.
func resolveInclude(_ include: String, from file: String) -> String {
    if include.hasPrefix("/") { return include }
    guard let slash = file.lastIndex(of: "/") else { return include }
    return String(file[..<slash]) + "/" + include
}
