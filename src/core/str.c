#include "core/str.h"

#include <stdlib.h>

#include "core/err.h"

static inline char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

bool cs_str_ieq(cs_str a, const char *s)
{
    size_t i = 0;
    for (; i < a.n; i++)
        if (!s[i] || lower(a.p[i]) != lower(s[i])) return false;
    return s[i] == '\0';
}

bool cs_str_has_token(cs_str list, const char *token)
{
    size_t i = 0;
    while (i < list.n) {
        while (i < list.n && (list.p[i] == ' ' || list.p[i] == '\t' || list.p[i] == ',')) i++;
        size_t start = i;
        while (i < list.n && list.p[i] != ',') i++;
        size_t end = i;
        while (end > start && (list.p[end - 1] == ' ' || list.p[end - 1] == '\t')) end--;
        if (end > start && cs_str_ieq((cs_str){list.p + start, end - start}, token)) return true;
    }
    return false;
}

int cs_str_to_u64(cs_str s, uint64_t max, uint64_t *out)
{
    if (s.n == 0 || s.n > 20) return CS_EPARSE;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (d > 9) return CS_EPARSE;
        if (d > max || v > (max - d) / 10) return CS_EPARSE; /* v * 10 + d > max */
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t cs_str_copy(char *out, size_t cap, cs_str s)
{
    if (cap == 0) return 0;
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    if (n) memcpy(out, s.p, n);
    out[n] = '\0';
    return n;
}

char *cs_str_dup(cs_str s)
{
    char *p = malloc(s.n + 1);
    if (!p) return NULL;
    if (s.n) memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    return p;
}

/* ---- UTF-8 ---- */

/* Bjoern Hoehrmann's validating DFA, the one UTF-8 decoder (WebSocket text, JSON and XML
 * writers): bytes map to classes, (state + class) to the next state. States are multiples
 * of 12; the rejecting state is sticky. */
/* clang-format off */
static const uint8_t utf8_class[256] = {
#define R4(x)  x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 00-7f */
    R16(1),                                                         /* 80-8f */
    R16(9),                                                         /* 90-9f */
    R16(7), R16(7),                                                 /* a0-bf */
    8, 8, 2, 2, R4(2), R4(2), R4(2),                                /* c0-cf (c0,c1 overlong) */
    R16(2),                                                         /* d0-df */
    10, 3, 3, 3, R4(3), R4(3), 3, 4, 3, 3,                          /* e0-ef (ed: surrogates) */
    11, 6, 6, 6, 5, 8, 8, 8, R4(8), R4(8),                          /* f0-ff (f4: <= U+10FFFF) */
#undef R16
#undef R4
};

static const uint8_t utf8_next[108] = {
    0,  12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, /* accept */
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, /* reject */
    12, 0,  12, 12, 12, 12, 12, 0,  12, 0,  12, 12, /* one continuation byte left */
    12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12, /* two left */
    12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, /* after e0: a0-bf */
    12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12, /* after ed: 80-9f */
    12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, /* after f0: 90-bf */
    12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, /* three left */
    12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, /* after f4: 80-8f */
};
/* clang-format on */

/* Runs the DFA from `state` over s[0..n); runs of ASCII are skipped a word or two at a
 * time. */
uint32_t cs_utf8_feed(uint32_t state, const char *text, size_t n)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < n) {
        if (state == CS_UTF8_ACCEPT) {
            for (uint64_t w[2]; i + 16 <= n; i += 16) {
                memcpy(w, s + i, 16);
                if ((w[0] | w[1]) & 0x8080808080808080u) break;
            }
            for (uint64_t w; i + 8 <= n; i += 8) {
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080u) break;
            }
            if (i == n) break;
        }
        state = utf8_next[state + utf8_class[s[i++]]];
        if (state == CS_UTF8_REJECT) break;
    }
    return state;
}

bool cs_utf8_valid(const char *s, size_t n)
{
    return cs_utf8_feed(CS_UTF8_ACCEPT, s, n) == CS_UTF8_ACCEPT;
}

/* The DFA over one character: until it accepts, rejects or runs out of bytes. */
size_t cs_utf8_char(const char *s, size_t n)
{
    uint32_t state = CS_UTF8_ACCEPT;
    for (size_t i = 0; i < n && i < 4; i++) {
        state = utf8_next[state + utf8_class[(uint8_t)s[i]]];
        if (state == CS_UTF8_ACCEPT) return i + 1;
        if (state == CS_UTF8_REJECT) return 0;
    }
    return 0;
}
