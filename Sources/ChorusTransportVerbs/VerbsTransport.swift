#if RDMA
import CChorusVerbs
import ChorusCore
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ranks exchanging messages over InfiniBand or RoCE with libibverbs: one reliable-connected
/// queue pair per pair of ranks, all on one completion queue.
///
/// ## Protocol
/// `VerbsPeerFlow` holds the protocol (clear-to-send, zero-copy RDMA write with immediate data
/// from the sender's registered buffer into the receiver's, slot flow control); this type carries
/// its actions out on the device. Control messages are RDMA sends of at most
/// `VerbsControl.bufferSize` bytes into the `2 × slots + 1` receive buffers each queue pair keeps
/// posted; every buffer is reposted as soon as its completion is read.
///
/// ## Set-up
/// `init` opens the device port `VerbsDiscovery` chose, a protection domain, a completion queue
/// with a completion channel, and one queue pair per peer in the INIT state; `localAddresses`
/// gives what to publish for each peer (LID, GID, QPN, PSN, MTU); `connect` takes each peer's
/// address for this rank and moves the queue pairs to RTR and RTS (path MTU the smaller of the two
/// ports'; global routing by GID on RoCE or when a LID is 0).
///
/// ## Memory
/// `register` registers with `ibv_reg_mr` (local write, remote write) through a
/// `RegistrationCache`, so overlapping requests (in place, scratch) share one registration;
/// the executor keeps registrations of user buffers across calls, and a registration is dropped
/// when its last holder deregisters it (freed memory is never written through a stale one).
///
/// ## Waiting and failure
/// `waitForActivity` polls the completion queue for a few microseconds, then arms it
/// (`ibv_req_notify_cq`), polls once more, and sleeps on the completion channel and a wake-up
/// pipe. An error completion fails the job with its status in words and the peer it came from
/// (for example "transport retry counter exceeded: rank 3 is unreachable or gone").
public final class VerbsTransport: Transport, @unchecked Sendable {
    public var kind: String { "verbs" }
    public let rank: Int
    public let size: Int
    public let port: VerbsPort

    private var context: UnsafeMutablePointer<ibv_context>?
    private var pd: UnsafeMutablePointer<ibv_pd>?
    private var channel: UnsafeMutablePointer<ibv_comp_channel>?
    private var cq: UnsafeMutablePointer<ibv_cq>?
    private var queuePairs: [UnsafeMutablePointer<ibv_qp>?]
    private var packetSequence: [UInt32]
    private var flows: [VerbsPeerFlow]
    private let slots: Int
    private let sendQueueDepth: Int
    private var sendQueueUsed: [Int]
    /// Peers with completions since the last issue round.
    private var touched: [Int] = []
    private var isTouched: [Bool]
    private let spins: Bool

    /// Receive buffers: per peer `flows[p].receiveBuffers` of `bufferStride` bytes, one registration.
    private var receiveArea: UnsafeMutableRawPointer?
    private var receiveRegion: UnsafeMutablePointer<ibv_mr>?
    private let buffersPerPeer: Int
    private static let bufferStride = 256

    /// Control-message send buffers, in chunks of 64, each chunk one registration.
    private var sendChunks: [(UnsafeMutableRawPointer, UnsafeMutablePointer<ibv_mr>)] = []
    private var freeSendBuffers: [Int] = []

    private var registrations = RegistrationCache<UnsafeMutablePointer<ibv_mr>>()
    private var sendRequests: [UInt64: TransportRequest] = [:]
    /// Writes in flight: the send id each write's work request index stands for.
    private var writeSlots: [UInt64] = []
    private var freeWriteSlots: [Int] = []
    private var ready: [TransportCompletion] = []
    /// Where work completions are polled into (never reallocated: progress runs often).
    private let completionBuffer = UnsafeMutablePointer<ibv_wc>.allocate(capacity: 32)
    private var failure: TransportError?
    private var localAbort: TransportError?
    private let abortRequested = Atomic<Bool>(false)
    private var abortSent = false
    private let wakePipe: WakePipe
    private let lock = Mutex(())
    private var closed = false

