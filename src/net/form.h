/* application/x-www-form-urlencoded bodies and percent-encoding (WHATWG URL §5). */
#ifndef CS_FORM_H
#define CS_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define CS_FORM_MAX_PAIRS 256 /* more pairs → CS_ELIMIT */

typedef struct cs_form_pair {
    char *name;  /* decoded, NUL-terminated, points into the form's storage */
    char *value; /* idem; "" when the pair had no '=' */
} cs_form_pair;

typedef struct cs_form {
    cs_form_pair *pairs; /* in body order */
    size_t n;
    char *storage; /* owns all strings */
} cs_form;

/* Parses `body`. '+' is a space, %XX a byte; a '%' not followed by two hex digits, or a
 * decoded name or value containing NUL, is CS_EPARSE. Empty pieces ("a=1&&b=2") are
 * skipped. On success the form owns its memory: free with cs_form_free. */
int cs_form_parse(cs_form *f, const char *body, size_t len);
void cs_form_free(cs_form *f);
/* Value of the first pair named `name`, or NULL. */
const char *cs_form_get(const cs_form *f, const char *name);

/* Value of the hex digit `c` (either case), or -1. */
static inline int cs_url_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
/* Percent-decodes in[0..n) into out (room for n bytes + NUL; out may be in, decoding in
 * place); `plus_space` turns '+' into ' '. Returns the decoded length, CS_EPARSE, or
 * CS_ELIMIT when n > INT_MAX. */
int cs_url_decode(char *out, const char *in, size_t n, bool plus_space);
/* Appends s percent-encoded for a form component: ALPHA DIGIT "*-._" kept, ' ' as '+',
 * everything else %XX (uppercase hex). */
int cs_form_encode(cs_buf *out, const char *s, size_t n);
/* Appends "name=value&name=value…" for n pairs. */
int cs_form_write(cs_buf *out, const char *const *names, const char *const *values, size_t n);

#endif
