import ArgumentParser
import ChorusCore

/// What `chorus bench` and `chorus sim` sweep, parsed one way for both.
enum Sweep {
    /// nccl-tests' sizes: `min` times `factor` until `max` (0 steps to 1).
    static func sizes(from min: Int, to max: Int, factor: Int) -> [Int] {
        var out: [Int] = []
        var s = min
        while s <= max {
            out.append(s)
            if s == 0 { s = 1 } else {
                let (next, overflow) = s.multipliedReportingOverflow(by: factor)
                if overflow { break }
                s = next
            }
        }
        return out
    }

    /// `--collective`: comma-separated names, or `all`.
    static func collectives(_ text: String) throws -> [Collective] {
        if text == "all" { return Collective.allCases }
        return try text.split(separator: ",").map { name in
            guard let c = Collective(name: String(name)) else {
                throw ValidationError("--collective \(name): expected all-reduce, all-gather, reduce-scatter, broadcast, reduce or all")
            }
            return c
        }
    }
}
