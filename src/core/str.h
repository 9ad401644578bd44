/* String views: a pointer and a length into someone else's bytes (a parse buffer, a
 * JSON tree). Not NUL-terminated; valid as long as what they point into. */
#ifndef CS_STR_H
#define CS_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct cs_str {
    const char *p;
    size_t n;
} cs_str;

#define CS_STR(lit) ((cs_str){(lit), sizeof(lit) - 1})
#define CS_STR_NULL ((cs_str){NULL, 0})

static inline cs_str cs_str_of(const char *s)
{
    return (cs_str){s, s ? strlen(s) : 0};
}

static inline bool cs_str_eq(cs_str a, cs_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* View equals the C string `s`. */
static inline bool cs_str_eqz(cs_str a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

/* ASCII case-insensitive equality (header names, tokens). */
bool cs_str_ieq(cs_str a, const char *s);
/* Whether a comma-separated token list (a header value) contains `token`,
 * case-insensitively: "keep-alive, Upgrade" has "upgrade". */
bool cs_str_has_token(cs_str list, const char *token);
/* Strict decimal: digits only, no sign, no overflow past `max`. 0 or CS_EPARSE. */
int cs_str_to_u64(cs_str s, uint64_t max, uint64_t *out);
/* Copies into `out` (size `cap`, NUL-terminated, truncated); returns the length copied. */
size_t cs_str_copy(char *out, size_t cap, cs_str s);
/* malloc'd NUL-terminated copy; caller frees. NULL on allocation failure. */
char *cs_str_dup(cs_str s);

/* ---- UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF) ---- */

/* Validation state: text is well-formed when it ends in CS_UTF8_ACCEPT; CS_UTF8_REJECT
 * is final. Any other value is inside a character. */
enum { CS_UTF8_ACCEPT = 0, CS_UTF8_REJECT = 12 };

/* Validates s[0..n) from `state` (CS_UTF8_ACCEPT at the start of the text) and returns
 * the state after it, so text that arrives in pieces (WebSocket fragments) is checked
 * piece by piece, a character split between two included. */
uint32_t cs_utf8_feed(uint32_t state, const char *s, size_t n);
/* Whether s[0..n) is well-formed UTF-8. */
bool cs_utf8_valid(const char *s, size_t n);
/* Length (1–4) of the well-formed UTF-8 character s[0..), reading at most n bytes; 0 if
 * it is not one (a stray or truncated byte, an overlong form, a surrogate, past U+10FFFF).
 * Text for XML and JSON puts U+FFFD in place of such bytes, one for each. */
size_t cs_utf8_char(const char *s, size_t n);
#define CS_UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

#endif
