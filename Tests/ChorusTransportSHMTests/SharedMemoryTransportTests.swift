import CChorusSHM
import ChorusTransport
@testable import ChorusTransportSHM
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Two ranks of the shared-memory transport in this process, driven step by step.
@Suite(.serialized) struct SharedMemoryTransportTests {
    /// Ranks 0 and 1 of a fresh 2-rank job, their segments reserved; `close` undoes it.
    private func twoRanks() throws -> ([SharedMemoryTransport], [SharedSegmentHandle]) {
        let job = UInt64.random(in: 1...UInt64.max)
        let pid = getpid()
        let handles = try (0..<2).map { try SharedSegmentHandle(job: job, rank: $0, ranks: 2) }
        for h in handles { try h.reserve() }
        let t = try (0..<2).map { try SharedMemoryTransport(own: handles[$0], rank: $0, size: 2, job: job, pids: [pid, pid]) }
        return (t, handles)
    }

    private func close(_ t: [SharedMemoryTransport], _ handles: [SharedSegmentHandle]) {
        for x in t { x.close() }   // unmaps both segments
        for h in handles { h.unlink() }
    }

    /// A message larger than the ring arrives before its receive is posted; the receive is
    /// posted while the rest is still to come. What was kept goes to it, the rest straight out
    /// of the ring, and all of it lands: copied, or combined with the operand.
    @Test(arguments: [false, true])
    func aReceivePostedWhileItsMessageArrivesGetsAllOfIt(reducing: Bool) throws {
        let (t, handles) = try twoRanks()
        defer { close(t, handles) }

        let count = (2 << 20) / 4 + 3   // int32 elements: more than the 1 MiB ring holds
        let bytes = count * 4
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let operand = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); target.deallocate(); operand.deallocate() }
        for i in 0..<count {
            source.storeBytes(of: Int32(truncatingIfNeeded: i &* 7 &+ 1), toByteOffset: i * 4, as: Int32.self)
            operand.storeBytes(of: Int32(truncatingIfNeeded: 1000 &- i), toByteOffset: i * 4, as: Int32.self)
            target.storeBytes(of: -1, toByteOffset: i * 4, as: Int32.self)
        }

        try t[1].postSend(TransportRequest(peer: 0, stream: 1, region: TransportRegion(base: source, length: bytes), offset: 0,
                                           length: bytes, tag: 9, id: 1))
        var sent: [TransportCompletion] = [], received: [TransportCompletion] = []
        try t[1].progress(&sent)       // fills the ring
        try t[0].progress(&received)   // kept: no receive yet
        #expect(received.isEmpty)
        var receive = TransportRequest(peer: 1, stream: 1, region: TransportRegion(base: target, length: bytes), offset: 0,
                                       length: bytes, tag: 9, id: 2)
        if reducing {
            receive.reduction = ReceiveReduction(operand: operand, kernelOp: 0 /* sum */, kernelType: 6 /* int32 */, elementSize: 4)
        }
        try t[0].postReceive(receive)
        for _ in 0..<100_000 where received.isEmpty {
            try t[1].progress(&sent)
            try t[0].progress(&received)
        }
        #expect(received.map(\.id) == [2])
        #expect(received.first?.length == bytes)
        var wrong = 0
        for i in 0..<count {
            let s = source.load(fromByteOffset: i * 4, as: Int32.self)
            let expected = reducing ? s &+ operand.load(fromByteOffset: i * 4, as: Int32.self) : s
            if target.load(fromByteOffset: i * 4, as: Int32.self) != expected { wrong += 1 }
        }
        #expect(wrong == 0)
    }

    /// A send stopped at `largeFragmentsPerPass` with room left in the ring goes on at the next
    /// `progress`: the rank must not sleep in between, since no peer would wake it (the peer
    /// rings only for room freed after the sender found the ring full). Rank 0 does nothing
    /// until rank 1 has been told to wait once; with the wait sleeping, it would have returned
    /// only at its deadline a minute later. (The limit applies when every rank has a core.)
    @Test(.enabled(if: cpusThisProcessMayUse >= 2, "two ranks need a CPU each for the pass limit"))
    func aSendPausedAtThePassLimitDoesNotSleep() throws {
        let (t, handles) = try twoRanks()
        defer { close(t, handles) }
        #expect(t[1].largeFragmentsPerPass < 4)   // fewer fragments than the ring holds

        let bytes = 2 << 20
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        for i in 0..<bytes { source.storeBytes(of: UInt8(truncatingIfNeeded: i &* 31 &+ 5), toByteOffset: i, as: UInt8.self) }
        target.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)

        try t[1].postSend(TransportRequest(peer: 0, stream: 1, region: TransportRegion(base: source, length: bytes), offset: 0,
                                           length: bytes, tag: 4, id: 1))
        var sent: [TransportCompletion] = [], received: [TransportCompletion] = []
        try t[1].progress(&sent)   // stops at the pass limit, the ring half empty
        let start = ContinuousClock.now
        try t[1].waitForActivity(until: start + .seconds(60))
        #expect(ContinuousClock.now - start < .seconds(30))

        try t[0].postReceive(TransportRequest(peer: 1, stream: 1, region: TransportRegion(base: target, length: bytes), offset: 0,
                                              length: bytes, tag: 4, id: 2))
        for _ in 0..<100_000 where received.isEmpty || sent.isEmpty {
            try t[1].progress(&sent)
            try t[0].progress(&received)
        }
        #expect(sent.map(\.id) == [1])
        #expect(received.map(\.id) == [2])
        #expect(memcmp(source, target, bytes) == 0)
    }
}

/// How many CPUs this process's affinity mask holds (`taskset` and cpusets narrow it).
private let cpusThisProcessMayUse: Int = {
    var words = [UInt64](repeating: 0, count: 16)
    return Int(chorus_cpu_affinity(&words, 16))
}()
