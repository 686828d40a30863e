/// The element types a collective can carry.
///
/// `float16` is IEEE 754 binary16; `bfloat16` is the upper half of a binary32. Both reduce by
/// widening to `Float` and rounding back to nearest-even, as NCCL and the Neuron runtime do.
public enum DataType: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case float32 = "f32"
    case float64 = "f64"
    case float16 = "f16"
    case bfloat16 = "bf16"
    case int8 = "i8"
    case uint8 = "u8"
    case int32 = "i32"
    case uint32 = "u32"
    case int64 = "i64"
    case uint64 = "u64"

    /// Bytes per element.
    @inlinable
    public var size: Int {
        switch self {
        case .int8, .uint8: return 1
        case .float16, .bfloat16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    /// The name nccl-tests prints in its `type` column.
    public var ncclName: String {
        switch self {
        case .float32: return "float"
        case .float64: return "double"
        case .float16: return "half"
        case .bfloat16: return "bfloat16"
        case .int8: return "int8"
        case .uint8: return "uint8"
        case .int32: return "int32"
        case .uint32: return "uint32"
        case .int64: return "int64"
        case .uint64: return "uint64"
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: return true
        default: return false
        }
    }

    public var description: String { rawValue }

    /// Accepts the short name (`f32`), the nccl-tests name (`float`) and common aliases
    /// (`float32`, `fp16`, `half`, `bfloat16`, `int32`).
    public init?(name: String) {
        let key = name.lowercased()
        if let t = DataType(rawValue: key) { self = t; return }
        guard let t = DataType.aliases[key] else { return nil }
        self = t
    }

    private static let aliases: [String: DataType] = [
        "float": .float32, "float32": .float32, "fp32": .float32,
        "double": .float64, "float64": .float64, "fp64": .float64,
        "half": .float16, "float16": .float16, "fp16": .float16,
        "bfloat16": .bfloat16, "bf16": .bfloat16,
        "int8": .int8, "char": .int8, "uint8": .uint8, "byte": .uint8,
        "int32": .int32, "int": .int32, "uint32": .uint32,
        "int64": .int64, "uint64": .uint64,
    ]
}
