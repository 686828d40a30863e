#ifndef CCHORUS_SHM_H
#define CCHORUS_SHM_H
#include <stdint.h>

// futex(2) on a 32-bit word in memory shared between processes (Swift cannot call the
// variadic syscall(2)). Both return 0, or -errno.

// Sleeps while *word == expected, at most timeout_ns nanoseconds.
int chorus_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);
// Wakes every waiter on *word.
int chorus_futex_wake(uint32_t *word);

#endif

#ifndef CCHORUS_SHM_CMA
#define CCHORUS_SHM_CMA
#include <stddef.h>
#include <sys/types.h>
// Copies `length` bytes at `remote` in process `pid` to `local` (process_vm_readv). Returns 0
// or -errno; retries short reads.
int chorus_cma_read(pid_t pid, void *local, uint64_t remote, size_t length);
// Lets any process of this user read this one's memory when Yama restricts ptrace to
// descendants (prctl PR_SET_PTRACER_ANY). Returns 0 or -errno.
int chorus_allow_peer_reads(void);
#endif

#ifndef CCHORUS_SHM_AFFINITY
#define CCHORUS_SHM_AFFINITY
#include <stdint.h>
// The CPUs this process may run on (sched_getaffinity), as a bit mask over `nwords` 64-bit
// words: CPU i is bit i % 64 of word i / 64 (CPUs past nwords * 64 are left out). Returns how
// many CPUs the mask holds, or -errno.
int chorus_cpu_affinity(uint64_t *words, int nwords);
#endif
