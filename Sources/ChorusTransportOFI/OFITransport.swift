#if RDMA
import CChorusFabric
import ChorusCore
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ranks exchanging messages through libfabric: reliable-datagram endpoints (`FI_EP_RDM`) and
/// tagged messages, on whichever provider `CHORUS_OFI_PROVIDER` names (`efa` on AWS; `tcp`,
/// `shm`, `verbs` or `sockets` elsewhere).
///
/// ## Protocol
/// Every message is one tagged send straight from the caller's buffer into the receive's buffer
/// (no copies by Chorus; a provider may stage). Nothing assumes that the fabric delivers in
/// order (EFA's SRD does not): a message's tag names it exactly, so the provider matches it with
/// its receive whatever order messages arrive in:
///
///     bit 63       0 for data, 1 for control messages
///     bits 43-62   the sending rank (so receives need no FI_DIRECTED_RECV)
///     bits 23-42   the stream's number on this (sender, receiver) pair
///     bits 0-22    the message's sequence number on its stream, modulo 2^23
///
/// A stream (a 64-bit value) is numbered by its sender the first time it sends on it to a peer,
/// and the sender announces the number to that peer in a control message before the first data
/// message; a receive posted before the announcement waits in this transport until it arrives
/// (the data message waits meanwhile in the provider, as every unexpected message does). The
/// call signature the executor checks travels as remote completion data (`fi_tsenddata`; only
/// its low bytes on providers with less than 8 bytes of it, such as EFA's 4).
///
/// Control messages (any source; a pool of receives stays posted): `announce` (stream, number),
/// `abort` (the reason), and `probe` (nothing: sent to the peers awaited after half a second
/// without any completion, so that a dead peer is found by the failed send on providers that
/// report one, such as efa; tcp completes sends to a dead peer). A send completes when the provider reports it complete (its buffer
/// may be reused); a receive when its bytes are in place.
///
/// ## Memory
/// When the provider needs local registration (`FI_MR_LOCAL`, as EFA and verbs do) `register`
/// registers with the domain and requests pass the descriptor; the executor keeps registrations
/// across calls. Otherwise registration only records the range.
///
/// ## Waiting and failure
/// `waitForActivity` polls the completion queue for a few microseconds, then sleeps on its wait
/// descriptor (`FI_WAIT_FD`, after `fi_trywait`) and on a wake-up pipe `abort` writes to; providers
/// without one are polled with sleeps that grow to a millisecond. A completion with an error fails
/// the job with the provider's words and the peer. A peer that dies without a word is found, when
/// a receive waits for it and nothing has arrived for half a second: on this host by its pid
/// (`watchLocalProcesses`); elsewhere by a failed probe where the provider reports one; else by
/// the executor's timeout (`CHORUS_TIMEOUT`), which names the peer waited for.
public final class OFITransport: Transport, @unchecked Sendable {
    public var kind: String { "ofi" }
    public func network(of peer: Int) -> String { "ofi:\(provider)" }
    public let rank: Int
    public let size: Int
    /// The provider in use, as libfabric names it (`tcp;ofi_rxm`, `efa`, `shm`, …).
    public let provider: String
    /// Whether requests pass memory descriptors from `register` (the provider asks for local
    /// registration, or `registerAlways`).
    public var registersMemory: Bool { needsLocalRegistration }
    /// The domain (interface or device) in use.
    public let domainName: String
    /// This endpoint's address, for the peers' address vectors.
    public private(set) var address: [UInt8] = []

    static let controlBit: UInt64 = 1 << 63
    static let rankBits = 20, streamBits = 20, sequenceBits = 23
    /// Ranks this tag layout can name.
    public static let maxRanks = 1 << rankBits
    static let controlBufferBytes = 512
    static let controlReceives = 64

    // libfabric objects.
    private var info: UnsafeMutablePointer<fi_info>
    private var fabric: UnsafeMutablePointer<fid_fabric>?
    private var domain: UnsafeMutablePointer<fid_domain>?
    private var cq: UnsafeMutablePointer<fid_cq>?
    private var av: UnsafeMutablePointer<fid_av>?
    private var endpoint: UnsafeMutablePointer<fid_ep>?
    private var waitFD: Int32 = -1
    private let wakePipe: WakePipe
    private let needsLocalRegistration: Bool
    private let completionDataBytes: Int
    private let spins: Bool

    private var peerAddress: [fi_addr_t] = []

