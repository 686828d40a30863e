import ChorusCore
import ChorusExec
import ChorusSchedule
import Testing

/// Seeded values of every type, special values included.
func sampleBytes(_ type: DataType, count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    func pick<T>(_ specials: [T], _ random: () -> T) -> T {
        next() % 8 == 0 ? specials[Int(next() % UInt64(specials.count))] : random()
    }
    var out: [UInt8] = []
    for _ in 0..<count {
        switch type {
        case .float32:
            let v = pick([Float.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1]) { Float(Int64(bitPattern: next()) % 2000) / 7 }
            withUnsafeBytes(of: v) { out += $0 }
        case .float64:
            let v = pick([Double.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude]) { Double(Int64(bitPattern: next()) % 2000) / 7 }
            withUnsafeBytes(of: v) { out += $0 }
        case .float16:
            let v: UInt16 = pick([Float16.nan.bitPattern, Float16.infinity.bitPattern, 0x8000, 0x0001, 0x7BFF, 0x3C00]) { Float16(Float(Int64(bitPattern: next()) % 2000) / 13).bitPattern }
            withUnsafeBytes(of: v) { out += $0 }
        case .bfloat16:
            let v: UInt16 = pick([0x7FC0, 0x7F80, 0x8000, 0x0001, 0x7F7F, 0x3F80]) { ReferenceReduction.bfloat16(Float(Int64(bitPattern: next()) % 100_000) / 13) }
            withUnsafeBytes(of: v) { out += $0 }
        default:
            let bytes = (0..<type.size).map { _ in UInt8(truncatingIfNeeded: next()) }
            out += bytes
        }
    }
    return out
}

/// Equal bit for bit, except that two NaNs of a floating type are equal whatever their payloads.
func sameResult(_ type: DataType, _ x: [UInt8], _ y: [UInt8]) -> Bool {
    guard x.count == y.count else { return false }
    guard type.isFloatingPoint else { return x == y }
    for i in stride(from: 0, to: x.count, by: type.size) {
        let a = Array(x[i..<(i + type.size)]), b = Array(y[i..<(i + type.size)])
        if a == b { continue }
        func isNaN(_ v: [UInt8]) -> Bool {
            v.withUnsafeBytes { raw in
                switch type {
                case .float32: return raw.load(as: Float.self).isNaN
                case .float64: return raw.load(as: Double.self).isNaN
                case .float16: return Float16(bitPattern: raw.load(as: UInt16.self)).isNaN
                default: return ReferenceReduction.widen(raw.load(as: UInt16.self)).isNaN
                }
            }
        }
        if !(isNaN(a) && isNaN(b)) { return false }
    }
    return true
}

@Suite("Reduction kernels", .serialized)
struct ReductionKernelTests {
    // One test per implementation, so the ones this CPU cannot run show as skipped.
    @Test func scalarKernelsMatchTheReference() { check("scalar") }
    @Test(.enabled(if: ReductionKernels.supports("avx2"), "this CPU has no AVX2/F16C/FMA"))
    func avx2KernelsMatchTheReference() { check("avx2") }
    @Test(.enabled(if: ReductionKernels.supports("avx512"), "this CPU has no AVX-512"))
    func avx512KernelsMatchTheReference() { check("avx512") }
    @Test(.enabled(if: ReductionKernels.supports("avx512fp16"), "this CPU has no AVX512-FP16"))
    func avx512fp16KernelsMatchTheReference() { check("avx512fp16") }

    func check(_ implementation: String) {
        #expect(ReductionKernels.force(implementation))
        defer { _ = ReductionKernels.force("avx512fp16") || ReductionKernels.force("avx512") || ReductionKernels.force("avx2") }
        #expect(ReductionKernels.implementation == implementation)
        for type in DataType.allCases {
            for op in ReduceOp.allCases {
                for count in [0, 1, 7, 16, 17, 33, 64, 1000] {
                    let a = sampleBytes(type, count: count, seed: UInt64(count) &* 31 &+ 1)
                    let b = sampleBytes(type, count: count, seed: UInt64(count) &* 17 &+ 2)
                    var expected = [UInt8](repeating: 0, count: a.count)
                    var actual = expected
                    if count > 0 {
                        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in
                            expected.withUnsafeMutableBytes { ReferenceReduction.combine(op, type, count: count, a: pa.baseAddress!, b: pb.baseAddress!, destination: $0.baseAddress!) }
                            actual.withUnsafeMutableBytes { ReductionKernels.reduce(op, type, count: count, a: pa.baseAddress!, b: pb.baseAddress!, into: $0.baseAddress!) }
                        } }
                    }
                    #expect(sameResult(type, actual, expected), "\(implementation) \(type) \(op) count \(count)")
                    // In place: the destination is the first operand, or the second.
                    var first = a, second = b
                    if count > 0 {
                        b.withUnsafeBytes { pb in first.withUnsafeMutableBytes {
                            ReductionKernels.reduce(op, type, count: count, a: $0.baseAddress!, b: pb.baseAddress!, into: $0.baseAddress!)
                        } }
                        a.withUnsafeBytes { pa in second.withUnsafeMutableBytes {
                            ReductionKernels.reduce(op, type, count: count, a: pa.baseAddress!, b: $0.baseAddress!, into: $0.baseAddress!)
                        } }
                    }
                    #expect(sameResult(type, first, expected), "\(implementation) \(type) \(op) count \(count) into a")
                    #expect(sameResult(type, second, expected), "\(implementation) \(type) \(op) count \(count) into b")
                }
            }
        }
    }

    @Test func reducingInPlaceWorks() {
        var a = sampleBytes(.float32, count: 100, seed: 1)
        let b = sampleBytes(.float32, count: 100, seed: 2)
        var expected = a
        a.withUnsafeMutableBytes { pa in b.withUnsafeBytes { pb in
            expected.withUnsafeMutableBytes { ReferenceReduction.combine(.sum, .float32, count: 100, a: pa.baseAddress!, b: pb.baseAddress!, destination: $0.baseAddress!) }
            ReductionKernels.reduce(.sum, .float32, count: 100, a: pa.baseAddress!, b: pb.baseAddress!, into: pa.baseAddress!)
        } }
        #expect(sameResult(.float32, a, expected))
    }

    @Test(arguments: DataType.allCases)
    func divisionMatchesTheReference(_ type: DataType) {
        for divisor in [1, 3, 7, 200, 1000] {
            var x = sampleBytes(type, count: 50, seed: UInt64(divisor))
            var y = x
            x.withUnsafeMutableBytes { ReductionKernels.divide(type, count: 50, buffer: $0.baseAddress!, by: divisor) }
            y.withUnsafeMutableBytes { ReferenceReduction.divide(type, count: 50, buffer: $0.baseAddress!, by: divisor) }
            #expect(sameResult(type, x, y), "\(type) / \(divisor)")
        }
    }
}
