#include "core/prom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const double cs_hist_bounds_frame[] = {1e-6,   2.5e-6, 5e-6, 1e-5,   2.5e-5, 5e-5,
                                       1e-4,   2.5e-4, 5e-4, 1e-3,   2.5e-3, 1e-2};
const size_t cs_hist_nbounds_frame = sizeof cs_hist_bounds_frame / sizeof *cs_hist_bounds_frame;
const double cs_hist_bounds_latency[] = {0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3,
                                         0.4,  0.5,   0.75, 1,   1.5,  2,   5,   10};
const size_t cs_hist_nbounds_latency =
    sizeof cs_hist_bounds_latency / sizeof *cs_hist_bounds_latency;

void cs_hist_init(cs_hist *h, const double *bounds, size_t nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds < CS_HIST_MAX_BUCKETS ? nbounds : CS_HIST_MAX_BUCKETS;
}

void cs_hist_observe(cs_hist *h, double seconds)
{
    size_t i = 0;
    while (i < h->nbounds && seconds > h->bounds[i]) i++;
    h->counts[i]++;
    h->count++;
    h->sum += seconds;
}

double cs_hist_quantile(const cs_hist *h, double q)
{
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->nbounds; i++) {
        seen += h->counts[i];
        if (seen >= rank) return h->bounds[i];
    }
    return h->nbounds ? h->bounds[h->nbounds - 1] : 0;
}

int cs_prom_header(cs_buf *out, const char *name, const char *type, const char *help)
{
    return cs_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int cs_prom_value(cs_buf *out, const char *name, const char *labels, double value)
{
    if (labels && *labels) return cs_buf_printf(out, "%s{%s} %.15g\n", name, labels, value);
    return cs_buf_printf(out, "%s %.15g\n", name, value);
}

int cs_prom_counter(cs_buf *out, const char *name, const char *help, double value)
{
    int rc = cs_prom_header(out, name, "counter", help);
    return rc ? rc : cs_prom_value(out, name, NULL, value);
}

int cs_prom_gauge(cs_buf *out, const char *name, const char *help, double value)
{
    int rc = cs_prom_header(out, name, "gauge", help);
    return rc ? rc : cs_prom_value(out, name, NULL, value);
}

int cs_prom_family(cs_buf *out, const char *name, const char *type, const char *help,
                   const char *label, const char *const *labels, const uint64_t *values,
                   size_t n)
{
    int rc = cs_prom_header(out, name, type, help);
    char l[96];
    for (size_t i = 0; i < n && rc == 0; i++) {
        snprintf(l, sizeof l, "%s=\"%s\"", label, labels[i]);
        rc = cs_prom_value(out, name, l, (double)values[i]);
    }
    return rc;
}

int cs_prom_hist_series(cs_buf *out, const char *name, const char *labels, const cs_hist *h)
{
    const char *l = labels ? labels : "", *comma = labels ? "," : "";
    const char *open = labels ? "{" : "", *close = labels ? "}" : "";
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; i < h->nbounds && rc == 0; i++) {
        cum += h->counts[i];
        rc = cs_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, l, comma, h->bounds[i],
                           (unsigned long long)cum);
    }
    if (rc == 0)
        rc = cs_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum%s%s%s %.9g\n%s_count%s%s%s %llu\n",
                           name, l, comma, (unsigned long long)h->count, name, open, l, close,
                           h->sum, name, open, l, close, (unsigned long long)h->count);
    return rc;
}

int cs_prom_hist(cs_buf *out, const char *name, const char *help, const cs_hist *h)
{
    int rc = cs_prom_header(out, name, "histogram", help);
    return rc == 0 ? cs_prom_hist_series(out, name, NULL, h) : rc;
}
