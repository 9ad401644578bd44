#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "net/form.h"

static void parse_pairs(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        size_t n;
        const char *pairs[8]; /* name, value, name, value… */
    } cases[] = {
        {"a=1&b=2", 2, {"a", "1", "b", "2"}},
        {"", 0, {NULL}},
        {"&&&", 0, {NULL}},
        {"a=1&&b=2&", 2, {"a", "1", "b", "2"}},
        {"flag", 1, {"flag", ""}},
        {"flag&x=", 2, {"flag", "", "x", ""}},
        {"=v", 1, {"", "v"}},
        {"a=b=c", 1, {"a", "b=c"}},
        {"a+b=c+d", 1, {"a b", "c d"}},
        {"p=%2B1%20415", 1, {"p", "+1 415"}},
        {"x=%2b%2F%2f%7e", 1, {"x", "+//~"}},
        {"caf%C3%A9=%E2%82%AC", 1, {"café", "€"}},
        {"amp=%26&eq=%3D", 2, {"amp", "&", "eq", "="}},
        {"raw=caf\xc3\xa9;x?y", 1, {"raw", "café;x?y"}},
        {"a=1&a=2", 2, {"a", "1", "a", "2"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_form f;
        assert_int_equal(cs_form_parse(&f, cases[i].body, strlen(cases[i].body)), 0);
        assert_int_equal(f.n, cases[i].n);
        for (size_t k = 0; k < f.n; k++) {
            assert_string_equal(f.pairs[k].name, cases[i].pairs[2 * k]);
            assert_string_equal(f.pairs[k].value, cases[i].pairs[2 * k + 1]);
        }
        cs_form_free(&f);
        cs_form_free(&f); /* idempotent */
    }
}

/* The parameters Twilio posts to a voice webhook; the signature covers decoded values. */
static void parse_twilio_webhook(void **state)
{
    (void)state;
    static const char body[] =
        "AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01"
        "&CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=ringing&Called=%2B15005550006"
        "&CallerCity=SAN+FRANCISCO&Direction=inbound&From=%2B14155551234"
        "&To=%2B15005550006&CallerName=O%27Brien%2C+Ana";
    cs_form f;
    assert_int_equal(cs_form_parse(&f, body, sizeof body - 1), 0);
    assert_int_equal(f.n, 10);
    assert_string_equal(cs_form_get(&f, "From"), "+14155551234");
    assert_string_equal(cs_form_get(&f, "CallerCity"), "SAN FRANCISCO");
    assert_string_equal(cs_form_get(&f, "CallerName"), "O'Brien, Ana");
    assert_string_equal(cs_form_get(&f, "CallSid"), "CA0123456789abcdef0123456789abcdef");
    assert_null(cs_form_get(&f, "from"));
    assert_null(cs_form_get(&f, "Digits"));
    cs_form_free(&f);

    assert_int_equal(cs_form_parse(&f, "a=1&a=2", 7), 0);
    assert_string_equal(cs_form_get(&f, "a"), "1");
    cs_form_free(&f);
}

static void parse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a=%", "a=%2", "a=%2G", "a=%G2", "%zz=1", "a=1&b=%", "a=%%41", "a=%00", "%00=1", "a=%0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_form f;
        assert_int_equal(cs_form_parse(&f, bad[i], strlen(bad[i])), CS_EPARSE);
        assert_int_equal(f.n, 0);
        assert_null(f.pairs);
        assert_null(f.storage);
    }
    cs_form f;
    assert_int_equal(cs_form_parse(&f, "a=1\0&b=2", 8), CS_EPARSE);
    assert_int_equal(cs_form_parse(&f, "a=1&b", 3), 0); /* length, not NUL, ends the body */
    assert_int_equal(f.n, 1);
    cs_form_free(&f);
}

static void parse_limit(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 16);
    for (int i = 0; i < CS_FORM_MAX_PAIRS; i++) cs_buf_printf(&b, "k%d=v%d&&", i, i);
    cs_form f;
    assert_int_equal(cs_form_parse(&f, b.data, b.len), 0);
    assert_int_equal(f.n, CS_FORM_MAX_PAIRS);
    assert_string_equal(f.pairs[CS_FORM_MAX_PAIRS - 1].value, "v255");
    cs_form_free(&f);
    cs_buf_puts(&b, "one=more");
    assert_int_equal(cs_form_parse(&f, b.data, b.len), CS_ELIMIT);
    cs_buf_free(&b);
}

