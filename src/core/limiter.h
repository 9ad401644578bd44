/* A rate limit per key (an address, a caller): a token bucket of `per_min` attempts a
 * minute for each key, over at most `max_keys` keys. Loop only; the clock is passed in.
 *
 * When the keys are all taken, the ones whose buckets have filled up again are forgotten
 * (a new bucket would be the same); if none has, new keys are refused until one does, so
 * nobody resets a limit by arriving from many keys at once. */
#ifndef CS_LIMITER_H
#define CS_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"

#define CS_LIMITER_KEY_MAX 63 /* longer keys are cut */

typedef struct cs_limiter {
    cs_map buckets; /* key → bucket */
    double per_min;
    size_t max_keys;
} cs_limiter;

void cs_limiter_init(cs_limiter *l, double per_min, size_t max_keys);
/* Takes one attempt for `key` at `now_ms` (any monotonic or wall clock in ms): true when it
 * is allowed. Out of memory refuses. */
bool cs_limiter_take(cs_limiter *l, const char *key, int64_t now_ms);
/* Keys remembered. */
size_t cs_limiter_keys(const cs_limiter *l);
void cs_limiter_free(cs_limiter *l);

#endif
