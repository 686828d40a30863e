import ArgumentParser
import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSelect
import ChorusTopology
#if canImport(Glibc)
import Glibc
#endif

/// `chorus plan`: which algorithm, channels and slice size the selector picks, and why.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Choose the algorithm for a collective on a topology, with the modelled time of every candidate.",
        discussion: """
            --size is nccl-tests' size: the whole buffer (for all-gather and reduce-scatter, the \
            whole gathered or scattered buffer, rounded down to a multiple of ranks x element size). \
            CHORUS_ALGO (or --algo) overrides the choice; see 'chorus plan --help-override'.
            """)

    @Option(help: "A topology file or shipped name.")
    var topology: String = "aws-trn2.48xlarge"

    @Option(help: "all-reduce, all-gather, reduce-scatter, broadcast or reduce.")
    var collective: Collective = .allReduce

    @Option(parsing: .unconditional, help: "Message size, e.g. 8, 64K, 256M, 1G (binary multiples).")
    var size: SizeArgument = SizeArgument(argument: "256M")!

    @Option(parsing: .unconditional, help: "Use the first N ranks (or set the topology's 'ranks' parameter).")
    var ranks: Int?

    @Option(help: "Element type (f32, f64, f16, bf16, i8, u8, i32, u32, i64, u64).")
    var dtype: DataType = .float32

    @Option(parsing: .unconditional, help: "Root rank of broadcast and reduce.")
    var root: Int = 0

    @Option(help: "An algorithm id, or a CHORUS_ALGO override string.")
    var algo: String?

    @Option(help: "A calibration file (from 'chorus sim --calibrate').")
    var calibration: String?

    @Flag(help: "List every candidate with its modelled time and why it lost.")
    var explain = false

    @Flag(help: "Write one JSON object instead of text.")
    var json = false

    @Option(name: .customLong("emit-schedule"), help: "Write the chosen schedule as JSON to this file.")
    var emitSchedule: String?

    @OptionGroup var parameters: TopologyParameterOptions

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        if root < 0 { throw ValidationError("--root must be a rank (0 or more), got \(root)") }
    }

    func run() throws {
        let context = try PlanningContext.load(topology: topology, ranks: ranks, parameters: try parameters.parsed(), calibration: calibration)
        let n = context.ranks
        if collective.hasRoot && root >= n { throw ValidationError("--root \(root) is not one of the \(n) ranks") }
        let override = try PlanningContext.override(flag: algo)
        let bytes = PlanningContext.roundedSize(size.bytes, collective: collective, ranks: n, dataType: dtype)
        let selector = Selector(topology: context.topology, ranks: n, calibration: context.calibration)
        let selection: Selection
        do {
            selection = try selector.select(collective, bytes: bytes, root: root, override: override)
        } catch let error as SelectError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let path = emitSchedule { try emit(selection, to: path) }
        if json {
            print(planJSON(selection, context: context, bytes: bytes).rendered)
        } else {
            print(planText(selection, context: context, bytes: bytes))
        }
    }

    private func timing(_ selection: Selection, bytes: Int) -> (algbw: Double, busbw: Double) {
        let t = selection.chosen.estimate!.total.inSeconds
        guard t > 0 else { return (0, 0) }
        let algbw = Double(bytes) / t / 1e9
        return (algbw, algbw * collective.busBandwidthFactor(ranks: selection.spec.ranks))
    }

    private func planText(_ s: Selection, context: PlanningContext, bytes: Int) -> String {
        var lines: [String] = []
        lines.append("\(collective) of \(ByteCount(bytes)) (\(bytes / dtype.size) \(dtype.ncclName) elements) on \(context.topology.name), \(s.spec.ranks) ranks")
        func row(_ label: String, _ value: String) { lines.append("  " + padRight(label, 12) + value) }
        let c = s.chosen
        row("algorithm", "\(c.id): \(c.algorithm.summary)")
        row("plan", "channels \(c.channels), slice \(c.sliceBytes.map { ByteCount($0).description } ?? "whole chunks")\(s.overridden ? " (set by the override)" : "")")
        let (algbw, busbw) = timing(s, bytes: bytes)
        row("modelled", "\(c.estimate!.total.chorusDescription)   algbw \(formatFixed(algbw, fractionDigits: 2)) GB/s, busbw \(formatFixed(busbw, fractionDigits: 2)) GB/s")
        let phases = c.estimate!.phases.filter { $0.time > .zero }
        if !phases.isEmpty {
            let shown = phases.prefix(6).map { "\($0.label) \($0.time.chorusDescription)" }.joined(separator: "; ")
            row("phases", shown + (phases.count > 6 ? "; and \(phases.count - 6) more" : ""))
        }
        if let cal = context.calibration { row("calibration", cal.source ?? "from \(calibration ?? "file")") }
        if explain {
            lines.append("  candidates")
            for line in s.explanation { lines.append("    " + line) }
        }
        return lines.joined(separator: "\n")
    }

    private func planJSON(_ s: Selection, context: PlanningContext, bytes: Int) -> JSONValue {
        let (algbw, busbw) = timing(s, bytes: bytes)
        let best = s.chosen.estimate!.total
        let candidates: [JSONValue] = s.candidates.map { c in
            var fields: [(String, JSONValue)] = [("algorithm", .string(c.id))]
            if let reason = c.unavailable {
                fields += [("status", .string("unavailable")), ("reason", .string(reason))]
            } else if c.excluded {
                fields += [("status", .string("excluded"))]
            } else {
                fields += [("status", .string(c.id == s.chosen.id ? "chosen" : "slower")),
                           ("time_us", .double(c.estimate!.total.inMicroseconds)),
                           ("slower_by_us", .double((c.estimate!.total - best).inMicroseconds)),
                           ("channels", .int(c.channels)), ("slice_bytes", c.sliceBytes.map { .int($0) } ?? .null)]
            }
            return .object(fields)
        }
        return .object([
            ("topology", .string(context.topology.name)), ("collective", .string(collective.rawValue)),
            ("ranks", .int(s.spec.ranks)), ("bytes", .int(bytes)), ("count", .int(bytes / dtype.size)),
            ("dtype", .string(dtype.rawValue)), ("algorithm", .string(s.chosen.id)),
            ("channels", .int(s.chosen.channels)), ("slice_bytes", s.chosen.sliceBytes.map { .int($0) } ?? .null),
            ("time_us", .double(best.inMicroseconds)), ("algbw_gbps", .double(algbw)), ("busbw_gbps", .double(busbw)),
            ("overridden", .bool(s.overridden)),
            ("phases", .array(s.chosen.estimate!.phases.map { .object([("label", .string($0.label)), ("time_us", .double($0.time.inMicroseconds))]) })),
            ("candidates", .array(candidates)),
        ])
    }

    private func emit(_ s: Selection, to path: String) throws {
        let plan = try s.plan()
        let schedule = plan.schedule
        let estimate = schedule.program(for: 0).count * schedule.ranks
        guard estimate <= 50_000_000 else {
            throw ValidationError("the \(s.chosen.id) schedule on \(schedule.ranks) ranks has about \(estimate) ops; --emit-schedule writes schedules of up to 50 million ops")
        }
        guard let file = fopen(path, "w") else {
            printError("error: cannot write '\(path)': \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { fclose(file) }
        schedule.writeJSON { fputs($0, file) }
    }
}

/// The topology, rank count and calibration a planning command works with.
struct PlanningContext {
    var topology: Topology
    var ranks: Int
    var calibration: LinkCalibration?

    /// Loads the topology; `--ranks` sets the file's `ranks` parameter when it declares one,
    /// otherwise picks the first N ranks.
    static func load(topology name: String, ranks: Int?, parameters: [String: Int], calibration path: String?) throws -> PlanningContext {
        var parameters = parameters
        var topology = try loadTopologyOrExit(name, parameters: parameters)
        if let ranks, ranks != topology.rankCount, parameters["ranks"] == nil {
            if let reloaded = try? TopologyLoader().load(name, parameters: parameters.merging(["ranks": ranks]) { $1 }) {
                topology = reloaded
                parameters["ranks"] = ranks
            } else if ranks > topology.rankCount {
                throw ValidationError("--ranks \(ranks) is more than the \(topology.rankCount) ranks of \(topology.name)")
            }
        }
        var calibration: LinkCalibration?
        if let path {
            do {
                calibration = try LinkCalibration.load(file: path)
            } catch let error as TopologyError {
                printError(error.description)
                throw ExitCode(1)
            }
        }
        return PlanningContext(topology: topology, ranks: min(ranks ?? topology.rankCount, topology.rankCount), calibration: calibration)
    }

    /// `--algo` (an id or a grammar string), else `CHORUS_ALGO`.
    static func override(flag: String?) throws -> SelectionOverride? {
        do {
            if let flag { return try SelectionOverride.parse(flag, source: "--algo") }
            if let env = ChorusEnvironment.value("CHORUS_ALGO") { return try SelectionOverride.parse(env, source: "CHORUS_ALGO") }
        } catch let error as SelectError {
            throw ValidationError(error.description)
        }
        return nil
    }

    /// nccl-tests' rounding: a whole number of elements, and for all-gather and reduce-scatter
    /// a whole number of elements per rank.
    static func roundedSize(_ bytes: Int, collective: Collective, ranks: Int, dataType: DataType) -> Int {
        let unit = (collective == .allGather || collective == .reduceScatter) ? ranks * dataType.size : dataType.size
        return bytes / unit * unit
    }
}
