/* Prometheus text exposition (format 0.0.4): writers for counters, gauges and
 * histograms, and a fixed-bucket histogram cheap enough for the media hot path. Each
 * module keeps its own counters; /metrics asks them and writes them out here. */
#ifndef CS_PROM_H
#define CS_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CS_HIST_MAX_BUCKETS 24

typedef struct cs_hist {
    const double *bounds; /* upper bounds in seconds, rising; +Inf is implied */
    size_t nbounds;
    uint64_t counts[CS_HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} cs_hist;

/* Bounds: 1 µs … 10 ms, for per-frame processing. */
extern const double cs_hist_bounds_frame[];
extern const size_t cs_hist_nbounds_frame;
/* Latencies people notice: 10 ms to 10 s. */
extern const double cs_hist_bounds_latency[];
extern const size_t cs_hist_nbounds_latency;

void cs_hist_init(cs_hist *h, const double *bounds, size_t nbounds);
void cs_hist_observe(cs_hist *h, double seconds);
/* The value below which `q` (0..1) of observations fall, as a bucket's upper bound
 * (the largest finite bound when it falls in +Inf); 0 when empty. */
double cs_hist_quantile(const cs_hist *h, double q);

/* "# HELP name help\n# TYPE name type\n" */
int cs_prom_header(cs_buf *out, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels like `kind="json"` or NULL. */
int cs_prom_value(cs_buf *out, const char *name, const char *labels, double value);
/* Header and one value. */
int cs_prom_counter(cs_buf *out, const char *name, const char *help, double value);
int cs_prom_gauge(cs_buf *out, const char *name, const char *help, double value);
/* One labelled family: header, then `values[i]` labelled `label="labels[i]"`. */
int cs_prom_family(cs_buf *out, const char *name, const char *type, const char *help,
                   const char *label, const char *const *labels, const uint64_t *values,
                   size_t n);
/* Header, cumulative _bucket lines, _sum and _count. */
int cs_prom_hist(cs_buf *out, const char *name, const char *help, const cs_hist *h);
/* One series of a histogram, labelled like `engine="openai"` (the header is written once,
 * with cs_prom_header, before the family's series). */
int cs_prom_hist_series(cs_buf *out, const char *name, const char *labels, const cs_hist *h);

#endif
