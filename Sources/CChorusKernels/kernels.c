// Reduction kernels for every element type and operation, dispatched once at first use to the
// best instruction set the CPU has.
//
// Why C: Swift has no per-function target attributes, and on the default x86-64 target every
// Float16 conversion is a library call (about 40x slower, see research/swift-feasibility.md).
// Here each variant carries its own target attribute, so one binary runs everywhere and uses
// AVX-512 (and AVX512-FP16 for half precision) where it exists.

#include "CChorusKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CHORUS_X86 1
#else
#define CHORUS_X86 0
#endif

// MARK: - Scalar definitions (also the tail of every vector loop)

static inline float widen_bf16(uint16_t v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Round to nearest-even; NaNs stay NaN with the quiet bit set (as ReferenceReduction does).
static inline uint16_t narrow_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (f != f) return (uint16_t)((bits >> 16) | 0x0040);
    uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
    return (uint16_t)((bits + rounding) >> 16);
}

#define FMIN(x, y) (((x) != (x) || (y) != (y)) ? (__typeof__(x))NAN : ((y) < (x) ? (y) : (x)))
#define FMAX(x, y) (((x) != (x) || (y) != (y)) ? (__typeof__(x))NAN : ((y) > (x) ? (y) : (x)))

static inline float fop(int op, float x, float y) {
    switch (op) {
    case CChorusKernels_prod: return x * y;
    case CChorusKernels_min: return FMIN(x, y);
    case CChorusKernels_max: return FMAX(x, y);
    default: return x + y;
    }
}

static inline double dop(int op, double x, double y) {
    switch (op) {
    case CChorusKernels_prod: return x * y;
    case CChorusKernels_min: return FMIN(x, y);
    case CChorusKernels_max: return FMAX(x, y);
    default: return x + y;
    }
}

// One loop per (type, op) with the operation inlined, so compilers vectorize it. `ATTR` picks
// the instruction set of the variant. The destination may be either operand exactly (in-place
// reduction, the executor's common case) or disjoint from both; never a partial overlap. Each
// case gets its own loop over `restrict` pointers: a single loop over `d`, `a` and `b` would
// fail the compiler's run-time overlap check whenever `d == a` and run scalar.
#define ELEMENTWISE(ATTR, NAME, T, EXPR)                                                                    \
    ATTR static void NAME(T *d, const T *a, const T *b, size_t n) {                                         \
        if (d == a) {                                                                                       \
            T *restrict x = d;                                                                              \
            const T *restrict y = b;                                                                        \
            for (size_t i = 0; i < n; i++) { T A = x[i], B = y[i]; x[i] = (EXPR); }                         \
        } else if (d == b) {                                                                                \
            T *restrict x = d;                                                                              \
            const T *restrict y = a;                                                                        \
            for (size_t i = 0; i < n; i++) { T A = y[i], B = x[i]; x[i] = (EXPR); }                         \
        } else {                                                                                            \
            T *restrict x = d;                                                                              \
            const T *restrict p = a, *restrict q = b;                                                       \
            for (size_t i = 0; i < n; i++) { T A = p[i], B = q[i]; x[i] = (EXPR); }                         \
        }                                                                                                   \
    }

