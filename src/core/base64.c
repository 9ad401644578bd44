#include "core/base64.h"

#include "core/err.h"

static const char enc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 0xff otherwise. */
static const uint8_t dec[256] = {
#define R4(x) x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)
    R16(0xff), R16(0xff), /* 0x00-0x1f */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 62, 0xff, 0xff, 0xff, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 0xff, 0xff, 0xff, 0xff, 0xff,
    R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff),
#undef R16
#undef R4
};

size_t cs_base64_encode(char *out, const uint8_t *in, size_t n)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[0] = enc[v >> 18];
        o[1] = enc[(v >> 12) & 63];
        o[2] = enc[(v >> 6) & 63];
        o[3] = enc[v & 63];
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        o[0] = enc[v >> 18];
        o[1] = enc[(v >> 12) & 63];
        o[2] = i + 1 < n ? enc[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    return (size_t)(o - out);
}

int cs_base64_decode(uint8_t *out, const char *in, size_t n)
{
    if (n % 4) return CS_EPARSE;
    if (n == 0) return 0;
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *o = out;
    size_t full = n - 4; /* the last quantum may carry padding */
    for (size_t i = 0; i < full; i += 4) {
        uint32_t a = dec[s[i]], b = dec[s[i + 1]], c = dec[s[i + 2]], d = dec[s[i + 3]];
        if ((a | b | c | d) & 0x80) return CS_EPARSE;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
        o += 3;
    }
    const uint8_t *q = s + full;
    uint32_t a = dec[q[0]], b = dec[q[1]];
    if ((a | b) & 0x80) return CS_EPARSE;
    if (q[2] == '=') {
        if (q[3] != '=' || (b & 15)) return CS_EPARSE;
        *o++ = (uint8_t)(a << 2 | b >> 4);
    } else if (q[3] == '=') {
        uint32_t c = dec[q[2]];
        if ((c & 0x80) || (c & 3)) return CS_EPARSE;
        *o++ = (uint8_t)(a << 2 | b >> 4);
        *o++ = (uint8_t)(b << 4 | c >> 2);
    } else {
        uint32_t c = dec[q[2]], d = dec[q[3]];
        if ((c | d) & 0x80) return CS_EPARSE;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
        o += 3;
    }
    return (int)(o - out);
}
