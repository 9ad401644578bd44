/* application/x-www-form-urlencoded (WHATWG URL §5): Twilio's webhooks arrive in this
 * form and their signatures are computed over the decoded values, so decoding is exact.
 * Pairs are decoded in place in one copy of the body. */
#include "net/form.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int cs_url_decode(char *out, const char *in, size_t n, bool plus_space)
{
    if (n > INT_MAX) return CS_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            int hi = i + 2 < n ? cs_url_hex(in[i + 1]) : -1;
            int lo = hi >= 0 ? cs_url_hex(in[i + 2]) : -1;
            if (lo < 0) return CS_EPARSE;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Decodes s[0..n) in place; the result must hold no NUL, as it is used as a C string.
 * Returns the decoded length or an error. */
static int decode_piece(char *s, size_t n)
{
    int m = cs_url_decode(s, s, n, true);
    if (m > 0 && memchr(s, '\0', (size_t)m)) return CS_EPARSE;
    return m;
}

int cs_form_parse(cs_form *f, const char *body, size_t len)
{
    memset(f, 0, sizeof *f);
    if (len > INT_MAX) return CS_ELIMIT;
    size_t npairs = 0;
    for (size_t i = 0; i < len; i++) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t e = amp ? (size_t)(amp - body) : len;
        if (e > i) npairs++;
        i = e;
    }
    if (npairs > CS_FORM_MAX_PAIRS) return CS_ELIMIT;
    if (npairs == 0) return 0;

    /* one extra byte: the NUL after the last piece */
    f->storage = malloc(len + 1);
    f->pairs = malloc(npairs * sizeof *f->pairs);
    if (!f->storage || !f->pairs) {
        cs_form_free(f);
        return -ENOMEM;
    }
    memcpy(f->storage, body, len);
    f->storage[len] = '\0';

    for (size_t i = 0; i < len; i++) {
        char *p = f->storage + i;
        char *amp = memchr(p, '&', len - i);
        size_t e = amp ? (size_t)(amp - f->storage) : len;
        if (e == i) continue;
        char *eq = memchr(p, '=', e - i);
        size_t name_len = eq ? (size_t)(eq - p) : e - i;
        int rc = decode_piece(p, name_len);
        if (rc >= 0 && eq) rc = decode_piece(eq + 1, e - i - name_len - 1);
        if (rc < 0) {
            cs_form_free(f);
            return rc;
        }
        /* without '=', the value is the empty string at the name's terminator */
        f->pairs[f->n++] = (cs_form_pair){p, eq ? eq + 1 : p + rc};
        i = e;
    }
    return 0;
}

void cs_form_free(cs_form *f)
{
    free(f->pairs);
    free(f->storage);
    memset(f, 0, sizeof *f);
}

const char *cs_form_get(const cs_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->pairs[i].name, name) == 0) return f->pairs[i].value;
    return NULL;
}

static inline bool form_safe(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' ||
           c == '-' || c == '.' || c == '_';
}

int cs_form_encode(cs_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        need += form_safe(c) || c == ' ' ? 1 : 3;
    }
    if (need == 0) return 0;
    char *p = cs_buf_space(out, need);
    if (!p) return need > out->max - out->len ? -EMSGSIZE : -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (form_safe(c)) {
            *p++ = (char)c;
        } else if (c == ' ') {
            *p++ = '+';
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    cs_buf_commit(out, need);
    return 0;
}

int cs_form_write(cs_buf *out, const char *const *names, const char *const *values, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = cs_buf_putc(out, '&');
        if (!rc) rc = cs_form_encode(out, names[i], strlen(names[i]));
        if (!rc) rc = cs_buf_putc(out, '=');
        if (!rc) rc = cs_form_encode(out, values[i], strlen(values[i]));
    }
    return rc;
}
