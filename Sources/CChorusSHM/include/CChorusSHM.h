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
