import ChorusCore

/// What can go wrong choosing an algorithm.
public enum SelectError: Error, CustomStringConvertible, Sendable {
    /// `CHORUS_ALGO` or `--algo` does not parse; the sentence names the character.
    case badOverride(String)
    /// The override allows only algorithms that cannot run here; the sentence says why each cannot.
    case nothingAllowed(String)
    /// No algorithm can run this collective here (e.g. a root outside the ranks).
    case noCandidate(String)

    public var description: String {
        switch self {
        case .badOverride(let s), .nothingAllowed(let s), .noCandidate(let s): return s
        }
    }
}
