#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/str.h"

static void views(void **state)
{
    (void)state;
    cs_str s = cs_str_of("abc");
    assert_int_equal(s.n, 3);
    cs_str none = cs_str_of(NULL);
    assert_null(none.p);
    assert_int_equal(none.n, 0);
    assert_true(cs_str_eq(CS_STR(""), CS_STR_NULL));
    assert_true(cs_str_eq(CS_STR("a\0b"), CS_STR("a\0b")));
    assert_false(cs_str_eq(CS_STR("a\0b"), CS_STR("a\0c")));
    assert_false(cs_str_eq(CS_STR("ab"), CS_STR("abc")));
    assert_true(cs_str_eqz((cs_str){"abcdef", 3}, "abc"));
    assert_false(cs_str_eqz((cs_str){"abcdef", 3}, "abcd"));
    assert_false(cs_str_eqz((cs_str){"abcdef", 3}, "ab"));
    assert_true(cs_str_eqz(CS_STR_NULL, ""));
}

static void ieq(void **state)
{
    (void)state;
    assert_true(cs_str_ieq(CS_STR("Upgrade"), "upgrade"));
    assert_true(cs_str_ieq(CS_STR("WEBSOCKET"), "webSocket"));
    assert_true(cs_str_ieq(CS_STR(""), ""));
    assert_true(cs_str_ieq(CS_STR_NULL, ""));
    assert_true(cs_str_ieq((cs_str){"Hostname", 4}, "HOST")); /* the view's length counts */
    assert_false(cs_str_ieq(CS_STR("Host"), "Hostname"));
    assert_false(cs_str_ieq(CS_STR("Hostname"), "Host"));
    assert_false(cs_str_ieq(CS_STR("a"), ""));
    assert_false(cs_str_ieq(CS_STR(""), "a"));
    /* Only A-Z fold: these pairs also differ by 0x20. */
    assert_false(cs_str_ieq(CS_STR("@"), "`"));
    assert_false(cs_str_ieq(CS_STR("["), "{"));
    assert_false(cs_str_ieq(CS_STR("\xc9"), "\xe9"));
    assert_false(cs_str_ieq(CS_STR("a\0"), "a")); /* a NUL in the view is a byte like any */
}

