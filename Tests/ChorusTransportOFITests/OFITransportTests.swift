#if RDMA
import ChorusTransport
@testable import ChorusTransportOFI
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The OFI transport through libfabric's tcp provider, with every rank in this process: matching
/// independent of posting order, lengths and call signatures carried, aborts, bad peers.
@Suite(.serialized) struct OFITransportTests {
    /// `n` connected transports on loopback.
    func job(_ n: Int, registerAlways: Bool = false) throws -> [OFITransport] {
        let transports = try (0..<n).map { try OFITransport(rank: $0, size: n, provider: "tcp", host: "127.0.0.1", registerAlways: registerAlways) }
        for t in transports { try t.connect(addresses: transports.map(\.address)) }
        return transports
    }

    /// Drives every transport until `count` completions arrived in all (at most 10 s).
    func drive(_ transports: [OFITransport], until count: Int, adding earlier: [UInt64: TransportCompletion] = [:]) throws -> [UInt64: TransportCompletion] {
        var done = earlier
        let deadline = ContinuousClock.now + .seconds(10)
        while done.count < count && ContinuousClock.now < deadline {
            for t in transports {
                var c: [TransportCompletion] = []
                try t.progress(&c)
                for x in c { done[x.id] = x }
            }
        }
        return done
    }

    /// With and without memory registration (`FI_MR_LOCAL`, as EFA and verbs require: every
    /// request then carries the descriptor `register` made).
    @Test(arguments: [false, true])
    func messagesMatchTheirReceivesWhateverOrderTheyArePostedIn(registerAlways: Bool) throws {
        let t = try job(2, registerAlways: registerAlways)
        #expect(t.allSatisfy { $0.registersMemory == registerAlways })
        defer { t.forEach { $0.close() } }
        let count = 8, bytes = 4096
        let send = UnsafeMutableRawPointer.allocate(byteCount: count * bytes * 2, alignment: 64)
        let receive = UnsafeMutableRawPointer.allocate(byteCount: count * bytes * 2, alignment: 64)
        defer { send.deallocate(); receive.deallocate() }
        for i in 0..<(count * bytes * 2) { send.storeBytes(of: UInt8(truncatingIfNeeded: i * 7 + i / bytes), toByteOffset: i, as: UInt8.self) }
        receive.initializeMemory(as: UInt8.self, repeating: 0, count: count * bytes * 2)
        let sr = try t[0].register(send, length: count * bytes * 2), rr = try t[1].register(receive, length: count * bytes * 2)
        if registerAlways { #expect(sr.key != 0 && rr.key != 0) }
        defer { t[0].deregister(sr); t[1].deregister(rr) }
        // Stream 7: receives first (before the stream is announced), then the sends.
        for i in 0..<count {
            try t[1].postReceive(TransportRequest(peer: 0, stream: 7, region: rr, offset: i * bytes, length: bytes, tag: 70, id: UInt64(100 + i)))
        }
        for i in 0..<count {
            try t[0].postSend(TransportRequest(peer: 1, stream: 7, region: sr, offset: i * bytes, length: bytes, tag: 70, id: UInt64(200 + i)))
        }
        // Stream 1 << 40 (a high stream): sends first, receives later.
        let base = count * bytes
        for i in 0..<count {
            try t[0].postSend(TransportRequest(peer: 1, stream: 1 << 40, region: sr, offset: base + i * bytes, length: bytes, tag: 71, id: UInt64(300 + i)))
        }
        let sent = try drive(t, until: count)  // let the sends travel before the receives exist
        for i in 0..<count {
            try t[1].postReceive(TransportRequest(peer: 0, stream: 1 << 40, region: rr, offset: base + i * bytes, length: bytes, tag: 71, id: UInt64(400 + i)))
        }
        let done = try drive(t, until: 4 * count, adding: sent)
        #expect(done.count == 4 * count)
        for i in 0..<count {
            #expect(done[UInt64(100 + i)]?.tag == 70 && done[UInt64(100 + i)]?.length == bytes)
            #expect(done[UInt64(400 + i)]?.tag == 71)
        }
        // First in, first out per stream: the i-th receive holds the i-th send's bytes.
        #expect(memcmp(send, receive, count * bytes * 2) == 0)
    }

    @Test func zeroByteMessagesComplete() throws {
        let t = try job(2)
        defer { t.forEach { $0.close() } }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        let r0 = try t[0].register(buffer, length: 8), r1 = try t[1].register(buffer, length: 8)
        try t[1].postReceive(TransportRequest(peer: 0, stream: 1, region: r1, offset: 0, length: 0, tag: 5, id: 1))
        try t[0].postSend(TransportRequest(peer: 1, stream: 1, region: r0, offset: 0, length: 0, tag: 5, id: 2))
        let done = try drive(t, until: 2)
        #expect(done[1]?.length == 0 && done[1]?.tag == 5)
        #expect(done[2] != nil)
    }

    @Test func aSenderDisagreeingOnLengthOrSignatureIsReported() throws {
        let t = try job(2)
        defer { t.forEach { $0.close() } }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 64)
        defer { buffer.deallocate() }
        let r0 = try t[0].register(buffer, length: 1024), r1 = try t[1].register(buffer, length: 1024)
        // Longer than the receive: the completion reports the sender's length.
        try t[1].postReceive(TransportRequest(peer: 0, stream: 3, region: r1, offset: 0, length: 100, tag: 9, id: 1))
        try t[0].postSend(TransportRequest(peer: 1, stream: 3, region: r0, offset: 512, length: 300, tag: 9, id: 2))
        // Shorter, and with another call's signature.
        try t[1].postReceive(TransportRequest(peer: 0, stream: 4, region: r1, offset: 0, length: 100, tag: 9, id: 3))
        try t[0].postSend(TransportRequest(peer: 1, stream: 4, region: r0, offset: 512, length: 40, tag: 12345, id: 4))
        let done = try drive(t, until: 4)
        #expect(done[1]?.length == 300)
        #expect(done[3]?.length == 40)
        #expect(done[3]?.tag == 12345)
    }

