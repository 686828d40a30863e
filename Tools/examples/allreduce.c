/*
 * A C program that links libChorusC and all-reduces across ranks started by a launcher:
 *
 *   cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags chorus) allreduce.c \
 *      $(pkg-config --libs chorus) -o allreduce
 *   chorus run -n 4 -- ./allreduce
 *
 * Each rank fills a buffer with (rank + 1) and i, sums it across ranks in place and out of
 * place, checks every element, and exits 0 only if all are right. It also shows error
 * handling: a call with a null buffer returns chorusInvalidArgument with a message.
 */
#include <chorus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                               \
    do {                                                                                          \
        chorusResult_t r_ = (call);                                                               \
        if (r_ != chorusSuccess) {                                                                \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, chorusGetErrorString(r_), chorusGetLastError()); \
            return 1;                                                                             \
        }                                                                                         \
    } while (0)

int main(int argc, char** argv) {
    size_t count = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000003; /* a prime: uneven chunks */
    chorusComm_t comm;
    CHECK(chorusCommInitFromEnv(&comm));
    int rank = 0, size = 0, version = 0;
    CHECK(chorusCommUserRank(comm, &rank));
    CHECK(chorusCommCount(comm, &size));
    CHECK(chorusGetVersion(&version));

    float* in = malloc(count * sizeof(float));
    float* out = malloc(count * sizeof(float));
    if (in == NULL || out == NULL) return 1;
    for (size_t i = 0; i < count; i++) in[i] = (float)(rank + 1) + (float)(i % 1000);

    CHECK(chorusAllReduce(in, out, count, chorusFloat32, chorusSum, comm));
    CHECK(chorusAllReduce(in, in, count, chorusFloat32, chorusSum, comm)); /* in place */
    long wrong = 0;
    float ranksum = (float)size * (float)(size + 1) / 2.0f;
    for (size_t i = 0; i < count; i++) {
        float expected = ranksum + (float)size * (float)(i % 1000);
        if (out[i] != expected || in[i] != expected) wrong++;
    }

    /* Errors come back as codes with a message; nothing crashes. */
    chorusResult_t bad = chorusAllReduce(NULL, out, count, chorusFloat32, chorusSum, comm);
    if (bad != chorusInvalidArgument || strlen(chorusGetLastError()) == 0) wrong++;

    CHECK(chorusBarrier(comm));
    CHECK(chorusCommDestroy(comm));
    if (rank == 0) {
        printf("chorus %d.%d.%d: all-reduce of %zu floats over %d ranks: %s\n", version / 10000, version / 100 % 100,
               version % 100, count, size, wrong == 0 ? "correct" : "WRONG");
    }
    free(in);
    free(out);
    return wrong == 0 ? 0 : 1;
}
