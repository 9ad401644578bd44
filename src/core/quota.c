/* Shared counts: a compare-and-swap per slot, a lock per address table change. */
#include "core/quota.h"

#include <stdio.h>
#include <stdlib.h>

void cs_quota_init(cs_quota *q, size_t max)
{
    atomic_init(&q->held, 0);
    q->max = max;
}

bool cs_quota_take(cs_quota *q)
{
    size_t held = atomic_load_explicit(&q->held, memory_order_relaxed);
    do {
        if (held >= q->max) return false;
    } while (!atomic_compare_exchange_weak_explicit(&q->held, &held, held + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    return true;
}

void cs_quota_add(cs_quota *q)
{
    atomic_fetch_add_explicit(&q->held, 1, memory_order_acq_rel);
}

void cs_quota_give(cs_quota *q)
{
    atomic_fetch_sub_explicit(&q->held, 1, memory_order_acq_rel);
}

size_t cs_quota_held(cs_quota *q)
{
    return atomic_load_explicit(&q->held, memory_order_acquire);
}

void cs_quota_addrs_init(cs_quota_addrs *t, size_t max_per_addr, size_t max_heads)
{
    pthread_mutex_init(&t->lock, NULL);
    t->map = (cs_map)CS_MAP_INIT;
    t->max_per_addr = max_per_addr;
    t->max_heads = max_heads;
}

void cs_quota_addrs_free(cs_quota_addrs *t)
{
    cs_str k;
    void *v;
    for (size_t i = 0; cs_map_next(&t->map, &i, &k, &v);) free(v);
    cs_map_free(&t->map);
    pthread_mutex_destroy(&t->lock);
}

enum cs_quota_refusal cs_quota_addr_take(cs_quota_addrs *t, const char *addr, cs_quota_addr **out)
{
    enum cs_quota_refusal why = CS_QUOTA_TAKEN;
    pthread_mutex_lock(&t->lock);
    cs_quota_addr *a = cs_map_get(&t->map, cs_str_of(addr));
    if (a && a->n >= t->max_per_addr)
        why = CS_QUOTA_PER_ADDR;
    else if (a && t->max_heads && atomic_load(&a->heads) >= t->max_heads)
        why = CS_QUOTA_HEADS;
    else if (!a) {
        a = calloc(1, sizeof *a);
        if (a) {
            snprintf(a->addr, sizeof a->addr, "%s", addr);
            atomic_init(&a->heads, 0);
        }
        if (!a || cs_map_put(&t->map, cs_str_of(a->addr), a) < 0) {
            free(a);
            why = CS_QUOTA_NO_MEMORY;
        }
    }
    if (why == CS_QUOTA_TAKEN) {
        a->n++;
        *out = a;
    }
    pthread_mutex_unlock(&t->lock);
    return why;
}

void cs_quota_addr_give(cs_quota_addrs *t, const char *addr)
{
    pthread_mutex_lock(&t->lock);
    cs_quota_addr *a = cs_map_get(&t->map, cs_str_of(addr));
    if (a && --a->n == 0) {
        cs_map_del(&t->map, cs_str_of(a->addr));
        free(a);
    }
    pthread_mutex_unlock(&t->lock);
}

void cs_quota_addr_heads(cs_quota_addr *a, int delta)
{
    if (delta > 0)
        atomic_fetch_add(&a->heads, 1);
    else
        atomic_fetch_sub(&a->heads, 1);
}
