// Times the 2-rank in-process round trip and 8-byte all-reduce directly, without the benchmark
// harness's malloc interposer (which adds to every allocation).
//
// The two ranks are threads pinned to different CPUs (where there are two), and rounds of the
// round trip and of the all-reduce alternate, so both figures come from the same conditions: on
// a VM the same program can run at two speeds depending on where its threads land, and a
// difference between figures taken minutes apart measures that instead. Prints the median of
// each, and the median of the per-pair differences.
//     swift run -c release RuntimeLatency [rounds] [iterations]
import Chorus
import CBaselineLoops
import ChorusTransport
import RuntimeBenchSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let rounds = arguments.count > 0 ? arguments[0] : 15
let iterations = arguments.count > 1 ? arguments[1] : 20_000

/// Pins the calling thread to `cpu` when the machine has more than one.
func pin(to cpu: Int) {
    let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    guard cpus > 1 else { return }
    _ = bench_pin_to_cpu(Int32(cpu % cpus))
}

/// Nanoseconds per iteration of `body(n)` here while `peer(n)` runs on the other pinned thread.
func paired(_ n: Int, peer: @escaping @Sendable (Int) -> Void, _ body: (Int) -> Void) -> Double {
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
        pin(to: 1)
        peer(n)
        done.signal()
    }
    t.start()
    let start = ContinuousClock.now
    body(n)
    done.wait()
    let elapsed = ContinuousClock.now - start
    return (Double(elapsed.components.seconds) * 1e18 + Double(elapsed.components.attoseconds)) / 1e9 / Double(n)
}

pin(to: 0)
let pingPong = PingPong()
let comms = try Communicator.inProcess(size: 2)

func roundTrip() -> Double {
    paired(iterations, peer: { n in var c: [TransportCompletion] = []; for _ in 0..<n { pingPong.step(1, &c) } }) { n in
        var c: [TransportCompletion] = []
        for _ in 0..<n { pingPong.step(0, &c) }
    }
}

func allReduce() -> Double {
    paired(iterations, peer: { n in var v: [Float] = [1, 2]; for _ in 0..<n { try! comms[1].allReduce(&v) } }) { n in
        var v: [Float] = [1, 2]
        for _ in 0..<n { try! comms[0].allReduce(&v) }
    }
}

_ = roundTrip()
_ = allReduce()
var trips: [Double] = [], reductions: [Double] = [], beyond: [Double] = []
for _ in 0..<rounds {
    let t = roundTrip(), a = allReduce()
    trips.append(t)
    reductions.append(a)
    beyond.append(a - t)
}

let single = try Communicator.inProcess(size: 1)[0]
var alone: [Double] = []
for _ in 0..<rounds {
    let start = ContinuousClock.now
    var v: [Float] = [1, 2]
    for _ in 0..<iterations { try! single.allReduce(&v) }
    let elapsed = ContinuousClock.now - start
    alone.append((Double(elapsed.components.seconds) * 1e18 + Double(elapsed.components.attoseconds)) / 1e9 / Double(iterations))
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func ns(_ v: Double) -> String { String(format: "%.0f ns", v) }
func spread(_ values: [Double]) -> String { "median \(ns(median(values))), range \(ns(values.min()!))-\(ns(values.max()!))" }
print("\(rounds) alternating rounds of \(iterations) iterations, threads pinned to CPUs 0 and 1")
print("in-process round trip, 8 B:       \(spread(trips))")
print("all-reduce 8 B, 2 ranks:          \(spread(reductions))")
print("beyond the round trip (per pair): \(spread(beyond))")
print("all-reduce 8 B, 1 rank (API):     \(spread(alone))")
