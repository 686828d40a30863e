#ifndef CCHORUS_KERNELS_H
#define CCHORUS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Element types, in the order of ChorusCore's `DataType` cases.
enum CChorusKernels_Type {
    CChorusKernels_f32 = 0, CChorusKernels_f64, CChorusKernels_f16, CChorusKernels_bf16,
    CChorusKernels_i8, CChorusKernels_u8, CChorusKernels_i32, CChorusKernels_u32,
    CChorusKernels_i64, CChorusKernels_u64,
};

/// Operations, in the order of ChorusCore's `ReduceOp` cases (avg reduces as sum).
enum CChorusKernels_Op {
    CChorusKernels_sum = 0, CChorusKernels_prod, CChorusKernels_min, CChorusKernels_max, CChorusKernels_avg,
};

/// `dst[i] = a[i] ⊕ b[i]` for `count` elements. `dst` may be `a` or `b`.
///
/// Semantics match ChorusSchedule's ReferenceReduction: f16 and bf16 combine in f32 and round to
/// nearest-even; min and max return NaN when either operand is NaN; integers wrap.
void CChorusKernels_reduce(int op, int type, void *dst, const void *a, const void *b, size_t count);

/// Copies `count` bytes into memory that will not be read again soon (a collective's output):
/// large copies use non-temporal stores where the CPU has them, so writing the destination
/// does not first read it into the cache (a plain copy of a buffer larger than the cache
/// moves three bytes for every two). Small copies are plain `memcpy`. The ranges must not
/// overlap.
void CChorusKernels_copy_streaming(void *dst, const void *src, size_t count);

/// Copies `count` bytes into two places, reading the source once: into `second` as
/// `CChorusKernels_copy_streaming` does, and into `first` with ordinary stores (it is read again
/// soon, such as a fragment in a shared-memory ring) or, when `first_streaming`, the same way as
/// `second`. Fastest when the two destinations lie at the same offset within a cache line. No
/// two of the ranges may overlap.
void CChorusKernels_copy_twice(void *first, void *second, const void *src, size_t count, int first_streaming);

/// `buffer[i] /= divisor` (the end of avg; integers truncate toward zero).
void CChorusKernels_divide(int type, void *buffer, size_t count, int64_t divisor);

/// Which implementation the CPU dispatch chose: "avx512fp16", "avx512", "avx2", or "scalar".
const char *CChorusKernels_implementation(void);

/// Whether this CPU can run an implementation ("scalar", "avx2", "avx512", "avx512fp16").
int CChorusKernels_supports(const char *name);

/// Forces an implementation ("scalar", "avx2", "avx512", "avx512fp16") for tests; returns 0 if
/// the CPU cannot run it (the choice is then left as it was).
int CChorusKernels_force(const char *name);

#endif
