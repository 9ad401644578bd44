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

size_t cs_utf8_char(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0) return 0;
    if (p[0] < 0x80) return 1;
    /* RFC 3629 §4: the second byte's range depends on the first. */
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, lo = p[0] == 0xE0 ? 0xA0 : 0x80, hi = p[0] == 0xED ? 0x9F : 0xBF;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, lo = p[0] == 0xF0 ? 0x90 : 0x80, hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}