    @Test func anAbortReachesThePeersWithItsReason() throws {
        let t = try job(3)
        defer { t.forEach { $0.close() } }
        t[2].abort(TransportError(.closed, "the training loop gave up"))
        var seen: [Int: TransportError] = [:]
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.count < 2 && ContinuousClock.now < deadline {
            // The aborting rank goes on driving its provider (as its process does until it exits).
            for r in 0..<3 where seen[r] == nil {
                var c: [TransportCompletion] = []
                do { try t[r].progress(&c) } catch let e as TransportError { if r < 2 { seen[r] = e } }
            }
        }
        #expect(seen.count == 2)
        for e in seen.values {
            #expect(e.kind == .aborted && e.peer == 2)
            #expect(e.message.contains("rank 2 aborted: the training loop gave up"), "\(e)")
        }
        // The aborted transport refuses new work.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        let r = try t[2].register(buffer, length: 8)
        #expect(throws: TransportError.self) {
            try t[2].postSend(TransportRequest(peer: 0, stream: 1, region: r, offset: 0, length: 8, tag: 0, id: 1))
        }
    }

    @Test func peersOutsideTheJobAreRefused() throws {
        let t = try job(2)
        defer { t.forEach { $0.close() } }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        let r = try t[0].register(buffer, length: 8)
        for peer in [0, 2, -1] {
            #expect(throws: TransportError.self) {
                try t[0].postSend(TransportRequest(peer: peer, stream: 1, region: r, offset: 0, length: 8, tag: 0, id: 1))
            }
        }
    }

    @Test func anUnknownProviderIsNamedWithThoseOffered() throws {
        do {
            _ = try OFITransport(rank: 0, size: 2, provider: "no-such-provider", host: nil)
            Issue.record("a transport opened on a provider that does not exist")
        } catch let error as TransportError {
            #expect(error.message.contains("no-such-provider"), "\(error)")
            #expect(error.message.contains("tcp"), "the providers offered should be listed: \(error)")
        }
    }

    @Test func callSignaturesCarriedInFewerBytesStillTellCallsApart() {
        let signature: UInt64 = 0x1234_5678_9ABC_DEF0
        // EFA carries 4 bytes of completion data: the low half decides.
        #expect(OFITransport.senderTag(data: 0x9ABC_DEF0, expected: signature, carriedBytes: 4) == signature)
        #expect(OFITransport.senderTag(data: 0x9ABC_DEF1, expected: signature, carriedBytes: 4) != signature)
        #expect(OFITransport.senderTag(data: signature, expected: signature, carriedBytes: 8) == signature)
        #expect(OFITransport.senderTag(data: 1, expected: signature, carriedBytes: 8) == 1)
        // No completion data: nothing to compare, the receive's own signature stands.
        #expect(OFITransport.senderTag(data: 0, expected: signature, carriedBytes: 0) == signature)
    }

    @Test func theProvidersOfferedHereIncludeTCP() throws {
        let offered = try OFITransport.availableProviders()
        #expect(offered.contains { $0.provider.hasPrefix("tcp") })
    }
}
#endif

