import ChorusCore
import ChorusTransport

/// Why a collective failed on this rank.
public enum ExecutionError: Error, CustomStringConvertible, Sendable {
    /// A peer is running a different call; both sides are named.
    case mismatch(peer: Int, rank: Int, theirs: String, ours: String)
    /// Nothing arrived from `peer` in time.
    case timeout(rank: Int, peer: Int?, after: Duration, waitingFor: String)
    /// The communicator was aborted (here, or by a peer; the reason says which).
    case aborted(String)
    /// The transport failed.
    case transport(TransportError)

    /// Starts every mismatch report, so a relayed abort can be recognized as one.
    public static let mismatchPhrase = "calls disagree across ranks"

    public var description: String {
        switch self {
        case .mismatch(let peer, let rank, let theirs, let ours):
            return "\(Self.mismatchPhrase): rank \(rank) called \(ours) but rank \(peer) called \(theirs)"
        case .timeout(let rank, let peer, let after, let what):
            let who = peer.map { "rank \($0)" } ?? "a peer"
            return "rank \(rank) timed out after \(after.chorusDescription) waiting for \(who) (\(what)); \(who) may have stopped, or be stuck waiting for another rank"
        case .aborted(let reason):
            return "the communicator was aborted: \(reason)"
        case .transport(let e):
            return e.description
        }
    }
}