static void has_token(void **state)
{
    (void)state;
    static const struct {
        const char *list, *token;
        bool want;
    } cases[] = {
        {"keep-alive, Upgrade", "upgrade", true},
        {"keep-alive, Upgrade", "KEEP-ALIVE", true},
        {"Upgrade", "upgrade", true},
        {"  upgrade  ", "upgrade", true},
        {"\tupgrade\t,close", "upgrade", true},
        {"close,\tupgrade", "upgrade", true},
        {",,upgrade,,", "upgrade", true},
        {" , ,upgrade", "upgrade", true},
        {"a b, c", "a b", true}, /* inner spaces belong to the element */
        {"a b, c", "a", false},
        {"upgrade2", "upgrade", false},
        {"xupgrade", "upgrade", false},
        {"upgrade", "upgrade2", false},
        {"up grade", "upgrade", false},
        {"", "upgrade", false},
        {", , ,", "upgrade", false},
        {"keep-alive", "", false},
        {",,", "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cs_str_has_token(cs_str_of(cases[i].list), cases[i].token) != cases[i].want)
            fail_msg("\"%s\" has \"%s\": expected %d", cases[i].list, cases[i].token,
                     cases[i].want);
    /* Only the view's bytes count. */
    assert_true(cs_str_has_token((cs_str){"close, upgradeX", 14}, "upgrade"));
    assert_false(cs_str_has_token((cs_str){"close, upgradeX", 14}, "upgradex"));
    assert_false(cs_str_has_token(CS_STR_NULL, "upgrade"));
}

/* cs_str_to_u64 on a C string; `*out` must be left alone on failure. */
static int parse(const char *s, uint64_t max, uint64_t *out)
{
    *out = 12345;
    int rc = cs_str_to_u64(cs_str_of(s), max, out);
    if (rc) assert_int_equal(*out, 12345);
    return rc;
}

static void to_u64_bounds(void **state)
{
    (void)state;
    static const uint64_t maxes[] = {
        0, 1, 5, 9, 10, 15, 99, 255, 1000, 65535, 1u << 31, INT64_MAX, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof *maxes; i++) {
        uint64_t max = maxes[i], v;
        char s[32];
        snprintf(s, sizeof s, "%" PRIu64, max);
        assert_int_equal(parse(s, max, &v), 0); /* exactly max */
        assert_int_equal(v, max);
        if (max == UINT64_MAX) continue;
        for (uint64_t k = 1; k <= 10 && max + k > max; k++) {
            snprintf(s, sizeof s, "%" PRIu64, max + k);
            if (parse(s, max, &v) != CS_EPARSE) fail_msg("%s accepted with max %" PRIu64, s, max);
        }
    }
    uint64_t v;
    assert_int_equal(parse("18446744073709551616", UINT64_MAX, &v), CS_EPARSE);
    assert_int_equal(parse("99999999999999999999", UINT64_MAX, &v), CS_EPARSE);
    assert_int_equal(parse("100000000000000000000", UINT64_MAX, &v), CS_EPARSE);
    assert_int_equal(parse("9223372036854775808", INT64_MAX, &v), CS_EPARSE);
    assert_int_equal(parse("0", 0, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse("007", 7, &v), 0); /* leading zeros are digits */
    assert_int_equal(v, 7);
    assert_int_equal(parse("00000000000000000001", UINT64_MAX, &v), 0);
    assert_int_equal(v, 1);
    /* More than 20 digits is refused whatever their value. */
    assert_int_equal(parse("000000000000000000001", UINT64_MAX, &v), CS_EPARSE);
}

static void to_u64_rejects_what_is_not_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    "+1",    "-1",           "-0",   " 1",
                                      "1 ",  "1a",    "a1",           "0x10", "1.0",
                                      "1e3", "1,000", "\xef\xbc\x91", "/",    ":"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t v;
        if (parse(bad[i], UINT64_MAX, &v) != CS_EPARSE) fail_msg("\"%s\" accepted", bad[i]);
    }
    uint64_t v = 0;
    assert_int_equal(cs_str_to_u64(CS_STR("1\0"), UINT64_MAX, &v), CS_EPARSE);
    assert_int_equal(cs_str_to_u64(CS_STR_NULL, UINT64_MAX, &v), CS_EPARSE);
    assert_int_equal(cs_str_to_u64((cs_str){"12abc", 2}, UINT64_MAX, &v), 0); /* the view */
    assert_int_equal(v, 12);
}

static void copy_truncates(void **state)
{
    (void)state;
    char out[8];
    memset(out, '#', sizeof out);
    assert_int_equal(cs_str_copy(out, 0, CS_STR("abc")), 0);
    assert_int_equal(out[0], '#'); /* no room even for the NUL */
    assert_int_equal(cs_str_copy(out, 1, CS_STR("abc")), 0);
    assert_string_equal(out, "");
    assert_int_equal(cs_str_copy(out, 4, CS_STR("abcdef")), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(cs_str_copy(out, 7, CS_STR("abcdef")), 6); /* exactly fits */
    assert_string_equal(out, "abcdef");
    assert_int_equal(cs_str_copy(out, sizeof out, CS_STR("abcdefgh")), 7);
    assert_string_equal(out, "abcdefg");
    assert_int_equal(cs_str_copy(out, sizeof out, (cs_str){"abcdef", 2}), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(cs_str_copy(out, sizeof out, CS_STR_NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(cs_str_copy(out, sizeof out, CS_STR("a\0b")), 3);
    assert_memory_equal(out, "a\0b", 4);
}

static void dup_copies_the_view(void **state)
{
    (void)state;
    char *s = cs_str_dup(CS_STR("abc"));
    assert_string_equal(s, "abc");
    free(s);
    s = cs_str_dup((cs_str){"abcdef", 2});
    assert_string_equal(s, "ab");
    free(s);
    s = cs_str_dup(CS_STR_NULL);
    assert_string_equal(s, "");
    free(s);
    s = cs_str_dup(CS_STR("a\0b"));
    assert_memory_equal(s, "a\0b", 4);
    free(s);
}

static void utf8_characters(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n, want;
    } rows[] = {
        {"a", 1, 1},
        {"\xc3\xa9", 2, 2},
        {"\xe2\x82\xac", 3, 3},
        {"\xf0\x9f\x98\x80", 4, 4},
        {"\xf4\x8f\xbf\xbf", 4, 4},  /* U+10FFFF */
        {"\xed\x9f\xbf", 3, 3},       /* U+D7FF, just under the surrogates */
        {"\xef\xbf\xbf", 3, 3},       /* U+FFFF is UTF-8 (XML refuses it, not UTF-8) */
        {"", 0, 0},
        {"\x80", 1, 0},                /* a continuation byte alone */
        {"\xc3", 1, 0},                /* cut short */
        {"\xe2\x82", 2, 0},
        {"\xc3\x28", 2, 0},
        {"\xc0\xaf", 2, 0},            /* overlong */
        {"\xc1\xbf", 2, 0},
        {"\xe0\x9f\xbf", 3, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0},
        {"\xed\xa0\x80", 3, 0},        /* surrogate */
        {"\xf4\x90\x80\x80", 4, 0},    /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"\xe2\x82\xac", 2, 0}, /* n cuts it */
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (cs_utf8_char(rows[i].s, rows[i].n) != rows[i].want)
            fail_msg("row %zu: %zu, expected %zu", i, cs_utf8_char(rows[i].s, rows[i].n),
                     rows[i].want);
}

/* ---- UTF-8 against a plain decoder ---- */

static bool utf8_reference(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        size_t k = c < 0x80 ? 0 : c < 0xc0 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf8 ? 3 : 9;
        if (k == 9 || k >= n - i) return false;
        if (k) c &= 0x3f >> k;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            c = c << 6 | (s[i + j] & 0x3f);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (c < min[k] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
        i += k + 1;
    }
    return true;
}

/* What each entry point says of s[0..n) — the whole string, one character after the
 * other, a byte at a time through the feed — agreeing; -1 when they do not. */
static int utf8_checks(const char *s, size_t n)
{
    bool whole = cs_utf8_valid(s, n);
    size_t i = 0;
    for (size_t k; i < n && (k = cs_utf8_char(s + i, n - i)) > 0;) i += k;
    uint32_t state = CS_UTF8_ACCEPT;
    for (size_t j = 0; j < n; j++) state = cs_utf8_feed(state, s + j, 1);
    if ((i == n) != whole || (state == CS_UTF8_ACCEPT) != whole) return -1;
    return whole;
}

static void utf8_matches_reference(void **state)
{
    (void)state;
    uint8_t s[4];
    for (uint32_t v = 0; v < 0x1000000; v++) { /* every 1-, 2- and 3-byte string */
        s[0] = (uint8_t)(v >> 16);
        s[1] = (uint8_t)(v >> 8);
        s[2] = (uint8_t)v;
        for (size_t n = v < 0x100 ? 1 : v < 0x10000 ? 2 : 3; n <= 3; n++) {
            const uint8_t *p = s + 3 - n;
            if (utf8_checks((const char *)p, n) != utf8_reference(p, n))
                fail_msg("%zu bytes %06x", n, v);
        }
    }
    static const uint8_t edges[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    for (unsigned lead = 0xf0; lead <= 0xff; lead++)
        for (size_t a = 0; a < sizeof edges; a++)
            for (size_t b = 0; b < sizeof edges; b++)
                for (size_t c = 0; c < sizeof edges; c++) {
                    uint8_t q[4] = {(uint8_t)lead, edges[a], edges[b], edges[c]};
                    assert_int_equal(utf8_checks((const char *)q, 4), utf8_reference(q, 4));
                }
    /* the ASCII fast path hands over to the DFA at any position */
    char text[64];
    memset(text, 'a', sizeof text);
    for (size_t i = 0; i + 2 <= sizeof text; i++) {
        memcpy(text + i, "\xc3\xa9", 2);
        assert_true(cs_utf8_valid(text, sizeof text));
        text[i + 1] = 'a';
        assert_false(cs_utf8_valid(text, sizeof text));
        assert_false(cs_utf8_valid(text, i + 1));
        text[i] = 'a';
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(views),
        cmocka_unit_test(ieq),
        cmocka_unit_test(has_token),
        cmocka_unit_test(to_u64_bounds),
        cmocka_unit_test(to_u64_rejects_what_is_not_digits),
        cmocka_unit_test(copy_truncates),
        cmocka_unit_test(dup_copies_the_view),
        cmocka_unit_test(utf8_characters),
        cmocka_unit_test(utf8_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
