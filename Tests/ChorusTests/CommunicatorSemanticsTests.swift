import Chorus
import ChorusCore
import Foundation
import Testing

/// The typed and async forms, split, groups.
@Suite struct CommunicatorSemanticsTests {
    @Test func typedFormsComputeWhatTheyPromise() throws {
        let comms = try Communicator.inProcess(size: 3, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [String] in
            let r = comm.rank
            var out: [String] = []
            var a: [Int32] = [Int32(r), 10, -Int32(r)]
            try comm.allReduce(&a, op: .max)
            out.append("\(a)")
            out.append("\(try comm.allReduce([Double(r + 1)], op: .prod))")
            out.append("\(try comm.allGather([UInt8(r), UInt8(r)]))")
            out.append("\(try comm.reduceScatter([Int64](repeating: Int64(r), count: 6), op: .sum))")
            var b: [Float16] = r == 1 ? [1.5, 2.5] : [0, 0]
            try comm.broadcast(&b, root: 1)
            out.append("\(b)")
            let h = try comm.reduce([BFloat16(Float(r) + 0.5)], op: .sum, root: 2)
            out.append("\(h.map { $0.map(\.float) } as Any)")
            if r == 0 { try comm.send([UInt32(7), 8, 9], to: 2) }
            if r == 2 { out.append("\(try comm.receive(UInt32.self, count: 3, from: 0))") }
            try comm.barrier()
            return out
        }
        #expect(results[0][0] == "[2, 10, 0]")
        #expect(results[1][1] == "[6.0]")
        #expect(results[2][2] == "[0, 0, 1, 1, 2, 2]")
        #expect(results[1][3] == "[3, 3]")
        #expect(results[0][4] == "[1.5, 2.5]")
        #expect(results[2][5] == "Optional([4.5])")
        #expect(results[0][5] == "nil")
        #expect(results[2][6] == "[7, 8, 9]")
    }