    // wr_id: kind (8 bits) | peer (24 bits) | index (32 bits).
    private enum WorkKind: UInt64 { case receiveBuffer = 1, controlSend = 2, write = 3 }
    private static func workID(_ kind: WorkKind, peer: Int, index: Int) -> UInt64 {
        kind.rawValue << 56 | UInt64(peer & 0xFF_FFFF) << 32 | UInt64(UInt32(truncatingIfNeeded: index))
    }

    public init(rank: Int, size: Int, port: VerbsPort, slots: Int = 64) throws {
        self.rank = rank
        self.size = size
        self.port = port
        self.slots = slots
        flows = (0..<size).map { VerbsPeerFlow(peer: $0, slots: slots) }
        buffersPerPeer = flows[0].receiveBuffers
        sendQueueDepth = 2 * slots + 16
        sendQueueUsed = Array(repeating: 0, count: size)
        isTouched = Array(repeating: false, count: size)
        queuePairs = Array(repeating: nil, count: size)
        packetSequence = (0..<size).map { _ in UInt32.random(in: 0...0xFF_FFFF) }
        spins = size <= onlineCPUs
        wakePipe = try WakePipe()
        do {
            try open()
        } catch {
            close()
            throw error
        }
    }

    private func failed(_ call: String, _ what: String) -> TransportError {
        TransportError(.connect, syscall: call, code: errno, "\(call) on \(port.device) failed while \(what): \(String(cString: strerror(errno)))")
    }

    private func open() throws {
        var count: Int32 = 0, error: Int32 = 0
        guard let list = chorus_ibv_get_device_list(&count, &error) else { throw failed("ibv_get_device_list", "opening the device") }
        defer { chorus_ibv_free_device_list(list) }
        for i in 0..<Int(count) {
            if let d = list[i], String(cString: chorus_ibv_get_device_name(d)) == port.device {
                context = chorus_ibv_open_device(d)
            }
        }
        guard let context else { throw failed("ibv_open_device", "opening \(port.device)") }
        guard let pd = chorus_ibv_alloc_pd(context) else { throw failed("ibv_alloc_pd", "allocating a protection domain") }
        self.pd = pd
        guard let channel = chorus_ibv_create_comp_channel(context) else { throw failed("ibv_create_comp_channel", "creating a completion channel") }
        self.channel = channel
        _ = fcntl(channel.pointee.fd, F_SETFL, fcntl(channel.pointee.fd, F_GETFL) | O_NONBLOCK)
        let entries = Int32(max(size - 1, 1) * (buffersPerPeer + sendQueueDepth))
        guard let cq = chorus_ibv_create_cq(context, entries, channel) else { throw failed("ibv_create_cq", "creating a completion queue of \(entries) entries") }
        self.cq = cq
        for peer in 0..<size where peer != rank {
            var attributes = ibv_qp_init_attr()
            attributes.send_cq = cq
            attributes.recv_cq = cq
            attributes.qp_type = IBV_QPT_RC
            attributes.cap.max_send_wr = UInt32(sendQueueDepth)
            attributes.cap.max_recv_wr = UInt32(buffersPerPeer)
            attributes.cap.max_send_sge = 1
            attributes.cap.max_recv_sge = 1
            guard let qp = chorus_ibv_create_qp(pd, &attributes) else { throw failed("ibv_create_qp", "creating the queue pair for rank \(peer)") }
            queuePairs[peer] = qp
            var state = ibv_qp_attr()
            state.qp_state = IBV_QPS_INIT
            state.pkey_index = 0
            state.port_num = port.port
            state.qp_access_flags = IBV_ACCESS_LOCAL_WRITE.rawValue | IBV_ACCESS_REMOTE_WRITE.rawValue
            let mask = IBV_QP_STATE.rawValue | IBV_QP_PKEY_INDEX.rawValue | IBV_QP_PORT.rawValue | IBV_QP_ACCESS_FLAGS.rawValue
            guard chorus_ibv_modify_qp(qp, &state, Int32(mask)) == 0 else { throw failed("ibv_modify_qp", "moving the queue pair for rank \(peer) to INIT") }
        }
        let bytes = size * buffersPerPeer * Self.bufferStride
        receiveArea = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        receiveArea!.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        guard let mr = chorus_ibv_reg_mr(pd, receiveArea, bytes, Int32(IBV_ACCESS_LOCAL_WRITE.rawValue)) else {
            throw failed("ibv_reg_mr", "registering \(bytes) bytes of receive buffers")
        }
        receiveRegion = mr
    }

