/* What the fuzz targets share: the libFuzzer entry point and a check that names the
 * property it found broken before aborting, so a finding says what it is. Each target is
 * built two ways (CMakeLists.txt): with clang and libFuzzer (bench/fuzz), and with any
 * compiler and replay.c, which feeds it its kept inputs under ctest. */
#ifndef CS_FUZZ_H
#define CS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_check(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An exact-size heap copy of the input, so a read past its end is caught by ASan even
 * where the caller's buffer would be larger; `extra` bytes more are zeroed. Caller frees. */
static inline char *fuzz_copy(const uint8_t *data, size_t size, size_t extra)
{
    char *p = malloc(size + extra ? size + extra : 1);
    if (!p) abort();
    for (size_t i = 0; i < size; i++) p[i] = (char)data[i];
    for (size_t i = 0; i < extra; i++) p[size + i] = 0;
    return p;
}

/* How many bytes of `s` form one well-formed UTF-8 sequence, by Unicode's table of them
 * (The Unicode Standard, Table 3-7: the first byte's range, then each next byte's); 0 if
 * none starts there. */
static inline size_t fuzz_wellformed_len(const uint8_t *s, size_t n)
{
    static const struct {
        uint8_t lo[4], hi[4];
        size_t n;
    } table[] = {
        {{0x00}, {0x7F}, 1},
        {{0xC2, 0x80}, {0xDF, 0xBF}, 2},
        {{0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}, 3},
        {{0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}, 3},
        {{0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}, 3},
        {{0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}, 3},
        {{0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}, 4},
    };
    for (size_t k = 0; k < sizeof table / sizeof *table; k++) {
        size_t i = 0;
        while (i < table[k].n && i < n && s[i] >= table[k].lo[i] && s[i] <= table[k].hi[i]) i++;
        if (i == table[k].n) return i;
    }
    return 0;
}

/* What a string of `n` bytes must read back as once written as Unicode text (JSON, XML):
 * a copy in `out` (room for 3n + 1, NUL-terminated) where each byte that starts no
 * well-formed sequence is U+FFFD. Its length. */
static inline size_t fuzz_unicode(const uint8_t *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = fuzz_wellformed_len(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return o;
}

#endif