    @Test func asyncFormsRunInOrderOnTheProgressThread() async throws {
        let comms = try Communicator.inProcess(size: 4, configuration: .testing)
        // Each rank on a thread of its own: on 2 cores the cooperative pool may be held by other
        // tests for longer than the timeout.
        let executors = comms.map { _ in RankThreadExecutor() }
        defer { for e in executors { e.stop() } }
        try await withThrowingTaskGroup(of: (Int, [Float], [Int8], [Float]).self) { group in
            for (comm, executor) in zip(comms, executors) {
                group.addTask(executorPreference: executor) {
                    let r = comm.rank
                    let sum = try await comm.allReduce([Float(r), 1], op: .sum)
                    let gathered = try await comm.allGather([Int8(r)])
                    let root = try await comm.broadcast(r == 3 ? [Float(42)] : [0], root: 3)
                    if r == 0 { try await comm.send([Int8(5)], to: 1) }
                    if r == 1 { #expect(try await comm.receive(Int8.self, count: 1, from: 0) == [5]) }
                    try await comm.barrier()
                    return (r, sum, gathered, root)
                }
            }
            for try await (_, sum, gathered, root) in group {
                #expect(sum == [6, 4])
                #expect(gathered == [0, 1, 2, 3])
                #expect(root == [42])
            }
        }
    }

    @Test func splitByColorOrdersByKeyAndSharesTheTransport() throws {
        let comms = try Communicator.inProcess(size: 6, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [Int] in
            let r = comm.rank
            // Colors 0 and 1 by parity; rank 5 joins none. Keys reverse the order.
            let color = r == 5 ? Communicator.noColor : r % 2
            guard let sub = try comm.split(color: color, key: -r) else {
                _ = try comm.allReduce([Int32(1)], op: .sum)
                return [-1]
            }
            let members = try sub.allGather([Int32(r)]).map(Int.init)
            let sum = try sub.allReduce([Int32(r)], op: .sum)
            // The parent still works, interleaved with the child.
            let total = try comm.allReduce([Int32(1)], op: .sum)
            return [sub.rank, sub.size, Int(sum[0]), Int(total[0])] + members
        }
        #expect(results[5] == [-1])
        #expect(results[4] == [0, 3, 6, 6, 4, 2, 0])
        #expect(results[0] == [2, 3, 6, 6, 4, 2, 0])
        #expect(results[3] == [0, 2, 4, 6, 3, 1])
        #expect(results[1] == [1, 2, 4, 6, 3, 1])
    }

    @Test func groupedSendsAndReceivesDoNotDeadlock() throws {
        let comms = try Communicator.inProcess(size: 4, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [Int64] in
            let n = comm.size, r = comm.rank
            var left = [Int64](repeating: -1, count: 5), right = [Int64](repeating: -1, count: 5)
            let mine = [Int64](repeating: Int64(r), count: 5)
            var sum = [Int64](repeating: Int64(r), count: 2)
            // Every rank sends before it receives: without the group this would wait forever.
            try mine.withUnsafeBytes { m in
                try left.withUnsafeMutableBytes { l in
                    try right.withUnsafeMutableBytes { rt in
                        try sum.withUnsafeMutableBytes { s in
                            try Communicator.group {
                                try comm.send(m.baseAddress, count: 5, dataType: .int64, to: (r + 1) % n)
                                try comm.send(m.baseAddress, count: 5, dataType: .int64, to: (r + n - 1) % n)
                                try comm.allReduce(s.baseAddress, s.baseAddress, count: 2, dataType: .int64, op: .sum)
                                try comm.receive(l.baseAddress, count: 5, dataType: .int64, from: (r + n - 1) % n)
                                try comm.receive(rt.baseAddress, count: 5, dataType: .int64, from: (r + 1) % n)
                            }
                        }
                    }
                }
            }
            return [left[0], left[4], right[0], sum[0]]
        }
        for (r, v) in results.enumerated() {
            #expect(v == [Int64((r + 3) % 4), Int64((r + 3) % 4), Int64((r + 1) % 4), 6])
        }
    }

    @Test func aGroupMaySendTheSameShapeTwiceToOnePeer() throws {
        // Two calls of one shape in one group run on two copies of the cached plan.
        let comms = try Communicator.inProcess(size: 2, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [Int32] in
            var first: [Int32] = [comm.rank == 0 ? 1 : 0, 0], second: [Int32] = [comm.rank == 0 ? 2 : 0, 0]
            try first.withUnsafeMutableBytes { a in
                try second.withUnsafeMutableBytes { b in
                    try Communicator.group {
                        if comm.rank == 0 {
                            try comm.send(a.baseAddress, count: 2, dataType: .int32, to: 1)
                            try comm.send(b.baseAddress, count: 2, dataType: .int32, to: 1)
                        } else {
                            try comm.receive(a.baseAddress, count: 2, dataType: .int32, from: 0)
                            try comm.receive(b.baseAddress, count: 2, dataType: .int32, from: 0)
                        }
                    }
                }
            }
            return [first[0], second[0]]
        }
        #expect(results[1] == [1, 2])
    }

    @Test func oneThreadDrivesEveryRankInAGroup() throws {
        let comms = try Communicator.inProcess(size: 3, configuration: .testing)
        var buffers = (0..<3).map { [Float](repeating: Float($0 + 1), count: 1000) }
        Communicator.groupStart()
        for (r, comm) in comms.enumerated() {
            try buffers[r].withUnsafeMutableBytes { b in
                try comm.allReduce(b.baseAddress, b.baseAddress, count: 1000, dataType: .float32, op: .sum)
            }
        }
        try Communicator.groupEnd()
        for b in buffers { #expect(b.allSatisfy { $0 == 6 }) }
    }

    @Test func groupMisuseIsAnError() throws {
        #expect(throws: ChorusError.self) { try Communicator.groupEnd() }
        let comm = try Communicator.inProcess(size: 1)[0]
        Communicator.groupStart()
        var values: [Float] = [1]
        #expect(throws: ChorusError.self) { try comm.allReduce(&values) }
        try Communicator.groupEnd()
    }

    /// A call equal to the last one reuses its layout; every field that differs must be seen.
    @Test func repeatedAndAlteredCallsComputeAfresh() throws {
        let comms = try Communicator.inProcess(size: 3, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [String] in
            let r = comm.rank
            let a = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8)
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8)
            defer { a.deallocate(); b.deallocate() }
            var out: [String] = []
            func run(_ body: () throws -> Void) throws -> String {
                try body()
                return "\(Array(b.prefix(4)))"
            }
            for round in 0..<2 {
                for i in 0..<8 { a[i] = Float(r + round * 10 + i) }
                b.update(repeating: -1)
                out.append(try run { try comm.allReduce(a.baseAddress, b.baseAddress, count: 4, dataType: .float32) })
            }
            b.update(repeating: -1)
            out.append(try run { try comm.allReduce(a.baseAddress, b.baseAddress, count: 4, dataType: .float32, op: .max) })
            b.update(repeating: -1)
            out.append(try run { try comm.allReduce(a.baseAddress, b.baseAddress, count: 2, dataType: .float32, op: .max) })
            b.update(repeating: -1)
            out.append(try run { try comm.allReduce(a.baseAddress! + 1, b.baseAddress, count: 2, dataType: .float32, op: .max) })
            // The same call twice in place: the second reduces the first's result.
            for _ in 0..<2 { try comm.allReduce(a.baseAddress, a.baseAddress, count: 1, dataType: .float32) }
            out.append("\(a[0])")
            // A non-root's reduce output is the engine's own buffer, which a larger call regrows.
            for count in [1, 8, 1] {
                for i in 0..<8 { a[i] = Float(r + 1) }
                b.update(repeating: -1)
                try comm.reduce(a.baseAddress, b.baseAddress, count: count, dataType: .float32, op: .sum, root: 2)
                try comm.barrier()
                out.append("\(b[0])")
            }
            // A call that differs only in a bad root is still checked.
            do {
                try comm.broadcast(a.baseAddress, b.baseAddress, count: 1, dataType: .float32, root: 1)
                try comm.broadcast(a.baseAddress, b.baseAddress, count: 1, dataType: .float32, root: 7)
                out.append("no error")
            } catch {
                out.append("\(error)".contains("root 7") ? "root error" : "\(error)")
            }
            return out
        }
        for (r, out) in results.enumerated() {
            #expect(out[0] == "[3.0, 6.0, 9.0, 12.0]")
            #expect(out[1] == "[33.0, 36.0, 39.0, 42.0]")
            #expect(out[2] == "[12.0, 13.0, 14.0, 15.0]")
            #expect(out[3] == "[12.0, 13.0, -1.0, -1.0]")
            #expect(out[4] == "[13.0, 14.0, -1.0, -1.0]")
            // a[0] is r + 10: the first in-place sum gives 33 everywhere, the second 3 × 33.
            #expect(out[5] == "\(Float(3 * (10 + 11 + 12)))")
            #expect(out[6...8] == (r == 2 ? ["6.0", "6.0", "6.0"] : ["-1.0", "-1.0", "-1.0"]))
            #expect(out[9] == "root error")
        }
    }

