import ChorusCore
import Foundation

/// The JSON form of a schedule, for users who bring their own algorithms (as MSCCL users bring
/// XML) and for `chorus plan --emit-schedule`.
///
/// ```json
/// {
///   "schedule": 1,
///   "algorithm": "my-ring",
///   "collective": "all-reduce",
///   "ranks": 2,
///   "root": 0,
///   "chunks-per-block": 2,
///   "scratch-blocks": 0,
///   "channels": 1,
///   "programs": [
///     [ {"op": "send", "peer": 1, "buffer": "input", "chunks": [0]},
///       {"op": "recv", "peer": 1, "buffer": "output", "chunks": [1],
///        "reduce": {"buffer": "input", "chunks": [1]}},
///       {"op": "send", "peer": 1, "buffer": "output", "chunks": [1]},
///       {"op": "recv", "peer": 1, "buffer": "output", "chunks": [0]} ],
///     [ ... rank 1 ... ]
///   ]
/// }
/// ```
/// `programs[r]` is rank r's op list. Ops: `send` (`peer`, `buffer`, `chunks`), `recv` (`peer`,
/// `buffer`, `chunks`, optional `reduce`: `true` to reduce into the destination, or a
/// `{buffer, chunks}` operand), `copy` and `reduce` (`from` and `to`/`into`, each
/// `{buffer, chunks}`). Every op may carry `channel` (default 0) and `after` (earlier op indices).
/// An optional `"symmetry": {"action": "rotation" | "xor", "stride": 1}` declares a
/// `RankSymmetry` (the simulator checks it before it runs one rank per orbit).
extension Schedule {
    /// Writes the schedule as JSON, one program per line, through `write` (so a large schedule
    /// streams instead of building one string).
    public func writeJSON(_ write: (String) -> Void) {
        write("{\n  \"schedule\": 1,\n  \"algorithm\": \(quote(algorithm)),\n  \"collective\": \(quote(collective.rawValue)),\n")
        write("  \"ranks\": \(ranks),\n  \"root\": \(root),\n  \"chunks-per-block\": \(layout.chunksPerBlock),\n")
        write("  \"scratch-blocks\": \(layout.scratchBlocks),\n  \"channels\": \(channels),\n")
        if let symmetry {
            write("  \"symmetry\": {\"action\": \(quote(symmetry.action.rawValue)), \"stride\": \(symmetry.stride)},\n")
        }
        write("  \"programs\": [\n")
        for r in 0..<ranks {
            let ops = program(for: r).ops.map(encode).joined(separator: ", ")
            write("    [\(ops)]\(r + 1 < ranks ? "," : "")\n")
        }
        write("  ]\n}\n")
    }

    /// The whole schedule as one JSON string.
    public var jsonText: String {
        var text = ""
        writeJSON { text += $0 }
        return text
    }

