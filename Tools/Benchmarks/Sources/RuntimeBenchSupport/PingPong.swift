import ChorusTransport

/// One 8-byte message each way between two in-process transports, driven the way the executor
/// drives them (progress; when nothing is done, wait for activity).
public final class PingPong: @unchecked Sendable {
    let transports: [InProcessTransport]
    let buffers: [UnsafeMutableRawPointer]
    let regions: [TransportRegion]

    public init() {
        let fabric = InProcessFabric(size: 2)
        let transports = [fabric.transport(rank: 0), fabric.transport(rank: 1)]
        let buffers = (0..<2).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64) }
        regions = (0..<2).map { try! transports[$0].register(buffers[$0], length: 64) }
        self.transports = transports
        self.buffers = buffers
    }

    func drain(_ t: InProcessTransport, _ count: Int, _ completions: inout [TransportCompletion]) {
        var seen = 0
        while seen < count {
            completions.removeAll(keepingCapacity: true)
            try! t.progress(&completions)
            seen += completions.count
            if completions.isEmpty { try! t.waitForActivity(until: .now + .seconds(1)) }
        }
    }

    /// Rank `r`'s side of one round trip (rank 0 sends first).
    public func step(_ r: Int, _ completions: inout [TransportCompletion]) {
        let t = transports[r], peer = 1 - r
        let send = TransportRequest(peer: peer, stream: 1, region: regions[r], offset: 0, length: 8, tag: 0, id: 1)
        let receive = TransportRequest(peer: peer, stream: 1, region: regions[r], offset: 8, length: 8, tag: 0, id: 2)
        if r == 0 {
            try! t.postSend(send)
            try! t.postReceive(receive)
            drain(t, 2, &completions)
        } else {
            try! t.postReceive(receive)
            drain(t, 1, &completions)
            try! t.postSend(send)
            drain(t, 1, &completions)
        }
    }
}
