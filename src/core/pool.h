/* Memory pool: many small allocations freed together. A call's strings and parsed
 * start data come from its pool and die with the call. Not thread-safe. */
#ifndef CS_POOL_H
#define CS_POOL_H

#include <stddef.h>

#include "core/str.h"

#define CS_POOL_BLOCK 1024     /* bytes per block; bigger requests get their own block */
#define CS_POOL_MAX   (1u << 20) /* a pool refuses to grow past this */

typedef struct cs_pool_block cs_pool_block;

typedef struct cs_pool {
    cs_pool_block *blocks;
    size_t used;  /* bytes in the newest block */
    size_t total; /* bytes of all blocks */
    size_t max;   /* 0: CS_POOL_MAX */
} cs_pool;

#define CS_POOL_INIT {NULL, 0, 0, 0}

/* 8-byte aligned memory, or NULL (out of memory or past the pool's max). */
void *cs_pool_alloc(cs_pool *p, size_t n);
/* NUL-terminated copies; NULL input gives NULL. */
char *cs_pool_strdup(cs_pool *p, const char *s);
char *cs_pool_strndup(cs_pool *p, cs_str s);
/* Frees everything; the pool is empty and usable again. */
void cs_pool_free(cs_pool *p);

#endif