    private func encode(_ op: Op) -> String {
        func slice(_ s: BufferSlice) -> String {
            "\"buffer\": \(quote(s.buffer.description)), \"chunks\": [\(s.chunks.chunks.map(String.init).joined(separator: ", "))]"
        }
        var fields: [String] = []
        switch op.kind {
        case .send:
            fields = ["\"op\": \"send\"", "\"peer\": \(op.peer)", slice(op.source!)]
        case .recv:
            fields = ["\"op\": \"recv\"", "\"peer\": \(op.peer)", slice(op.destination!)]
            if op.reducing { fields.append("\"reduce\": " + (op.source.map { "{\(slice($0))}" } ?? "true")) }
        case .copy:
            fields = ["\"op\": \"copy\"", "\"from\": {\(slice(op.source!))}", "\"to\": {\(slice(op.destination!))}"]
        case .reduce:
            fields = ["\"op\": \"reduce\"", "\"from\": {\(slice(op.source!))}", "\"into\": {\(slice(op.destination!))}"]
        }
        if op.channel != 0 { fields.append("\"channel\": \(op.channel)") }
        if !op.after.isEmpty { fields.append("\"after\": [\(op.after.map(String.init).joined(separator: ", "))]") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    private func quote(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    // MARK: - Decoding

    /// Reads a schedule from a JSON (or YAML) file.
    /// - Throws: `ScheduleError.invalidFile` with every problem at `file:line:column`.
    public static func load(file path: String) throws -> Schedule {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw ScheduleError.invalidFile(Diagnostics([Diagnostic(.start(of: path), exists ? "cannot read: permission denied or a directory" : "cannot read: no such file")]))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ScheduleError.invalidFile(Diagnostics([Diagnostic(.start(of: path), "cannot read: the file is not UTF-8 text")]))
        }
        return try Schedule(json: text, file: path)
    }

    /// Reads a schedule from JSON text, reporting as if from `file`.
    public init(json text: String, file: String) throws {
        let reader = YAMLReader(file: file)
        guard let document = reader.parseDocument(text) else {
            throw ScheduleError.invalidFile(Diagnostics(reader.diagnostics.map { d in
                var d = d
                d.message = d.message.replacingOccurrences(of: "expected a topology mapping with at least a 'topology' name", with: "expected a schedule object")
                return d
            }))
        }
        let keys = ["schedule", "algorithm", "collective", "ranks", "root", "chunks-per-block", "scratch-blocks", "channels", "symmetry", "programs"]
        guard let f = reader.mapping(document, "", allowed: keys, required: ["collective", "ranks", "chunks-per-block", "programs"]) else {
            throw ScheduleError.invalidFile(Diagnostics(reader.diagnostics))
        }
        if let v = f["schedule"], let version = reader.integer(v, "", field: "schedule"), version != 1 {
            reader.report(v, "", "unsupported schedule version \(version); this Chorus reads version 1")
        }
        let algorithm = f["algorithm"].flatMap { reader.string($0, "", field: "algorithm") } ?? "custom"
        var collective: Collective?
        if let v = f["collective"], let name = reader.string(v, "", field: "collective") {
            collective = Collective(name: name)
            if collective == nil {
                reader.report(v, "", "unknown collective '\(name)'; expected one of \(Collective.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        let ranks = f["ranks"].flatMap { reader.integer($0, "", field: "ranks", minimum: 1) }
        let root = f["root"].flatMap { reader.integer($0, "", field: "root", minimum: 0) } ?? 0
        let k = f["chunks-per-block"].flatMap { reader.integer($0, "", field: "chunks-per-block", minimum: 1) }
        let scratch = f["scratch-blocks"].flatMap { reader.integer($0, "", field: "scratch-blocks", minimum: 0) } ?? 0
        let channels = f["channels"].flatMap { reader.integer($0, "", field: "channels", minimum: 1) } ?? 1
        var symmetry: RankSymmetry?
        if let v = f["symmetry"], let sf = reader.mapping(v, "symmetry", allowed: ["action", "stride"], required: ["action"]) {
            let stride = sf["stride"].flatMap { reader.integer($0, "symmetry", field: "stride", minimum: 1) } ?? 1
            if let av = sf["action"], let name = reader.string(av, "symmetry", field: "action") {
                if let action = RankSymmetry.Action(rawValue: name) {
                    if let ranks {
                        symmetry = RankSymmetry(action, ranks: ranks, stride: stride)
                        if symmetry == nil {
                            reader.report(v, "symmetry", action == .xor
                                ? "xor needs a power-of-two rank count and stride dividing it; got \(ranks) ranks, stride \(stride)"
                                : "the stride \(stride) does not divide the \(ranks) ranks")
                        }
                    }
                } else {
                    reader.report(av, "symmetry", "unknown action '\(name)'; expected rotation or xor")
                }
            }
        }
        var programs: [RankProgram] = []
        if let pv = f["programs"], let list = reader.sequence(pv, "", field: "programs") {
            if let ranks, list.count != ranks {
                reader.report(pv, "", "'programs' has \(list.count) entries for \(ranks) ranks; give one op list per rank")
            }
            for (r, entry) in list.enumerated() {
                guard let ops = reader.sequence(entry, "rank \(r)", field: "programs[\(r)]") else { continue }
                var program = RankProgram()
                for (i, opValue) in ops.enumerated() {
                    if let op = Self.decodeOp(opValue, reader: reader, context: "rank \(r), op \(i)") { program.append(op) }
                }
                programs.append(program)
            }
        }
        guard reader.diagnostics.isEmpty, let collective, let ranks, let k, programs.count == ranks else {
            throw ScheduleError.invalidFile(Diagnostics(reader.diagnostics))
        }
        self.init(algorithm: algorithm, collective: collective, ranks: ranks, root: root,
                  layout: .standard(collective, ranks: ranks, chunksPerBlock: k, scratchBlocks: scratch),
                  channels: channels, programs: programs)
        self.symmetry = symmetry
    }

    private static func decodeOp(_ value: YAMLValue, reader: YAMLReader, context: String) -> Op? {
        guard case .mapping(let m) = value.node, let kindText = m["op"]?.scalar?.string else {
            reader.report(value, context, "expected an op object with \"op\": send, recv, copy or reduce")
            return nil
        }
        let common = ["op", "channel", "after"]
        let allowed: [String]
        switch kindText {
        case "send": allowed = common + ["peer", "buffer", "chunks"]
        case "recv": allowed = common + ["peer", "buffer", "chunks", "reduce"]
        case "copy": allowed = common + ["from", "to"]
        case "reduce": allowed = common + ["from", "into"]
        default:
            reader.report(reader.value(m["op"]!), context, "unknown op '\(kindText)'\(reader.suggestion(kindText, among: ["send", "recv", "copy", "reduce"])); expected send, recv, copy or reduce")
            return nil
        }
        let required: [String]
        switch kindText {
        case "send", "recv": required = ["peer", "buffer", "chunks"]
        case "copy": required = ["from", "to"]
        default: required = ["from", "into"]
        }
        guard let f = reader.mapping(value, context, allowed: allowed, required: required) else { return nil }
        let channel = f["channel"].flatMap { reader.integer($0, context, field: "channel", minimum: 0) } ?? 0
        var after: [Int32] = []
        if let a = f["after"], let list = reader.sequence(a, context, field: "after") {
            after = list.compactMap { reader.integer($0, context, field: "after", minimum: 0).map(Int32.init) }
        }
        func slice(_ fields: YAMLReader.Fields, _ ctx: String) -> BufferSlice? {
            var buffer: BufferKind?
            if let b = fields["buffer"], let name = reader.string(b, ctx, field: "buffer") {
                buffer = BufferKind(name: name)
                if buffer == nil { reader.report(b, ctx, "unknown buffer '\(name)'; expected input, output or scratch") }
            }
            var chunks: [Int] = []
            if let c = fields["chunks"], let list = reader.sequence(c, ctx, field: "chunks") {
                chunks = list.compactMap { reader.integer($0, ctx, field: "chunks", minimum: 0) }
                if list.isEmpty { reader.report(c, ctx, "'chunks' is empty; name at least one chunk") }
            }
            guard let buffer, !chunks.isEmpty else { return nil }
            return BufferSlice(buffer, ChunkList(chunks: chunks))
        }
        func nested(_ key: String) -> BufferSlice? {
            guard let v = f[key], let sub = reader.mapping(v, "\(context), '\(key)'", allowed: ["buffer", "chunks"], required: ["buffer", "chunks"]) else { return nil }
            return slice(sub, "\(context), '\(key)'")
        }
        switch kindText {
        case "send":
            // Read every field before giving up, so one pass reports every problem.
            let peer = f["peer"].flatMap { reader.integer($0, context, field: "peer", minimum: 0) }
            let source = slice(f, context)
            guard let peer, let s = source else { return nil }
            var op = Op.send(to: peer, s, channel: channel)
            op.after = after
            return op
        case "recv":
            let peer = f["peer"].flatMap { reader.integer($0, context, field: "peer", minimum: 0) }
            let destination = slice(f, context)
            guard let peer, let d = destination else { return nil }
            var op: Op
            if let r = f["reduce"] {
                if case .mapping = r.node {
                    guard let sub = reader.mapping(r, "\(context), 'reduce'", allowed: ["buffer", "chunks"], required: ["buffer", "chunks"]),
                          let operand = slice(sub, "\(context), 'reduce'") else { return nil }
                    op = .recvReduce(from: peer, into: d, with: operand, channel: channel)
                } else if let flag = reader.bool(r, context, field: "reduce") {
                    op = flag ? .recvReduce(from: peer, into: d, channel: channel) : .recv(from: peer, into: d, channel: channel)
                } else { return nil }
            } else {
                op = .recv(from: peer, into: d, channel: channel)
            }
            op.after = after
            return op
        case "copy":
            let from = nested("from"), to = nested("to")
            guard let a = from, let b = to else { return nil }
            var op = Op.copy(from: a, to: b)
            op.after = after
            return op
        default:
            let from = nested("from"), into = nested("into")
            guard let a = from, let b = into else { return nil }
            var op = Op.reduce(from: a, into: b)
            op.after = after
            return op
        }
    }
}
