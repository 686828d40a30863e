#include "CBaselineLoops.h"
#include <string.h>

void baseline_add_f32(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

void baseline_add_f16(uint16_t *a, const uint16_t *b, size_t n) {
    _Float16 *x = (_Float16 *)a;
    const _Float16 *y = (const _Float16 *)b;
    for (size_t i = 0; i < n; i++) x[i] = (_Float16)((float)x[i] + (float)y[i]);
}

static inline float widen(uint16_t v) {
    union { uint32_t u; float f; } c = { .u = (uint32_t)v << 16 };
    return c.f;
}

static inline uint16_t narrow(float f) {
    union { uint32_t u; float f; } c = { .f = f };
    uint32_t rounding = 0x7FFF + ((c.u >> 16) & 1);   // round to nearest even (NaN not special-cased)
    return (uint16_t)((c.u + rounding) >> 16);
}

void baseline_add_bf16(uint16_t *a, const uint16_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = narrow(widen(a[i]) + widen(b[i]));
}

void baseline_copy(void *to, const void *from, size_t n) { memcpy(to, from, n); }
