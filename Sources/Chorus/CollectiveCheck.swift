import ChorusCore
import ChorusSchedule

/// Runs collectives on this communicator and checks every result against the collective's
/// definition (`ReferenceInterpreter.expected`): the self-test behind `chorus hello --check`
/// and the test suites. Every rank must run the same cases in the same order.
///
/// Inputs are small integers, so every data type and every reduction order gives the same
/// bits; buffers carry a sentinel around them, so a write outside the output is caught too.
public struct CollectiveCheck: Sendable, CustomStringConvertible {
    public var collective: Collective
    public var dataType: DataType
    public var op: ReduceOp
    public var count: Int
    public var root: Int
    public var inPlace: Bool

    public init(collective: Collective, dataType: DataType, op: ReduceOp, count: Int, root: Int, inPlace: Bool) {
        self.collective = collective
        self.dataType = dataType
        self.op = op
        self.count = count
        self.root = root
        self.inPlace = inPlace
    }

    public var description: String {
        "\(collective) \(dataType.ncclName) \(op) count \(count) root \(root) \(inPlace ? "in place" : "out of place")"
    }

    /// Every collective × data type × op (reducing collectives) × count × root (first and last,
    /// rooted collectives) × placement.
    public static func grid(ranks: Int, counts: [Int] = [0, 1, 7, 13]) -> [CollectiveCheck] {
        var cases: [CollectiveCheck] = []
        for collective in Collective.allCases {
            for type in DataType.allCases {
                for count in counts {
                    for root in collective.hasRoot ? Array(Set([0, ranks - 1])).sorted() : [0] {
                        for op in collective.reduces ? ReduceOp.allCases : [.sum] {
                            for inPlace in [false, true] {
                                cases.append(CollectiveCheck(collective: collective, dataType: type, op: op, count: count, root: root, inPlace: inPlace))
                            }
                        }
                    }
                }
            }
        }
        return cases
    }

    /// Rank `rank`'s input, elements `first..<first+elements`: small integers of `dataType`
    /// (for products, ones and twos, so a product of up to 15 ranks stays exact in f16).
    public static func input(rank: Int, elements: Int, dataType type: DataType, first: Int = 0, op: ReduceOp = .sum) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: elements * type.size)
        bytes.withUnsafeMutableBytes { b in
            for k in 0..<elements {
                let i = first + k
                let v = op == .prod ? Double((rank + i) % 4 == 0 ? 2 : 1) : Double((rank * 7 + i * 3) % 3 + 1)
                let p = b.baseAddress! + k * type.size
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

    /// Runs the case on `comm`; returns what is wrong on this rank, or `nil`.
    /// - Throws: the call's `ChorusError`.
    public func run(on comm: Communicator) throws(ChorusError) -> String? {
        let n = comm.size, r = comm.rank, es = dataType.size
        let inputElements = collective == .reduceScatter ? count * n : count
        let outputElements = collective == .allGather ? count * n : count
        let inputs = (0..<n).map { Self.input(rank: $0, elements: inputElements, dataType: dataType, op: op) }
        let expected = ReferenceInterpreter.expected(collective, ranks: n, root: root, dataType: dataType, op: op,
                                                     blockElements: count, inputs: inputs)[r]
        let sentinel: UInt8 = 0xA5
        let total = max(inputElements, outputElements) * es + 64
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: total * 2, alignment: 64)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: sentinel)
        let base = memory.baseAddress!
        var send = base, receive = base + total
        if inPlace {
            switch collective {
            case .allGather: receive = base; send = base + r * count * es
            case .reduceScatter: send = base; receive = base + r * count * es
            default: receive = base; send = base
            }
        }
        inputs[r].withUnsafeBytes { send.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        switch collective {
        case .allReduce: try comm.allReduce(send, receive, count: count, dataType: dataType, op: op)
        case .allGather: try comm.allGather(send, receive, count: count, dataType: dataType)
        case .reduceScatter: try comm.reduceScatter(send, receive, count: count, dataType: dataType, op: op)
        case .broadcast:
            // Non-roots pass no send buffer (NCCL reads it only on the root).
            try comm.broadcast(r == root || inPlace ? send : nil, receive, count: count, dataType: dataType, root: root)
        case .reduce:
            // Non-roots pass no receive buffer out of place (NCCL writes it only on the root).
            try comm.reduce(send, r == root || inPlace ? receive : nil, count: count, dataType: dataType, op: op, root: root)
        }
        let got = Array(UnsafeRawBufferPointer(start: receive, count: outputElements * es))
        if let expected {
            if got != expected { return "rank \(r): \(self): got \(got.prefix(32)), expected \(expected.prefix(32))" }
        } else if !inPlace && got.contains(where: { $0 != sentinel }) {
            return "rank \(r): \(self): wrote a non-root's receive buffer"
        }
        let after = Array(UnsafeRawBufferPointer(start: receive + outputElements * es, count: 16))
        if !inPlace && after.contains(where: { $0 != sentinel }) { return "rank \(r): \(self): wrote past the receive buffer" }
        return nil
    }
}
