/* libFuzzer target for base64 (core/base64.c). The input is encoded and must decode back
 * to itself; it is also decoded as text, where the strict decoder must accept exactly
 * the canonical encodings: whatever it accepts encodes back to the same text, and
 * whatever a lax reference decoder turns into bytes that encode back to the text, it
 * must accept. */
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "fuzz.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Lax: anything outside the alphabet counts as 0, trailing '='s only shorten the output. */
static size_t lax_decode(uint8_t *out, const char *in, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            const char *c = in[i + k] ? strchr(alphabet, in[i + k]) : NULL;
            v = v << 6 | (uint32_t)(c ? c - alphabet : 0);
        }
        size_t keep = 3;
        if (i + 4 == n) keep -= (in[n - 1] == '=') + (in[n - 1] == '=' && in[n - 2] == '=');
        for (size_t k = 0; k < keep; k++) out[o++] = (uint8_t)(v >> (16 - 8 * k));
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* bytes → text → bytes */
    size_t elen = CS_BASE64_ENCODED_LEN(size);
    char *enc = fuzz_copy(NULL, 0, elen);
    fuzz_check(cs_base64_encode(enc, data, size) == elen);
    for (size_t i = 0; i < elen; i++) fuzz_check(enc[i] == '=' || strchr(alphabet, enc[i]));
    uint8_t *dec = (uint8_t *)fuzz_copy(NULL, 0, CS_BASE64_DECODED_MAX(elen));
    fuzz_check(cs_base64_decode(dec, enc, elen) == (int)size);
    fuzz_check(size == 0 || memcmp(dec, data, size) == 0);
    free(enc);
    free(dec);

    /* text → bytes, strictly */
    const char *text = (const char *)data;
    uint8_t *out = (uint8_t *)fuzz_copy(NULL, 0, CS_BASE64_DECODED_MAX(size));
    int n = cs_base64_decode(out, text, size);
    fuzz_check(n == CS_EPARSE || (n >= 0 && (size_t)n <= CS_BASE64_DECODED_MAX(size)));
    char *back = fuzz_copy(NULL, 0, CS_BASE64_ENCODED_LEN(size) + 3);
    if (n >= 0) {
        fuzz_check(cs_base64_encode(back, out, (size_t)n) == size);
        fuzz_check(size == 0 || memcmp(back, text, size) == 0);
    }
    if (size % 4 == 0) {
        size_t m = lax_decode(out, text, size);
        bool canonical =
            cs_base64_encode(back, out, m) == size && (size == 0 || !memcmp(back, text, size));
        fuzz_check(canonical == (n >= 0));
    }
    free(out);
    free(back);
    return 0;
}