    /// What an operation in flight is; its index is stored after its libfabric context.
    private enum Operation {
        case free
        case send(TransportRequest)
        case receive(TransportRequest, expectedTag: UInt64)
        case controlReceive(buffer: Int)
        case controlSend(UnsafeMutableRawPointer, UnsafeMutablePointer<fid_mr>?, peer: Int, kind: UInt32)
    }
    /// One libfabric context per operation in flight (providers with FI_CONTEXT/FI_CONTEXT2 keep
    /// their state in it), followed by the operation's index.
    private var contexts: [UnsafeMutableRawPointer] = []
    private var operations: [Operation] = []
    private var freeOperations: [Int] = []
    private static let contextBytes = MemoryLayout<fi_context2>.size + 8

    private struct StreamKey: Hashable {
        var peer: Int
        var stream: UInt64
    }
    /// Sending: a stream's number to a peer, and the next sequence number.
    private var sendStreams: [StreamKey: (number: UInt64, next: UInt64)] = [:]
    private var nextStreamNumber: [UInt64]
    /// Receiving: the numbers peers announced, the next sequence number per stream, and the
    /// receives waiting for an announcement.
    private var announced: [StreamKey: UInt64] = [:]
    private var receiveSequence: [StreamKey: UInt64] = [:]
    private var unannounced: [StreamKey: [(TransportRequest, UInt64)]] = [:]
    /// Posts the provider refused for now (`-FI_EAGAIN`), retried on progress.
    private var backlog: [(operation: Int, tag: UInt64, peer: Int)] = []

    private var controlBuffers: UnsafeMutableRawPointer
    private var controlRegion: UnsafeMutablePointer<fid_mr>?
    private var registrations: [UInt64: UnsafeMutablePointer<fid_mr>] = [:]
    /// Registrations made so far: the last one's number is its requested key and, for user
    /// memory, its region key (never 0, which means "not registered").
    private var registrationCount: UInt64 = 0

    private var ready: [TransportCompletion] = []
    /// Receives posted and not yet complete, per peer: the peers probed when nothing arrives.
    private var awaiting: [Int]
    private var localProcesses: [Int32?] = []
    private var lastArrival = ContinuousClock.now
    private var lastProbe = ContinuousClock.now
    /// How long without any completion before the awaited peers are probed (then at most this often).
    static let probeInterval = Duration.milliseconds(500)
    /// Where completion-queue entries are read into (never reallocated: progress runs often).
    private let entries = UnsafeMutablePointer<fi_cq_tagged_entry>.allocate(capacity: 16)
    private var failure: TransportError?
    private let lock = Mutex(())
    private let abortRequested = Atomic<Bool>(false)
    private var localAbort: TransportError?
    private var abortSent = false
    private var closed = false

    /// Loads libfabric (once per process). Throws, saying why, when it cannot.
    public static func loadLibrary() throws {
        var why = [CChar](repeating: 0, count: 512)
        if chorus_fabric_load(&why, why.count) != 0 {
            throw TransportError(.connect, String(cString: why))
        }
    }

    /// The providers libfabric offers here for reliable-datagram tagged messaging, with their
    /// domains (for `chorus hello` and error messages).
    public static func availableProviders() throws -> [(provider: String, domain: String)] {
        try loadLibrary()
        let hints = chorus_fi_rdm_hints(nil)
        defer { chorus_fi_freeinfo(hints) }
        var list: UnsafeMutablePointer<fi_info>?
        guard chorus_fi_getinfo(chorus_fi_requested_version(), nil, nil, 0, hints, &list) == 0 else { return [] }
        defer { chorus_fi_freeinfo(list) }
        var found: [(String, String)] = []
        var p = list
        while let i = p {
            found.append((String(cString: i.pointee.fabric_attr.pointee.prov_name),
                          String(cString: i.pointee.domain_attr.pointee.name)))
            p = i.pointee.next
        }
        return found
    }

    /// Opens an endpoint. Peers are added with `connect` once every rank has published its
    /// `address`.
    /// - Parameters:
    ///   - provider: a libfabric provider name (`tcp`, `efa`, `shm`, …), or `nil` for the
    ///     first of efa, verbs, tcp that libfabric offers here.
    ///   - host: for providers on IP (tcp, sockets, verbs), the local address to use (the one
    ///     the rendezvous store was reached from); ignored by the others.
    ///   - registerAlways: register memory with the domain even when the provider does not ask for
    ///     it (`FI_MR_LOCAL`), so the path EFA and verbs take can be exercised on tcp.
    public init(rank: Int, size: Int, provider: String?, host: String?, registerAlways: Bool = false) throws {
        guard size <= Self.maxRanks else {
            throw TransportError(.connect, "the OFI transport names at most \(Self.maxRanks) ranks in its tags; this job has \(size)")
        }
        try Self.loadLibrary()
        self.rank = rank
        self.size = size
        nextStreamNumber = Array(repeating: 0, count: size)
        awaiting = Array(repeating: 0, count: size)
        spins = size <= onlineCPUs
        wakePipe = try WakePipe()

        let chosen = try Self.chooseInfo(provider: provider, host: host)
        info = chosen
        self.provider = String(cString: chosen.pointee.fabric_attr.pointee.prov_name)
        domainName = String(cString: chosen.pointee.domain_attr.pointee.name)
        needsLocalRegistration = registerAlways || chosen.pointee.domain_attr.pointee.mr_mode & Int32(FI_MR_LOCAL) != 0
            || chosen.pointee.mode & UInt64(FI_LOCAL_MR) != 0
        completionDataBytes = min(8, Int(chosen.pointee.domain_attr.pointee.cq_data_size))
        controlBuffers = UnsafeMutableRawPointer.allocate(byteCount: Self.controlBufferBytes * Self.controlReceives, alignment: 64)
        controlBuffers.initializeMemory(as: UInt8.self, repeating: 0, count: Self.controlBufferBytes * Self.controlReceives)
        do {
            try open()
        } catch {
            close()
            throw error
        }
    }

