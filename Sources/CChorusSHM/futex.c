#define _GNU_SOURCE
#include "CChorusSHM.h"
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int chorus_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    // Not FUTEX_PRIVATE_FLAG: the word lives in memory other processes map.
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
    return r == 0 ? 0 : -errno;
}

int chorus_futex_wake(uint32_t *word) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return r >= 0 ? 0 : -errno;
}

#include <sys/prctl.h>
#include <sys/uio.h>

int chorus_cma_read(pid_t pid, void *local, uint64_t remote, size_t length) {
    size_t done = 0;
    while (done < length) {
        struct iovec l = { .iov_base = (char *)local + done, .iov_len = length - done };
        struct iovec r = { .iov_base = (void *)(uintptr_t)(remote + done), .iov_len = length - done };
        ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EFAULT;
        done += (size_t)n;
    }
    return 0;
}

int chorus_allow_peer_reads(void) {
    return prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) == 0 ? 0 : -errno;
}

#include <sched.h>

int chorus_cpu_affinity(uint64_t *words, int nwords) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
    int count = 0;
    for (int i = 0; i < nwords; i++) words[i] = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpu < nwords * 64; cpu++) {
        if (CPU_ISSET(cpu, &set)) {
            words[cpu / 64] |= (uint64_t)1 << (cpu % 64);
            count++;
        }
    }
    return count;
}
