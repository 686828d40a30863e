import ChorusTransport
@testable import ChorusTransportTCP
import Foundation
import Testing

/// The TCP transport between two ranks of this process over loopback.
@Suite(.serialized) struct TCPTransportTests {
    /// Two connected transports with `connections` connections per pair.
    func pair(connections: Int) throws -> [TCPTransport] {
        let listening = try (0..<2).map { _ in try TCPTransport.listen(host: "127.0.0.1") }
        let addresses = listening.map(\.address)
        let deadline = ContinuousClock.now + .seconds(20)
        nonisolated(unsafe) var made: [TCPTransport?] = [nil, nil]
        nonisolated(unsafe) var failures: [Error?] = [nil, nil]
        let group = DispatchGroup()
        for r in 0..<2 {
            let listener = listening[r].listener
            DispatchQueue.global().async(group: group) {
                do {
                    made[r] = try TCPTransport(rank: r, size: 2, job: 7, listener: listener, addresses: addresses, deadline: deadline,
                                               connections: connections)
                } catch { failures[r] = error }
            }
        }
        group.wait()
        if let e = failures.compactMap({ $0 }).first { throw e }
        return made.map { $0! }
    }

    @Test func aPeerThatClosesAfterItsLastMessageIsNotAnErrorOnItsOtherConnections() throws {
        // Stream 1 travels on connection 1 of 2. The sender closes right after its message;
        // the receiver reads connection 0 first and finds it closed with nothing owed on it.
        #expect(TCPTransport.connection(of: 1, among: 2) == 1)
        let t = try pair(connections: 2)
        let bytes = 1 << 16
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        for i in 0..<bytes { source.storeBytes(of: UInt8(truncatingIfNeeded: i &* 7), toByteOffset: i, as: UInt8.self) }
        let sr = try t[1].register(source, length: bytes), tr = try t[0].register(target, length: bytes)
        try t[0].postReceive(TransportRequest(peer: 1, stream: 1, region: tr, offset: 0, length: bytes, tag: 4, id: 1))
        try t[1].postSend(TransportRequest(peer: 0, stream: 1, region: sr, offset: 0, length: bytes, tag: 4, id: 2))
        var sent: [TransportCompletion] = []
        while sent.isEmpty { try t[1].progress(&sent) }
        t[1].close()
        var received: [TransportCompletion] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while received.isEmpty && ContinuousClock.now < deadline {
            try t[0].progress(&received)
        }
        #expect(received.first?.id == 1 && received.first?.length == bytes)
        #expect(memcmp(source, target, bytes) == 0)
        // Nothing more can come from the closed peer: a new receive is an error naming it.
        #expect(throws: TransportError.self) {
            var c: [TransportCompletion] = []
            for _ in 0..<100 { try t[0].progress(&c) }
            try t[0].postReceive(TransportRequest(peer: 1, stream: 1, region: tr, offset: 0, length: 8, tag: 4, id: 3))
        }
        t[0].close()
    }
}
