/* What the benchmark programs share: the process's CPU time (quantiles: tests/unit/stats.h). */
#ifndef CS_BENCH_H
#define CS_BENCH_H

#include <stdlib.h>
#include <sys/resource.h>

/* User and system CPU seconds of the whole process so far. */
static inline double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

#endif
