import ChorusCore

/// A transport failure: what failed, with which peer, and why.
///
/// After any transport error the communicator is poisoned and must be rebuilt (gloo's rule for
/// `IoException`): messages may be half delivered.
public struct TransportError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case connect, send, receive, register, completion
        /// A peer aborted (its message says why).
        case aborted
        /// The transport was closed or aborted here.
        case closed
        /// A peer sent something this transport cannot understand.
        case protocolViolation
    }

    public var kind: Kind
    /// The peer involved, when there is one.
    public var peer: Int?
    /// The system call that failed, when one did.
    public var syscall: String?
    /// The `errno`, when a system call failed.
    public var code: Int32?
    public var message: String

    public init(_ kind: Kind, peer: Int? = nil, syscall: String? = nil, code: Int32? = nil, _ message: String) {
        self.kind = kind
        self.peer = peer
        self.syscall = syscall
        self.code = code
        self.message = message
    }

    public var description: String {
        var s = message
        if let syscall {
            s += " (\(syscall) failed" + (code.map { ": errno \($0)" } ?? "") + ")"
        }
        return s
    }
}