    /// The first usable fi_info for `provider` (and `host`, on IP providers).
    private static func chooseInfo(provider: String?, host: String?) throws -> UnsafeMutablePointer<fi_info> {
        let candidates = provider.map { [$0] } ?? ["efa", "verbs", "tcp"]
        var reasons: [String] = []
        for name in candidates {
            let hints = chorus_fi_rdm_hints(name)
            defer { chorus_fi_freeinfo(hints) }
            var list: UnsafeMutablePointer<fi_info>?
            let onIP = name == "tcp" || name == "sockets" || name == "verbs"
            var rc = chorus_fi_getinfo(chorus_fi_requested_version(), onIP ? host : nil, nil, onIP && host != nil ? UInt64(FI_SOURCE) : 0, hints, &list)
            if rc != 0 && onIP && host != nil {
                // The rendezvous address may not be one this provider serves (loopback, say).
                rc = chorus_fi_getinfo(chorus_fi_requested_version(), nil, nil, 0, hints, &list)
            }
            guard rc == 0, let first = list else {
                reasons.append("\(name): \(String(cString: chorus_fi_strerror(rc)))")
                continue
            }
            // Keep the first entry; free the rest.
            let rest = first.pointee.next
            first.pointee.next = nil
            chorus_fi_freeinfo(rest)
            return first
        }
        let offered = (try? availableProviders()).map { Set($0.map(\.provider)).sorted().joined(separator: ", ") } ?? ""
        throw TransportError(.connect, "libfabric has no reliable-datagram tagged endpoint for \(provider.map { "provider '\($0)'" } ?? "efa, verbs or tcp") (\(reasons.joined(separator: "; "))); providers offered here: \(offered.isEmpty ? "none" : offered)")
    }

    private func check(_ rc: Int32, _ call: String) throws {
        guard rc == 0 else {
            throw TransportError(.connect, syscall: call, code: -rc, "libfabric \(call) on \(provider) (\(domainName)) failed: \(String(cString: chorus_fi_strerror(rc)))")
        }
    }

    private func open() throws {
        try check(chorus_fi_fabric(info.pointee.fabric_attr, &fabric, nil), "fi_fabric")
        try check(fi_domain(fabric, info, &domain, nil), "fi_domain")
        var cqAttributes = fi_cq_attr()
        cqAttributes.format = FI_CQ_FORMAT_TAGGED
        cqAttributes.size = 0
        cqAttributes.wait_obj = FI_WAIT_FD
        if fi_cq_open(domain, &cqAttributes, &cq, nil) != 0 {
            cqAttributes.wait_obj = FI_WAIT_NONE
            try check(fi_cq_open(domain, &cqAttributes, &cq, nil), "fi_cq_open")
        } else {
            var fd: Int32 = -1
            if fi_control(&cq!.pointee.fid, Int32(FI_GETWAIT), &fd) == 0 { waitFD = fd }
        }
        var avAttributes = fi_av_attr()
        avAttributes.type = info.pointee.domain_attr.pointee.av_type == FI_AV_UNSPEC ? FI_AV_TABLE : info.pointee.domain_attr.pointee.av_type
        avAttributes.count = size
        try check(fi_av_open(domain, &avAttributes, &av, nil), "fi_av_open")
        try check(fi_endpoint(domain, info, &endpoint, nil), "fi_endpoint")
        try check(fi_ep_bind(endpoint, &cq!.pointee.fid, UInt64(FI_TRANSMIT | FI_RECV)), "fi_ep_bind (completion queue)")
        try check(fi_ep_bind(endpoint, &av!.pointee.fid, 0), "fi_ep_bind (address vector)")
        try check(fi_enable(endpoint), "fi_enable")
        var length = 256
        var name = [UInt8](repeating: 0, count: length)
        var rc = fi_getname(&endpoint!.pointee.fid, &name, &length)
        if rc == -Int32(FI_ETOOSMALL) {
            name = [UInt8](repeating: 0, count: length)
            rc = fi_getname(&endpoint!.pointee.fid, &name, &length)
        }
        try check(rc, "fi_getname")
        address = Array(name.prefix(length))
        if needsLocalRegistration {
            try check(registerWithDomain(controlBuffers, Self.controlBufferBytes * Self.controlReceives, access: UInt64(FI_SEND | FI_RECV), &controlRegion), "fi_mr_reg (control buffers)")
        }
    }

