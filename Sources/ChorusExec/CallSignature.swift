import ChorusCore

/// What a call is, packed into the 64-bit tag every message carries, so a receiver can tell
/// that its peer is running a different call (a different collective, count, type, op or root)
/// instead of silently combining unrelated data.
///
/// Layout (low to high bits): kind 3, data type 4, op 3, root 18, count 36.
public struct CallSignature: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt64, Sendable {
        case allReduce = 1, allGather, reduceScatter, broadcast, reduce, pointToPoint, barrier
    }

    public var kind: Kind
    public var count: Int
    public var dataType: DataType
    public var op: ReduceOp?
    public var root: Int?

    public init(kind: Kind, count: Int, dataType: DataType, op: ReduceOp? = nil, root: Int? = nil) {
        self.kind = kind
        self.count = count
        self.dataType = dataType
        self.op = op
        self.root = root
    }

    public init(_ collective: Collective, count: Int, dataType: DataType, op: ReduceOp, root: Int) {
        let kind: Kind
        switch collective {
        case .allReduce: kind = .allReduce
        case .allGather: kind = .allGather
        case .reduceScatter: kind = .reduceScatter
        case .broadcast: kind = .broadcast
        case .reduce: kind = .reduce
        }
        self.init(kind: kind, count: count, dataType: dataType, op: collective.reduces ? op : nil, root: collective.hasRoot ? root : nil)
    }

    public var packed: UInt64 {
        let type = UInt64(Self.index(of: dataType))
        let opBits = op.map { UInt64(Self.index(of: $0) + 1) } ?? 0
        let rootBits = UInt64(truncatingIfNeeded: (root ?? 0) & 0x3FFFF)
        let countBits = UInt64(truncatingIfNeeded: count) & 0xF_FFFF_FFFF
        return kind.rawValue | type << 3 | opBits << 7 | rootBits << 10 | countBits << 28
    }

    /// A data type's place in `DataType.allCases`, without building that array (as
    /// `allCases.firstIndex(of:)` did, on every call).
    public static func index(of type: DataType) -> Int {
        switch type {
        case .float32: 0
        case .float64: 1
        case .float16: 2
        case .bfloat16: 3
        case .int8: 4
        case .uint8: 5
        case .int32: 6
        case .uint32: 7
        case .int64: 8
        case .uint64: 9
        }
    }

    /// An op's place in `ReduceOp.allCases`.
    public static func index(of op: ReduceOp) -> Int {
        switch op {
        case .sum: 0
        case .prod: 1
        case .min: 2
        case .max: 3
        case .avg: 4
        }
    }

    /// Unpacks a tag; `nil` if it is not a signature.
    public init?(packed v: UInt64) {
        guard let kind = Kind(rawValue: v & 0x7) else { return nil }
        let type = Int((v >> 3) & 0xF), opBits = Int((v >> 7) & 0x7)
        guard type < DataType.allCases.count, opBits <= ReduceOp.allCases.count else { return nil }
        self.kind = kind
        dataType = DataType.allCases[type]
        op = opBits == 0 ? nil : ReduceOp.allCases[opBits - 1]
        let rootValue = Int((v >> 10) & 0x3FFFF)
        root = (kind == .broadcast || kind == .reduce) ? rootValue : nil
        count = Int(v >> 28)
    }

    public var description: String {
        let name: String
        switch kind {
        case .allReduce: name = "all-reduce"
        case .allGather: name = "all-gather"
        case .reduceScatter: name = "reduce-scatter"
        case .broadcast: name = "broadcast"
        case .reduce: name = "reduce"
        case .pointToPoint: name = "send/recv"
        case .barrier: name = "barrier"
        }
        var s = kind == .barrier ? name : "\(name) of \(count) \(dataType.ncclName)"
        if let op { s += " \(op)" }
        if let root { s += " rooted at rank \(root)" }
        return s
    }
}
