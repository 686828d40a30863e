import ChorusCore

/// Everything that can go wrong with a schedule: a bad JSON file, a structural fault, a failed
/// proof, a deadlock.
public enum ScheduleError: Error, CustomStringConvertible, Sendable {
    /// A schedule file has problems, each at `file:line:column`.
    case invalidFile(Diagnostics)
    /// The schedule is malformed: an op names a rank, chunk or channel that does not exist,
    /// messages do not pair up, or sizes differ. The sentence names the rank and op.
    case malformed(String)
    /// The proof failed: the schedule does not compute its collective. The sentence names the
    /// rank, op or chunk and what is missing or doubled.
    case incorrect(String)
    /// Execution can reach a state where no op can proceed.
    case deadlock(String)
    /// A generator cannot build this schedule (e.g. a torus algorithm on a rank count that is
    /// not a torus), or a proof of it would not fit in this machine's memory.
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidFile(let d): return d.description
        case .malformed(let s): return "malformed schedule: \(s)"
        case .incorrect(let s): return "the schedule is wrong: \(s)"
        case .deadlock(let s): return "the schedule can deadlock: \(s)"
        case .unsupported(let s): return s
        }
    }
}
