#include "core/backoff.h"

#include "core/crypto.h"

uint32_t cs_backoff_ms(unsigned attempt, uint32_t min_ms, uint32_t max_ms)
{
    uint64_t d = min_ms ? min_ms : 1;
    for (unsigned i = 1; i < attempt && d < max_ms; i++) d *= 2;
    if (d > max_ms) d = max_ms > 0 ? max_ms : 1;
    uint32_t r;
    cs_random(&r, sizeof r);
    return (uint32_t)(d / 2 + r % (d / 2 + 1));
}
