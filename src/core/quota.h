/* Counts of things a process holds (connections, calls, waiting streams…) shared by its
 * event loops, so that a limit is the process's and not each loop's. A slot is reserved
 * with one compare-and-swap before the thing is made and given back when it goes: two
 * loops can never both take the last one. Per-address counts sit in a table under a lock
 * taken only when a connection comes or goes. Any thread. Not a rate limiter (limiter.h). */
#ifndef CS_QUOTA_H
#define CS_QUOTA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/map.h"

/* ---- one count ---- */

typedef struct cs_quota {
    atomic_size_t held;
    size_t max;
} cs_quota;

void cs_quota_init(cs_quota *q, size_t max);
/* Reserves one slot: false, and nothing taken, when all `max` are held. */
bool cs_quota_take(cs_quota *q);
/* One more held even past `max`: a slot taken over from one being given back. */
void cs_quota_add(cs_quota *q);
/* Gives back a slot taken or added. */
void cs_quota_give(cs_quota *q);
size_t cs_quota_held(cs_quota *q);

/* ---- per address ---- */

/* An address's counts; it lives while a connection from it holds a slot. */
typedef struct cs_quota_addr {
    char addr[46];
    size_t n;            /* connections, under the table's lock */
    atomic_size_t heads; /* of which waiting for or reading a request head */
} cs_quota_addr;

typedef struct cs_quota_addrs {
    pthread_mutex_t lock;
    cs_map map; /* addr → cs_quota_addr */
    size_t max_per_addr;
    size_t max_heads; /* 0: no limit */
} cs_quota_addrs;

enum cs_quota_refusal {
    CS_QUOTA_TAKEN = 0,
    CS_QUOTA_PER_ADDR, /* max_per_addr connections from the address */
    CS_QUOTA_HEADS,    /* max_heads of them wait for a head */
    CS_QUOTA_NO_MEMORY,
};

void cs_quota_addrs_init(cs_quota_addrs *t, size_t max_per_addr, size_t max_heads);
/* Every slot must have been given back. */
void cs_quota_addrs_free(cs_quota_addrs *t);
/* Reserves a connection's slot for `addr`: CS_QUOTA_TAKEN with *out set (valid until it
 * is given back), or why not. */
enum cs_quota_refusal cs_quota_addr_take(cs_quota_addrs *t, const char *addr, cs_quota_addr **out);
void cs_quota_addr_give(cs_quota_addrs *t, const char *addr);
/* A connection holding a slot of `a` starts (+1) or ends (-1) waiting for a head. */
void cs_quota_addr_heads(cs_quota_addr *a, int delta);

#endif
