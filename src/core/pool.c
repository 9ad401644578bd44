#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

struct cs_pool_block {
    cs_pool_block *next;
    size_t size;
    _Alignas(8) char data[];
};

void *cs_pool_alloc(cs_pool *p, size_t n)
{
    size_t max = p->max ? p->max : CS_POOL_MAX;
    if (n > max) return NULL; /* never fits, and rounding it up could wrap to 0 */
    n = (n + 7) & ~(size_t)7;
    if (p->blocks && p->blocks->size - p->used >= n) {
        void *r = p->blocks->data + p->used;
        p->used += n;
        return r;
    }
    size_t size = n > CS_POOL_BLOCK ? n : CS_POOL_BLOCK;
    if (p->total + size > max) return NULL;
    cs_pool_block *b = malloc(sizeof *b + size);
    if (!b) return NULL;
    b->size = size;
    p->total += size;
    if (n > CS_POOL_BLOCK && p->blocks) {
        /* A big request gets its own block behind the current one, which stays in use. */
        b->next = p->blocks->next;
        p->blocks->next = b;
        return b->data;
    }
    b->next = p->blocks;
    p->blocks = b;
    p->used = n;
    return b->data;
}

char *cs_pool_strndup(cs_pool *p, cs_str s)
{
    if (!s.p) return NULL;
    char *r = cs_pool_alloc(p, s.n + 1);
    if (!r) return NULL;
    if (s.n) memcpy(r, s.p, s.n);
    r[s.n] = '\0';
    return r;
}

char *cs_pool_strdup(cs_pool *p, const char *s)
{
    return s ? cs_pool_strndup(p, (cs_str){s, strlen(s)}) : NULL;
}

void cs_pool_free(cs_pool *p)
{
    while (p->blocks) {
        cs_pool_block *next = p->blocks->next;
        free(p->blocks);
        p->blocks = next;
    }
    p->used = p->total = 0;
}
