import ChorusAlgorithms
import ChorusCore
import ChorusExec
import ChorusSchedule
import ChorusTransport
import Foundation
import Synchronization
import Testing

let longTests = ProcessInfo.processInfo.environment["CHORUS_LONG_TESTS"].map { $0 != "0" && !$0.isEmpty } ?? false

/// One call of the grid.
struct GridCall: Sendable {
    var algorithm: String
    var spec: CollectiveSpec
    var contextIndex: Int
    var dataType: DataType
    var op: ReduceOp
    var count: Int
    var inPlace: Bool
    var seed: UInt64
}

/// Contexts a rank count is tested in: plain, a torus where the count is one, instance groups.
func contexts(_ n: Int) -> [AlgorithmContext] {
    var list = [AlgorithmContext(ranks: n)]
    if n == 4 { list.append(AlgorithmContext(ranks: 4, torus: TorusPattern(dimensions: [2, 2]))) }
    if n == 8 { list.append(AlgorithmContext(ranks: 8, torus: TorusPattern(dimensions: [2, 4]))) }
    if n % 2 == 0 && n >= 4 { list.append(AlgorithmContext(ranks: n, groupSize: 2)) }
    return list
}

/// The whole grid for `n` ranks: every applicable (algorithm, collective, context) × type × op
/// × count × placement. Counts include 0, 1, primes and counts not divisible by `n`.
func grid(_ n: Int) -> [GridCall] {
    let counts = longTests ? [0, 1, 2, 7, 13, 97, 1000] : [0, 1, 13, 97]
    var calls: [GridCall] = []
    var seed: UInt64 = 1
    for (ci, context) in contexts(n).enumerated() {
        for algorithm in AlgorithmRegistry.all {
            for collective in algorithm.collectives {
                let spec = CollectiveSpec(collective, ranks: n, root: collective.hasRoot ? (n - 1) / 2 : 0)
                guard algorithm.unavailableReason(spec, context) == nil else { continue }
                // Plain-context algorithms run once; context-specific ones only in their context.
                if ci > 0 && AlgorithmRegistry.algorithm(id: algorithm.id)!.unavailableReason(spec, AlgorithmContext(ranks: n)) == nil { continue }
                for type in DataType.allCases {
                    for op in (collective.reduces ? ReduceOp.allCases : [.sum]) {
                        // Every type meets every op on the first count; the other counts cycle through ops.
                        for (k, count) in counts.enumerated() where k == 0 || longTests || ReduceOp.allCases.firstIndex(of: op)! == k % ReduceOp.allCases.count {
                            for inPlace in [false, true] {
                                calls.append(GridCall(algorithm: algorithm.id, spec: spec, contextIndex: ci, dataType: type, op: op,
                                                      count: count, inPlace: inPlace, seed: seed))
                                seed += 1
                            }
                        }
                    }
                }
            }
        }
    }
    return calls
}

/// Each rank's input bytes for a call.
func inputs(_ call: GridCall, layout: ChunkLayout) -> [[UInt8]] {
    (0..<call.spec.ranks).map { r in sampleBytes(call.dataType, count: layout.inputBlocks * call.count, seed: call.seed &* 131 &+ UInt64(r)) }
}

/// A transport over another that carries `alsoCopyInto` as the protocol allows (copying from
/// the send's source when it is posted), counting what it copied.
final class CopyingOnSendTransport: Transport, @unchecked Sendable {
    let base: Transport
    private(set) var carriedBytes = 0
    init(_ base: Transport) { self.base = base }
    var kind: String { base.kind }
    var rank: Int { base.rank }
    var size: Int { base.size }
    func register(_ pointer: UnsafeMutableRawPointer, length: Int) throws -> TransportRegion { try base.register(pointer, length: length) }
    func deregister(_ region: TransportRegion) { base.deregister(region) }
    func postSend(_ request: TransportRequest) throws {
        var plain = request
        if let copy = request.alsoCopyInto {
            copy.copyMemory(from: request.pointer, byteCount: request.length)
            carriedBytes += request.length
            plain.alsoCopyInto = nil
        }
        try base.postSend(plain)
    }
    func postReceive(_ request: TransportRequest) throws { try base.postReceive(request) }
    func progress(_ completions: inout [TransportCompletion]) throws { try base.progress(&completions) }
    func waitForActivity(until deadline: ContinuousClock.Instant) throws { try base.waitForActivity(until: deadline) }
    func abort(_ error: TransportError) { base.abort(error) }
    func close() { base.close() }
    func copiesOnSend(to peer: Int) -> Bool { true }
}