#define INT_LOOPS(ATTR, SUFFIX, T)                                                                          \
    ELEMENTWISE(ATTR, sum_##SUFFIX, T, (T)(A + B))                                                          \
    ELEMENTWISE(ATTR, prod_##SUFFIX, T, (T)(A * B))                                                         \
    ELEMENTWISE(ATTR, min_##SUFFIX, T, B < A ? B : A)                                                       \
    ELEMENTWISE(ATTR, max_##SUFFIX, T, B > A ? B : A)

#define FLOAT_LOOPS(ATTR, SUFFIX, T)                                                                        \
    ELEMENTWISE(ATTR, sum_##SUFFIX, T, A + B)                                                               \
    ELEMENTWISE(ATTR, prod_##SUFFIX, T, A * B)                                                              \
    ELEMENTWISE(ATTR, min_##SUFFIX, T, FMIN(A, B))                                                          \
    ELEMENTWISE(ATTR, max_##SUFFIX, T, FMAX(A, B))

// Unsigned arithmetic for the wrapping integer sum and product (signed overflow is undefined in C).
#define WRAP_LOOPS(ATTR, SUFFIX, T, U)                                                                      \
    ELEMENTWISE(ATTR, sum_##SUFFIX, T, (T)((U)A + (U)B))                                                    \
    ELEMENTWISE(ATTR, prod_##SUFFIX, T, (T)((U)A * (U)B))                                                   \
    ELEMENTWISE(ATTR, min_##SUFFIX, T, B < A ? B : A)                                                       \
    ELEMENTWISE(ATTR, max_##SUFFIX, T, B > A ? B : A)

#define HALF_LOOP(ATTR, SUFFIX, TO_F, FROM_F)                                                               \
    ATTR static void any_##SUFFIX(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {    \
        for (size_t i = 0; i < n; i++) d[i] = FROM_F(fop(op, TO_F(a[i]), TO_F(b[i])));                      \
    }

// Portable half-precision conversions (used by the scalar variant).
static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {  // subnormal: normalize
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000 | (man << 13) | (man ? 0x400000 : 0);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t sign = (bits >> 16) & 0x8000;
    int32_t exp = (int32_t)((bits >> 23) & 0xFF);
    uint32_t man = bits & 0x7FFFFF;
    if (exp == 255) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {  // subnormal or zero: shift with round-to-nearest-even
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rest = man & ((1u << shift) - 1), tie = 1u << (shift - 1);
        if (rest > tie || (rest == tie && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)(e << 10) | (man >> 13), rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;  // may carry into the exponent: correct
    return (uint16_t)(sign | half);
}

// MARK: - Variants

#define SCALAR_ATTR
FLOAT_LOOPS(SCALAR_ATTR, f32_scalar, float)
FLOAT_LOOPS(SCALAR_ATTR, f64_scalar, double)
WRAP_LOOPS(SCALAR_ATTR, i8_scalar, int8_t, uint8_t)
INT_LOOPS(SCALAR_ATTR, u8_scalar, uint8_t)
WRAP_LOOPS(SCALAR_ATTR, i32_scalar, int32_t, uint32_t)
INT_LOOPS(SCALAR_ATTR, u32_scalar, uint32_t)
WRAP_LOOPS(SCALAR_ATTR, i64_scalar, int64_t, uint64_t)
INT_LOOPS(SCALAR_ATTR, u64_scalar, uint64_t)
HALF_LOOP(SCALAR_ATTR, f16_scalar, f16_to_f32, f32_to_f16)
HALF_LOOP(SCALAR_ATTR, bf16_scalar, widen_bf16, narrow_bf16)

#if CHORUS_X86
#define AVX2_ATTR __attribute__((target("avx2,f16c,fma")))
FLOAT_LOOPS(AVX2_ATTR, f32_avx2, float)
FLOAT_LOOPS(AVX2_ATTR, f64_avx2, double)
WRAP_LOOPS(AVX2_ATTR, i8_avx2, int8_t, uint8_t)
INT_LOOPS(AVX2_ATTR, u8_avx2, uint8_t)
WRAP_LOOPS(AVX2_ATTR, i32_avx2, int32_t, uint32_t)
INT_LOOPS(AVX2_ATTR, u32_avx2, uint32_t)
WRAP_LOOPS(AVX2_ATTR, i64_avx2, int64_t, uint64_t)
INT_LOOPS(AVX2_ATTR, u64_avx2, uint64_t)

#define AVX512_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,fma")))
FLOAT_LOOPS(AVX512_ATTR, f32_avx512, float)
FLOAT_LOOPS(AVX512_ATTR, f64_avx512, double)
WRAP_LOOPS(AVX512_ATTR, i8_avx512, int8_t, uint8_t)
INT_LOOPS(AVX512_ATTR, u8_avx512, uint8_t)
WRAP_LOOPS(AVX512_ATTR, i32_avx512, int32_t, uint32_t)
INT_LOOPS(AVX512_ATTR, u32_avx512, uint32_t)
WRAP_LOOPS(AVX512_ATTR, i64_avx512, int64_t, uint64_t)
INT_LOOPS(AVX512_ATTR, u64_avx512, uint64_t)

#define ALWAYS_INLINE inline __attribute__((always_inline))

// `op` is a constant at every call site below, so each op gets its own loop with no branch inside.
AVX2_ATTR static ALWAYS_INLINE __m256 combine_avx2(int op, __m256 x, __m256 y) {
    const __m256 qnan = _mm256_set1_ps(NAN);
    switch (op) {
    case CChorusKernels_prod: return _mm256_mul_ps(x, y);
    case CChorusKernels_min: {
        __m256 unordered = _mm256_cmp_ps(x, y, _CMP_UNORD_Q);
        return _mm256_blendv_ps(_mm256_blendv_ps(x, y, _mm256_cmp_ps(y, x, _CMP_LT_OQ)), qnan, unordered);
    }
    case CChorusKernels_max: {
        __m256 unordered = _mm256_cmp_ps(x, y, _CMP_UNORD_Q);
        return _mm256_blendv_ps(_mm256_blendv_ps(x, y, _mm256_cmp_ps(y, x, _CMP_GT_OQ)), qnan, unordered);
    }
    default: return _mm256_add_ps(x, y);
    }
}

#define SPECIALIZE_OPS(BODY, op, d, a, b, n)                                     \
    switch (op) {                                                                \
    case CChorusKernels_prod: BODY(CChorusKernels_prod, d, a, b, n); break;      \
    case CChorusKernels_min: BODY(CChorusKernels_min, d, a, b, n); break;        \
    case CChorusKernels_max: BODY(CChorusKernels_max, d, a, b, n); break;        \
    default: BODY(CChorusKernels_sum, d, a, b, n); break;                        \
    }

AVX2_ATTR static ALWAYS_INLINE void f16_avx2_body(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    size_t i = 0;
    // Two vectors per step: independent conversions overlap in the pipeline.
    for (; i + 16 <= n; i += 16) {
        __m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 y0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        __m256 y1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8)));
        __m128i r0 = _mm256_cvtps_ph(combine_avx2(op, x0, y0), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m128i r1 = _mm256_cvtps_ph(combine_avx2(op, x1, y1), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(d + i), r0);
        _mm_storeu_si128((__m128i *)(d + i + 8), r1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(combine_avx2(op, x, y), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = f32_to_f16(fop(op, f16_to_f32(a[i]), f16_to_f32(b[i])));
}

// Half precision through f32, 8 lanes at a time (F16C); conversions round to nearest-even, as
// the reference does.
AVX2_ATTR static void any_f16_avx2(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    SPECIALIZE_OPS(f16_avx2_body, op, d, a, b, n)
}

// Rounds eight f32 to bfloat16 bit patterns (nearest-even; NaN stays NaN, quieted), one per
// 32-bit lane, exactly as narrow_bf16.
AVX2_ATTR static ALWAYS_INLINE __m256i narrow_bf16_avx2(__m256 r) {
    const __m256i roundBias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
    __m256i bits = _mm256_castps_si256(r);
    __m256i high = _mm256_srli_epi32(bits, 16);
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(roundBias, _mm256_and_si256(high, one))), 16);
    __m256i nanBits = _mm256_or_si256(high, quiet);
    __m256i isNaN = _mm256_castps_si256(_mm256_cmp_ps(r, r, _CMP_UNORD_Q));
    return _mm256_blendv_epi8(rounded, nanBits, isNaN);
}

AVX2_ATTR static ALWAYS_INLINE void bf16_avx2_body(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    size_t i = 0;
    const __m256i zero = _mm256_setzero_si256();
    for (; i + 16 <= n; i += 16) {
        // Interleaving with zero puts each bfloat16 in the high half of a 32-bit lane: that is its
        // f32 value. unpacklo/hi take elements 0-3 and 4-7 of each 128-bit half, and packus
        // (also per half) puts them back in the same order, so no cross-lane shuffle is needed.
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + i));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(b + i));
        __m256 alo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, va));
        __m256 ahi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, va));
        __m256 blo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, vb));
        __m256 bhi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, vb));
        __m256i lo = narrow_bf16_avx2(combine_avx2(op, alo, blo));
        __m256i hi = narrow_bf16_avx2(combine_avx2(op, ahi, bhi));
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_packus_epi32(lo, hi));
    }
    for (; i < n; i++) d[i] = narrow_bf16(fop(op, widen_bf16(a[i]), widen_bf16(b[i])));
}

