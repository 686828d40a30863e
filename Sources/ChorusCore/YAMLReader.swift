import Yams

/// A YAML (or JSON) value with its position, read through `Yams.Node` so every problem can be
/// reported at `file:line:column`.
package struct YAMLValue {
    package let node: Yams.Node
    package let location: SourceLocation

    package var scalarText: String? { node.scalar?.string }

    /// A short rendering of the value for messages: the scalar itself, or its shape.
    package var shortDescription: String {
        switch node {
        case .scalar(let s): return "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// Reads typed fields out of YAML and collects diagnostics; a field that fails to read yields
/// `nil` and a diagnostic, so one pass reports every problem in a file.
package final class YAMLReader {
    package let file: String
    package private(set) var diagnostics: [Diagnostic] = []
    /// Integer parameters visible to `$name` references.
    package var parameters: [String: Int]

    package init(file: String, parameters: [String: Int] = [:]) {
        self.file = file
        self.parameters = parameters
    }

    // MARK: - Locations and reporting

    package func location(of node: Yams.Node) -> SourceLocation {
        guard let mark = node.mark else { return .start(of: file) }
        return SourceLocation(file: file, line: mark.line, column: mark.column)
    }

    package func value(_ node: Yams.Node) -> YAMLValue { YAMLValue(node: node, location: location(of: node)) }

    package func report(_ location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(location, message))
    }

    package func report(_ value: YAMLValue, _ context: String, _ message: String) {
        report(value.location, context.isEmpty ? message : "\(context): \(message)")
    }

    /// The text being parsed (for locating duplicate keys, which Yams reports at the mapping).
    private var text = ""

    /// Parses a document. An empty or comment-only file, or a syntax error, is reported and gives `nil`.
    package func parseDocument(_ text: String) -> YAMLValue? {
        self.text = text
        do {
            guard let root = try Yams.compose(yaml: text) else {
                report(.start(of: file), "the file is empty; expected a topology mapping with at least a 'topology' name")
                return nil
            }
            if case .scalar(let s) = root, s.string.isEmpty {
                report(.start(of: file), "the file is empty; expected a topology mapping with at least a 'topology' name")
                return nil
            }
            return value(root)
        } catch let error as YamlError {
            reportSyntax(error)
            return nil
        } catch {
            report(.start(of: file), "cannot parse: \(error)")
            return nil
        }
    }

    private func reportSyntax(_ error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            report(SourceLocation(file: file, line: mark.line, column: mark.column), "syntax error: \(problem)\(where_)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            let start = SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
            report(secondOccurrence(of: duplicates.sorted().first ?? "", after: start) ?? start,
                   "duplicate key \(keys) in one mapping; each key may appear once")
        case .reader(let problem, let offset, _, let yaml):
            var line = 1, column = 1
            if let offset {
                for c in yaml.prefix(offset) {
                    if c == "\n" { line += 1; column = 1 } else { column += 1 }
                }
            }
            report(SourceLocation(file: file, line: line, column: column), "cannot read the text: \(problem)")
        default:
            report(.start(of: file), "cannot parse: \(error)")
        }
    }

    /// Where `key:` appears for the second time at or after `start`: Yams names the mapping,
    /// but the user wants the line that repeats the key.
    private func secondOccurrence(of key: String, after start: SourceLocation) -> SourceLocation? {
        guard !key.isEmpty else { return nil }
        var seen = 0
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where i + 1 >= start.line {
            var search = line[...]
            while let range = search.range(of: key) {
                let before = range.lowerBound == line.startIndex ? " " : line[line.index(before: range.lowerBound)]
                let after = line[range.upperBound...].drop { $0 == " " }
                if (before == " " || before == "{" || before == "," || before == "\t" || before == "\"") && (after.hasPrefix(":") || after.hasPrefix("\":")) {
                    seen += 1
                    if seen == 2 {
                        return SourceLocation(file: file, line: i + 1, column: line.distance(from: line.startIndex, to: range.lowerBound) + 1)
                    }
                }
                search = line[range.upperBound...]
            }
        }
        return nil
    }

    // MARK: - Mappings

    /// The fields of a mapping, keyed by name, in file order.
    package struct Fields {
        package let value: YAMLValue
        package var entries: [(key: String, keyLocation: SourceLocation, value: YAMLValue)]

        package subscript(key: String) -> YAMLValue? { entries.first { $0.key == key }?.value }
        package func has(_ key: String) -> Bool { entries.contains { $0.key == key } }
        package func keyLocation(_ key: String) -> SourceLocation? { entries.first { $0.key == key }?.keyLocation }
        package var keys: [String] { entries.map(\.key) }
    }

    /// Reads a mapping, reporting unknown keys (with a suggestion) and missing required keys.
    package func mapping(_ value: YAMLValue, _ context: String, allowed: [String], required: [String] = []) -> Fields? {
        guard case .mapping(let m) = value.node else {
            report(value, context, "expected a mapping with keys \(list(allowed)), found \(value.shortDescription)")
            return nil
        }
        var fields = Fields(value: value, entries: [])
        for (k, v) in m {
            let keyValue = self.value(k)
            guard let key = k.scalar?.string else {
                report(keyValue, context, "keys must be plain names, found \(keyValue.shortDescription)")
                continue
            }
            guard allowed.contains(key) else {
                report(keyValue, context, "unknown key '\(key)'\(suggestion(key, among: allowed)); expected one of \(list(allowed))")
                continue
            }
            fields.entries.append((key, keyValue.location, self.value(v)))
        }
        for key in required where !fields.has(key) {
            report(value, context, "missing required key '\(key)'")
        }
        return fields
    }

    package func list(_ names: [String]) -> String { names.joined(separator: ", ") }

    /// `" (did you mean 'bandwidth'?)"` when a known key is one or two edits away.
    package func suggestion(_ word: String, among candidates: [String]) -> String {
        let best = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
            .min { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        guard let (candidate, distance) = best, distance <= max(1, min(2, word.count / 3)) else { return "" }
        return " (did you mean '\(candidate)'?)"
    }

    // MARK: - Scalars

    package func string(_ value: YAMLValue, _ context: String, field: String) -> String? {
        guard let text = value.scalarText, case .scalar = value.node else {
            report(value, context, "'\(field)' must be text, found \(value.shortDescription)")
            return nil
        }
        return text
    }

    /// A name: non-empty, no spaces or slashes (slashes separate instance prefixes in composed names).
    package func name(_ value: YAMLValue, _ context: String, field: String) -> String? {
        guard let text = string(value, context, field: field) else { return nil }
        guard !text.isEmpty, !text.contains(where: { $0 == " " || $0 == "/" || $0 == "\t" }) else {
            report(value, context, "'\(field)' must be a non-empty name without spaces or '/', found '\(text)'")
            return nil
        }
        return text
    }

    /// An integer, or `$parameter`.
    package func integer(_ value: YAMLValue, _ context: String, field: String, minimum: Int? = nil) -> Int? {
        guard let text = value.scalarText, case .scalar = value.node else {
            report(value, context, "'\(field)' must be an integer, found \(value.shortDescription)")
            return nil
        }
        var result: Int
        if text.hasPrefix("$") {
            let name = String(text.dropFirst())
            guard let bound = parameters[name] else {
                let declared = parameters.keys.sorted()
                report(value, context, "'\(field)' refers to unknown parameter '\(text)'\(suggestion(name, among: declared)); declared parameters: \(declared.isEmpty ? "none" : list(declared))")
                return nil
            }
            result = bound
        } else if let n = Int(text) {
            result = n
        } else {
            report(value, context, "'\(field)' must be an integer, found '\(text)'")
            return nil
        }
        if let minimum, result < minimum {
            report(value, context, "'\(field)' must be at least \(minimum), found \(result)")
            return nil
        }
        return result
    }

    package func number(_ value: YAMLValue, _ context: String, field: String, minimum: Double) -> Double? {
        guard let text = value.scalarText, case .scalar = value.node, let n = Double(text), n.isFinite else {
            report(value, context, "'\(field)' must be a number, found \(value.shortDescription)")
            return nil
        }
        guard n >= minimum else {
            report(value, context, "'\(field)' must be at least \(formatTrimmed(minimum, maxFractionDigits: 3)), found \(text)")
            return nil
        }
        return n
    }

    package func bool(_ value: YAMLValue, _ context: String, field: String) -> Bool? {
        switch value.scalarText?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            report(value, context, "'\(field)' must be true or false, found \(value.shortDescription)")
            return nil
        }
    }

    package func sequence(_ value: YAMLValue, _ context: String, field: String) -> [YAMLValue]? {
        guard case .sequence(let s) = value.node else {
            report(value, context, "'\(field)' must be a list, found \(value.shortDescription)")
            return nil
        }
        return s.map { self.value($0) }
    }

    /// A positive bandwidth with a unit.
    package func bandwidth(_ value: YAMLValue, _ context: String, field: String) -> Bandwidth? {
        guard let text = value.scalarText, case .scalar = value.node else {
            report(value, context, "'\(field)' must be a bandwidth such as 200Gbps or 256GB/s, found \(value.shortDescription)")
            return nil
        }
        switch Bandwidth.unitProblem(in: text) {
        case .notANumber:
            report(value, context, "'\(field)' must be a bandwidth such as 200Gbps or 256GB/s, found '\(text)'")
            return nil
        case .missingUnit:
            report(value, context, "'\(field)' needs a unit, found '\(text)'; write e.g. \(text)Gbps (bits) or \(text)GB/s (bytes)")
            return nil
        case .unknownUnit(let unit):
            report(value, context, "'\(field)' has unknown unit '\(unit)'; expected one of \(Bandwidth.acceptedUnits)")
            return nil
        case .none:
            break
        }
        guard let bw = Bandwidth(parsing: text) else { return nil }
        guard bw.bytesPerSecond > 0 else {
            report(value, context, "'\(field)' must be positive, found '\(text)'")
            return nil
        }
        return bw
    }

    /// A positive duration with a unit.
    package func duration(_ value: YAMLValue, _ context: String, field: String) -> Duration? {
        guard let text = value.scalarText, case .scalar = value.node else {
            report(value, context, "'\(field)' must be a duration such as 1.5us or 500ns, found \(value.shortDescription)")
            return nil
        }
        switch Duration.unitProblem(in: text) {
        case .notANumber:
            report(value, context, "'\(field)' must be a duration such as 1.5us or 500ns, found '\(text)'")
            return nil
        case .missingUnit:
            report(value, context, "'\(field)' needs a unit, found '\(text)'; write e.g. \(text)us or \(text)ns")
            return nil
        case .unknownUnit(let unit):
            report(value, context, "'\(field)' has unknown unit '\(unit)'; expected one of \(Duration.acceptedUnits)")
            return nil
        case .none:
            break
        }
        guard let d = Duration(parsing: text) else {
            report(value, context, "'\(field)' is out of range, found '\(text)'")
            return nil
        }
        guard d > .zero else {
            report(value, context, "'\(field)' must be positive, found '\(text)'")
            return nil
        }
        return d
    }

    /// A positive size with a unit (`96GiB`, `32GB`).
    package func size(_ value: YAMLValue, _ context: String, field: String) -> ByteCount? {
        guard let text = value.scalarText, case .scalar = value.node,
              let (_, unit) = splitNumberAndUnit(text), !unit.isEmpty,
              let size = ByteCount(parsing: text, decimalWhenBSpelled: true), size.bytes > 0 else {
            report(value, context, "'\(field)' must be a positive size with a unit such as 96GiB or 32GB, found \(value.shortDescription)")
            return nil
        }
        return size
    }

    /// One of an enumeration's raw values.
    package func choice<T: RawRepresentable & CaseIterable>(_ value: YAMLValue, _ context: String, field: String, as: T.Type) -> T? where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        guard let text = value.scalarText, case .scalar = value.node else {
            report(value, context, "'\(field)' must be one of \(list(names)), found \(value.shortDescription)")
            return nil
        }
        guard let v = T(rawValue: text) else {
            report(value, context, "'\(field)' has unknown value '\(text)'\(suggestion(text, among: names)); expected one of \(list(names))")
            return nil
        }
        return v
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
package func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
