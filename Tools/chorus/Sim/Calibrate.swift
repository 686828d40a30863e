import ArgumentParser
import ChorusAlgorithms
import ChorusCore
import ChorusTopology
import Foundation

/// `chorus sim --calibrate BENCH.json`: fits the per-message latency (alpha) and the bandwidth
/// (1/beta) of the link kind a measured run used, from `chorus bench --json` rows.
///
/// For one (transport, collective, algorithm, ranks) group of out-of-place rows, time is
/// modelled as `t = a + bytes·busFactor / B`: `busFactor` is nccl-tests' bus-bandwidth factor,
/// so `B` is the bandwidth a link carries for a bandwidth-optimal algorithm, and `a` is the
/// latency of the algorithm's sequential messages, `steps × alpha` (steps from the algorithm's
/// cost shape). The fit minimises relative error (each row weighs 1/t²), so small sizes decide
/// alpha and large sizes decide B. Groups of one kind are averaged, weighted by rows.
enum Calibration {
    /// The link kind a bench transport exercises.
    static func linkKind(transport: String) -> LinkKind? {
        switch transport {
        case "shm", "inproc": return .shm
        case "tcp": return .ethernet
        case "ofi": return .efa
        case "verbs": return .infiniband
        default: return nil
        }
    }

    struct Row {
        var transport: String
        var collective: Collective
        var algorithm: String
        var ranks: Int
        var bytes: Int
        var timeMicroseconds: Double
    }