@Suite("Executor over the in-process transport")
struct ExecutorEquivalenceTests {
    /// With `copying`, the transport carries local copies on sends (`alsoCopyInto`): results
    /// must not change, and an out-of-place ring or direct all-gather has its whole own block
    /// carried (nothing in place, where that copy is a no-op; copies into scratch, as a direct
    /// all-reduce makes, are carried either way).
    @Test(arguments: Array(1...8), [false, true])
    func producesExactlyWhatTheReferenceInterpreterProduces(_ n: Int, copying: Bool) throws {
        let calls = grid(n)
        let world = InProcessWorld(size: n)
        let carried = Mutex<[[Int]]>(Array(repeating: [], count: n))
        let outputs: [[[UInt8]]] = try world.run { rank, inProcess in
            let transport: Transport = copying ? CopyingOnSendTransport(inProcess) : inProcess
            let executor = Executor(transport: transport)
            var results: [[UInt8]] = []
            var carriedPerCall: [Int] = []
            defer { carried.withLock { $0[rank] = carriedPerCall } }
            var compiledCache: [String: CompiledPlan] = [:]
            for call in calls {
                let algorithm = AlgorithmRegistry.algorithm(id: call.algorithm)!
                let key = "\(call.algorithm)/\(call.spec.collective)/\(call.contextIndex)/\(call.dataType)/\(call.count)"
                let compiled: CompiledPlan
                if let c = compiledCache[key] {
                    compiled = c
                } else {
                    let schedule = try algorithm.generate(call.spec, context: contexts(n)[call.contextIndex])
                    compiled = CompiledPlan(plan: Plan(schedule: schedule, channels: 2, sliceBytes: 24), rank: rank,
                                            blockElements: call.count, dataType: call.dataType)
                    compiledCache[key] = compiled
                }
                let layout = compiled.plan.schedule.layout
                let input = inputs(call, layout: layout)[rank]
                let es = call.dataType.size
                var output = [UInt8](repeating: 0, count: compiled.outputBytes)
                var inputCopy = input
                let tag = CallSignature(call.spec.collective, count: call.count, dataType: call.dataType, op: call.op, root: call.spec.root).packed
                try output.withUnsafeMutableBytes { out in
                    try inputCopy.withUnsafeMutableBytes { inp in
                        var inPtr = inp.baseAddress, outPtr = out.baseAddress
                        if call.inPlace {
                            // The collective's in-place form: the input sits inside the output (or the reverse).
                            switch call.spec.collective {
                            case .allReduce, .broadcast, .reduce:
                                if compiled.outputBytes > 0 { outPtr!.copyMemory(from: inPtr!, byteCount: compiled.inputBytes) }
                                inPtr = outPtr
                            case .allGather:
                                let block = call.count * es
                                if block > 0 { (outPtr! + rank * block).copyMemory(from: inPtr!, byteCount: block) }
                                inPtr = outPtr.map { $0 + rank * block }
                            case .reduceScatter:
                                outPtr = inPtr.map { $0 + rank * call.count * es }
                            }
                        }
                        let execution = Execution(compiled: compiled, input: inPtr, output: outPtr, reduceOp: call.op, tag: tag, streamBase: 0)
                        let before = (transport as? CopyingOnSendTransport)?.carriedBytes ?? 0
                        try executor.run([execution], timeout: .seconds(20), isAborted: { nil })
                        carriedPerCall.append(((transport as? CopyingOnSendTransport)?.carriedBytes ?? 0) - before)
                        if call.inPlace && call.spec.collective == .reduceScatter && compiled.outputBytes > 0 {
                            out.baseAddress!.copyMemory(from: outPtr!, byteCount: compiled.outputBytes)
                        }
                    }
                }
                results.append(output)
            }
            return results
        }
        var checked = 0
        for (index, call) in calls.enumerated() {
            let schedule = try AlgorithmRegistry.algorithm(id: call.algorithm)!.generate(call.spec, context: contexts(n)[call.contextIndex])
            let expected = try ReferenceInterpreter.run(Plan(schedule: schedule), dataType: call.dataType, op: call.op, blockElements: call.count,
                                                        inputs: inputs(call, layout: schedule.layout), inPlace: call.inPlace)
            for r in 0..<n where call.spec.collective != .reduce || r == call.spec.root {
                let same = sameResult(call.dataType, outputs[r][index], expected[r])
                #expect(same, "\(call.algorithm) \(call.spec.collective) n=\(n) \(call.dataType) \(call.op) count \(call.count) inPlace \(call.inPlace) rank \(r)")
                checked += 1
            }
        }
        #expect(checked > 0)
        let carriedPerCall = carried.withLock { $0 }
        func compiledInputBytes(_ call: GridCall) -> Int {
            let schedule = try! AlgorithmRegistry.algorithm(id: call.algorithm)!.generate(call.spec, context: contexts(n)[call.contextIndex])
            return schedule.layout.elementCount(.input, blockElements: call.count) * call.dataType.size
        }
        for (index, call) in calls.enumerated() {
            let ownBlock = call.count * call.dataType.size
            for r in 0..<n {
                let bytes = carriedPerCall[r][index]
                if !copying || n == 1 || (call.inPlace && call.spec.collective == .allGather) {
                    #expect(bytes == 0, "\(call.algorithm) n=\(n) inPlace \(call.inPlace) rank \(r): \(bytes) bytes carried")
                } else if call.spec.collective == .allGather && ["ring", "bidirectional-ring", "direct"].contains(call.algorithm) && call.contextIndex == 0 {
                    #expect(bytes == ownBlock, "\(call.algorithm) all-gather n=\(n) count \(call.count) rank \(r): \(bytes) of \(ownBlock) own-block bytes carried")
                } else {
                    #expect(bytes <= compiledInputBytes(call), "\(call.algorithm) \(call.spec.collective) n=\(n) rank \(r): \(bytes) bytes carried")
                }
            }
        }
    }
}