    /// Adds every rank's address (index = rank) and posts the control receives.
    public func connect(addresses: [[UInt8]]) throws {
        guard addresses.count == size else {
            throw TransportError(.connect, "\(addresses.count) OFI addresses for \(size) ranks")
        }
        peerAddress = Array(repeating: chorus_fi_addr_unspec(), count: size)
        for (peer, bytes) in addresses.enumerated() {
            var handle: fi_addr_t = 0
            let inserted = bytes.withUnsafeBytes { fi_av_insert(av, $0.baseAddress, 1, &handle, 0, nil) }
            guard inserted == 1 else {
                throw TransportError(.connect, peer: peer, syscall: "fi_av_insert", "rank \(peer)'s OFI address (\(bytes.count) bytes) was refused by \(provider): \(String(cString: chorus_fi_strerror(inserted < 0 ? inserted : -Int32(FI_EINVAL))))")
            }
            peerAddress[peer] = handle
        }
        try lock.withLock { _ in
            for b in 0..<Self.controlReceives { try postControlReceive(buffer: b) }
        }
    }

    /// `fi_mr_reg`, with a key of its own for each registration when the provider wants the
    /// application to choose keys (no `FI_MR_PROV_KEY`: keys must then be unique in the domain).
    private func registerWithDomain(_ base: UnsafeMutableRawPointer, _ length: Int, access: UInt64,
                                    _ mr: inout UnsafeMutablePointer<fid_mr>?) -> Int32 {
        registrationCount += 1
        return fi_mr_reg(domain, base, length, access, 0, registrationCount, 0, &mr, nil)
    }

    // MARK: - Operations in flight

    private func newOperation(_ op: Operation) -> (Int, UnsafeMutableRawPointer) {
        if let i = freeOperations.popLast() {
            operations[i] = op
            return (i, contexts[i])
        }
        let context = UnsafeMutableRawPointer.allocate(byteCount: Self.contextBytes, alignment: 16)
        context.initializeMemory(as: UInt8.self, repeating: 0, count: Self.contextBytes)
        let i = operations.count
        context.storeBytes(of: UInt64(i), toByteOffset: MemoryLayout<fi_context2>.size, as: UInt64.self)
        contexts.append(context)
        operations.append(op)
        return (i, context)
    }

    private func release(_ i: Int) {
        operations[i] = .free
        freeOperations.append(i)
    }

    private func operationIndex(_ context: UnsafeMutableRawPointer?) -> Int? {
        guard let context else { return nil }
        let i = Int(context.load(fromByteOffset: MemoryLayout<fi_context2>.size, as: UInt64.self))
        return i < contexts.count && contexts[i] == context ? i : nil
    }

    static func dataTag(sender: Int, stream number: UInt64, sequence: UInt64) -> UInt64 {
        UInt64(sender) << 43 | (number & (1 << 20 - 1)) << 23 | (sequence & (1 << 23 - 1))
    }

    private func descriptor(_ region: TransportRegion) -> UnsafeMutableRawPointer? {
        guard needsLocalRegistration, let mr = registrations[region.key] else { return nil }
        return fi_mr_desc(mr)
    }

    /// Posts operation `i` (a send, receive or control message); on `-FI_EAGAIN` it waits in the
    /// backlog.
    private func post(_ i: Int, tag: UInt64, peer: Int) throws {
        let rc = postNow(i, tag: tag, peer: peer)
        if rc == -Int(FI_EAGAIN) {
            backlog.append((i, tag, peer))
        } else if rc != 0 {
            let what: String
            switch operations[i] {
            case .receive, .controlReceive: what = "fi_trecv"
            default: what = "fi_tsend"
            }
            release(i)
            throw TransportError(.send, peer: peer, syscall: what, code: Int32(-rc), "\(what) to rank \(peer) over \(provider) failed: \(String(cString: chorus_fi_strerror(Int32(rc))))")
        }
    }

