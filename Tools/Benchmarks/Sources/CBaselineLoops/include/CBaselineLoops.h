#ifndef CBASELINE_LOOPS_H
#define CBASELINE_LOOPS_H
#include <stddef.h>
#include <stdint.h>

// Plain `a[i] += b[i]` loops, built with -O3 -march=native: the yardstick the reduction
// kernels are measured against.
void baseline_add_f32(float *a, const float *b, size_t n);
void baseline_add_f16(uint16_t *a, const uint16_t *b, size_t n);
void baseline_add_bf16(uint16_t *a, const uint16_t *b, size_t n);
// memcpy of n bytes (what one core can move: the bandwidth ceiling of any kernel here).
void baseline_copy(void *to, const void *from, size_t n);

// Pins the calling thread to one CPU (latency benchmarks keep their two ranks apart); 0 on success.
int bench_pin_to_cpu(int cpu);

#endif
