/// How contributions combine in all-reduce, reduce-scatter and reduce.
///
/// `avg` is a sum followed by a division by the number of ranks (on integers, a truncating
/// division), as NCCL's `ncclAvg` defines it.
public enum ReduceOp: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case sum, prod, min, max, avg

    public var description: String { rawValue }

    /// Accepts `sum`, `prod`/`product`, `min`, `max`, `avg`/`mean`.
    public init?(name: String) {
        switch name.lowercased() {
        case "sum": self = .sum
        case "prod", "product": self = .prod
        case "min": self = .min
        case "max": self = .max
        case "avg", "mean", "average": self = .avg
        default: return nil
        }
    }
}