    /// What to publish for each peer (`nil` for this rank): the address of its queue pair here.
    public func localAddresses() -> [VerbsAddress?] {
        (0..<size).map { peer in
            guard let qp = queuePairs[peer] else { return nil }
            return VerbsAddress(lid: port.lid, queuePair: qp.pointee.qp_num, packetSequence: packetSequence[peer], gidIndex: port.gidIndex,
                                gid: port.gid, mtu: port.activeMTU, linkLayer: port.linkLayer)
        }
    }

    /// Connects each queue pair to the address its peer published for this rank, and posts the
    /// receive buffers.
    public func connect(peerAddresses: [VerbsAddress?]) throws {
        try lock.withLock { _ in
            for peer in 0..<size where peer != rank {
                guard let remote = peerAddresses[peer], let qp = queuePairs[peer] else {
                    throw TransportError(.connect, peer: peer, "rank \(peer) published no verbs address for rank \(rank)")
                }
                guard remote.linkLayer == port.linkLayer else {
                    throw TransportError(.connect, peer: peer, "rank \(peer)'s port is \(remote.linkLayer) but this rank's (\(port.device)) is \(port.linkLayer): they cannot connect")
                }
                var rtr = ibv_qp_attr()
                rtr.qp_state = IBV_QPS_RTR
                rtr.path_mtu = ibv_mtu(rawValue: UInt32(VerbsAddress.pathMTU(remote.mtu, port.activeMTU)))
                rtr.dest_qp_num = remote.queuePair
                rtr.rq_psn = remote.packetSequence
                rtr.max_dest_rd_atomic = 1
                rtr.min_rnr_timer = 12
                rtr.ah_attr.port_num = port.port
                rtr.ah_attr.dlid = remote.lid
                if remote.usesGlobalRouting {
                    rtr.ah_attr.is_global = 1
                    rtr.ah_attr.grh.hop_limit = 64
                    rtr.ah_attr.grh.sgid_index = UInt8(truncatingIfNeeded: port.gidIndex)
                    withUnsafeMutableBytes(of: &rtr.ah_attr.grh.dgid.raw) { $0.copyBytes(from: remote.gid) }
                }
                let rtrMask = IBV_QP_STATE.rawValue | IBV_QP_AV.rawValue | IBV_QP_PATH_MTU.rawValue | IBV_QP_DEST_QPN.rawValue
                    | IBV_QP_RQ_PSN.rawValue | IBV_QP_MAX_DEST_RD_ATOMIC.rawValue | IBV_QP_MIN_RNR_TIMER.rawValue
                // Receive buffers go up before the peer can send.
                for b in 0..<buffersPerPeer { try postReceiveBuffer(peer: peer, index: b) }
                guard chorus_ibv_modify_qp(qp, &rtr, Int32(rtrMask)) == 0 else { throw failed("ibv_modify_qp", "connecting to rank \(peer) (RTR)") }
                var rts = ibv_qp_attr()
                rts.qp_state = IBV_QPS_RTS
                rts.timeout = 14
                rts.retry_cnt = 7
                rts.rnr_retry = 7
                rts.sq_psn = packetSequence[peer]
                rts.max_rd_atomic = 1
                let rtsMask = IBV_QP_STATE.rawValue | IBV_QP_TIMEOUT.rawValue | IBV_QP_RETRY_CNT.rawValue | IBV_QP_RNR_RETRY.rawValue
                    | IBV_QP_SQ_PSN.rawValue | IBV_QP_MAX_QP_RD_ATOMIC.rawValue
                guard chorus_ibv_modify_qp(qp, &rts, Int32(rtsMask)) == 0 else { throw failed("ibv_modify_qp", "connecting to rank \(peer) (RTS)") }
            }
        }
    }

