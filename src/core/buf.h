/* Growable byte buffer with a hard maximum (curl's dynbuf idea): appends past `max`
 * fail with -EMSGSIZE and leave the buffer as it was. Data is kept NUL-terminated so
 * text can be used as a C string. */
#ifndef CS_BUF_H
#define CS_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct cs_buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated, not counting the terminating NUL */
    size_t max;  /* the most `len` may ever reach */
} cs_buf;

#define CS_BUF_INIT(maxbytes) {NULL, 0, 0, (maxbytes)}

void cs_buf_init(cs_buf *b, size_t max);
/* Frees the storage; the buffer is empty and usable again. Idempotent. */
void cs_buf_free(cs_buf *b);
/* Empties without freeing. */
static inline void cs_buf_reset(cs_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

/* Makes room for `n` more bytes; returns a pointer to them or NULL (-EMSGSIZE/-ENOMEM
 * cases) — commit them with cs_buf_commit. */
char *cs_buf_space(cs_buf *b, size_t n);
static inline void cs_buf_commit(cs_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

int cs_buf_append(cs_buf *b, const void *data, size_t n);
int cs_buf_puts(cs_buf *b, const char *s);
int cs_buf_putc(cs_buf *b, char c);
int cs_buf_printf(cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap);
/* Cuts the contents back to `len` bytes (undoes appends after a failure). */
void cs_buf_truncate(cs_buf *b, size_t len);
/* Removes the first `n` bytes. */
void cs_buf_consume(cs_buf *b, size_t n);
/* Takes the storage out of the buffer (caller frees); the buffer becomes empty. */
char *cs_buf_detach(cs_buf *b, size_t *len);

#endif
