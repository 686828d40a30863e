import ChorusAlgorithms
import ChorusCore

/// What `CHORUS_ALGO` (or `--algo`) says about algorithm choice.
///
/// ## Grammar
/// ```
/// override   := rule (';' rule)*
/// rule       := [collective ':'] clause (',' clause)*
/// clause     := [range ':'] choice
/// range      := size '-' (size | 'inf')          half-open: [low, high) bytes
/// choice     := ['^'] algorithm ('|' algorithm)*  '^' excludes; '|' lets the selector pick among them
/// algorithm  := id ['{' param (',' param)* '}']
/// param      := 'channels=' integer | 'slice=' size
/// size       := integer ['K' | 'M' | 'G' | 'T']   binary multiples, as in nccl-tests
/// collective := all-reduce | allreduce | all_reduce | all-gather | … | broadcast | reduce
/// ```
/// A rule without a collective applies to every collective; a clause without a range to every
/// size. For a given collective and size the first matching clause of the first matching rule
/// decides; sizes no clause covers are left to the selector.
///
/// ## Examples
/// - `ring`: always the ring.
/// - `allreduce:0-64K:recursive-doubling,64K-inf:ring|halving-doubling;allgather:ring`
/// - `^direct`: anything but the one-shot algorithm.
/// - `all-reduce:ring{channels=2,slice=512K}`: the ring with 2 channel copies and 512 KiB slices.
public struct SelectionOverride: Hashable, Sendable {
    public struct AlgorithmChoice: Hashable, Sendable {
        public var id: String
        public var channels: Int?
        public var sliceBytes: Int?
    }

    public struct Clause: Hashable, Sendable {
        /// Byte range; `nil` for every size.
        public var range: Range<Int>?
        public var exclude: Bool
        public var algorithms: [AlgorithmChoice]
    }

    public struct Rule: Hashable, Sendable {
        public var collective: Collective?
        public var clauses: [Clause]
    }

    public var rules: [Rule]
    /// The text it was parsed from, for messages.
    public var text: String

    /// The clause deciding `collective` at `bytes`, if any.
    public func clause(for collective: Collective, bytes: Int) -> Clause? {
        for rule in rules where rule.collective == nil || rule.collective == collective {
            for clause in rule.clauses where clause.range.map({ $0.contains(bytes) }) ?? true { return clause }
        }
        return nil
    }