#if RDMA
/// A routed transport whose network member registers memory (as OFI on EFA and verbs do): each
/// request reaches its member with that member's own region.
@Suite(.serialized) struct RoutedRegistrationTests {
    @Test func eachMemberGetsItsOwnRegion() throws {
        // Ranks 0 and 1 share a "host" (in-process), rank 2 is elsewhere (OFI with registration).
        let fabric = InProcessFabric(size: 2)
        let ofi = try (0..<3).map { try OFITransport(rank: $0, size: 3, provider: "tcp", host: "127.0.0.1", registerAlways: true) }
        for t in ofi { try t.connect(addresses: ofi.map(\.address)) }
        defer { ofi.forEach { $0.close() } }
        let routed = PeerRoutedTransport(rank: 0, size: 3, members: [ofi[0], fabric.transport(rank: 0)],
                                         routes: [nil, .init(member: 1, rank: 1), .init(member: 0, rank: 2)])
        let local = fabric.transport(rank: 1)
        let bytes = 4096
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let inbox1 = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let inbox2 = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { buffer.deallocate(); inbox1.deallocate(); inbox2.deallocate() }
        for i in 0..<bytes { buffer.storeBytes(of: UInt8(truncatingIfNeeded: i &* 31), toByteOffset: i, as: UInt8.self) }
        let region = try routed.register(buffer, length: bytes)
        #expect(region.key != 0)
        let r1 = try local.register(inbox1, length: bytes), r2 = try ofi[2].register(inbox2, length: bytes)
        try local.postReceive(TransportRequest(peer: 0, stream: 1, region: r1, offset: 0, length: bytes, tag: 3, id: 10))
        try ofi[2].postReceive(TransportRequest(peer: 0, stream: 1, region: r2, offset: 0, length: bytes, tag: 3, id: 20))
        try routed.postSend(TransportRequest(peer: 1, stream: 1, region: region, offset: 0, length: bytes, tag: 3, id: 1))
        try routed.postSend(TransportRequest(peer: 2, stream: 1, region: region, offset: 0, length: bytes, tag: 3, id: 2))
        var done = Set<UInt64>()
        let deadline = ContinuousClock.now + .seconds(10)
        while done.count < 4 && ContinuousClock.now < deadline {
            var c: [TransportCompletion] = []
            try routed.progress(&c)
            try local.progress(&c)
            try ofi[1].progress(&c)
            try ofi[2].progress(&c)
            done.formUnion(c.map(\.id))
        }
        #expect(done == [1, 2, 10, 20])
        #expect(memcmp(buffer, inbox1, bytes) == 0 && memcmp(buffer, inbox2, bytes) == 0)
        routed.deregister(region)
    }
}
#endif