// bfloat16: widen by shifting, combine in f32, round with the integer sequence of narrow_bf16.
AVX2_ATTR static void any_bf16_avx2(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    SPECIALIZE_OPS(bf16_avx2_body, op, d, a, b, n)
}

// The AVX-512 forms of combine_avx2 and the half-precision loops (`op` constant per call site).
AVX512_ATTR static ALWAYS_INLINE __m512 combine_avx512(int op, __m512 x, __m512 y) {
    const __m512 qnan = _mm512_set1_ps(NAN);
    switch (op) {
    case CChorusKernels_prod: return _mm512_mul_ps(x, y);
    case CChorusKernels_min: {
        __mmask16 unordered = _mm512_cmp_ps_mask(x, y, _CMP_UNORD_Q);
        return _mm512_mask_blend_ps(unordered, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, x, _CMP_LT_OQ), x, y), qnan);
    }
    case CChorusKernels_max: {
        __mmask16 unordered = _mm512_cmp_ps_mask(x, y, _CMP_UNORD_Q);
        return _mm512_mask_blend_ps(unordered, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, x, _CMP_GT_OQ), x, y), qnan);
    }
    default: return _mm512_add_ps(x, y);
    }
}

// Half precision through f32, 16 lanes at a time.
AVX512_ATTR static ALWAYS_INLINE void f16_avx512_body(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512 y = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i)));
        _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtps_ph(combine_avx512(op, x, y), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = f32_to_f16(fop(op, f16_to_f32(a[i]), f16_to_f32(b[i])));
}

