import Chorus
import ChorusCore
import ChorusSchedule
import Foundation
import Testing

/// The raw-buffer API against the collective's definition (`ReferenceInterpreter.expected`),
/// for every collective × data type × op, in and out of place, over the in-process transport.
/// One world per rank count runs its whole grid.
@Suite struct CommunicatorCollectiveTests {
    /// Small integer values, so every type and every reduction order gives the same bits.
    static func input(rank: Int, elements: Int, type: DataType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: elements * type.size)
        for i in 0..<elements {
            let v = Double((rank * 7 + i * 3) % 3 + 1)
            bytes.withUnsafeMutableBytes { b in
                let p = b.baseAddress! + i * type.size
                switch type {
                case .float32: p.storeBytes(of: Float(v), as: Float.self)
                case .float64: p.storeBytes(of: v, as: Double.self)
                case .float16: p.storeBytes(of: Float16(v), as: Float16.self)
                case .bfloat16: p.storeBytes(of: BFloat16(Float(v)).bitPattern, as: UInt16.self)
                case .int8: p.storeBytes(of: Int8(v), as: Int8.self)
                case .uint8: p.storeBytes(of: UInt8(v), as: UInt8.self)
                case .int32: p.storeBytes(of: Int32(v), as: Int32.self)
                case .uint32: p.storeBytes(of: UInt32(v), as: UInt32.self)
                case .int64: p.storeBytes(of: Int64(v), as: Int64.self)
                case .uint64: p.storeBytes(of: UInt64(v), as: UInt64.self)
                }
            }
        }
        return bytes
    }

    struct Case: CustomStringConvertible {
        var collective: Collective
        var type: DataType
        var op: ReduceOp
        var count: Int
        var root: Int
        var inPlace: Bool
        var description: String { "\(collective) \(type.ncclName) \(op) count \(count) root \(root) \(inPlace ? "in place" : "out of place")" }
    }

    static func grid(size: Int) -> [Case] {
        var cases: [Case] = []
        for collective in Collective.allCases {
            for type in DataType.allCases {
                for count in [0, 1, 7, 13] {
                    for root in collective.hasRoot ? Array(Set([0, size - 1])).sorted() : [0] {
                        for op in collective.reduces ? ReduceOp.allCases : [.sum] {
                            for inPlace in [false, true] {
                                cases.append(Case(collective: collective, type: type, op: op, count: count, root: root, inPlace: inPlace))
                            }
                        }
                    }
                }
            }
        }
        return cases
    }

    /// Runs one case on one rank; returns a description of what is wrong, or nil.
    static func run(_ c: Case, on comm: Communicator) throws -> String? {
        let n = comm.size, r = comm.rank, es = c.type.size
        let inputElements = c.collective == .reduceScatter ? c.count * n : c.count
        let outputElements = c.collective == .allGather ? c.count * n : c.count
        let inputs = (0..<n).map { input(rank: $0, elements: inputElements, type: c.type) }
        let expected = ReferenceInterpreter.expected(c.collective, ranks: n, root: c.root, dataType: c.type, op: c.op,
                                                     blockElements: c.count, inputs: inputs)[r]
        let sentinel: UInt8 = 0xA5
        // One allocation holds both buffers; in place they overlap as NCCL's in-place forms do.
        let total = max(inputElements, outputElements) * es + 64
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: total * 2, alignment: 64)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: sentinel)
        let base = memory.baseAddress!
        var send: UnsafeMutableRawPointer = base
        var receive: UnsafeMutableRawPointer = base + total
        if c.inPlace {
            switch c.collective {
            case .allGather: receive = base; send = base + r * c.count * es
            case .reduceScatter: send = base; receive = base + r * c.count * es
            default: receive = base; send = base
            }
        }
        inputs[r].withUnsafeBytes { send.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let b = inputs[r].count
        _ = b
        switch c.collective {
        case .allReduce: try comm.allReduce(send, receive, count: c.count, dataType: c.type, op: c.op)
        case .allGather: try comm.allGather(send, receive, count: c.count, dataType: c.type)
        case .reduceScatter: try comm.reduceScatter(send, receive, count: c.count, dataType: c.type, op: c.op)
        case .broadcast:
            // Non-roots pass no send buffer (NCCL reads it only on the root).
            try comm.broadcast(r == c.root || c.inPlace ? send : nil, receive, count: c.count, dataType: c.type, root: c.root)
        case .reduce:
            // Non-roots pass no receive buffer out of place (NCCL writes it only on the root).
            try comm.reduce(send, r == c.root || c.inPlace ? receive : nil, count: c.count, dataType: c.type, op: c.op, root: c.root)
        }
        let got = Array(UnsafeRawBufferPointer(start: receive, count: outputElements * es))
        if let expected {
            if got != expected { return "rank \(r): \(c): got \(got.prefix(32)) expected \(expected.prefix(32))" }
        } else if !c.inPlace {
            // A non-root's reduce leaves its (absent) receive buffer alone; the sentinel must survive.
            if got.contains(where: { $0 != sentinel }) { return "rank \(r): \(c): wrote a non-root's receive buffer" }
        }
        // Bytes past the output are never written.
        let after = Array(UnsafeRawBufferPointer(start: receive + outputElements * es, count: 16))
        if !c.inPlace && after.contains(where: { $0 != sentinel }) { return "rank \(r): \(c): wrote past the receive buffer" }
        return nil
    }

    @Test(arguments: [1, 2, 3, 4, 5, 8])
    func everyCollectiveTypeOpAndPlacement(size: Int) throws {
        let comms = try Communicator.inProcess(size: size, configuration: ChorusConfiguration(timeout: .seconds(5)))
        let cases = Self.grid(size: size)
        let problems = try onRanksOrThrow(comms) { comm -> [String] in
            var problems: [String] = []
            for c in cases {
                if comm.rank == 0, ProcessInfo.processInfo.environment["CHORUS_TEST_TRACE"] != nil { print("CASE \(c)") }
                // Every rank runs every case (stopping early would leave the others waiting).
                if let p = try Self.run(c, on: comm), problems.count < 6 { problems.append(p) }
            }
            return problems
        }.flatMap { $0 }
        #expect(problems.isEmpty, "\(problems.prefix(6).joined(separator: "\n"))")
    }
}
