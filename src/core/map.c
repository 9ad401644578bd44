#include "core/map.h"

#include <errno.h>
#include <stdlib.h>

/* FNV-1a; never 0, since 0 marks empty slots. */
static uint32_t hash(cs_str k)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < k.n; i++) h = (h ^ (uint8_t)k.p[i]) * 16777619u;
    return h ? h : 1;
}

void cs_map_free(cs_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

static cs_map_slot *find(const cs_map *m, cs_str key, uint32_t h)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        cs_map_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == h && cs_str_eq(s->key, key)) return s;
    }
}

void *cs_map_get(const cs_map *m, cs_str key)
{
    cs_map_slot *s = find(m, key, hash(key));
    return s ? s->value : NULL;
}

static void insert(cs_map_slot *slots, size_t cap, cs_str key, void *value, uint32_t h)
{
    size_t mask = cap - 1;
    size_t i = h & mask;
    while (slots[i].hash) i = (i + 1) & mask;
    slots[i] = (cs_map_slot){key, value, h};
}

static int grow(cs_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    cs_map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            insert(slots, cap, m->slots[i].key, m->slots[i].value, m->slots[i].hash);
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int cs_map_put(cs_map *m, cs_str key, void *value)
{
    uint32_t h = hash(key);
    cs_map_slot *s = find(m, key, h);
    if (s) {
        s->key = key;
        s->value = value;
        return 0;
    }
    if (m->len >= CS_MAP_MAX_ENTRIES) return -ENOSPC;
    /* Keep the load under 3/4. */
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc < 0) return rc;
    }
    insert(m->slots, m->cap, key, value, h);
    m->len++;
    return 0;
}

void *cs_map_del(cs_map *m, cs_str key)
{
    cs_map_slot *s = find(m, key, hash(key));
    if (!s) return NULL;
    void *value = s->value;
    size_t mask = m->cap - 1;
    size_t i = (size_t)(s - m->slots);
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Move j into i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].hash = 0;
    m->len--;
    return value;
}

int cs_map_next(const cs_map *m, size_t *pos, cs_str *key, void **value)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->slots[i].hash) {
            if (key) *key = m->slots[i].key;
            if (value) *value = m->slots[i].value;
            *pos = i + 1;
            return 1;
        }
    }
    *pos = m->cap;
    return 0;
}
