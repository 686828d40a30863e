/*
 * Times all-reduce through the C API the way `chorus bench` times it through the Swift API
 * (warm-up, then the mean time per call on each rank, averaged over ranks), so the two can be
 * compared side by side:
 *
 *   chorus run -n 2 -- ./latency 8 20000        # bytes, iterations
 *   chorus bench --ranks 2 -b 8 -e 8 -n 20000 -w 1000 -c 0
 */
#define _POSIX_C_SOURCE 199309L
#include <chorus.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char** argv) {
    size_t bytes = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 8;
    int iterations = argc > 2 ? atoi(argv[2]) : 1000;
    int warmup = iterations / 20 > 5 ? iterations / 20 : 5;
    size_t count = bytes / sizeof(float) > 0 ? bytes / sizeof(float) : 1;
    chorusComm_t comm;
    if (chorusCommInitFromEnv(&comm) != chorusSuccess) {
        fprintf(stderr, "init: %s\n", chorusGetLastError());
        return 1;
    }
    int rank = 0, size = 1;
    chorusCommUserRank(comm, &rank);
    chorusCommCount(comm, &size);
    float* in = calloc(count, sizeof(float));
    float* out = calloc(count, sizeof(float));
    if (in == NULL || out == NULL) return 1;
    for (size_t i = 0; i < count; i++) in[i] = out[i] = 1.0f;  /* touch every page, as chorus bench does */
    for (int i = 0; i < warmup; i++) chorusAllReduce(in, out, count, chorusFloat32, chorusSum, comm);
    chorusBarrier(comm);
    double start = now_us();
    for (int i = 0; i < iterations; i++) {
        if (chorusAllReduce(in, out, count, chorusFloat32, chorusSum, comm) != chorusSuccess) {
            fprintf(stderr, "all-reduce: %s\n", chorusGetLastError());
            return 1;
        }
    }
    double mean[1] = {(now_us() - start) / iterations};
    chorusAllReduce(mean, mean, 1, chorusFloat64, chorusAvg, comm);
    if (rank == 0) {
        double algbw = (double)(count * sizeof(float)) / mean[0] / 1e3;
        printf("C API all-reduce %zu B, %d ranks: %.2f us per call, busbw %.2f GB/s\n", count * sizeof(float), size, mean[0],
               algbw * 2.0 * (size - 1) / size);
    }
    chorusCommDestroy(comm);
    free(in);
    free(out);
    return 0;
}
