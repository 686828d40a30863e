// The memory system's limit for the copies a 2-rank shared-memory all-gather makes: one thread
// per core, each copying 128 MiB the ways a rank does (plain copies into a 256 KiB buffer that
// stays in cache, non-temporal copies out of it into a large output, with Chorus's own
// streaming-copy kernel), alone and on both cores at once. The last pattern is the all-gather
// from shared buffers: each thread copies its own input and then the other thread's straight
// into its 256 MiB output. Then the exchange itself: each thread writes its input into a
// 1 MiB ring of four 256 KiB slots (with the carried copy into its output, in one pass) while
// the other copies the filled slots out into its output, the two synchronised slot by slot as
// the transport's rings are, taking turns at a whole ring at a time or at most two slots each
// way. Build and run from this folder:
//   gcc -O2 -pthread -I ../../../Sources/CChorusKernels/include copy_limit.c
//       ../../../Sources/CChorusKernels/kernels.c -lm -o copy_limit && ./copy_limit
// (one command).
#include "CChorusKernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIG (128ul << 20)
#define PIECE (256ul << 10)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct worker { char *input, *output, *piece, *other; int pattern; double best; };

static const char *names[] = {
    "input -> output, non-temporal",
    "input -> piece",
    "piece -> output, non-temporal",
    "input -> piece -> output (a send with its local copy)",
    "own input, then the other's, -> output (shared buffers)",
};

#define SLOTS 4

/* Slot counters of the exchange: filled[i] counts the slots thread i has written into its
   ring, emptied[i] those the other thread has copied out of it. */
static _Alignas(64) atomic_long filled[2][8], emptied[2][8];
static pthread_barrier_t turn;
struct exchanger { char *input, *output, *ring, *other_ring; int me, per_turn; double best; };

static void *exchange(void *p) {
    struct exchanger *x = p;
    long fragments = BIG / PIECE;
    char *own_block = x->output + x->me * BIG, *other_block = x->output + (1 - x->me) * BIG;
    x->best = 1e9;
    for (int round = 0; round < 5; round++) {
        atomic_store(&filled[x->me][0], 0);
        atomic_store(&emptied[x->me][0], 0);
        pthread_barrier_wait(&turn);
        double t0 = now();
        long written = 0, read = 0;
        while (written < fragments || read < fragments) {
            for (int k = 0; k < x->per_turn && written < fragments
                 && written - atomic_load_explicit(&emptied[x->me][0], memory_order_acquire) < SLOTS; k++) {
                CChorusKernels_copy_twice(x->ring + written % SLOTS * PIECE, own_block + written * PIECE,
                                          x->input + written * PIECE, PIECE, 0);
                atomic_store_explicit(&filled[x->me][0], ++written, memory_order_release);
            }
            for (int k = 0; k < x->per_turn && read < fragments
                 && read < atomic_load_explicit(&filled[1 - x->me][0], memory_order_acquire); k++) {
                CChorusKernels_copy_streaming(other_block + read * PIECE, x->other_ring + read % SLOTS * PIECE, PIECE);
                atomic_store_explicit(&emptied[1 - x->me][0], ++read, memory_order_release);
            }
        }
        double t = now() - t0;
        pthread_barrier_wait(&turn);
        if (t < x->best) x->best = t;
    }
    return NULL;
}

static void *run(void *p) {
    struct worker *w = p;
    w->best = 1e9;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (size_t o = 0; o < BIG; o += PIECE) {
            switch (w->pattern) {
            case 0: CChorusKernels_copy_streaming(w->output + o, w->input + o, PIECE); break;
            case 1: memcpy(w->piece, w->input + o, PIECE); break;
            case 2: CChorusKernels_copy_streaming(w->output + o, w->piece, PIECE); break;
            case 3: memcpy(w->piece, w->input + o, PIECE); CChorusKernels_copy_streaming(w->output + o, w->piece, PIECE); break;
            }
        }
        if (w->pattern == 4) {
            CChorusKernels_copy_streaming(w->output, w->input, BIG);
            CChorusKernels_copy_streaming(w->output + BIG, w->other, BIG);
        }
        double t = now() - t0;
        if (t < w->best) w->best = t;
    }
    return NULL;
}

int main(void) {
    struct worker w[2];
    for (int i = 0; i < 2; i++) {
        w[i].input = aligned_alloc(4096, BIG);
        w[i].output = aligned_alloc(4096, 2 * BIG);
        w[i].piece = aligned_alloc(4096, PIECE);
        memset(w[i].input, 1, BIG);
        memset(w[i].output, 2, 2 * BIG);
        memset(w[i].piece, 3, PIECE);
    }
    w[0].other = w[1].input;
    w[1].other = w[0].input;
    printf("128 MiB per thread (twice for the last), best of 5\n");
    for (int pattern = 0; pattern < 5; pattern++) {
        w[0].pattern = pattern;
        run(&w[0]);
        double alone = w[0].best;
        pthread_t threads[2];
        for (int i = 0; i < 2; i++) {
            w[i].pattern = pattern;
            pthread_create(&threads[i], NULL, run, &w[i]);
        }
        for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
        printf("%-55s one core %6.2f ms | both cores %6.2f ms each\n", names[pattern], alone * 1e3, (w[0].best + w[1].best) / 2 * 1e3);
    }
    struct exchanger x[2];
    char *rings = aligned_alloc(4096, 2 * SLOTS * PIECE);
    memset(rings, 4, 2 * SLOTS * PIECE);
    pthread_barrier_init(&turn, NULL, 2);
    for (int per_turn = 2; per_turn <= SLOTS; per_turn += SLOTS - 2) {
        pthread_t threads[2];
        for (int i = 0; i < 2; i++) {
            x[i] = (struct exchanger){ w[i].input, w[i].output, rings + i * SLOTS * PIECE, rings + (1 - i) * SLOTS * PIECE, i, per_turn, 0 };
            pthread_create(&threads[i], NULL, exchange, &x[i]);
        }
        for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
        double slower = x[0].best > x[1].best ? x[0].best : x[1].best;
        printf("exchange through rings, %d slots a turn %*s both cores %6.2f ms (all-gather busbw %.2f GB/s)\n",
               per_turn, 20, "", slower * 1e3, BIG / slower / 1e9);
    }
    return 0;
}
