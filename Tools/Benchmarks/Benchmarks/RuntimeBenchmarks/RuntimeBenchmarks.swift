import Benchmark
import CBaselineLoops
import Chorus
import ChorusCore
import ChorusExec
import ChorusTransport
import RuntimeBenchSupport
import Foundation

/// A second rank on its own thread: each benchmark run hands it the number of iterations, and
/// it runs its side of them while the benchmark thread runs the measured side.
final class PeerThread: @unchecked Sendable {
    private let go = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var iterations = 0
    private let body: @Sendable (Int) -> Void

    init(_ body: @escaping @Sendable (Int) -> Void) {
        self.body = body
        let t = Thread { [unowned self] in
            while true {
                self.go.wait()
                self.body(self.iterations)
                self.done.signal()
            }
        }
        t.stackSize = 4 << 20
        t.start()
    }

    func start(_ n: Int) {
        iterations = n
        go.signal()
    }

    func wait() { done.wait() }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], warmupIterations: 1000,
                                           scalingFactor: .kilo, maxDuration: .seconds(5), maxIterations: 200)

    // The transport's own round trip: the floor under any 2-rank collective.
    let pingPong = PingPong()
    let echo = PeerThread { n in
        var completions: [TransportCompletion] = []
        for _ in 0..<n { pingPong.step(1, &completions) }
    }
    Benchmark("inproc transport round trip, 8 B, 2 ranks") { benchmark in
        echo.start(benchmark.scaledIterations.count)
        var completions: [TransportCompletion] = []
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { pingPong.step(0, &completions) }
        benchmark.stopMeasurement()
        echo.wait()
    }

    // The API's fixed cost: one rank, nothing to send.
    let single = try! Communicator.inProcess(size: 1)[0]
    Benchmark("all-reduce 8 B (2 x f32), 1 rank (API and engine alone)") { benchmark in
        var values: [Float] = [1, 2]
        for _ in benchmark.scaledIterations { try single.allReduce(&values) }
    }

    // Issue target: under 1 µs beyond the round trip above.
    let comms = try! Communicator.inProcess(size: 2)
    print("2-rank 8 B all-reduce plan:", (try? comms[0].explain(.allReduce, count: 2, dataType: .float32).first) ?? "?")
    let partner = PeerThread { n in
        var values: [Float] = [1, 2]
        for _ in 0..<n { try! comms[1].allReduce(&values) }
    }
    Benchmark("all-reduce 8 B (2 x f32), 2 ranks, inproc") { benchmark in
        partner.start(benchmark.scaledIterations.count)
        var values: [Float] = [1, 2]
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try comms[0].allReduce(&values) }
        benchmark.stopMeasurement()
        partner.wait()
    }

    // Reduction kernels against plain C loops built with -O3 -march=native, in cache (256 KiB
    // per operand) and from memory (32 MiB per operand, beyond the last-level cache).
    let kernelConfiguration = Benchmark.Configuration(metrics: [.wallClock], warmupIterations: 3, scalingFactor: .one,
                                                      maxDuration: .seconds(3), maxIterations: 300)
    for bytes in [256 << 10, 32 << 20] {
        let a = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        memset(a, 0, bytes)
        memset(b, 0, bytes)
        let size = bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
        for type in [DataType.float32, .bfloat16, .float16] {
            let n = bytes / type.size
            Benchmark("kernel sum \(type.ncclName) \(size): Chorus (\(ReductionKernels.implementation))", configuration: kernelConfiguration) { benchmark in
                for _ in benchmark.scaledIterations { ReductionKernels.reduce(.sum, type, count: n, a: a, b: b, into: a) }
            }
            Benchmark("kernel sum \(type.ncclName) \(size): C loop -O3 -march=native", configuration: kernelConfiguration) { benchmark in
                for _ in benchmark.scaledIterations {
                    switch type {
                    case .float32: baseline_add_f32(a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self), n)
                    case .float16: baseline_add_f16(a.assumingMemoryBound(to: UInt16.self), b.assumingMemoryBound(to: UInt16.self), n)
                    default: baseline_add_bf16(a.assumingMemoryBound(to: UInt16.self), b.assumingMemoryBound(to: UInt16.self), n)
                    }
                }
            }
        }
        Benchmark("memcpy \(size) (one core's copy bandwidth)", configuration: kernelConfiguration) { benchmark in
            for _ in benchmark.scaledIterations { baseline_copy(a, b, bytes) }
        }
    }
}
