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

#endif
