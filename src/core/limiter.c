/* Token buckets per key, bounded; see limiter.h for the policy when the keys run out. */
#include "core/limiter.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct bucket {
    char key[CS_LIMITER_KEY_MAX + 1];
    double tokens;
    int64_t at_ms;
} bucket;

void cs_limiter_init(cs_limiter *l, double per_min, size_t max_keys)
{
    *l = (cs_limiter){.buckets = CS_MAP_INIT, .per_min = per_min, .max_keys = max_keys};
}

/* A bucket's tokens at `now`. */
static double refill(const cs_limiter *l, const bucket *b, int64_t now)
{
    double t = b->tokens + (double)(now - b->at_ms) * l->per_min / 60000.0;
    return t > l->per_min ? l->per_min : t;
}

static void forget_refilled(cs_limiter *l, int64_t now)
{
    cs_map kept = CS_MAP_INIT;
    void *v;
    for (size_t pos = 0; cs_map_next(&l->buckets, &pos, NULL, &v);) {
        bucket *b = v;
        if (refill(l, b, now) >= l->per_min || cs_map_put(&kept, cs_str_of(b->key), b) < 0)
            free(b);
    }
    cs_map_free(&l->buckets);
    l->buckets = kept;
}

bool cs_limiter_take(cs_limiter *l, const char *key, int64_t now_ms)
{
    char k[CS_LIMITER_KEY_MAX + 1];
    snprintf(k, sizeof k, "%s", key);
    bucket *b = cs_map_get(&l->buckets, cs_str_of(k));
    if (!b) {
        if (l->buckets.len >= l->max_keys) forget_refilled(l, now_ms);
        if (l->buckets.len >= l->max_keys) return false;
        b = calloc(1, sizeof *b);
        if (!b) return false;
        snprintf(b->key, sizeof b->key, "%s", k);
        b->tokens = l->per_min;
        b->at_ms = now_ms;
        if (cs_map_put(&l->buckets, cs_str_of(b->key), b) < 0) {
            free(b);
            return false;
        }
    }
    b->tokens = refill(l, b, now_ms);
    b->at_ms = now_ms;
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}

size_t cs_limiter_keys(const cs_limiter *l)
{
    return l->buckets.len;
}

void cs_limiter_free(cs_limiter *l)
{
    void *v;
    for (size_t pos = 0; cs_map_next(&l->buckets, &pos, NULL, &v);) free(v);
    cs_map_free(&l->buckets);
}