    /// A split shares its parent's engine, so a call on it can regrow the engine's own buffer
    /// (a barrier's byte, a non-root's reduce output) under a call the parent is about to
    /// repeat: the repeat lays itself out again over the new buffer.
    @Test func aRepeatedCallAfterASplitRegrewTheEngineBufferIsLaidOutAgain() throws {
        let comms = try Communicator.inProcess(size: 3, configuration: .testing)
        let results = try onRanksOrThrow(comms) { comm -> [Float] in
            let child = try #require(try comm.split(color: 0, key: comm.rank))
            var out: [Float] = []
            let large = [Float](repeating: Float(comm.rank + 1), count: 4096)
            var big = [Float](repeating: 0, count: 4096)
            try comm.barrier()
            try child.reduce(large, &big, count: 4096, dataType: .float32, op: .sum, root: 2)
            out.append(big[4095])
            try comm.barrier()
            var result: [Float] = [-1]
            try comm.reduce([Float(comm.rank + 1)], &result, count: 1, dataType: .float32, op: .sum, root: 2)
            var bigger = [Float](repeating: 0, count: 8192)
            try child.reduce(large + large, &bigger, count: 8192, dataType: .float32, op: .sum, root: 2)
            out.append(bigger[8191])
            try comm.reduce([Float(comm.rank + 1)], &result, count: 1, dataType: .float32, op: .sum, root: 2)
            out.append(result[0])
            return out
        }
        #expect(results[2] == [6, 6, 6])
        #expect(results[0] == [0, 0, -1])
    }
}