    private func postNow(_ i: Int, tag: UInt64, peer: Int) -> Int {
        let context = contexts[i]
        switch operations[i] {
        case .send(let r):
            let data = completionDataBytes > 0 ? r.tag : 0
            if completionDataBytes > 0 {
                return fi_tsenddata(endpoint, r.pointer, r.length, descriptor(r.region), data, peerAddress[peer], tag, context)
            }
            return fi_tsend(endpoint, r.pointer, r.length, descriptor(r.region), peerAddress[peer], tag, context)
        case .receive(let r, _):
            // Any source: the tag names the sender (without FI_DIRECTED_RECV a provider may ignore
            // the source anyway).
            return fi_trecv(endpoint, r.pointer, r.length, descriptor(r.region), chorus_fi_addr_unspec(), tag, 0, context)
        case .controlReceive(let b):
            return fi_trecv(endpoint, controlBuffers + b * Self.controlBufferBytes, Self.controlBufferBytes,
                            controlRegion.map { fi_mr_desc($0) }, chorus_fi_addr_unspec(), Self.controlBit, Self.controlBit - 1, context)
        case .controlSend(let buffer, let mr, _, _):
            let length = Int(buffer.load(fromByteOffset: 4, as: UInt32.self)) + 8
            return fi_tsend(endpoint, buffer, length, mr.map { fi_mr_desc($0) }, peerAddress[peer], Self.controlBit | UInt64(rank), context)
        case .free:
            return 0
        }
    }

    private func postControlReceive(buffer b: Int) throws {
        let (i, _) = newOperation(.controlReceive(buffer: b))
        try post(i, tag: Self.controlBit, peer: rank)
    }

    /// Control message: kind (UInt32: 1 announce, 2 abort, 3 probe), payload length (UInt32), payload.
    private func sendControl(kind: UInt32, payload: [UInt8], to peer: Int) throws {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.controlBufferBytes, alignment: 64)
        let payload = payload.prefix(Self.controlBufferBytes - 8)
        buffer.storeBytes(of: kind, as: UInt32.self)
        buffer.storeBytes(of: UInt32(payload.count), toByteOffset: 4, as: UInt32.self)
        payload.withUnsafeBytes { (buffer + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var mr: UnsafeMutablePointer<fid_mr>?
        if needsLocalRegistration {
            let rc = registerWithDomain(buffer, Self.controlBufferBytes, access: UInt64(FI_SEND), &mr)
            if rc != 0 {
                buffer.deallocate()
                throw TransportError(.register, peer: peer, syscall: "fi_mr_reg", code: -rc, "cannot register a control message for rank \(peer): \(String(cString: chorus_fi_strerror(rc)))")
            }
        }
        let (i, _) = newOperation(.controlSend(buffer, mr, peer: peer, kind: kind))
        try post(i, tag: Self.controlBit | UInt64(rank), peer: peer)
    }

    // MARK: - Transport

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        guard needsLocalRegistration else { return TransportRegion(base: base, length: length) }
        return try lock.withLock { _ in
            var mr: UnsafeMutablePointer<fid_mr>?
            let rc = registerWithDomain(base, length, access: UInt64(FI_SEND | FI_RECV), &mr)
            guard rc == 0, let mr else {
                throw TransportError(.register, syscall: "fi_mr_reg", code: -rc, "\(provider) cannot register \(length) bytes at \(base): \(String(cString: chorus_fi_strerror(rc)))")
            }
            let key = registrationCount
            registrations[key] = mr
            return TransportRegion(base: base, length: length, key: key)
        }
    }

    public func deregister(_ region: TransportRegion) {
        lock.withLock { _ in
            if let mr = registrations.removeValue(forKey: region.key) { _ = fi_close(&mr.pointee.fid) }
        }
    }

    private func checkUsable(_ peer: Int) throws {
        if let failure { throw failure }
        if let localAbort { throw localAbort }
        guard peer != rank, (0..<size).contains(peer), !peerAddress.isEmpty else {
            throw TransportError(.send, peer: peer, "rank \(rank) cannot address rank \(peer) over OFI (ranks 0..<\(size), not itself)")
        }
    }

    /// With local registration every request must name a region this transport registered.
    private func checkRegistered(_ request: TransportRequest) throws {
        guard needsLocalRegistration, request.length > 0, registrations[request.region.key] == nil else { return }
        throw TransportError(.register, peer: request.peer, "a request to rank \(request.peer) uses memory at \(request.region.base) that \(provider) has not registered (region key \(request.region.key))")
    }

