/* Clocks: monotonic for durations and deadlines, wall clock for what is stored. */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t cs_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t cs_mono_ms(void)
{
    return cs_mono_ns() / 1000000u;
}

/* Milliseconds since the Unix epoch. */
static inline int64_t cs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ISO 8601 UTC with milliseconds, "2026-11-22T10:00:00.123Z"; `out` holds 25 bytes. */
void cs_iso8601(char out[25], int64_t wall_ms);
/* Reads "YYYY-MM-DD", optionally followed by "THH:MM", ":SS", a fraction (to the ms) and a
 * zone ("Z", "+HH:MM", "-HHMM"; none: UTC), into ms since the epoch. 0, or CS_EPARSE for
 * anything else or a date that does not exist. */
int cs_iso8601_parse(const char *s, int64_t *wall_ms);

#endif
