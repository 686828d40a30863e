#define _GNU_SOURCE
#include <sched.h>
#include "CBaselineLoops.h"

int bench_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}