    static func fit(benchFile path: String, output: String?) throws {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            printError("error: --calibrate \(path): cannot read: \(FileManager.default.fileExists(atPath: path) ? "not readable UTF-8 text" : "no such file")")
            throw ExitCode(1)
        }
        var rows: [Row] = []
        var problems: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            let at = "\(path):\(index + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                problems.append("\(at): not a JSON object (expected 'chorus bench --json' lines)")
                continue
            }
            func field<T>(_ key: String, _ type: T.Type) -> T? { object[key] as? T }
            guard let transport = field("transport", String.self), let cName = field("collective", String.self),
                  let collective = Collective(name: cName), let ranks = field("ranks", Int.self),
                  let bytes = field("bytes", Int.self), let time = (object["time_us"] as? NSNumber)?.doubleValue,
                  let placement = field("placement", String.self) else {
                problems.append("\(at): missing or mistyped keys (need transport, collective, ranks, bytes, time_us, placement)")
                continue
            }
            if transport == "sim" {
                problems.append("\(at): a simulated row (transport sim); calibrate from measured 'chorus bench --json' rows")
                continue
            }
            guard linkKind(transport: transport) != nil else {
                problems.append("\(at): transport '\(transport)' maps to no link kind (shm, inproc, tcp, ofi, verbs)")
                continue
            }
            guard placement == "out-of-place", bytes > 0, time > 0, time.isFinite, ranks >= 2 else { continue }
            rows.append(Row(transport: transport, collective: collective, algorithm: field("algorithm", String.self) ?? "ring",
                            ranks: ranks, bytes: bytes, timeMicroseconds: time))
        }
        if !problems.isEmpty {
            for p in problems.prefix(20) { printError("error: \(p)") }
            if problems.count > 20 { printError("error: and \(problems.count - 20) more") }
            throw ExitCode(1)
        }
        let groups = Dictionary(grouping: rows) { "\($0.transport)|\($0.collective)|\($0.algorithm)|\($0.ranks)" }
        var perKind: [LinkKind: [(alpha: Double, bandwidth: Double, weight: Double)]] = [:]
        var notes: [String] = []
        for key in groups.keys.sorted() {
            let group = groups[key]!
            let first = group[0]
            let sizes = Set(group.map(\.bytes))
            guard sizes.count >= 2 else {
                notes.append("skipped \(first.collective) \(first.algorithm) on \(first.ranks) ranks over \(first.transport): one size only (a fit needs two or more)")
                continue
            }
            let factor = first.collective.busBandwidthFactor(ranks: first.ranks)
            let xs = group.map { Double($0.bytes) * factor }, ts = group.map { $0.timeMicroseconds * 1e-6 }
            guard let (a, slope) = weightedFit(xs, ts), slope > 0 else {
                notes.append("skipped \(first.collective) \(first.algorithm) on \(first.ranks) ranks over \(first.transport): time does not grow with size")
                continue
            }
            let steps = sequentialMessages(first.collective, algorithm: first.algorithm, ranks: first.ranks)
            let alpha = max(a, 0) / Double(steps)
            perKind[linkKind(transport: first.transport)!, default: []].append((alpha, 1 / slope, Double(group.count)))
            notes.append("\(first.transport) \(first.collective) \(first.algorithm), \(first.ranks) ranks, \(group.count) sizes: alpha \(format(alpha * 1e6, 3)) us (\(steps) sequential messages), bandwidth \(format(1 / slope / 1e9, 3)) GB/s")
        }
        guard !perKind.isEmpty else {
            for note in notes { printError("# \(note)") }
            printError("error: --calibrate \(path): no group of out-of-place rows with two or more sizes to fit")
            throw ExitCode(1)
        }
        var entries: [LinkKind: LinkCalibration.Entry] = [:]
        for (kind, fits) in perKind {
            let w = fits.reduce(0) { $0 + $1.weight }
            let alpha = fits.reduce(0) { $0 + $1.alpha * $1.weight } / w
            let bandwidth = fits.reduce(0) { $0 + $1.bandwidth * $1.weight } / w
            entries[kind] = .init(alpha: .seconds(alpha), bandwidth: Bandwidth(bytesPerSecond: bandwidth))
        }
        let file = URL(fileURLWithPath: path).lastPathComponent
        let calibration = LinkCalibration(entries: entries, source: "chorus sim --calibrate \(file): \(rows.count) measured rows")
        for note in notes { printError("# \(note)") }
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: Data(calibration.yamlText.utf8)) else {
                printError("error: --output \(output): cannot write the file")
                throw ExitCode(1)
            }
            printError("# wrote \(output)")
        } else {
            print(calibration.yamlText, terminator: "")
        }
    }

    /// Least squares of `t = a + b·x` with weights `1/t²`.
    static func weightedFit(_ xs: [Double], _ ts: [Double]) -> (Double, Double)? {
        var sw = 0.0, sx = 0.0, st = 0.0, sxx = 0.0, sxt = 0.0
        for (x, t) in zip(xs, ts) {
            let w = 1 / (t * t)
            sw += w; sx += w * x; st += w * t; sxx += w * x * x; sxt += w * x * t
        }
        let det = sw * sxx - sx * sx
        guard det > 0 else { return nil }
        let b = (sw * sxt - sx * st) / det
        let a = (st - b * sx) / sw
        return (a, b)
    }

    /// Messages one after another on the critical path of `algorithm` (from its cost shape);
    /// a ring's when the algorithm is unknown or needs a topology to apply.
    static func sequentialMessages(_ collective: Collective, algorithm id: String, ranks n: Int) -> Int {
        let spec = CollectiveSpec(collective, ranks: n)
        let context = AlgorithmContext(ranks: n)
        if let algorithm = AlgorithmRegistry.algorithm(id: id), algorithm.unavailableReason(spec, context) == nil {
            var steps = 0
            for phase in algorithm.costShape(spec, context: context).phases {
                let active = (0..<n).contains { !phase.peers($0).isEmpty }
                guard active else { continue }
                switch phase.overlap {
                case .steps: steps += phase.steps
                case .pipeline(let depth): steps += depth
                }
            }
            if steps > 0 { return steps }
        }
        return collective == .allReduce ? 2 * (n - 1) : max(n - 1, 1)
    }
}
