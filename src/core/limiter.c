/* Token buckets per key, bounded; see limiter.h for the policy when the keys run out. */
#include "core/limiter.h"

#include <stdio.h>
#include <stdlib.h>

#define MINUTE_MS 60000

typedef struct keyed {
    char key[CS_LIMITER_KEY_MAX + 1];
    cs_bucket b;
} keyed;

void cs_limiter_init(cs_limiter *l, double per_min, size_t max_keys)
{
    *l = (cs_limiter){.buckets = CS_MAP_INIT, .per_min = per_min, .max_keys = max_keys};
}

/* Forgets the keys whose buckets are full again, and notes when the next of the others
 * will be, so a full limiter refusing newcomers does not sweep on every attempt. */
static void forget_refilled(cs_limiter *l, int64_t now)
{
    cs_map kept = CS_MAP_INIT;
    int64_t next = INT64_MAX;
    void *v;
    for (size_t pos = 0; cs_map_next(&l->buckets, &pos, NULL, &v);) {
        keyed *k = v;
        double level = cs_bucket_level(&k->b, l->per_min, MINUTE_MS, now);
        if (level >= l->per_min || cs_map_put(&kept, cs_str_of(k->key), k) < 0) {
            free(k);
            continue;
        }
        int64_t full = now + (int64_t)((l->per_min - level) * MINUTE_MS / l->per_min) + 1;
        if (full < next) next = full;
    }
    cs_map_free(&l->buckets);
    l->buckets = kept;
    l->refilled_at_ms = next;
}

bool cs_limiter_take(cs_limiter *l, const char *key, int64_t now_ms)
{
    char name[CS_LIMITER_KEY_MAX + 1];
    snprintf(name, sizeof name, "%s", key);
    keyed *k = cs_map_get(&l->buckets, cs_str_of(name));
    if (!k) {
        if (l->buckets.len >= l->max_keys && now_ms >= l->refilled_at_ms)
            forget_refilled(l, now_ms);
        if (l->buckets.len >= l->max_keys) return false;
        k = calloc(1, sizeof *k);
        if (!k) return false;
        snprintf(k->key, sizeof k->key, "%s", name);
        k->b = cs_bucket_full(l->per_min, now_ms);
        if (cs_map_put(&l->buckets, cs_str_of(k->key), k) < 0) {
            free(k);
            return false;
        }
    }
    return cs_bucket_take(&k->b, l->per_min, MINUTE_MS, now_ms);
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
