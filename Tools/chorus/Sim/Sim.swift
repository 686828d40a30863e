import ArgumentParser
import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusSelect
import ChorusSim
import ChorusTopology
#if canImport(Glibc)
import Glibc
#endif

/// `chorus sim`: project what collectives cost on a described topology, with the flow-level
/// network model, in the shape of a `chorus bench` run.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Project collectives on a topology with the network model; the output reads like chorus bench.",
        discussion: """
            Each size is planned by the selector (or --algo, or your --schedule), then the plan's \
            every op runs in a discrete-event simulation: flows share links max-min fairly, sprayed \
            fabrics spread a flow over equal-cost paths, NIC line rates cap injection, and each \
            message pays its route's per-message overhead and latency (Sources/ChorusSim/README.md). \
            Rows carry transport "sim"; the in-place columns equal the out-of-place ones, because \
            both run the same dependency graph.
            Examples:
              chorus sim --topology aws-trn2-cluster-4096 -b 1G -e 1G
              chorus sim --topology aws-trn2.48xlarge --collective all -b 1M -e 1G -f 4 --compare-model
              chorus sim --topology localhost --schedule my-ring.json -b 1M -e 64M --trace ring.json
              chorus sim --calibrate bench.json --output shm.calibration.yaml
            """)

    @Option(help: "A topology file or shipped name.")
    var topology: String = "aws-trn2.48xlarge"
    @Option(help: "Collectives: all-reduce, all-gather, reduce-scatter, broadcast, reduce (comma-separated), or all.")
    var collective: String?
    @Option(name: .customShort("b"), parsing: .unconditional, help: "Smallest size (bytes; K/M/G binary).")
    var minBytes: SizeArgument = SizeArgument(argument: "1M")!
    @Option(name: .customShort("e"), parsing: .unconditional, help: "Largest size.")
    var maxBytes: SizeArgument = SizeArgument(argument: "1G")!
    @Option(name: .customShort("f"), parsing: .unconditional, help: "Multiply the size by this between steps.")
    var stepFactor: Int = 4
    @Option(name: .customShort("d"), help: "Data type (float, double, half, bfloat16, int8, uint8, int32, uint32, int64, uint64).")
    var dataType: String = "float"
    @Option(name: .customShort("o"), help: "Reduction (sum, prod, min, max, avg); recorded in the rows.")
    var op: String = "sum"
    @Option(name: .customShort("r"), parsing: .unconditional, help: "Root of broadcast and reduce.")
    var root: Int = 0
    @Option(parsing: .unconditional, help: "Use the first N ranks (or set the topology's 'ranks' parameter).")
    var ranks: Int?
    @Option(help: "An algorithm id, or a CHORUS_ALGO override string.")
    var algo: String?
    @Option(help: "Simulate this schedule JSON file instead of the selector's choice.")
    var schedule: String?
    @Option(parsing: .unconditional, help: "Channel copies of a --schedule plan.")
    var channels: Int = 1
    @Option(parsing: .unconditional, help: "Slice size of a --schedule plan (whole chunks if omitted).")
    var slice: SizeArgument?
    @Option(help: "A calibration file (from --calibrate).")
    var calibration: String?
    @Flag(help: "JSON Lines on standard output, with chorus bench's keys.")
    var json = false
    @Flag(help: "CSV on standard output.")
    var csv = false
    @Option(help: "Write a Chrome/Perfetto trace of the largest size to this file.")
    var trace: String?
    @Option(name: .customLong("trace-ranks"), parsing: .unconditional, help: "Trace only the first N ranks (default 64; 0 for all).")
    var traceRanks: Int = 64
    @Option(parsing: .unconditional, help: "Print the N busiest links (utilisation over the run) of the largest size.")
    var links: Int?
    @Flag(name: .customLong("compare-model"), help: "Show the analytic cost model's time beside each row, and the gap.")
    var compareModel = false
    @Option(help: "Fit alpha and beta per link kind from 'chorus bench --json' output, and write a calibration file.")
    var calibrate: String?
    @Option(help: "Where --calibrate writes (standard output if omitted).")
    var output: String?
    @Flag(help: "Say on standard error what each size simulated and how long the simulation took.")
    var verbose = false
    @Flag(name: .customLong("no-symmetry"), help: "Simulate every rank even when the algorithm declares a rank symmetry (one representative per orbit otherwise).")
    var noSymmetry = false
    @OptionGroup var parameters: TopologyParameterOptions

    func validate() throws {
        if calibrate != nil { return }
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        if root < 0 { throw ValidationError("-r must be a rank (0 or more), got \(root)") }
        if stepFactor < 2 { throw ValidationError("-f must be at least 2, got \(stepFactor)") }
        if minBytes.bytes > maxBytes.bytes { throw ValidationError("-b \(minBytes.bytes) is larger than -e \(maxBytes.bytes)") }
        if let links, links < 0 { throw ValidationError("--links must be 0 or more, got \(links)") }
        if traceRanks < 0 { throw ValidationError("--trace-ranks must be 0 (all) or more, got \(traceRanks)") }
        if json && csv { throw ValidationError("choose one of --json and --csv") }
        if schedule != nil && algo != nil { throw ValidationError("give either --schedule or --algo, not both") }
        if channels < 1 { throw ValidationError("--channels must be at least 1, got \(channels)") }
        if schedule == nil && (channels != 1 || slice != nil) { throw ValidationError("--channels and --slice shape a --schedule plan; the selector chooses them otherwise (or --algo 'ID:channels=N,slice=S')") }
        if let slice, slice.bytes < 1 { throw ValidationError("--slice must be at least 1 byte") }
        if DataType(name: dataType) == nil { throw ValidationError("-d \(dataType): not a data type (float, double, half, bfloat16, int8, uint8, int32, uint32, int64, uint64)") }
        if ReduceOp(name: op) == nil { throw ValidationError("-o \(op): expected sum, prod, min, max or avg") }
    }

    /// The sizes of the sweep: `-b` times `-f` until `-e`.
    var sizes: [Int] { Sweep.sizes(from: minBytes.bytes, to: maxBytes.bytes, factor: stepFactor) }

    func run() throws {
        if let calibrate {
            try Calibration.fit(benchFile: calibrate, output: output)
            return
        }
        let type = DataType(name: dataType)!
        let reduceOp = ReduceOp(name: op)!
        let userSchedule = try loadSchedule()
        let context = try PlanningContext.load(topology: topology, ranks: ranks ?? userSchedule?.ranks, parameters: try parameters.parsed(),
                                               calibration: calibration)
        let n = userSchedule?.ranks ?? context.ranks
        if let userSchedule, userSchedule.ranks > context.topology.rankCount {
            throw ValidationError("\(schedule!) has \(userSchedule.ranks) ranks but \(context.topology.name) has \(context.topology.rankCount)")
        }
        let collectives = try collectiveList(userSchedule)
        if collectives.contains(where: \.hasRoot) && root >= n { throw ValidationError("-r \(root) is not one of the \(n) ranks") }
        let override = try PlanningContext.override(flag: algo)
        let selector = Selector(topology: context.topology, ranks: n, calibration: context.calibration)
        let simulator = Simulator(topology: context.topology)
        let table = !json && !csv
        if table {
            print("# chorus sim: \(context.topology.name), \(n) rank(s), flow-level model (max-min sharing)\(calibration.map { ", calibration \($0)" } ?? "")")
        } else if csv {
            print(ResultTable.csvHeader)
        }
        var busbwSum = 0.0, busbwCount = 0
        let sizes = self.sizes
        let total = collectives.count * sizes.count
        var step = 0
        for c in collectives {
            if table { print(ResultTable.header(c, extraColumns: compareModel ? "       model(us)     gap" : "")) }
            for size in sizes {
                step += 1
                let bytes = PlanningContext.roundedSize(size, collective: c, ranks: n, dataType: type)
                let last = step == total
                let plan: Plan
                var modelled: Duration?
                if let userSchedule {
                    plan = Plan(schedule: userSchedule, channels: channels, sliceBytes: slice?.bytes)
                } else {
                    let selection: Selection
                    do {
                        selection = try selector.select(c, bytes: bytes, root: root, override: override)
                    } catch let error as SelectError {
                        printError("error: \(error)")
                        throw ExitCode(1)
                    }
                    plan = try selection.plan()
                    modelled = selection.chosen.estimate?.total
                }
                var input = SimulationInput(bytes: bytes, collective: c, ranks: n, dataType: type, calibration: context.calibration,
                                            recordTrace: last && trace != nil)
                input.traceRanks = traceRanks == 0 ? nil : traceRanks
                input.useSymmetry = !noSymmetry
                let result: SimulationResult
                do {
                    result = try simulator.run(plan, input) { fraction in
                        progress("# [\(step)/\(total)] \(c) \(ByteCount(bytes)): \(Int(fraction * 100))%")
                    }
                } catch let error as SimulationError {
                    clearProgress()
                    printError("error: \(plan.schedule.algorithm) \(c) of \(ByteCount(bytes)) on \(context.topology.name): \(error)")
                    throw ExitCode(1)
                }
                clearProgress()
                if verbose {
                    printError("# \(c) \(ByteCount(bytes)): \(plan.schedule.algorithm), \(result.opInstances) op instances, \(result.messages) messages, \(result.events) events (\(result.staleEvents) stale), \(result.reallocations) rate recomputations; simulated in \(result.wallClock.setUp.chorusDescription) set-up + \(result.wallClock.events.chorusDescription) events")
                    if let aggregation = result.aggregation { printError("#   symmetric: \(aggregation.description)") }
                    if let reason = result.fullSimulationReason { printError("#   every rank simulated: \(reason)") }
                }
                let rows = self.rows(c, plan: plan, bytes: bytes, type: type, op: reduceOp, ranks: n, time: result.time)
                if !rows[0].busbw.isNaN { busbwSum += rows[0].busbw; busbwCount += 1 }
                emit(rows, ranks: n, modelled: modelled, simulated: result.time)
                if last { try finish(result, plan: plan, bytes: bytes, collective: c) }
            }
        }
        if table {
            print("# Avg bus bandwidth    : \(format(busbwCount > 0 ? busbwSum / Double(busbwCount) : 0, 3))")
            print("#")
        }
    }

    private func loadSchedule() throws -> Schedule? {
        guard let path = schedule else { return nil }
        do {
            let s = try Schedule.load(file: path)
            try s.validate(programs: s.allPrograms())
            return s
        } catch let error as ScheduleError {
            printError("\(path): \(error)")
            throw ExitCode(1)
        }
    }

    private func collectiveList(_ userSchedule: Schedule?) throws -> [Collective] {
        if let userSchedule {
            if let collective, collective != userSchedule.collective.rawValue {
                throw ValidationError("--collective \(collective), but \(schedule!) is a \(userSchedule.collective) schedule")
            }
            return [userSchedule.collective]
        }
        return try Sweep.collectives(collective ?? "all-reduce")
    }

    private func rows(_ c: Collective, plan: Plan, bytes: Int, type: DataType, op: ReduceOp, ranks n: Int, time: Duration) -> [BenchRow] {
        let perRank = (c == .allGather || c == .reduceScatter) ? n : 1
        let t = time.inSeconds
        let algbw = t > 0 ? Double(bytes) / t / 1e9 : 0
        return [false, true].map { inPlace in
            BenchRow(collective: c, algorithm: plan.schedule.algorithm, bytes: bytes, count: bytes / type.size / perRank,
                     dataType: type, op: op, root: root, inPlace: inPlace, timeMicroseconds: time.inMicroseconds,
                     algbw: algbw, busbw: algbw * c.busBandwidthFactor(ranks: n), wrong: nil)
        }
    }

    private func emit(_ pair: [BenchRow], ranks n: Int, modelled: Duration?, simulated: Duration) {
        let gap = modelled.map { $0 > .zero ? (simulated.inSeconds - $0.inSeconds) / $0.inSeconds * 100 : 0 }
        if json {
            let extra: [(String, String)] = compareModel
                ? [("model_time_us", modelled.map { format($0.inMicroseconds, 3) } ?? "null"), ("model_gap_pct", gap.map { format($0, 2) } ?? "null")]
                : []
            for row in pair { print(ResultTable.json(row, transport: "sim", ranks: n, extra: extra)) }
        } else if csv {
            for row in pair { print(ResultTable.csv(row, transport: "sim", ranks: n)) }
        } else {
            var extra = ""
            if compareModel {
                extra = pad(modelled.map { format($0.inMicroseconds, 2) } ?? "N/A", 16)
                extra += pad(gap.map { ($0 >= 0 ? "+" : "") + format($0, 1) + "%" } ?? "N/A", 8)
            }
            print(ResultTable.line(outOfPlace: pair[0], inPlace: pair[1], extra: extra))
        }
    }

    /// The largest size's extras: busiest links and the trace.
    private func finish(_ result: SimulationResult, plan: Plan, bytes: Int, collective c: Collective) throws {
        if let links, links > 0 {
            let busiest = result.busiest(links)
            var lines = ["# busiest links, \(c) of \(ByteCount(bytes)) (\(result.messages) messages, \(result.events) events):"]
            let width = max(36, (busiest.map(\.name.count).max() ?? 0) + 2)
            lines.append("#   " + padRight("link", width) + padLeft("kind", 10) + padLeft("capacity", 14) + padLeft("carried", 14) + padLeft("utilisation", 13))
            for u in busiest {
                lines.append("#   " + padRight(u.name, width) + padLeft(u.kind, 10) + padLeft(u.capacity.description, 14)
                             + padLeft(ByteCount(Int(u.bytes)).description, 14) + padLeft(format(u.utilisation(over: result.time.inSeconds) * 100, 1) + "%", 13))
            }
            if busiest.isEmpty { lines.append("#   (no link carried bytes)") }
            for line in lines {
                if json || csv { printError(line) } else { print(line) }
            }
        }
        if let trace {
            guard let file = fopen(trace, "w") else {
                printError("error: --trace \(trace): cannot write the file (\(String(cString: strerror(errno))))")
                throw ExitCode(1)
            }
            result.writeChromeTrace(schedule: plan.schedule) { fputs($0, file) }
            fclose(file)
            let shown = traceRanks == 0 ? result.ranks : min(traceRanks, result.ranks)
            let scope = shown < result.ranks ? "ranks 0-\(shown - 1) of \(result.ranks) (--trace-ranks 0 for all)" : "all \(result.ranks) ranks"
            printError("# trace of \(c) at \(ByteCount(bytes)), \(scope), \(result.slices.count) slices, written to \(trace); open it in ui.perfetto.dev")
        }
    }

    private func progress(_ text: String) {
        guard isatty(2) != 0 else { return }
        printErrorNoNewline("\r" + text + "   ")
    }

    private func clearProgress() {
        guard isatty(2) != 0 else { return }
        printErrorNoNewline("\r\u{1B}[K")
    }
}