    public func postSend(_ request: TransportRequest) throws {
        try lock.withLock { _ in
            try checkUsable(request.peer)
            try checkRegistered(request)
            let key = StreamKey(peer: request.peer, stream: request.stream)
            var entry: (number: UInt64, next: UInt64)
            if let known = sendStreams[key] {
                entry = known
            } else {
                let number = nextStreamNumber[request.peer]
                guard number < 1 << Self.streamBits else {
                    throw TransportError(.send, peer: request.peer, "rank \(rank) has used \(number) streams with rank \(request.peer), more than the OFI transport's tags number (\(1 << Self.streamBits))")
                }
                nextStreamNumber[request.peer] += 1
                entry = (number, 0)
                var payload = [UInt8]()
                withUnsafeBytes(of: request.stream.littleEndian) { payload += $0 }
                withUnsafeBytes(of: number.littleEndian) { payload += $0 }
                try sendControl(kind: 1, payload: payload, to: request.peer)
            }
            let tag = Self.dataTag(sender: rank, stream: entry.number, sequence: entry.next)
            entry.next += 1
            sendStreams[key] = entry
            let (i, _) = newOperation(.send(request))
            try post(i, tag: tag, peer: request.peer)
        }
    }

    public func postReceive(_ request: TransportRequest) throws {
        try lock.withLock { _ in
            try checkUsable(request.peer)
            try checkRegistered(request)
            let key = StreamKey(peer: request.peer, stream: request.stream)
            let sequence = receiveSequence[key, default: 0]
            receiveSequence[key] = sequence + 1
            awaiting[request.peer] += 1
            if let number = announced[key] {
                try postReceive(request, number: number, sequence: sequence)
            } else {
                unannounced[key, default: []].append((request, sequence))
            }
        }
    }

    private func postReceive(_ request: TransportRequest, number: UInt64, sequence: UInt64) throws {
        let (i, _) = newOperation(.receive(request, expectedTag: request.tag))
        try post(i, tag: Self.dataTag(sender: request.peer, stream: number, sequence: sequence), peer: request.peer)
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        try lock.withLock { _ in try pump() }
        if !ready.isEmpty {
            completions.append(contentsOf: ready)
            ready.removeAll(keepingCapacity: true)
        }
    }

    /// Reads the completion queue, retries the backlog, and raises any failure. Under the lock.
    private func pump() throws {
        // After an abort the queue is still read (the abort messages leave only as the provider
        // progresses), but nothing is reported.
        if abortRequested.load(ordering: .acquiring) { sendAbortMessages() }
        if !backlog.isEmpty {
            var kept: [(operation: Int, tag: UInt64, peer: Int)] = []
            for b in backlog {
                let rc = postNow(b.operation, tag: b.tag, peer: b.peer)
                if rc == -Int(FI_EAGAIN) { kept.append(b) } else if rc != 0 {
                    release(b.operation)
                    fail(TransportError(.send, peer: b.peer, code: Int32(-rc), "posting to rank \(b.peer) over \(provider) failed: \(String(cString: chorus_fi_strerror(Int32(rc))))"))
                }
            }
            backlog = kept
        }
        while true {
            let n = fi_cq_read(cq, entries, 16)
            if n > 0 {
                for k in 0..<n { try complete(entries[k]) }
                if n < 16 { break }
            } else if n == -Int(FI_EAVAIL) {
                try readError()
            } else {
                break
            }
        }
        if let localAbort { throw localAbort }
        if let failure { throw failure }
    }

    private func complete(_ e: fi_cq_tagged_entry) throws {
        guard let i = operationIndex(e.op_context) else { return }
        let op = operations[i]
        switch op {
        case .send(let r):
            release(i)
            ready.append(TransportCompletion(id: r.id, tag: r.tag, length: r.length))
        case .receive(let r, let expected):
            release(i)
            awaiting[r.peer] -= 1
            lastArrival = .now
            ready.append(TransportCompletion(id: r.id, tag: senderTag(data: e.data, expected: expected), length: e.len))
        case .controlReceive(let b):
            release(i)
            let buffer = controlBuffers + b * Self.controlBufferBytes
            let sender = Int(e.tag & (UInt64(Self.maxRanks) - 1))
            try handleControl(buffer, length: e.len, from: sender)
            try postControlReceive(buffer: b)
        case .controlSend(let buffer, let mr, _, _):
            release(i)
            if let mr { _ = fi_close(&mr.pointee.fid) }
            buffer.deallocate()
        case .free:
            break
        }
    }

    /// The sender's call signature as far as the provider carries it: the expected one when the
    /// bytes carried agree with it.
    private func senderTag(data: UInt64, expected: UInt64) -> UInt64 {
        Self.senderTag(data: data, expected: expected, carriedBytes: completionDataBytes)
    }

    /// The sender's call signature from `carriedBytes` of remote completion data (0 to 8):
    /// `expected` when the bytes carried agree with it, else what was carried.
    static func senderTag(data: UInt64, expected: UInt64, carriedBytes: Int) -> UInt64 {
        guard carriedBytes > 0 else { return expected }
        guard carriedBytes < 8 else { return data }
        let mask: UInt64 = (1 << (8 * UInt64(carriedBytes))) - 1
        return data & mask == expected & mask ? expected : data & mask
    }

