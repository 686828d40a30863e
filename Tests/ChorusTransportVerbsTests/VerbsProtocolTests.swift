import ChorusTransport
import ChorusTransportVerbs
import Testing

/// The parts of the verbs transport that need no device: address exchange, the registration
/// cache, control messages, the matching and flow-control state machine, error words.
@Suite struct VerbsAddressTests {
    let address = VerbsAddress(lid: 0x1234, queuePair: 0xABCDEF, packetSequence: 0x123456, gidIndex: 3,
                               gid: (0..<16).map { UInt8($0 * 11) }, mtu: 5, linkLayer: .ethernet)

    @Test func anAddressSurvivesEncoding() throws {
        let bytes = address.encoded
        #expect(bytes.count == VerbsAddress.encodedSize)
        #expect(try VerbsAddress(decoding: bytes, from: 3) == address)
        #expect(address.usesGlobalRouting)
        #expect(!VerbsAddress(lid: 7, queuePair: 9, packetSequence: 1, gidIndex: 0, gid: [UInt8](repeating: 0, count: 16), mtu: 4, linkLayer: .infiniband).usesGlobalRouting)
    }

    @Test(arguments: [
        (0, "35 bytes"), (1, "format version 9"), (2, "MTU code 0"), (3, "link layer 7"),
        (4, "packet sequence number"), (5, "queue pair number 0"), (6, "Ethernet (RoCE) port with no GID"),
    ])
    func aDamagedAddressIsRefusedSayingWhy(damage: Int, words: String) {
        var b = address.encoded
        switch damage {
        case 0: b.removeLast()
        case 1: b[0] = 9
        case 2: b[1] = 0
        case 3: b[32] = 7
        case 4: b[11] = 1
        case 5: b[4] = 0; b[5] = 0; b[6] = 0
        default: for i in 16..<32 { b[i] = 0 }
        }
        do {
            _ = try VerbsAddress(decoding: b, from: 5)
            Issue.record("accepted a damaged address (\(words))")
        } catch {
            #expect(error.peer == 5)
            #expect(error.message.contains("rank 5's verbs address") && error.message.contains(words), "\(error)")
        }
    }

    @Test func bothEndsTakeTheSmallerMTU() {
        #expect(VerbsAddress.pathMTU(5, 3) == 3)
        #expect(VerbsAddress.bytes(ofMTU: 5) == 4096 && VerbsAddress.bytes(ofMTU: 1) == 256)
    }
}

@Suite struct RegistrationCacheTests {
    final class Registrar {
        var registered: [(UInt, Int)] = []
        var released: [Int] = []
        func register(_ base: UInt, _ length: Int) -> Int { registered.append((base, length)); return registered.count }
        func deregister(_ r: Int) { released.append(r) }
    }

    @Test func aCoveredRangeHitsAndNeighboursShareAPage() {
        var cache = RegistrationCache<Int>(capacity: 4)
        let r = Registrar()
        let a = cache.acquire(base: 0x10010, length: 100, register: r.register, deregister: r.deregister)
        #expect(r.registered.count == 1 && r.registered[0].0 == 0x10000 && r.registered[0].1 == 4096)
        // Inside the same page: the same registration.
        #expect(cache.acquire(base: 0x10200, length: 64, register: r.register, deregister: r.deregister) == a)
        // Crossing into the next page: a new one.
        #expect(cache.acquire(base: 0x10F00, length: 512, register: r.register, deregister: r.deregister) != a)
        #expect(r.registered[1].0 == 0x10000 && r.registered[1].1 == 8192)
        #expect(cache.hits == 1 && cache.misses == 2)
    }

    @Test func theLeastRecentlyUsedUnheldEntryIsEvicted() {
        var cache = RegistrationCache<Int>(capacity: 2)
        let r = Registrar()
        let first = cache.acquire(base: 0x1000, length: 10, register: r.register, deregister: r.deregister)
        let second = cache.acquire(base: 0x5000, length: 10, register: r.register, deregister: r.deregister)
        cache.release(base: 0x5000, length: 10)
        // first is older but held; second is released: second goes.
        _ = cache.acquire(base: 0x9000, length: 10, register: r.register, deregister: r.deregister)
        #expect(r.released == [second])
        #expect(cache.count == 2)
        cache.release(base: 0x1000, length: 10)
        cache.release(base: 0x9000, length: 10)
        _ = cache.acquire(base: 0xD000, length: 10, register: r.register, deregister: r.deregister)
        #expect(r.released == [second, first])
    }

    @Test func everythingHeldIsKeptBeyondCapacity() {
        var cache = RegistrationCache<Int>(capacity: 1)
        let r = Registrar()
        for i in 0..<3 { _ = cache.acquire(base: UInt(0x10000 * (i + 1)), length: 8, register: r.register, deregister: r.deregister) }
        #expect(cache.count == 3 && r.released.isEmpty)
    }

