import Chorus
import ChorusCore
import Foundation
import Testing

/// Aborts, timeouts, calls that disagree, and bad arguments: every rank gets an error that says
/// what happened, and nothing hangs.
@Suite(.serialized) struct FailureTests {
    static func isAborted(_ e: Error?) -> Bool { if case .aborted? = e as? ChorusError { return true }; return false }
    static func isMismatch(_ e: Error?) -> Bool { if case .mismatch? = e as? ChorusError { return true }; return false }
    static func isTimeout(_ e: Error?) -> Bool { if case .timeout? = e as? ChorusError { return true }; return false }

    @Test func abortByAPeerEndsACollectiveInFlightOnEveryRank() throws {
        // A timeout far beyond the test's run: only the abort can end these calls.
        let comms = try Communicator.inProcess(size: 3, configuration: ChorusConfiguration(timeout: .seconds(600)))
        let results = onRanks(comms) { comm -> Int in
            if comm.rank == 2 {
                Thread.sleep(forTimeInterval: 0.2)
                comm.abort(reason: "the trainer hit NaN")
                return 0
            }
            var values = [Float](repeating: 1, count: 1 << 16)
            try comm.allReduce(&values)
            return 1
        }
        for r in 0..<2 {
            #expect(Self.isAborted(results[r].error))
            #expect("\(results[r].error!)".contains("rank 2"), "\(results[r].error!)")
            #expect("\(results[r].error!)".contains("the trainer hit NaN"))
        }
        // Every later call fails at once with the same reason, and asyncError reports it.
        #expect(throws: ChorusError.self) { try comms[0].barrier() }
        #expect(Self.isAborted(comms[1].asyncError()))
    }

