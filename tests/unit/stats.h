/* Percentiles of measured samples: the one way the benchmarks and tests compute them. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stddef.h>

/* The q-quantile (0..1) of v[0..n) by nearest rank; sorts v in place. 0 when n is 0. */
double stats_pct(double *v, size_t n, double q);

#endif