    @Test func invalidationDropsOverlappingEntriesOnly() {
        var cache = RegistrationCache<Int>()
        let r = Registrar()
        let a = cache.acquire(base: 0x1000, length: 4096, register: r.register, deregister: r.deregister)
        _ = cache.acquire(base: 0x8000, length: 4096, register: r.register, deregister: r.deregister)
        cache.invalidate(base: 0x1800, length: 16, deregister: r.deregister)
        #expect(r.released == [a] && cache.count == 1)
        // Memory reused at the same address is registered again, not served stale.
        _ = cache.acquire(base: 0x1000, length: 4096, register: r.register, deregister: r.deregister)
        #expect(r.registered.count == 3)
    }
}

@Suite struct VerbsControlTests {
    @Test(arguments: [
        VerbsControl.clearToSend(stream: 1 << 60 | 5, sequence: 7, token: 0xDEADBEEF, length: 1 << 33, address: 0x7fff_0000_1000, key: 0x1234, tag: 99),
        .mismatch(token: 3, length: 12, tag: 1 << 63),
        .abort(reason: "rank 4 aborted: out of memory"),
    ])
    func controlMessagesSurviveEncoding(_ m: VerbsControl) throws {
        let bytes = m.encoded
        #expect(try bytes.withUnsafeBytes { try VerbsControl.decode($0, from: 1) } == m)
    }

    @Test func aLongReasonIsCut() throws {
        let m = VerbsControl.abort(reason: String(repeating: "x", count: 1000))
        #expect(m.encoded.count == VerbsControl.bufferSize)
    }

    @Test(arguments: [
        (Array(VerbsControl.mismatch(token: 1, length: 2, tag: 3).encoded.prefix(40)), "shorter than"),
        ([9, 0, 0, 0] + [UInt8](repeating: 0, count: 44), "unknown kind 9"),
        ([1, 1, 0, 0] + [UInt8](repeating: 0, count: 44), "bytes 1-3"),
        (VerbsControl.mismatch(token: 1, length: 2, tag: 3).encoded + [1, 2], "after the header"),
    ] as [([UInt8], String)])
    func garbageIsRefusedNamingThePeer(bytes: [UInt8], words: String) {
        do {
            _ = try bytes.withUnsafeBytes { try VerbsControl.decode($0, from: 6) }
            Issue.record("decoded garbage")
        } catch let error as TransportError {
            #expect(error.kind == .protocolViolation && error.peer == 6)
            #expect(error.message.contains(words), "\(error)")
        } catch {
            Issue.record("not a transport error: \(error)")
        }
    }
}

@Suite struct VerbsPeerFlowTests {
    /// Two ranks' flows joined by in-order wires (as a reliable-connected queue pair is), with
    /// a count of the receive buffers each side's incoming messages use.
    struct Pair {
        var flows = [VerbsPeerFlow(peer: 1, slots: 4), VerbsPeerFlow(peer: 0, slots: 4)]
        var wires: [[VerbsPeerFlow.Action]] = [[], []]   // wires[i]: from rank i to the other
        var events: [[VerbsPeerFlow.Event]] = [[], []]
        var maxInFlight = [0, 0]
        /// Data "written": receive id → send id.
        var written: [UInt64: UInt64] = [:]
        var receiveIDs: [UInt32: UInt64] = [:]

        /// Moves every action that can go onto the wires, then delivers `count` messages from
        /// each wire (all when nil).
        mutating func step(deliver count: Int? = nil) throws {
            for i in 0..<2 { while let a = flows[i].next() { wires[i].append(a) } }
            for i in 0..<2 {
                maxInFlight[i] = max(maxInFlight[i], wires[i].count)
                let n = min(count ?? wires[i].count, wires[i].count)
                for a in wires[i].prefix(n) {
                    let to = 1 - i
                    switch a {
                    case .control(let m):
                        // Through the bytes, as on the wire.
                        let decoded = try m.encoded.withUnsafeBytes { try VerbsControl.decode($0, from: i) }
                        events[to] += try flows[to].controlArrived(decoded)
                    case let .write(sendID, _, _, length, token):
                        let e = try flows[to].writeArrived(token: token, length: Int(length))
                        if case .receiveDone(let id, _, _) = e { written[id] = sendID }
                        events[to].append(e)
                    }
                }
                wires[i].removeFirst(n)
            }
        }
    }

