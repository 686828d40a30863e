import ChorusCore

/// Memory a transport can move messages in and out of.
///
/// Registration pins and registers memory with an RDMA device; other transports only record
/// the range. Regions stay valid until `deregister`; executors keep them across calls (the
/// communicator caches registrations of user buffers, as NCCL does).
///
/// `@unchecked Sendable`: a region only names memory; whoever registered it keeps the memory
/// alive and unaliased while requests use it, and requests move between the executor and the
/// transport's driver, never to unrelated threads.
public struct TransportRegion: Hashable, @unchecked Sendable {
    public var base: UnsafeMutableRawPointer
    public var length: Int
    /// The transport's handle (a memory-region key for RDMA; 0 elsewhere).
    public var key: UInt64

    public init(base: UnsafeMutableRawPointer, length: Int, key: UInt64 = 0) {
        self.base = base
        self.length = length
        self.key = key
    }
}

/// One send or receive.
///
/// Messages between two ranks on one `stream` match first-in, first-out. A send's `tag` (the
/// executor puts the call's signature there) is delivered with the message, so the receiver can
/// tell that its peer is running a different call. (Unchecked `Sendable`: it points into the
/// caller's memory, which the transport alone touches until the request completes.)
public struct TransportRequest: @unchecked Sendable {
    /// The other rank (a world rank of the transport).
    public var peer: Int
    /// The message queue: communicator, operation within a group, channel, channel copy.
    public var stream: UInt64
    public var region: TransportRegion
    public var offset: Int
    public var length: Int
    /// Sent with the message (sends), or the tag expected (receives; compared by the caller).
    public var tag: UInt64
    /// The caller's handle for the completion.
    public var id: UInt64
    /// For a receive to a peer whose transport `reducesOnReceive(from:)`: combine instead of
    /// overwrite, `destination = operand ⊕ message`.
    public var reduction: ReceiveReduction?
    /// For a send to a peer whose transport `copiesOnSend(to:)`: also write the message's bytes
    /// here (as long as the message, apart from it) before the send completes. The transport
    /// copies from where it has just put the bytes, while they are in cache, so a local copy
    /// of what is sent (an all-gather's own block) does not read the source a second time.
    public var alsoCopyInto: UnsafeMutableRawPointer?

    public init(peer: Int, stream: UInt64, region: TransportRegion, offset: Int, length: Int, tag: UInt64, id: UInt64) {
        self.peer = peer
        self.stream = stream
        self.region = region
        self.offset = offset
        self.length = length
        self.tag = tag
        self.id = id
    }

    @inlinable public var pointer: UnsafeMutableRawPointer { region.base + offset }
}

/// How a receive combines what arrives with what is in memory: `destination = operand ⊕
/// message`, element by element, with the reduction kernels' codes for the op and the data type
/// (`CChorusKernels_reduce`). `operand` is as long as the message and is either the destination
/// itself or does not overlap it. A transport that reduces can do it while the bytes are still
/// in cache (out of its ring or staging memory), which saves a pass over memory and a copy.
public struct ReceiveReduction: @unchecked Sendable {
    public var operand: UnsafeRawPointer
    public var kernelOp: Int32
    public var kernelType: Int32
    /// Bytes per element: pieces of a message handed to the kernel are whole elements.
    public var elementSize: Int

    public init(operand: UnsafeRawPointer, kernelOp: Int32, kernelType: Int32, elementSize: Int) {
        self.operand = operand
        self.kernelOp = kernelOp
        self.kernelType = kernelType
        self.elementSize = elementSize
    }
}

/// A finished request.
public struct TransportCompletion: Sendable {
    public var id: UInt64
    /// For a receive, the sender's tag.
    public var tag: UInt64
    /// For a receive, the bytes the sender sent. When it differs from the receive's length
    /// nothing was written (the caller reports the disagreement, after checking the tag).
    public var length: Int

    public init(id: UInt64, tag: UInt64, length: Int) {
        self.id = id
        self.tag = tag
        self.length = length
    }
}

/// Moves bytes between the ranks of a job.
///
/// The protocol is request-based, as NCCL's network plugins and libfabric are: post sends and
/// receives, then `progress` to collect completions. A send completes when its bytes have left
/// its buffer (the buffer may be reused); a receive completes when its bytes are in place. A
/// transport may buffer sends (completing them early) but never reorders messages of one
/// (peer, stream).
///
/// Threads: one thread drives a transport at a time (the communicator's lock sees to it), but
/// `abort` may be called from any thread and must wake that driver.
public protocol Transport: AnyObject, Sendable {
    /// `inproc`, `shm`, `tcp`, `verbs`, `ofi`.
    var kind: String { get }
    var rank: Int { get }
    var size: Int { get }

    /// Makes `length` bytes at `base` usable in requests.
    func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion
    /// Releases a registration.
    func deregister(_ region: TransportRegion)

    func postSend(_ request: TransportRequest) throws
    func postReceive(_ request: TransportRequest) throws

    /// Advances transfers and appends finished requests to `completions`. Never blocks.
    /// - Throws: `TransportError` when a peer fails or the transport was aborted.
    func progress(_ completions: inout [TransportCompletion]) throws

    /// Blocks until `progress` may have something to report, or `deadline` passes, spinning
    /// first when the host has a core to spare.
    func waitForActivity(until deadline: ContinuousClock.Instant) throws

    /// Fails every pending request with `error` here, tells every peer (so their pending
    /// requests fail too, naming this rank), and wakes any waiter. Idempotent.
    func abort(_ error: TransportError)

    /// Releases everything; pending requests fail.
    func close()
    /// The transport that carries messages to `peer`: `kind`, unless the transport routes
    /// peers to several (`PeerRoutedTransport`).
    func kind(of peer: Int) -> String
    /// What carries messages to `peer`, precisely enough to model its links: `kind(of:)`,
    /// or for OFI `ofi:PROVIDER` (`ofi:efa`, `ofi:tcp;ofi_rxm`).
    func network(of peer: Int) -> String
    /// Whether receives from `peer` may carry a `reduction` (the transport combines as it
    /// delivers). Requests to other peers never carry one.
    func reducesOnReceive(from peer: Int) -> Bool
    /// Whether sends to `peer` may carry `alsoCopyInto`. Requests to other peers never carry it.
    func copiesOnSend(to peer: Int) -> Bool
}

extension Transport {
    public func kind(of peer: Int) -> String { kind }
    public func network(of peer: Int) -> String { kind(of: peer) }
    public func reducesOnReceive(from peer: Int) -> Bool { false }
    public func copiesOnSend(to peer: Int) -> Bool { false }
}
