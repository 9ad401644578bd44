#include "testutil.h"

#include <string.h>

#include "core/base64.h"
#include "core/err.h"

static void rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char e[16];
        size_t n = cs_base64_encode(e, (const uint8_t *)in[i], strlen(in[i]));
        assert_int_equal(n, strlen(out[i]));
        assert_memory_equal(e, out[i], n);
        uint8_t d[16];
        int m = cs_base64_decode(d, out[i], strlen(out[i]));
        assert_int_equal(m, (int)strlen(in[i]));
        assert_memory_equal(d, in[i], (size_t)m);
    }
}

static void roundtrip_all_lengths(void **state)
{
    (void)state;
    uint8_t src[256], dst[256];
    char enc[400];
    for (int i = 0; i < 256; i++) src[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof src; n++) {
        size_t e = cs_base64_encode(enc, src, n);
        assert_int_equal(e, CS_BASE64_ENCODED_LEN(n));
        assert_int_equal(cs_base64_decode(dst, enc, e), (int)n);
        assert_memory_equal(dst, src, n);
    }
}

static void rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg=",          /* not a multiple of 4 */
        "Zg=a",         /* data after padding */
        "Z===",         /* too much padding */
        "Zh==",         /* non-zero trailing bits */
        "Zm9=",         /* non-zero trailing bits (one pad) */
        "Zm9v!A==",     /* character outside the alphabet */
        "Zm 9v",        /* whitespace */
        "=Zm9",         /* padding first */
        "Zm9vYg==Zm9v", /* padding in the middle */
        "Zm9-",         /* URL-safe alphabet is not accepted */
    };
    uint8_t d[16];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cs_base64_decode(d, bad[i], strlen(bad[i])), CS_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc4648_vectors),
        cmocka_unit_test(roundtrip_all_lengths),
        cmocka_unit_test(rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
