/* Retry delays: exponential backoff with "equal jitter" (half the delay fixed, half
 * random), so that clients which failed together do not come back together. The one
 * backoff of the project: the recorder, the store, the webhook and cloud engines use it. */
#ifndef CS_BACKOFF_H
#define CS_BACKOFF_H

#include <stdint.h>

/* The delay before retry number `attempt` (1 for the first retry): min_ms doubled for each
 * attempt after the first, capped at max_ms, then drawn from [d/2, d]. attempt 0 counts
 * as 1; min_ms 0 counts as 1. */
uint32_t cs_backoff_ms(unsigned attempt, uint32_t min_ms, uint32_t max_ms);

#endif
