#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_buf_init(cs_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void cs_buf_free(cs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *cs_buf_space(cs_buf *b, size_t n)
{
    if (n > b->max - b->len) return NULL;
    if (!b->data || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        if (cap > b->max) cap = b->max;
        char *p = realloc(b->data, cap + 1);
        if (!p) return NULL;
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

int cs_buf_append(cs_buf *b, const void *data, size_t n)
{
    char *p = cs_buf_space(b, n);
    if (!p) return n > b->max - b->len ? -EMSGSIZE : -ENOMEM;
    if (n) memcpy(p, data, n);
    cs_buf_commit(b, n);
    return 0;
}

int cs_buf_puts(cs_buf *b, const char *s)
{
    return cs_buf_append(b, s, strlen(s));
}

int cs_buf_putc(cs_buf *b, char c)
{
    return cs_buf_append(b, &c, 1);
}

int cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) return -EINVAL;
    if ((size_t)n < sizeof small) return cs_buf_append(b, small, (size_t)n);
    char *p = cs_buf_space(b, (size_t)n);
    if (!p) return (size_t)n > b->max - b->len ? -EMSGSIZE : -ENOMEM;
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    cs_buf_commit(b, (size_t)n);
    return 0;
}

int cs_buf_printf(cs_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cs_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void cs_buf_truncate(cs_buf *b, size_t len)
{
    if (len >= b->len) return;
    b->len = len;
    b->data[len] = '\0';
}

void cs_buf_consume(cs_buf *b, size_t n)
{
    if (n >= b->len) {
        cs_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *cs_buf_detach(cs_buf *b, size_t *len)
{
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