    // MARK: - Work requests

    private func postReceiveBuffer(peer: Int, index: Int) throws {
        let offset = (peer * buffersPerPeer + index) * Self.bufferStride
        var sge = ibv_sge(addr: UInt64(UInt(bitPattern: receiveArea! + offset)), length: UInt32(Self.bufferStride), lkey: receiveRegion!.pointee.lkey)
        var wr = ibv_recv_wr()
        wr.wr_id = Self.workID(.receiveBuffer, peer: peer, index: index)
        wr.num_sge = 1
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        let rc = withUnsafeMutablePointer(to: &sge) { s -> Int32 in
            wr.sg_list = s
            return ibv_post_recv(queuePairs[peer], &wr, &bad)
        }
        guard rc == 0 else {
            throw TransportError(.receive, peer: peer, syscall: "ibv_post_recv", code: rc, "cannot post a receive buffer for rank \(peer): \(String(cString: strerror(rc)))")
        }
    }

    private func takeSendBuffer() throws -> Int {
        if let b = freeSendBuffers.popLast() { return b }
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: 64 * Self.bufferStride, alignment: 4096)
        guard let mr = chorus_ibv_reg_mr(pd, chunk, 64 * Self.bufferStride, Int32(IBV_ACCESS_LOCAL_WRITE.rawValue)) else {
            chunk.deallocate()
            throw failed("ibv_reg_mr", "registering control-message buffers")
        }
        let first = sendChunks.count * 64
        sendChunks.append((chunk, mr))
        freeSendBuffers += (first + 1..<first + 64).reversed()
        return first
    }

    /// Carries out the flow's actions for `peer` while its send queue has room.
    private func issue(_ peer: Int) throws {
        while sendQueueUsed[peer] < sendQueueDepth, let action = flows[peer].next() {
            var wr = ibv_send_wr()
            wr.send_flags = IBV_SEND_SIGNALED.rawValue
            var sge = ibv_sge()
            switch action {
            case .control(let message):
                let b = try takeSendBuffer()
                let (chunk, mr) = sendChunks[b / 64]
                let bytes = message.encoded
                let buffer = chunk + (b % 64) * Self.bufferStride
                bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                sge = ibv_sge(addr: UInt64(UInt(bitPattern: buffer)), length: UInt32(bytes.count), lkey: mr.pointee.lkey)
                wr.wr_id = Self.workID(.controlSend, peer: peer, index: b)
                wr.opcode = IBV_WR_SEND
                wr.num_sge = 1
            case let .write(sendID, address, key, length, token):
                guard let request = sendRequests[sendID] else { continue }
                guard length <= UInt64(port.maxMessageBytes) else {
                    throw fail(TransportError(.send, peer: peer, "a message of \(length) bytes to rank \(peer) is larger than \(port.device)'s largest (\(port.maxMessageBytes) bytes)"))
                }
                let mr = try memoryRegion(request)
                sge = ibv_sge(addr: UInt64(UInt(bitPattern: request.pointer)), length: UInt32(length), lkey: mr.pointee.lkey)
                let slot: Int
                if let free = freeWriteSlots.popLast() {
                    slot = free
                    writeSlots[slot] = sendID
                } else {
                    slot = writeSlots.count
                    writeSlots.append(sendID)
                }
                wr.wr_id = Self.workID(.write, peer: peer, index: slot)
                wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM
                wr.num_sge = length > 0 ? 1 : 0
                wr.imm_data = token.bigEndian
                wr.wr.rdma.remote_addr = address
                wr.wr.rdma.rkey = key
            }
            var bad: UnsafeMutablePointer<ibv_send_wr>?
            let rc = withUnsafeMutablePointer(to: &sge) { s -> Int32 in
                wr.sg_list = s
                return ibv_post_send(queuePairs[peer], &wr, &bad)
            }
            guard rc == 0 else {
                throw fail(TransportError(.send, peer: peer, syscall: "ibv_post_send", code: rc, "posting to rank \(peer) on \(port.device) failed: \(String(cString: strerror(rc)))"))
            }
            sendQueueUsed[peer] += 1
        }
    }

    // MARK: - Transport

    public func register(_ base: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion {
        try lock.withLock { _ in
            let mr = try registrations.acquire(base: UInt(bitPattern: base), length: length, register: { start, bytes in
                guard let mr = chorus_ibv_reg_mr(pd, UnsafeMutableRawPointer(bitPattern: start), bytes,
                                                 Int32(IBV_ACCESS_LOCAL_WRITE.rawValue | IBV_ACCESS_REMOTE_WRITE.rawValue)) else {
                    throw TransportError(.register, syscall: "ibv_reg_mr", code: errno, "\(port.device) cannot register \(bytes) bytes at \(base): \(String(cString: strerror(errno))) (is the locked-memory limit, ulimit -l, high enough?)")
                }
                return mr
            }, deregister: { _ = chorus_ibv_dereg_mr($0) })
            return TransportRegion(base: base, length: length, key: UInt64(UInt(bitPattern: mr)))
        }
    }

    public func deregister(_ region: TransportRegion) {
        lock.withLock { _ in
            let base = UInt(bitPattern: region.base)
            registrations.release(base: base, length: region.length)
            registrations.dropUnheld(base: base, length: region.length) { _ = chorus_ibv_dereg_mr($0) }
        }
    }

    private func checkUsable(_ peer: Int) throws {
        if let failure { throw failure }
        if let localAbort { throw localAbort }
        guard peer != rank, (0..<size).contains(peer), queuePairs[peer] != nil else {
            throw TransportError(.send, peer: peer, "rank \(rank) has no queue pair to rank \(peer) (ranks 0..<\(size), not itself)")
        }
    }

    /// Every request names a region this transport registered (its key is the `ibv_mr`).
    private func memoryRegion(_ request: TransportRequest) throws -> UnsafeMutablePointer<ibv_mr> {
        guard let mr = UnsafeMutablePointer<ibv_mr>(bitPattern: UInt(request.region.key)) else {
            throw TransportError(.register, peer: request.peer, "a request to rank \(request.peer) uses memory at \(request.region.base) that \(port.device) has not registered")
        }
        return mr
    }

    public func postSend(_ request: TransportRequest) throws {
        try lock.withLock { _ in
            try checkUsable(request.peer)
            _ = try memoryRegion(request)
            sendRequests[request.id] = request
            for e in flows[request.peer].sendPosted(id: request.id, stream: request.stream, length: request.length, tag: request.tag) {
                report(e)
            }
            try issue(request.peer)
        }
    }

    public func postReceive(_ request: TransportRequest) throws {
        try lock.withLock { _ in
            try checkUsable(request.peer)
            let mr = try memoryRegion(request)
            flows[request.peer].receivePosted(id: request.id, stream: request.stream, length: request.length,
                                              address: UInt64(UInt(bitPattern: request.pointer)), key: mr.pointee.rkey, tag: request.tag)
            try issue(request.peer)
        }
    }

    private func report(_ e: VerbsPeerFlow.Event) {
        switch e {
        case let .receiveDone(id, length, tag):
            ready.append(TransportCompletion(id: id, tag: tag, length: length))
        case .sendDone(let id):
            if let r = sendRequests.removeValue(forKey: id) { ready.append(TransportCompletion(id: id, tag: r.tag, length: r.length)) }
        }
    }

    public func progress(_ completions: inout [TransportCompletion]) throws {
        try lock.withLock { _ in try pump() }
        if !ready.isEmpty {
            completions.append(contentsOf: ready)
            ready.removeAll(keepingCapacity: true)
        }
    }

    /// Reads the completion queue and issues what the flows allow. Under the lock.
    private func pump() throws {
        if abortRequested.load(ordering: .acquiring) { sendAbortMessages() }
        while true {
            let n = ibv_poll_cq(cq, 32, completionBuffer)
            guard n > 0 else {
                if n < 0 { fail(TransportError(.completion, syscall: "ibv_poll_cq", code: -n, "polling the completion queue of \(port.device) failed")) }
                break
            }
            for k in 0..<Int(n) { try complete(completionBuffer[k]) }
            if n < 32 { break }
        }
        if let localAbort { throw localAbort }
        if let failure { throw failure }
        // Only the peers whose completions arrived can have something new to issue (answers to
        // clear-to-sends, or room in their send queue): not every peer on every call.
        while let peer = touched.popLast() {
            isTouched[peer] = false
            try issue(peer)
        }
    }

    private func complete(_ wc: ibv_wc) throws {
        let kind = WorkKind(rawValue: wc.wr_id >> 56)
        let peer = Int((wc.wr_id >> 32) & 0xFF_FFFF)
        if !isTouched[peer] {
            isTouched[peer] = true
            touched.append(peer)
        }
        let index = Int(wc.wr_id & 0xFFFF_FFFF)
        if kind == .controlSend || kind == .write { sendQueueUsed[peer] -= 1 }
        if kind == .controlSend { freeSendBuffers.append(index) }
        if kind == .write && wc.status != IBV_WC_SUCCESS { freeWriteSlots.append(index) }
        guard wc.status == IBV_WC_SUCCESS else {
            // After the first error the queue pair flushes everything else; the first one says why.
            if wc.status != IBV_WC_WR_FLUSH_ERR || failure == nil {
                fail(TransportError(.completion, peer: peer, code: Int32(wc.status.rawValue),
                                    "\(kind == .receiveBuffer ? "receiving from" : "sending to") rank \(peer) on \(port.device) failed: \(WorkCompletionStatus.describe(wc.status.rawValue, peer: peer)) (vendor error \(wc.vendor_err))"))
            }
            return
        }
        switch kind {
        case .receiveBuffer:
            let event: [VerbsPeerFlow.Event]
            if wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM {
                event = [try flows[peer].writeArrived(token: UInt32(bigEndian: wc.imm_data), length: Int(wc.byte_len))]
            } else {
                let buffer = receiveArea! + (peer * buffersPerPeer + index) * Self.bufferStride
                let message = try VerbsControl.decode(UnsafeRawBufferPointer(start: buffer, count: Int(min(wc.byte_len, UInt32(Self.bufferStride)))), from: peer)
                do {
                    event = try flows[peer].controlArrived(message)
                } catch {
                    throw fail(error)
                }
            }
            try postReceiveBuffer(peer: peer, index: index)
            event.forEach(report)
        case .write:
            freeWriteSlots.append(index)
            report(.sendDone(id: writeSlots[index]))
        case .controlSend, .none:
            break
        }
    }

    @discardableResult
    private func fail(_ error: TransportError) -> TransportError {
        if failure == nil { failure = error }
        return failure!
    }

    public func waitForActivity(until deadline: ContinuousClock.Instant) throws {
        if spinUntilArrival(spins: spins, { (try? lock.withLock { _ in try pump() }) == nil || !ready.isEmpty || abortRequested.load(ordering: .relaxed) }) {
            return
        }
        let armed = lock.withLock { _ -> Bool in
            guard ibv_req_notify_cq(cq, 0) == 0 else { return false }
            // Anything that completed before arming is read now rather than slept through.
            try? pump()
            return ready.isEmpty && failure == nil
        }
        guard armed else { return }
        var fds = [pollfd(fd: channel!.pointee.fd, events: Int16(POLLIN), revents: 0)]
        wakePipe.sleep(watching: &fds, until: deadline)
        if fds[0].revents != 0 {
            lock.withLock { _ in
                var eventCQ: UnsafeMutablePointer<ibv_cq>?
                var eventContext: UnsafeMutableRawPointer?
                if chorus_ibv_get_cq_event(channel, &eventCQ, &eventContext) == 0 { chorus_ibv_ack_cq_events(eventCQ, 1) }
            }
        }
    }

    public func abort(_ error: TransportError) {
        guard !abortRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lock.withLock { _ in
            if localAbort == nil { localAbort = error }
            sendAbortMessages()
        }
        wakePipe.wake()
    }

    /// Best effort, once: an abort message to every peer, outside flow control (each queue pair
    /// keeps one receive buffer for it). Under the lock.
    private func sendAbortMessages() {
        guard !abortSent else { return }
        abortSent = true
        let message = VerbsControl.abort(reason: "rank \(rank) aborted: \(localAbort?.message ?? failure?.message ?? "")")
        for peer in 0..<size where peer != rank && queuePairs[peer] != nil && sendQueueUsed[peer] < sendQueueDepth {
            guard let b = try? takeSendBuffer() else { return }
            let (chunk, mr) = sendChunks[b / 64]
            let bytes = message.encoded
            let buffer = chunk + (b % 64) * Self.bufferStride
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            var sge = ibv_sge(addr: UInt64(UInt(bitPattern: buffer)), length: UInt32(bytes.count), lkey: mr.pointee.lkey)
            var wr = ibv_send_wr()
            wr.wr_id = Self.workID(.controlSend, peer: peer, index: b)
            wr.opcode = IBV_WR_SEND
            wr.send_flags = IBV_SEND_SIGNALED.rawValue
            wr.num_sge = 1
            var bad: UnsafeMutablePointer<ibv_send_wr>?
            let rc = withUnsafeMutablePointer(to: &sge) { s -> Int32 in
                wr.sg_list = s
                return ibv_post_send(queuePairs[peer], &wr, &bad)
            }
            if rc == 0 { sendQueueUsed[peer] += 1 }
        }
    }

    public func close() {
        lock.withLock { _ in
            guard !closed else { return }
            closed = true
            for qp in queuePairs { if let qp { _ = chorus_ibv_destroy_qp(qp) } }
            queuePairs = Array(repeating: nil, count: size)
            registrations.removeAll { _ = chorus_ibv_dereg_mr($0) }
            if let receiveRegion { _ = chorus_ibv_dereg_mr(receiveRegion) }
            receiveRegion = nil
            receiveArea?.deallocate()
            receiveArea = nil
            for (chunk, mr) in sendChunks {
                _ = chorus_ibv_dereg_mr(mr)
                chunk.deallocate()
            }
            sendChunks.removeAll()
            if let cq { _ = chorus_ibv_destroy_cq(cq) }
            cq = nil
            if let channel { _ = chorus_ibv_destroy_comp_channel(channel) }
            channel = nil
            if let pd { _ = chorus_ibv_dealloc_pd(pd) }
            pd = nil
            if let context { _ = chorus_ibv_close_device(context) }
            context = nil
            wakePipe.close()
        }
    }

    deinit {
        close()
        completionBuffer.deallocate()
    }
}
#endif
