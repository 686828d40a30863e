import ChorusSchedule

extension SimulationResult {
    /// Writes the recorded slices as a Chrome trace (JSON object format) that ui.perfetto.dev
    /// and chrome://tracing open: one process per rank, one slice per op instance, named after
    /// the op. Slices of one rank that overlap in time go on separate threads ("lanes") of that
    /// process, so every track nests properly.
    ///
    /// - Parameter schedule: the simulated plan's schedule (for op names).
    public func writeChromeTrace(schedule: Schedule, _ write: (String) -> Void) {
        write("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"chorus sim\",\"algorithm\":\"\(escape(schedule.algorithm))\"},\"traceEvents\":[\n")
        var first = true
        func emit(_ text: String) {
            write(first ? text : ",\n" + text)
            first = false
        }
        let traced = (slices.map { Int($0.rank) }.max() ?? -1) + 1
        var byRank = [[TraceSlice]](repeating: [], count: max(traced, min(ranks, 1)))
        for s in slices { byRank[Int(s.rank)].append(s) }
        for (rank, list) in byRank.enumerated() {
            emit("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(rank),\"args\":{\"name\":\"rank \(rank)\"}}")
            emit("{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(rank),\"args\":{\"sort_index\":\(rank)}}")
            guard !list.isEmpty else { continue }
            let ops = schedule.program(for: rank).ops
            let sorted = list.sorted { $0.start != $1.start ? $0.start < $1.start : ($0.op, $0.piece) < ($1.op, $1.piece) }
            var laneEnds: [Int64] = []
            for s in sorted {
                let lane: Int
                if let free = laneEnds.firstIndex(where: { $0 <= s.start }) {
                    lane = free
                    laneEnds[free] = s.end
                } else {
                    lane = laneEnds.count
                    laneEnds.append(s.end)
                }
                let op = ops[Int(s.op)]
                emit("{\"name\":\"\(escape(label(op)))\",\"cat\":\"\(op.kind)\",\"ph\":\"X\",\"pid\":\(rank),\"tid\":\(lane),"
                     + "\"ts\":\(microseconds(s.start)),\"dur\":\(microseconds(s.end - s.start)),"
                     + "\"args\":{\"op\":\(s.op),\"piece\":\(s.piece),\"detail\":\"\(escape(op.summary))\"}}")
            }
        }
        write("\n]}\n")
    }

    private func label(_ op: Op) -> String {
        switch op.kind {
        case .send: return "send to \(op.peer)"
        case .recv: return op.reducing ? "recv+reduce from \(op.peer)" : "recv from \(op.peer)"
        case .copy: return "copy"
        case .reduce: return "reduce"
        }
    }

    /// Picoseconds as microseconds with every digit kept (`12.000345`).
    private func microseconds(_ ps: Int64) -> String {
        let whole = ps / 1_000_000, frac = ps % 1_000_000
        let digits = String(frac)
        return "\(whole).\(String(repeating: "0", count: 6 - digits.count))\(digits)"
    }

    private func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if c.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}