AVX512_ATTR static void any_f16_avx512(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    SPECIALIZE_OPS(f16_avx512_body, op, d, a, b, n)
}

// bfloat16: widen by shifting, combine in f32, round with the integer sequence of narrow_bf16
// (the AVX512-BF16 conversion treats denormals as zero, which the reference does not).
AVX512_ATTR static ALWAYS_INLINE void bf16_avx512_body(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    size_t i = 0;
    const __m512i roundBias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + i))), 16));
        __m512 y = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + i))), 16));
        __m512 r = combine_avx512(op, x, y);
        __m512i bits = _mm512_castps_si512(r);
        __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(roundBias, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one))), 16);
        __m512i nanBits = _mm512_or_si512(_mm512_srli_epi32(bits, 16), quiet);
        __mmask16 isNaN = _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
        __m512i result = _mm512_mask_blend_epi32(isNaN, rounded, nanBits);
        _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtepi32_epi16(result));
    }
    for (; i < n; i++) d[i] = narrow_bf16(fop(op, widen_bf16(a[i]), widen_bf16(b[i])));
}

AVX512_ATTR static void any_bf16_avx512(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    SPECIALIZE_OPS(bf16_avx512_body, op, d, a, b, n)
}

// Native half precision (AVX512-FP16): the sum or product of two halves is exact in f32, so
// rounding it once to half equals the f32 route bit for bit.
#define FP16_ATTR __attribute__((target("avx512fp16,avx512f,avx512bw,avx512vl,avx512dq")))
FP16_ATTR static void any_f16_fp16(int op, uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n) {
    if (op == CChorusKernels_min || op == CChorusKernels_max) {
        any_f16_avx512(op, d, a, b, n);
        return;
    }
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512h x = _mm512_castsi512_ph(_mm512_loadu_si512((const void *)(a + i)));
        __m512h y = _mm512_castsi512_ph(_mm512_loadu_si512((const void *)(b + i)));
        __m512h r = op == CChorusKernels_prod ? _mm512_mul_ph(x, y) : _mm512_add_ph(x, y);
        _mm512_storeu_si512((void *)(d + i), _mm512_castph_si512(r));
    }
    for (; i < n; i++) d[i] = f32_to_f16(fop(op, f16_to_f32(a[i]), f16_to_f32(b[i])));
}
#endif

// MARK: - Dispatch

typedef void (*binary_fn)(void *, const void *, const void *, size_t);
typedef void (*half_fn)(int, uint16_t *, const uint16_t *, const uint16_t *, size_t);

static struct {
    binary_fn table[10][4];  // [type][sum, prod, min, max]; half types use `half`
    half_fn half[2];         // f16, bf16
    const char *name;
    int ready;
} dispatch;

#define FILL(T_INDEX, SUFFIX)                                              \
    dispatch.table[T_INDEX][0] = (binary_fn)sum_##SUFFIX;                  \
    dispatch.table[T_INDEX][1] = (binary_fn)prod_##SUFFIX;                 \
    dispatch.table[T_INDEX][2] = (binary_fn)min_##SUFFIX;                  \
    dispatch.table[T_INDEX][3] = (binary_fn)max_##SUFFIX;