    @Test func abortFromAnotherThreadEndsThisRanksCall() throws {
        let comms = try Communicator.inProcess(size: 2, configuration: ChorusConfiguration(timeout: .seconds(600)))
        // Rank 1 never calls; rank 0's call is aborted by a watchdog thread of its own.
        let watchdog = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            comms[0].abort(reason: "watchdog")
        }
        watchdog.start()
        var values: [Int32] = [1, 2, 3]
        let error = #expect(throws: ChorusError.self) { try comms[0].allReduce(&values) }
        #expect(Self.isAborted(error))
        // The peer learns of it without running a call.
        #expect(Self.isAborted(comms[1].asyncError()))
    }

    @Test func asyncErrorIsNilWhileAllIsWell() throws {
        let comms = try Communicator.inProcess(size: 2, configuration: .testing)
        _ = try onRanksOrThrow(comms) { try $0.barrier() }
        #expect(comms[0].asyncError() == nil)
        #expect(comms[1].asyncError() == nil)
    }

    @Test func aRankThatStopsRespondingIsNamedWithinTheTimeout() throws {
        let comms = try Communicator.inProcess(size: 2, configuration: ChorusConfiguration(timeout: .milliseconds(300)))
        var values: [Double] = [1, 2]
        let error = #expect(throws: ChorusError.self) { try comms[0].allReduce(&values) }
        #expect(Self.isTimeout(error))
        #expect("\(error!)".contains("waiting for rank 1"), "\(error!)")
    }

    @Test func everySurvivorFailsWhenOneOfThreeRanksIsSilent() throws {
        let comms = try Communicator.inProcess(size: 3, configuration: ChorusConfiguration(timeout: .milliseconds(300)))
        let results = onRanks(Array(comms.prefix(2))) { comm -> Int in
            var values = [Float](repeating: 1, count: 100)
            try comm.allReduce(&values)
            return 1
        }
        for r in results { #expect(Self.isTimeout(r.error) || Self.isAborted(r.error), "\(String(describing: r.error))") }
        #expect(results.contains { "\($0.error!)".contains("rank 2") })
    }

    struct Disagreement: Sendable, CustomStringConvertible {
        var name: String
        var call: @Sendable (Communicator) throws -> Void
        var description: String { name }
    }

    static let disagreements: [Disagreement] = [
        Disagreement(name: "count") { comm in
            var v = [Float](repeating: 1, count: comm.rank == 1 ? 9 : 8)
            try comm.allReduce(&v)
        },
        Disagreement(name: "type") { comm in
            if comm.rank == 1 { var v = [Int32](repeating: 1, count: 8); try comm.allReduce(&v) } else { var v = [Float](repeating: 1, count: 8); try comm.allReduce(&v) }
        },
        Disagreement(name: "op") { comm in
            var v = [Float](repeating: 1, count: 8)
            try comm.allReduce(&v, op: comm.rank == 1 ? .max : .sum)
        },
        Disagreement(name: "root") { comm in
            var v = [Float](repeating: 1, count: 8)
            try comm.broadcast(&v, root: comm.rank == 1 ? 1 : 0)
        },
        Disagreement(name: "collective") { comm in
            if comm.rank == 1 { _ = try comm.allGather([Float](repeating: 1, count: 8)) } else { var v = [Float](repeating: 1, count: 8); try comm.allReduce(&v) }
        },
        Disagreement(name: "reduce root") { comm in
            _ = try comm.reduce([Int8](repeating: 1, count: 3), root: comm.rank == 2 ? 2 : 0)
        },
    ]

    @Test(arguments: disagreements)
    func callsThatDisagreeFailOnEveryRank(_ d: Disagreement) throws {
        let comms = try Communicator.inProcess(size: 3, configuration: ChorusConfiguration(timeout: .seconds(20)))
        let results = onRanks(comms) { comm -> Int in
            // A rank whose part finished before the disagreement was found learns of it next call.
            do { try d.call(comm) } catch { throw error }
            try comm.barrier()
            return 0
        }
        for (r, result) in results.enumerated() {
            #expect(Self.isMismatch(result.error), "rank \(r): \(String(describing: result.error))")
            #expect("\(result.error.map { "\($0)" } ?? "")".contains("calls disagree"))
        }
    }

    @Test func badArgumentsAreRefusedWithoutSendingAnything() throws {
        let comm = try Communicator.inProcess(size: 2, configuration: .testing)[0]
        var buffer = [Float](repeating: 0, count: 16)
        try buffer.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            let cases: [(String, () throws(ChorusError) -> Void)] = [
                ("count is -1", { () throws(ChorusError) in try comm.allReduce(p, p, count: -1, dataType: .float32) }),
                ("send buffer is null", { () throws(ChorusError) in try comm.allReduce(nil, p, count: 4, dataType: .float32) }),
                ("receive buffer is null", { () throws(ChorusError) in try comm.allGather(p, nil, count: 4, dataType: .float32) }),
                ("root 2 is not a rank", { () throws(ChorusError) in try comm.broadcast(p, p, count: 4, dataType: .float32, root: 2) }),
                ("root -1 is not a rank", { () throws(ChorusError) in try comm.reduce(p, p, count: 4, dataType: .float32, root: -1) }),
                ("peer 5 is not a rank", { () throws(ChorusError) in try comm.send(p, count: 4, dataType: .float32, to: 5) }),
                ("peer 0 is this rank", { () throws(ChorusError) in try comm.receive(p, count: 4, dataType: .float32, from: 0) }),
                ("overlap", { () throws(ChorusError) in try comm.allReduce(p, p + 4, count: 4, dataType: .float32) }),
                ("most one call can move", { () throws(ChorusError) in try comm.allReduce(p, p, count: 1 << 40, dataType: .float32) }),
            ]
            for (expected, call) in cases {
                do throws(ChorusError) {
                    try call()
                    Issue.record("no error for '\(expected)'")
                } catch {
                    guard case .invalidArgument(let message) = error else { Issue.record("\(error)"); continue }
                    #expect(message.contains(expected), "\(message)")
                }
            }
        }
        #expect(throws: ChorusError.self) { _ = try comm.reduceScatter([Float](repeating: 0, count: 3)) }
        // Nothing was sent: the communicator still works.
        #expect(comm.asyncError() == nil)
        comm.close()
        let error = #expect(throws: ChorusError.self) { try comm.barrier() }
        #expect("\(error!)".contains("closed"))
    }
}