static void url_decode(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(cs_url_decode(out, "a+b%20c", 7, false), 5);
    assert_string_equal(out, "a+b c");
    assert_int_equal(cs_url_decode(out, "a+b%20c", 7, true), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(cs_url_decode(out, "%00", 3, false), 1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(cs_url_decode(out, "", 0, false), 0);
    assert_string_equal(out, "");
    assert_int_equal(cs_url_decode(out, "%4", 2, false), CS_EPARSE);
    assert_int_equal(cs_url_decode(out, "%41%4", 3, false), 1); /* n bounds the input */

    char in_place[] = "%2Bx%2fy+z";
    assert_int_equal(cs_url_decode(in_place, in_place, strlen(in_place), true), 6);
    assert_string_equal(in_place, "+x/y z");

    for (int c = 0; c < 256; c++) {
        int want = c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : -1;
        assert_int_equal(cs_url_hex((char)c), want);
    }
}

static void encode(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(256);
    static const char s[] = "a Z0*-._~+/&=%\xc3\xa9\n";
    assert_int_equal(cs_form_encode(&b, s, sizeof s - 1), 0);
    assert_string_equal(b.data, "a+Z0*-._%7E%2B%2F%26%3D%25%C3%A9%0A");
    cs_buf_reset(&b);
    assert_int_equal(cs_form_encode(&b, "a\0b", 3), 0);
    assert_string_equal(b.data, "a%00b");
    cs_buf_free(&b);

    /* empty input into an empty buffer */
    cs_buf e = CS_BUF_INIT(16);
    assert_int_equal(cs_form_encode(&e, "", 0), 0);
    assert_int_equal(e.len, 0);
    /* the whole encoding must fit, or nothing is written */
    cs_buf_puts(&e, "0123456789");
    assert_int_equal(cs_form_encode(&e, "///", 3), -EMSGSIZE);
    assert_string_equal(e.data, "0123456789");
    assert_int_equal(cs_form_encode(&e, "/ab", 3), 0);
    assert_string_equal(e.data, "0123456789%2Fab");
    cs_buf_free(&e);
}

static void write_roundtrip(void **state)
{
    (void)state;
    static const char *const names[] = {"To", "From", "Url", "Empty", "Twiml"};
    static const char *const values[] = {"+15005550006", "+14155551234",
                                         "https://gw.example.com/twilio/voice?a=1&b=2", "",
                                         "<Response><Say>Hi & bye</Say></Response>"};
    cs_buf b = CS_BUF_INIT(4096);
    assert_int_equal(cs_form_write(&b, names, values, 5), 0);
    assert_string_equal(b.data, "To=%2B15005550006&From=%2B14155551234"
                                "&Url=https%3A%2F%2Fgw.example.com%2Ftwilio%2Fvoice%3Fa%3D1%26b%3D2"
                                "&Empty=&Twiml=%3CResponse%3E%3CSay%3EHi+%26+bye%3C%2FSay%3E%3C%2F"
                                "Response%3E");
    cs_form f;
    assert_int_equal(cs_form_parse(&f, b.data, b.len), 0);
    assert_int_equal(f.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(f.pairs[i].name, names[i]);
        assert_string_equal(f.pairs[i].value, values[i]);
    }
    cs_form_free(&f);

    /* every byte but NUL survives encode → parse */
    char all[256];
    for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
    all[255] = '\0';
    const char *n1[] = {all}, *v1[] = {all};
    cs_buf_reset(&b);
    assert_int_equal(cs_form_write(&b, n1, v1, 1), 0);
    assert_int_equal(cs_form_parse(&f, b.data, b.len), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.pairs[0].name, all);
    assert_string_equal(f.pairs[0].value, all);
    cs_form_free(&f);

    cs_buf_reset(&b);
    assert_int_equal(cs_form_write(&b, names, values, 0), 0);
    assert_int_equal(b.len, 0);
    cs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_pairs),     cmocka_unit_test(parse_twilio_webhook),
        cmocka_unit_test(parse_malformed), cmocka_unit_test(parse_limit),
        cmocka_unit_test(url_decode),      cmocka_unit_test(encode),
        cmocka_unit_test(write_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
