/* Hash map from string keys to pointers. Keys are borrowed: each must stay valid and
 * unchanged while its entry exists (it usually lives in the value's own struct).
 * Open addressing with backward-shift deletion, so lookups never walk tombstones. */
#ifndef CS_MAP_H
#define CS_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define CS_MAP_MAX_ENTRIES (1u << 24) /* more → -ENOSPC */

typedef struct cs_map_slot {
    cs_str key;
    void *value;
    uint32_t hash; /* 0 marks an empty slot */
} cs_map_slot;

typedef struct cs_map {
    cs_map_slot *slots;
    size_t cap; /* power of two, 0 before the first insert */
    size_t len;
} cs_map;

#define CS_MAP_INIT {NULL, 0, 0}

void cs_map_free(cs_map *m);
void *cs_map_get(const cs_map *m, cs_str key);
/* Inserts or replaces; 0, -ENOMEM or -ENOSPC. */
int cs_map_put(cs_map *m, cs_str key, void *value);
/* Removes and returns the value, or NULL if absent. */
void *cs_map_del(cs_map *m, cs_str key);

/* Iteration: for (size_t i = 0; cs_map_next(m, &i, &k, &v);) — no changes meanwhile. */
int cs_map_next(const cs_map *m, size_t *pos, cs_str *key, void **value);

#endif
