import CChorusKernels
import ChorusCore

/// Vectorized `a ⊕ b` for every data type and op (C kernels dispatched at run time to AVX-512,
/// AVX2 or scalar code), with exactly the semantics of `ReferenceReduction`: f16 and bf16
/// combine in f32 and round to nearest-even, min and max propagate NaN, integers wrap, and
/// integer `avg` truncates toward zero. Where the reference gives NaN these give NaN, but the
/// NaN's payload bits may differ (compilers may swap the operands of an addition).
public enum ReductionKernels {
    /// `destination[i] = a[i] ⊕ b[i]` for `count` elements; `destination` may be `a` or `b`.
    @inlinable
    public static func reduce(_ op: ReduceOp, _ type: DataType, count: Int,
                              a: UnsafeRawPointer, b: UnsafeRawPointer, into destination: UnsafeMutableRawPointer) {
        guard count > 0 else { return }
        CChorusKernels_reduce(op.kernelCode, type.kernelCode, destination, a, b, count)
    }

    /// `buffer[i] /= divisor`, the end of an `avg`.
    @inlinable
    public static func divide(_ type: DataType, count: Int, buffer: UnsafeMutableRawPointer, by divisor: Int) {
        guard count > 0 else { return }
        CChorusKernels_divide(type.kernelCode, buffer, count, Int64(divisor))
    }

    /// The instruction set the kernels run with on this CPU (`avx512fp16`, `avx512`, `avx2`, `scalar`).
    /// Copies `count` bytes to a destination that will not be read again soon (non-temporal
    /// stores for large copies). The ranges must not overlap.
    @inlinable
    public static func copy(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int) {
        CChorusKernels_copy_streaming(destination, source, count)
    }

    public static var implementation: String { String(cString: CChorusKernels_implementation()) }

    /// Whether this CPU can run an implementation (`scalar`, `avx2`, `avx512`, `avx512fp16`).
    public static func supports(_ name: String) -> Bool { CChorusKernels_supports(name) != 0 }

    /// Selects an implementation by name, for tests and measurements; `false` if this CPU
    /// cannot run it. Not thread-safe against concurrent reductions.
    @discardableResult
    public static func force(_ name: String) -> Bool { CChorusKernels_force(name) != 0 }
}

extension DataType {
    @inlinable
    var kernelCode: Int32 {
        switch self {
        case .float32: return 0
        case .float64: return 1
        case .float16: return 2
        case .bfloat16: return 3
        case .int8: return 4
        case .uint8: return 5
        case .int32: return 6
        case .uint32: return 7
        case .int64: return 8
        case .uint64: return 9
        }
    }
}

extension ReduceOp {
    @inlinable
    var kernelCode: Int32 {
        switch self {
        case .sum: return 0
        case .prod: return 1
        case .min: return 2
        case .max: return 3
        case .avg: return 4
        }
    }
}
