// Times the 2-rank in-process round trip and 8-byte all-reduce directly, without the benchmark
// harness's malloc interposer (which adds to every allocation). Prints median and best of
// several rounds of many iterations.
//     swift run -c release RuntimeLatency
import Chorus
import ChorusTransport
import RuntimeBenchSupport
import Foundation

func measure(rounds: Int = 15, iterations: Int = 20_000, _ body: (Int) -> Void) -> (median: Double, best: Double) {
    var perIteration: [Double] = []
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        body(iterations)
        let elapsed = ContinuousClock.now - start
        perIteration.append(Double(elapsed.components.attoseconds) / 1e9 / Double(iterations) + Double(elapsed.components.seconds) * 1e9 / Double(iterations))
    }
    perIteration.sort()
    return (perIteration[rounds / 2], perIteration[0])
}

/// Runs `peer(n)` on another thread while `body(n)` runs here.
func paired(_ n: Int, peer: @escaping @Sendable (Int) -> Void, _ body: (Int) -> Void) {
    let done = DispatchSemaphore(value: 0)
    let t = Thread { peer(n); done.signal() }
    t.start()
    body(n)
    done.wait()
}

let pingPong = PingPong()

let rtt = measure { n in
    paired(n, peer: { n in var c: [TransportCompletion] = []; for _ in 0..<n { pingPong.step(1, &c) } }) { n in
        var c: [TransportCompletion] = []
        for _ in 0..<n { pingPong.step(0, &c) }
    }
}

let comms = try Communicator.inProcess(size: 2)
let allReduce = measure { n in
    paired(n, peer: { n in var v: [Float] = [1, 2]; for _ in 0..<n { try! comms[1].allReduce(&v) } }) { n in
        var v: [Float] = [1, 2]
        for _ in 0..<n { try! comms[0].allReduce(&v) }
    }
}
let single = try Communicator.inProcess(size: 1)[0]
let one = measure { n in var v: [Float] = [1, 2]; for _ in 0..<n { try! single.allReduce(&v) } }

func ns(_ v: Double) -> String { String(format: "%.0f ns", v) }
print("in-process round trip, 8 B:       median \(ns(rtt.median)), best \(ns(rtt.best))")
print("all-reduce 8 B, 2 ranks:          median \(ns(allReduce.median)), best \(ns(allReduce.best))")
print("all-reduce 8 B, 1 rank (API):     median \(ns(one.median)), best \(ns(one.best))")
print("beyond the round trip:            median \(ns(allReduce.median - rtt.median)), best \(ns(allReduce.best - rtt.best))")