#define FILL_ALL(V)                                                        \
    FILL(CChorusKernels_f32, f32_##V) FILL(CChorusKernels_f64, f64_##V)   \
    FILL(CChorusKernels_i8, i8_##V) FILL(CChorusKernels_u8, u8_##V)       \
    FILL(CChorusKernels_i32, i32_##V) FILL(CChorusKernels_u32, u32_##V)   \
    FILL(CChorusKernels_i64, i64_##V) FILL(CChorusKernels_u64, u64_##V)

static void choose_level(int level);

static void choose(void) { choose_level(3); }

// Levels: 0 scalar, 1 avx2, 2 avx512, 3 avx512fp16 (the best the CPU has, up to `level`).
static void choose_level(int level) {
    FILL_ALL(scalar)
    dispatch.half[0] = any_f16_scalar;
    dispatch.half[1] = any_bf16_scalar;
    dispatch.name = "scalar";
#if CHORUS_X86
    __builtin_cpu_init();
    if (level >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma")) {
        FILL_ALL(avx2)
        dispatch.half[0] = any_f16_avx2;
        dispatch.half[1] = any_bf16_avx2;
        dispatch.name = "avx2";
    }
    if (level >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq")) {
        FILL_ALL(avx512)
        dispatch.half[0] = any_f16_avx512;
        dispatch.half[1] = any_bf16_avx512;
        dispatch.name = "avx512";
        if (level >= 3 && __builtin_cpu_supports("avx512fp16")) {
            dispatch.half[0] = any_f16_fp16;
            dispatch.name = "avx512fp16";
        }
    }
#endif
    __atomic_store_n(&dispatch.ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_ready(void) {
    // Racing first calls may both fill the table; they write the same values.
    if (!__atomic_load_n(&dispatch.ready, __ATOMIC_ACQUIRE)) choose();
}

void CChorusKernels_reduce(int op, int type, void *dst, const void *a, const void *b, size_t count) {
    ensure_ready();
    int o = op == CChorusKernels_avg ? CChorusKernels_sum : op;
    if (type == CChorusKernels_f16 || type == CChorusKernels_bf16) {
        dispatch.half[type == CChorusKernels_f16 ? 0 : 1](o, (uint16_t *)dst, (const uint16_t *)a, (const uint16_t *)b, count);
        return;
    }
    dispatch.table[type][o](dst, a, b, count);
}

void CChorusKernels_divide(int type, void *buffer, size_t count, int64_t divisor) {
    switch (type) {
    case CChorusKernels_f32: { float *p = buffer; for (size_t i = 0; i < count; i++) p[i] /= (float)divisor; break; }
    case CChorusKernels_f64: { double *p = buffer; for (size_t i = 0; i < count; i++) p[i] /= (double)divisor; break; }
    case CChorusKernels_f16: { uint16_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = f32_to_f16(f16_to_f32(p[i]) / (float)divisor); break; }
    case CChorusKernels_bf16: { uint16_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = narrow_bf16(widen_bf16(p[i]) / (float)divisor); break; }
    // Integers divide in 64 bits, so a rank count beyond the type's range still divides correctly.
    case CChorusKernels_i8: { int8_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = (int8_t)((int64_t)p[i] / divisor); break; }
    case CChorusKernels_u8: { uint8_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = (uint8_t)((int64_t)p[i] / divisor); break; }
    case CChorusKernels_i32: { int32_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = (int32_t)((int64_t)p[i] / divisor); break; }
    case CChorusKernels_u32: { uint32_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = (uint32_t)((int64_t)p[i] / divisor); break; }
    case CChorusKernels_i64: { int64_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = p[i] / divisor; break; }
    case CChorusKernels_u64: { uint64_t *p = buffer; for (size_t i = 0; i < count; i++) p[i] = p[i] / (uint64_t)divisor; break; }
    }
}

int CChorusKernels_supports(const char *name) {
#if CHORUS_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
                 && __builtin_cpu_supports("avx512dq");
    if (strcmp(name, "avx2") == 0) return avx2;
    if (strcmp(name, "avx512") == 0) return avx512;
    if (strcmp(name, "avx512fp16") == 0) return avx512 && __builtin_cpu_supports("avx512fp16");
#endif
    return strcmp(name, "scalar") == 0;
}

int CChorusKernels_force(const char *name) {
    int level = strcmp(name, "scalar") == 0 ? 0 : strcmp(name, "avx2") == 0 ? 1 : strcmp(name, "avx512") == 0 ? 2
              : strcmp(name, "avx512fp16") == 0 ? 3 : -1;
    if (level < 0) return 0;
    choose_level(level);
    return strcmp(dispatch.name, name) == 0;
}

const char *CChorusKernels_implementation(void) {
    ensure_ready();
    return dispatch.name;
}

// MARK: - Streaming copy

#define STREAMING_THRESHOLD (64u << 10)

#if CHORUS_X86
AVX2_ATTR static void copy_streaming_avx2(void *dst, const void *src, size_t count) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    size_t head = (32 - ((uintptr_t)d & 31)) & 31;
    memcpy(d, s, head);
    d += head; s += head; count -= head;
    size_t i = 0;
    for (; i + 128 <= count; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(s + i + 64));
        __m256i e = _mm256_loadu_si256((const __m256i *)(s + i + 96));
        _mm256_stream_si256((__m256i *)(d + i), a);
        _mm256_stream_si256((__m256i *)(d + i + 32), b);
        _mm256_stream_si256((__m256i *)(d + i + 64), c);
        _mm256_stream_si256((__m256i *)(d + i + 96), e);
    }
    _mm_sfence();
    memcpy(d + i, s + i, count - i);
}
#endif

#if CHORUS_X86
/* One pass over the source, two destinations: `second` with non-temporal stores, `first` with
   ordinary ones or (STREAM_FIRST) non-temporal ones too. The second is aligned to 32 bytes
   (non-temporal stores need it); the caller makes the two equally aligned, so the first's
   stores do not straddle cache lines (and, streamed, are aligned too). */
#define COPY_TWICE(NAME, STORE_FIRST)                                                          \
    AVX2_ATTR static void NAME(void *first, void *second, const void *src, size_t count) {   \
        unsigned char *c = (unsigned char *)first, *d = (unsigned char *)second;              \
        const unsigned char *s = (const unsigned char *)src;                                  \
        size_t head = (32 - ((uintptr_t)d & 31)) & 31;                                        \
        memcpy(c, s, head);                                                                   \
        memcpy(d, s, head);                                                                   \
        c += head; d += head; s += head; count -= head;                                       \
        size_t i = 0;                                                                         \
        for (; i + 128 <= count; i += 128) {                                                  \
            __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));                         \
            __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));                    \
            __m256i e = _mm256_loadu_si256((const __m256i *)(s + i + 64));                    \
            __m256i f = _mm256_loadu_si256((const __m256i *)(s + i + 96));                    \
            STORE_FIRST((__m256i *)(c + i), a);                                               \
            STORE_FIRST((__m256i *)(c + i + 32), b);                                          \
            STORE_FIRST((__m256i *)(c + i + 64), e);                                          \
            STORE_FIRST((__m256i *)(c + i + 96), f);                                          \
            _mm256_stream_si256((__m256i *)(d + i), a);                                       \
            _mm256_stream_si256((__m256i *)(d + i + 32), b);                                  \
            _mm256_stream_si256((__m256i *)(d + i + 64), e);                                  \
            _mm256_stream_si256((__m256i *)(d + i + 96), f);                                  \
        }                                                                                     \
        _mm_sfence();                                                                         \
        memcpy(c + i, s + i, count - i);                                                      \
        memcpy(d + i, s + i, count - i);                                                      \
    }
