import ChorusCore
import ChorusExec
import ChorusTransport

/// Everything a communicator can report. Every case reads as a sentence naming what is wrong
/// (which rank, which peer, which argument or variable) and what was expected.
public enum ChorusError: Error, CustomStringConvertible, Sendable {
    /// A call's arguments are wrong (null buffers, negative counts, a root or peer out of range,
    /// buffers that overlap other than in place); nothing was sent.
    case invalidArgument(String)
    /// Ranks called different collectives, or the same one with different counts, types, ops or roots.
    case mismatch(String)
    /// A peer did not respond in time; the message names it.
    case timeout(String)
    /// The communicator was aborted (by the application here, or by a peer, which is named).
    case aborted(String)
    /// Moving bytes failed.
    case transport(String)
    /// Joining the job failed: the store is unreachable, refused the job token, or ranks never arrived.
    case rendezvous(String)
    /// An environment variable holds something Chorus cannot use.
    case configuration(String)
    /// Something this build or this machine cannot do (a transport that is not available, and why).
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidArgument(let s), .mismatch(let s), .timeout(let s), .aborted(let s), .transport(let s),
             .rendezvous(let s), .configuration(let s), .unsupported(let s):
            return s
        }
    }

    init(_ error: ExecutionError) {
        switch error {
        case .mismatch: self = .mismatch(error.description)
        case .timeout: self = .timeout(error.description)
        case .aborted: self = .aborted(error.description)
        case .transport: self = .transport(error.description)
        }
    }
}