    @Test func sendsMeetReceivesFirstInFirstOutPerStreamWhateverTheOrder() throws {
        var p = Pair()
        var rng = SystemRandomNumberGenerator()
        // Rank 0 sends 40 messages on 3 streams; rank 1 receives them; posts interleave at random.
        var sendsLeft = (0..<40).map { (id: UInt64($0), stream: UInt64($0 % 3)) }
        var receivesLeft = sendsLeft.map { (id: UInt64(1000) + $0.id, stream: $0.stream) }
        while !sendsLeft.isEmpty || !receivesLeft.isEmpty {
            if !sendsLeft.isEmpty && (receivesLeft.isEmpty || Bool.random(using: &rng)) {
                let s = sendsLeft.removeFirst()
                p.events[0] += p.flows[0].sendPosted(id: s.id, stream: s.stream, length: 64, tag: 7)
            } else {
                let r = receivesLeft.removeFirst()
                p.flows[1].receivePosted(id: r.id, stream: r.stream, length: 64, address: 0x1000 * r.id, key: 1, tag: 7)
            }
            try p.step(deliver: Int.random(in: 0...2, using: &rng))
        }
        for _ in 0..<100 { try p.step() }
        // Every receive got the send of the same place in its stream.
        #expect(p.written.count == 40)
        for (receive, send) in p.written { #expect(receive == send + 1000) }
        #expect(p.flows[0].pending == (0, 0) && p.flows[1].pending == (0, 0))
        // Never more clear-to-sends outstanding than slots, so the wire never held more than
        // the posted buffers allow.
        #expect(p.maxInFlight.allSatisfy { $0 <= p.flows[0].receiveBuffers })
        #expect(p.flows[1].outstanding == 0)
    }

    @Test func clearToSendsBeyondTheSlotsWaitForAnswers() throws {
        var p = Pair()
        for i in 0..<10 { p.flows[1].receivePosted(id: UInt64(i), stream: 0, length: 8, address: 0, key: 0, tag: 0) }
        try p.step(deliver: 0)
        #expect(p.wires[1].count == 4)   // slots
        #expect(p.flows[1].outstanding == 4)
        for i in 0..<10 { p.events[0] += p.flows[0].sendPosted(id: UInt64(100 + i), stream: 0, length: 8, tag: 0) }
        for _ in 0..<20 { try p.step() }
        #expect(p.written.count == 10)
    }

    @Test func aSendThatDoesNotFitIsReportedOnBothSides() throws {
        var p = Pair()
        p.flows[1].receivePosted(id: 1, stream: 9, length: 100, address: 0, key: 0, tag: 5)
        p.flows[1].receivePosted(id: 2, stream: 9, length: 100, address: 0, key: 0, tag: 5)
        p.events[0] += p.flows[0].sendPosted(id: 11, stream: 9, length: 300, tag: 5)
        p.events[0] += p.flows[0].sendPosted(id: 12, stream: 9, length: 100, tag: 6)
        for _ in 0..<4 { try p.step() }
        #expect(p.events[0].contains(.sendDone(id: 11)) && p.events[0].contains(.sendDone(id: 12)))
        #expect(p.events[1].contains(.receiveDone(id: 1, length: 300, tag: 5)))
        #expect(p.events[1].contains(.receiveDone(id: 2, length: 100, tag: 6)))
        #expect(p.written.isEmpty)
    }

    @Test func aPeerThatBreaksTheProtocolIsNamed() throws {
        var flow = VerbsPeerFlow(peer: 3, slots: 2)
        #expect(throws: TransportError.self) { _ = try flow.writeArrived(token: 42, length: 8) }
        #expect(throws: TransportError.self) {
            _ = try flow.controlArrived(.clearToSend(stream: 1, sequence: 5, token: 0, length: 8, address: 0, key: 0, tag: 0))
        }
        _ = try flow.controlArrived(.clearToSend(stream: 1, sequence: 0, token: 0, length: 8, address: 0, key: 0, tag: 0))
        _ = try flow.controlArrived(.clearToSend(stream: 2, sequence: 0, token: 1, length: 8, address: 0, key: 0, tag: 0))
        do {
            _ = try flow.controlArrived(.clearToSend(stream: 3, sequence: 0, token: 2, length: 8, address: 0, key: 0, tag: 0))
            Issue.record("accepted more clear-to-sends than slots")
        } catch {
            #expect(error.peer == 3 && error.message.contains("more than 2 clear-to-sends"), "\(error)")
        }
        do {
            _ = try flow.controlArrived(.abort(reason: "rank 3 aborted: gave up"))
            Issue.record("an abort was not raised")
        } catch {
            #expect(error.kind == .aborted && error.peer == 3 && error.message == "rank 3 aborted: gave up")
        }
    }
}

@Suite struct WorkCompletionStatusTests {
    @Test func errorCompletionsNameThePeerAndTheLikelyCause() {
        #expect(WorkCompletionStatus.describe(12, peer: 4).contains("rank 4 is unreachable or gone"))
        #expect(WorkCompletionStatus.describe(10, peer: 4).contains("remote access error"))
        #expect(WorkCompletionStatus.describe(13, peer: 2).contains("receiver-not-ready"))
        #expect(WorkCompletionStatus.describe(999, peer: 0) == "status 999")
    }
}