    private func handleControl(_ buffer: UnsafeMutableRawPointer, length: Int, from sender: Int) throws {
        guard length >= 8, (0..<size).contains(sender) else {
            throw fail(TransportError(.protocolViolation, peer: sender, "a control message of \(length) bytes from rank \(sender) is not one this transport sends"))
        }
        let kind = buffer.load(as: UInt32.self)
        let count = Int(buffer.load(fromByteOffset: 4, as: UInt32.self))
        guard count <= length - 8 else {
            throw fail(TransportError(.protocolViolation, peer: sender, "rank \(sender) sent a control message claiming \(count) bytes in \(length)"))
        }
        switch kind {
        case 1 where count == 16:
            let stream = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let number = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            let key = StreamKey(peer: sender, stream: stream)
            announced[key] = number
            if let waiting = unannounced.removeValue(forKey: key) {
                for (request, sequence) in waiting { try postReceive(request, number: number, sequence: sequence) }
            }
        case 2:
            let reason = String(decoding: UnsafeRawBufferPointer(start: buffer + 8, count: count), as: UTF8.self)
            throw fail(TransportError(.aborted, peer: sender, reason))
        case 3:
            break  // a probe: its delivery was the point
        default:
            throw fail(TransportError(.protocolViolation, peer: sender, "rank \(sender) sent a control message of unknown kind \(kind) (\(count) bytes)"))
        }
    }

    private func readError() throws {
        var e = fi_cq_err_entry()
        guard fi_cq_readerr(cq, &e, 0) > 0 else { return }
        let i = operationIndex(e.op_context)
        let op = i.map { operations[$0] } ?? .free
        if let i { release(i) }
        var detail = [CChar](repeating: 0, count: 256)
        let providerWords = e.prov_errno != 0 ? String(cString: fi_cq_strerror(cq, e.prov_errno, e.err_data, &detail, detail.count)) : ""
        let why = String(cString: chorus_fi_strerror(e.err)) + (providerWords.isEmpty ? "" : " (\(providerWords))")
        switch op {
        case .receive(let r, let expected) where e.err == Int32(FI_ETRUNC):
            // The sender sent more than the receive expected: report its length (the executor
            // names the disagreement).
            // Providers differ in whether `len` is what arrived or what was sent.
            let sent = e.len > r.length ? e.len : max(e.len + e.olen, r.length + 1)
            awaiting[r.peer] -= 1
            ready.append(TransportCompletion(id: r.id, tag: senderTag(data: e.data, expected: expected), length: sent))
        case .receive(let r, _):
            throw fail(TransportError(.completion, peer: r.peer, code: e.err, "receiving from rank \(r.peer) over \(provider) failed: \(why)"))
        case .send(let r):
            throw fail(TransportError(.completion, peer: r.peer, code: e.err, "sending to rank \(r.peer) over \(provider) failed: \(why)"))
        case .controlSend(let buffer, let mr, let peer, let kind):
            if let mr { _ = fi_close(&mr.pointee.fid) }
            buffer.deallocate()
            if localAbort == nil {
                if kind == 3 {
                    throw fail(TransportError(.completion, peer: peer, code: e.err, "rank \(peer) is gone or unreachable: a probe sent while waiting for it failed over \(provider) (\(why)); its process may have exited"))
                }
                throw fail(TransportError(.completion, peer: peer, code: e.err, "a control message to rank \(peer) over \(provider) failed: \(why)"))
            }
        case .controlReceive(let b):
            if e.err != Int32(FI_ECANCELED) && failure == nil && localAbort == nil {
                try postControlReceive(buffer: b)
            }
        case .free:
            break
        }
    }