COPY_TWICE(copy_twice_cached_avx2, _mm256_storeu_si256)
COPY_TWICE(copy_twice_streamed_avx2, _mm256_stream_si256)

static int has_avx2(void) {
    static int avx2 = -1;
    if (avx2 < 0) {
        __builtin_cpu_init();
        avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return avx2;
}
#endif

void CChorusKernels_copy_streaming(void *dst, const void *src, size_t count) {
#if CHORUS_X86
    if (count >= STREAMING_THRESHOLD && has_avx2()) {
        copy_streaming_avx2(dst, src, count);
        return;
    }
#endif
    memcpy(dst, src, count);
}

void CChorusKernels_copy_twice(void *first, void *second, const void *src, size_t count, int first_streaming) {
#if CHORUS_X86
    int aligned_alike = (((uintptr_t)first - (uintptr_t)second) & 31) == 0;
    if (count >= STREAMING_THRESHOLD && has_avx2() && (aligned_alike || !first_streaming)) {
        if (first_streaming) copy_twice_streamed_avx2(first, second, src, count);
        else copy_twice_cached_avx2(first, second, src, count);
        return;
    }
#endif
    if (first_streaming) CChorusKernels_copy_streaming(first, src, count);
    else memcpy(first, src, count);
    CChorusKernels_copy_streaming(second, src, count);
}
