import ChorusCore

/// The scalar definition of `a ⊕ b` for every data type and op; the vectorized kernels are
/// tested against it.
///
/// - Floating point: IEEE arithmetic; `min` and `max` return NaN when either operand is NaN.
///   `float16` and `bfloat16` widen to `Float`, combine, and round back to nearest-even
///   (bfloat16 NaNs are quieted), as NCCL and the Neuron runtime accumulate in f32.
/// - Integers: `sum` and `prod` wrap on overflow (two's complement), as C's unsigned arithmetic
///   and NCCL do; `avg` is a sum, divided (truncating toward zero) by the rank count at the end.
/// - Operand order is fixed: `existing ⊕ incoming`. Bitwise it matters only for NaN payloads.
public enum ReferenceReduction {
    /// `destination[i] = a[i] ⊕ b[i]` for `count` elements. Buffers may alias.
    public static func combine(_ op: ReduceOp, _ type: DataType, count: Int,
                               a: UnsafeRawPointer, b: UnsafeRawPointer, destination: UnsafeMutableRawPointer) {
        let combining: ReduceOp = op == .avg ? .sum : op
        switch type {
        case .float32: loop(count, a, b, destination, Float.self) { floatOp(combining, $0, $1) }
        case .float64: loop(count, a, b, destination, Double.self) { floatOp(combining, $0, $1) }
        case .float16:
            loop(count, a, b, destination, UInt16.self) { x, y in
                Float16(floatOp(combining, Float(Float16(bitPattern: x)), Float(Float16(bitPattern: y)))).bitPattern
            }
        case .bfloat16:
            loop(count, a, b, destination, UInt16.self) { x, y in
                bfloat16(floatOp(combining, widen(x), widen(y)))
            }
        case .int8: loop(count, a, b, destination, Int8.self) { intOp(combining, $0, $1) }
        case .uint8: loop(count, a, b, destination, UInt8.self) { intOp(combining, $0, $1) }
        case .int32: loop(count, a, b, destination, Int32.self) { intOp(combining, $0, $1) }
        case .uint32: loop(count, a, b, destination, UInt32.self) { intOp(combining, $0, $1) }
        case .int64: loop(count, a, b, destination, Int64.self) { intOp(combining, $0, $1) }
        case .uint64: loop(count, a, b, destination, UInt64.self) { intOp(combining, $0, $1) }
        }
    }

    /// `buffer[i] /= divisor` (the end of `avg`).
    public static func divide(_ type: DataType, count: Int, buffer: UnsafeMutableRawPointer, by divisor: Int) {
        func each<T>(_: T.Type, _ f: (T) -> T) {
            for i in 0..<count {
                let v = buffer.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self)
                buffer.storeBytes(of: f(v), toByteOffset: i * MemoryLayout<T>.stride, as: T.self)
            }
        }
        switch type {
        case .float32: each(Float.self) { $0 / Float(divisor) }
        case .float64: each(Double.self) { $0 / Double(divisor) }
        case .float16: each(UInt16.self) { Float16(Float(Float16(bitPattern: $0)) / Float(divisor)).bitPattern }
        case .bfloat16: each(UInt16.self) { bfloat16(widen($0) / Float(divisor)) }
        // Integers divide in 64 bits, so a rank count beyond the type's range still divides correctly.
        case .int8: each(Int8.self) { Int8(Int64($0) / Int64(divisor)) }
        case .uint8: each(UInt8.self) { UInt8(Int64($0) / Int64(divisor)) }
        case .int32: each(Int32.self) { Int32(Int64($0) / Int64(divisor)) }
        case .uint32: each(UInt32.self) { UInt32(Int64($0) / Int64(divisor)) }
        case .int64: each(Int64.self) { $0 / Int64(divisor) }
        case .uint64: each(UInt64.self) { $0 / UInt64(divisor) }
        }
    }

    @inline(__always)
    static func loop<T>(_ count: Int, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: UnsafeMutableRawPointer,
                        _: T.Type, _ f: (T, T) -> T) {
        let s = MemoryLayout<T>.stride
        for i in 0..<count {
            let x = a.loadUnaligned(fromByteOffset: i * s, as: T.self)
            let y = b.loadUnaligned(fromByteOffset: i * s, as: T.self)
            d.storeBytes(of: f(x, y), toByteOffset: i * s, as: T.self)
        }
    }

    @inline(__always)
    static func floatOp<T: BinaryFloatingPoint>(_ op: ReduceOp, _ x: T, _ y: T) -> T {
        switch op {
        case .sum, .avg: return x + y
        case .prod: return x * y
        case .min: return x.isNaN || y.isNaN ? .nan : (y < x ? y : x)
        case .max: return x.isNaN || y.isNaN ? .nan : (y > x ? y : x)
        }
    }

    @inline(__always)
    static func intOp<T: FixedWidthInteger>(_ op: ReduceOp, _ x: T, _ y: T) -> T {
        switch op {
        case .sum, .avg: return x &+ y
        case .prod: return x &* y
        case .min: return Swift.min(x, y)
        case .max: return Swift.max(x, y)
        }
    }

    /// bfloat16 bits to `Float` (exact).
    @inline(__always)
    public static func widen(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `Float` to bfloat16 bits, rounding to nearest-even; NaNs stay NaN (quieted).
    @inline(__always)
    public static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }
}