    @discardableResult
    private func fail(_ error: TransportError) -> TransportError {
        if failure == nil { failure = error }
        return failure!
    }

    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        // Poll the queue (which also drives the provider's progress) for a while first.
        if spinUntilArrival(spins: spins, limit: .microseconds(200), { (try? lock.withLock { _ in try pump() }) == nil || !ready.isEmpty || abortRequested.load(ordering: .relaxed) }) {
            return
        }
        probeAwaitedPeersIfQuiet()
        var pause = Duration.microseconds(20)
        while ContinuousClock.now < deadline {
            if waitFD >= 0 {
                let settled = lock.withLock { _ -> Bool in
                    var fids: [UnsafeMutablePointer<fid>?] = [withUnsafeMutablePointer(to: &cq!.pointee.fid) { $0 }]
                    return fi_trywait(fabric, &fids, 1) == 0
                }
                if settled {
                    var fds = [pollfd(fd: waitFD, events: Int16(POLLIN), revents: 0)]
                    wakePipe.sleep(watching: &fds, until: deadline)
                    return
                }
            } else {
                usleep(UInt32(pause.components.attoseconds / 1_000_000_000_000))
                pause = min(pause * 2, .milliseconds(1))
            }
            let something = (try? lock.withLock { _ in try pump() }) == nil || !ready.isEmpty
            if something || abortRequested.load(ordering: .relaxed) { return }
        }
    }

    /// Nothing has completed for `probeInterval`: send a probe to every peer a receive waits
    /// for. A live peer drops it; sending to a dead one fails (the provider's connection or
    /// its retries give up), which names that peer at once instead of at `CHORUS_TIMEOUT`, and
    /// the abort that follows tells the ranks waiting on this one.
    /// Peers on this host whose process is gone are found sooner: their pid is checked on every
    /// quiet interval.
    private func probeAwaitedPeersIfQuiet() {
        lock.withLock { _ in
            let now = ContinuousClock.now
            guard now - lastArrival >= Self.probeInterval, now - lastProbe >= Self.probeInterval,
                  failure == nil, localAbort == nil, !peerAddress.isEmpty else { return }
            lastProbe = now
            for peer in 0..<size where peer != rank && awaiting[peer] > 0 {
                if peer < localProcesses.count, let pid = localProcesses[peer], kill(pid, 0) != 0 && errno == ESRCH {
                    fail(TransportError(.completion, peer: peer, "rank \(peer) (pid \(pid)) is gone: its process exited"))
                    return
                }
                try? sendControl(kind: 3, payload: [], to: peer)
            }
        }
    }

    /// The process of each peer on this host (`nil` for peers elsewhere), checked when nothing
    /// arrives for a while.
    public func watchLocalProcesses(_ pids: [Int32?]) {
        lock.withLock { _ in localProcesses = pids.count == size ? pids : Array(repeating: nil, count: size) }
    }

    public func abort(_ error: TransportError) {
        guard !abortRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lock.withLock { _ in
            if localAbort == nil { localAbort = error }
            sendAbortMessages()
        }
        wakePipe.wake()
    }

    /// Best effort, once: tell every peer why, and drive the provider briefly so the messages
    /// leave (progress is manual on most providers). Under the lock.
    private func sendAbortMessages() {
        guard !abortSent, !peerAddress.isEmpty else { return }
        abortSent = true
        let reason = Array("rank \(rank) aborted: \(localAbort?.message ?? failure?.message ?? "")".utf8)
        var outstanding = 0
        for peer in 0..<size where peer != rank {
            if (try? sendControl(kind: 2, payload: reason, to: peer)) != nil { outstanding += 1 }
        }
        let until = ContinuousClock.now + .milliseconds(200)
        while ContinuousClock.now < until {
            for b in backlog where postNow(b.operation, tag: b.tag, peer: b.peer) == 0 {
                backlog.removeAll { $0.operation == b.operation }
            }
            let n = fi_cq_read(cq, entries, 16)
            if n > 0 {
                for e in UnsafeBufferPointer(start: entries, count: n) {
                    if let i = operationIndex(e.op_context), case .controlSend(let buffer, let mr, _, _) = operations[i] {
                        release(i)
                        if let mr { _ = fi_close(&mr.pointee.fid) }
                        buffer.deallocate()
                        outstanding -= 1
                    }
                }
            } else if n == -Int(FI_EAVAIL) {
                var e = fi_cq_err_entry()
                _ = fi_cq_readerr(cq, &e, 0)
                if let i = operationIndex(e.op_context), case .controlSend = operations[i] { outstanding -= 1 }
            }
            if outstanding <= 0 { break }
        }
    }

    public func close() {
        lock.withLock { _ in
            guard !closed else { return }
            closed = true
            if let endpoint { _ = fi_close(&endpoint.pointee.fid) }
            endpoint = nil
            for mr in registrations.values { _ = fi_close(&mr.pointee.fid) }
            registrations.removeAll()
            if let controlRegion { _ = fi_close(&controlRegion.pointee.fid) }
            controlRegion = nil
            for op in operations {
                if case .controlSend(let buffer, let mr, _, _) = op {
                    if let mr { _ = fi_close(&mr.pointee.fid) }
                    buffer.deallocate()
                }
            }
            if let av { _ = fi_close(&av.pointee.fid) }
            av = nil
            if let cq { _ = fi_close(&cq.pointee.fid) }
            cq = nil
            if let domain { _ = fi_close(&domain.pointee.fid) }
            domain = nil
            if let fabric { _ = fi_close(&fabric.pointee.fid) }
            fabric = nil
            wakePipe.close()
        }
    }

    deinit {
        close()
        for c in contexts { c.deallocate() }
        entries.deallocate()
        controlBuffers.deallocate()
        chorus_fi_freeinfo(info)
    }
}
#endif
