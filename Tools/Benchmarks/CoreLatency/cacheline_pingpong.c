// How fast this host moves a cache line between two cores: two processes pinned to CPUs 0
// and 1 take turns writing a counter in shared memory, each in its own cache line, and the
// other spins until it sees the new value. Prints the mean round trip in nanoseconds.
//
// Chorus's shared-memory transport is bound by the same hand-over (a small message is one
// cache line written by one core and read by the other), so this is the floor under an
// 8-byte all-reduce, and on a shared VM it changes from minute to minute.
//
//   cc -O2 -o cacheline_pingpong cacheline_pingpong.c && ./cacheline_pingpong [round trips]
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity (running unpinned)");
}

// Spins until *word holds value; gives up (returns 0) after about 5 s so a lost peer cannot
// hang the caller.
static int await(_Atomic long *word, long value) {
    double start = 0;
    for (unsigned long spins = 0;; spins++) {
        if (atomic_load_explicit(word, memory_order_acquire) == value) return 1;
        if ((spins & 0xfffff) == 0xfffff) {
            if (start == 0) start = seconds();
            else if (seconds() - start > 5) return 0;
        }
    }
}

int main(int argc, char **argv) {
    long trips = argc > 1 ? atol(argv[1]) : 1000000;
    if (trips < 1 || trips > 1000000000L) {
        fprintf(stderr, "cacheline_pingpong: round trips must be 1 to 1e9, got %s\n", argv[1]);
        return 2;
    }
    _Atomic long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 1; }
    _Atomic long *ping = shared, *pong = shared + 8;   // 64 bytes apart: one cache line each
    atomic_store(ping, 0);
    atomic_store(pong, 0);
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        pin(1);
        for (long i = 1; i <= trips; i++) {
            if (!await(ping, i)) _exit(1);
            atomic_store_explicit(pong, i, memory_order_release);
        }
        _exit(0);
    }
    pin(0);
    double start = seconds();
    int ok = 1;
    for (long i = 1; i <= trips && ok; i++) {
        atomic_store_explicit(ping, i, memory_order_release);
        ok = await(pong, i);
    }
    double elapsed = seconds() - start;
    if (!ok) kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    if (!ok) { fprintf(stderr, "cacheline_pingpong: the other process stopped answering\n"); return 1; }
    printf("round trip %.0f ns\n", elapsed / (double)trips * 1e9);
    return 0;
}
