/* Rate limits as token buckets.
 *
 * cs_bucket is one bucket: up to `burst` attempts at once, refilled at `burst` per
 * `period_ms` (a media socket's messages per second). cs_limiter keeps one bucket per key
 * (an address) over at most `max_keys` keys, with `per_min` attempts a minute each. When
 * its keys are all taken, the ones whose buckets have filled up again are forgotten (a new
 * bucket would be the same); if none has, new keys are refused until one does, so nobody
 * resets a limit by arriving from many keys at once. Loop only; clocks are passed in. */
#ifndef CS_LIMITER_H
#define CS_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"

#define CS_LIMITER_KEY_MAX 63 /* longer keys are cut */

/* ---- one bucket ---- */

typedef struct cs_bucket {
    double tokens;
    int64_t at_ms; /* when `tokens` was counted */
} cs_bucket;

/* A full bucket at `now_ms`. */
static inline cs_bucket cs_bucket_full(double burst, int64_t now_ms)
{
    return (cs_bucket){.tokens = burst, .at_ms = now_ms};
}

/* The bucket's tokens at `now_ms`. */
static inline double cs_bucket_level(const cs_bucket *b, double burst, int64_t period_ms,
                                     int64_t now_ms)
{
    double t = b->tokens + (double)(now_ms - b->at_ms) * burst / (double)period_ms;
    return t > burst ? burst : t;
}

/* Takes one attempt at `now_ms`: true when it is allowed. A refused one takes nothing. */
static inline bool cs_bucket_take(cs_bucket *b, double burst, int64_t period_ms, int64_t now_ms)
{
    b->tokens = cs_bucket_level(b, burst, period_ms, now_ms);
    b->at_ms = now_ms;
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}

/* ---- a bucket per key ---- */

typedef struct cs_limiter {
    cs_map buckets; /* key → bucket */
    double per_min;
    size_t max_keys;
    int64_t refilled_at_ms; /* when full: no bucket is full again before this */
} cs_limiter;

void cs_limiter_init(cs_limiter *l, double per_min, size_t max_keys);
/* Takes one attempt for `key` at `now_ms` (any monotonic or wall clock in ms): true when it
 * is allowed. Out of memory refuses. */
bool cs_limiter_take(cs_limiter *l, const char *key, int64_t now_ms);
/* Keys remembered. */
size_t cs_limiter_keys(const cs_limiter *l);
void cs_limiter_free(cs_limiter *l);

#endif