    /// Parses the grammar above.
    /// - Parameter source: where the text came from, for messages (`CHORUS_ALGO`, `--algo`).
    /// - Throws: `SelectError.badOverride` naming the character position and what was expected.
    public static func parse(_ text: String, source: String = "CHORUS_ALGO") throws -> SelectionOverride {
        var rules: [Rule] = []
        let chars = Array(text)
        func fail(_ at: Int, _ message: String) -> SelectError {
            .badOverride("\(source)=\"\(text)\": at character \(at + 1): \(message)")
        }
        // Split on a separator outside braces, keeping start offsets for messages.
        func split(_ start: Int, _ end: Int, on separator: Character) -> [(Int, Int)] {
            var parts: [(Int, Int)] = []
            var depth = 0, from = start
            for i in start..<end {
                if chars[i] == "{" { depth += 1 } else if chars[i] == "}" { depth -= 1 }
                if chars[i] == separator && depth == 0 {
                    parts.append((from, i))
                    from = i + 1
                }
            }
            parts.append((from, end))
            return parts
        }
        func string(_ r: (Int, Int)) -> String { String(chars[r.0..<r.1]).trimmingSpaces() }
        func size(_ s: String, at: Int) throws -> Int {
            guard let v = ByteCount(parsing: s), !s.isEmpty else { throw fail(at, "'\(s)' is not a size (write 0, 64K, 256M, 1G)") }
            return v.bytes
        }

        for ruleRange in split(0, chars.count, on: ";") where !string(ruleRange).isEmpty {
            var clauseStart = ruleRange.0
            var collective: Collective?
            // Text before the first ':' is a collective, or a size range (it starts with a digit).
            if let colon = (ruleRange.0..<ruleRange.1).first(where: { chars[$0] == ":" }) {
                let head = string((ruleRange.0, colon))
                if let c = Collective(name: head) {
                    collective = c
                    clauseStart = colon + 1
                } else if head.first?.isNumber != true {
                    let names = Collective.allCases.map(\.rawValue)
                    let hint = YAMLReader(file: "").suggestion(head, among: names)
                    throw fail(ruleRange.0, "unknown collective '\(head)'\(hint); expected one of \(names.joined(separator: ", "))")
                }
            }
            var clauses: [Clause] = []
            for clauseRange in split(clauseStart, ruleRange.1, on: ",") {
                var body = clauseRange
                var range: Range<Int>?
                if let colon = (clauseRange.0..<clauseRange.1).first(where: { chars[$0] == ":" }) {
                    let r = string((clauseRange.0, colon))
                    let bounds = r.split(separator: "-", maxSplits: 1).map(String.init)
                    guard bounds.count == 2 else { throw fail(clauseRange.0, "'\(r)' is not a size range (write LOW-HIGH, e.g. 0-64K or 64K-inf)") }
                    let low = try size(bounds[0].trimmingSpaces(), at: clauseRange.0)
                    let highText = bounds[1].trimmingSpaces()
                    let high = highText.lowercased() == "inf" ? Int.max : try size(highText, at: clauseRange.0)
                    guard low < high else { throw fail(clauseRange.0, "the range '\(r)' is empty (its low end must be below its high end)") }
                    range = low..<high
                    body = (colon + 1, clauseRange.1)
                }
                var choice = string(body)
                var exclude = false
                if choice.hasPrefix("^") {
                    exclude = true
                    choice.removeFirst()
                }
                guard !choice.isEmpty else { throw fail(body.0, "expected an algorithm name") }
                var algorithms: [AlgorithmChoice] = []
                for name in choice.split(separator: "|").map({ String($0).trimmingSpaces() }) {
                    var id = name
                    var parsed = AlgorithmChoice(id: name, channels: nil, sliceBytes: nil)
                    if let brace = name.firstIndex(of: "{") {
                        guard name.hasSuffix("}") else { throw fail(body.0, "'\(name)' opens '{' without closing it") }
                        id = String(name[..<brace]).trimmingSpaces()
                        let params = name[name.index(after: brace)..<name.index(before: name.endIndex)]
                        for param in params.split(separator: ",").map({ String($0).trimmingSpaces() }) {
                            let kv = param.split(separator: "=", maxSplits: 1).map(String.init)
                            guard kv.count == 2 else { throw fail(body.0, "'\(param)' is not a parameter (write channels=2 or slice=512K)") }
                            switch kv[0] {
                            case "channels":
                                guard let c = Int(kv[1]), c >= 1, c <= 64 else { throw fail(body.0, "channels must be an integer from 1 to 64, got '\(kv[1])'") }
                                parsed.channels = c
                            case "slice":
                                let s = try size(kv[1], at: body.0)
                                guard s > 0 else { throw fail(body.0, "slice must be positive") }
                                parsed.sliceBytes = s
                            default:
                                throw fail(body.0, "unknown parameter '\(kv[0])'; expected channels or slice")
                            }
                        }
                    }
                    guard AlgorithmRegistry.algorithm(id: id) != nil else {
                        let hint = YAMLReader(file: "").suggestion(id, among: AlgorithmRegistry.ids)
                        throw fail(body.0, "unknown algorithm '\(id)'\(hint); known: \(AlgorithmRegistry.ids.joined(separator: ", "))")
                    }
                    parsed.id = id
                    algorithms.append(parsed)
                }
                clauses.append(Clause(range: range, exclude: exclude, algorithms: algorithms))
            }
            rules.append(Rule(collective: collective, clauses: clauses))
        }
        return SelectionOverride(rules: rules, text: text)
    }
}
