import ChorusCore
import ChorusSchedule

/// Element types the typed API takes: each maps to a `DataType`.
public protocol ChorusElement: Sendable {
    static var dataType: DataType { get }
}

extension Float: ChorusElement { public static var dataType: DataType { .float32 } }
extension Double: ChorusElement { public static var dataType: DataType { .float64 } }
extension Float16: ChorusElement { public static var dataType: DataType { .float16 } }
extension Int8: ChorusElement { public static var dataType: DataType { .int8 } }
extension UInt8: ChorusElement { public static var dataType: DataType { .uint8 } }
extension Int32: ChorusElement { public static var dataType: DataType { .int32 } }
extension UInt32: ChorusElement { public static var dataType: DataType { .uint32 } }
extension Int64: ChorusElement { public static var dataType: DataType { .int64 } }
extension UInt64: ChorusElement { public static var dataType: DataType { .uint64 } }

/// A bfloat16 value: the upper 16 bits of an IEEE binary32 (the standard library has no such
/// type). Converting from `Float` rounds to nearest-even.
public struct BFloat16: ChorusElement, Hashable, CustomStringConvertible {
    public static var dataType: DataType { .bfloat16 }
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }
    public init(_ value: Float) { bitPattern = ReferenceReduction.bfloat16(value) }

    public var float: Float { ReferenceReduction.widen(bitPattern) }
    public var description: String { "\(float)" }
}
