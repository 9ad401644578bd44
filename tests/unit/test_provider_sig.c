#include "testutil.h"

#include <openssl/crypto.h>
#include <string.h>

#include "core/base64.h"
#include "core/crypto.h"
#include "core/err.h"
#include "provider/twilio_sig.h"

#define TOKEN "12345"

/* cs_ct_equal ends in OpenSSL's CRYPTO_memcmp; this definition takes its place in the
 * test program, so the tests can see that signatures are compared through it. */
static int ct_compares;

int CRYPTO_memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    ct_compares++;
    for (size_t i = 0; i < n; i++) diff |= x[i] ^ y[i];
    return diff;
}

/* Twilio's published example (protocol.md §5.1). */
static const char doc_url[] = "https://example.com/myapp.php?foo=1&bar=2";
static const cs_kv doc_params[] = {
    {CS_STR("To"), CS_STR("+18005551212")},
    {CS_STR("Caller"), CS_STR("+14158675310")},
    {CS_STR("Digits"), CS_STR("1234")},
    {CS_STR("From"), CS_STR("+14158675310")},
    {CS_STR("CallSid"), CS_STR("CA1234567890ABCDE")},
};
static const char doc_sig[] = "L/OH5YylLD5NRKLltdqwSvS0BnU=";

/* base64(HMAC-SHA1(token, data)): the signature of an already joined string. */
static void ref_sig(char out[CS_TWILIO_SIG_LEN + 1], const char *token, const char *data)
{
    uint8_t mac[CS_SHA1_LEN];
    const void *parts[] = {data};
    const size_t lens[] = {strlen(data)};
    assert_int_equal(cs_hmac_sha1(mac, token, strlen(token), parts, lens, 1), 0);
    cs_base64_encode(out, mac, CS_SHA1_LEN);
    out[CS_TWILIO_SIG_LEN] = '\0';
}

static void sig_of(char out[CS_TWILIO_SIG_LEN + 1], const char *url)
{
    assert_int_equal(cs_twilio_sig_compute(out, TOKEN, url, NULL, 0), 0);
}

static void published_vector(void **state)
{
    (void)state;
    char sig[CS_TWILIO_SIG_LEN + 1];
    ref_sig(sig, TOKEN,
            "https://example.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675310"
            "Digits1234From+14158675310To+18005551212");
    assert_string_equal(sig, doc_sig);
    assert_int_equal(cs_twilio_sig_compute(sig, TOKEN, doc_url, doc_params, 5), 0);
    assert_string_equal(sig, doc_sig);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0, doc_sig),
                     0);
}

static void params_sorted_by_bytes(void **state)
{
    (void)state;
    char got[CS_TWILIO_SIG_LEN + 1], want[CS_TWILIO_SIG_LEN + 1];
    /* uppercase before lowercase, a prefix before what extends it */
    const cs_kv case_and_prefix[] = {{CS_STR("b"), CS_STR("1")},
                                     {CS_STR("AB"), CS_STR("2")},
                                     {CS_STR("B"), CS_STR("3")},
                                     {CS_STR("A"), CS_STR("4")}};
    assert_int_equal(cs_twilio_sig_compute(got, TOKEN, "https://h/x", case_and_prefix, 4), 0);
    ref_sig(want, TOKEN, "https://h/xA4AB2B3b1");
    assert_string_equal(got, want);
    /* a repeated name: its values in order; a repeated pair counts once */
    const cs_kv repeated[] = {{CS_STR("To"), CS_STR("b")},
                              {CS_STR("From"), CS_STR("x")},
                              {CS_STR("To"), CS_STR("a")},
                              {CS_STR("To"), CS_STR("b")},
                              {CS_STR("To"), CS_STR("")}};
    assert_int_equal(cs_twilio_sig_compute(got, TOKEN, "https://h/x", repeated, 5), 0);
    ref_sig(want, TOKEN, "https://h/xFromxToToaTob");
    assert_string_equal(got, want);
    /* bytes above 0x7f sort after ASCII */
    const cs_kv utf8[] = {{CS_STR("\xc3\xa9"), CS_STR("1")}, {CS_STR("z"), CS_STR("2")}};
    assert_int_equal(cs_twilio_sig_compute(got, TOKEN, "https://h/x", utf8, 2), 0);
    ref_sig(want, TOKEN,
            "https://h/xz2\xc3\xa9"
            "1");
    assert_string_equal(got, want);
}

static void too_many_params(void **state)
{
    (void)state;
    static cs_kv many[CS_TWILIO_SIG_MAX_PARAMS + 1];
    for (size_t i = 0; i <= CS_TWILIO_SIG_MAX_PARAMS; i++)
        many[i] = (cs_kv){CS_STR("Name"), CS_STR("value")};
    char sig[CS_TWILIO_SIG_LEN + 1];
    assert_int_equal(cs_twilio_sig_compute(sig, TOKEN, doc_url, many, CS_TWILIO_SIG_MAX_PARAMS), 0);
    assert_int_equal(cs_twilio_sig_compute(sig, TOKEN, doc_url, many, CS_TWILIO_SIG_MAX_PARAMS + 1),
                     CS_ELIMIT);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, many, CS_TWILIO_SIG_MAX_PARAMS + 1,
                                                 NULL, 0, sig),
                     CS_EAUTH);
}

/* signed URL → URL the check is given → accepted? */
static const struct variant_row {
    const char *signed_url, *given_url;
    int want;
} webhook_rows[] = {
    {"https://example.com/a?b=1", "https://example.com/a?b=1", 0},
    {"https://example.com/a?b=1", "https://example.com:443/a?b=1", 0}, /* port removed */
    {"https://example.com:443/a?b=1", "https://example.com/a?b=1", 0}, /* default port added */
    {"http://example.com:80/a", "http://example.com/a", 0},            /* http's default */
    {"http://example.com/a", "http://example.com:80/a", 0},
    {"https://example.com/a", "https://example.com:8443/a", 0},      /* any port removed */
    {"https://example.com:8443/a", "https://example.com:8443/a", 0}, /* as given */
    {"HTTPS://example.com:443/a", "HTTPS://example.com/a", 0},       /* scheme in any case */
    {"https://[2001:db8::1]/a", "https://[2001:db8::1]:8443/a", 0},  /* IPv6 literal */
    {"https://[2001:db8::1]:443/a", "https://[2001:db8::1]/a", 0},
    {"https://u:p@example.com/a", "https://u:p@example.com:8443/a", 0}, /* userinfo kept */
    {"https://example.com", "https://example.com:443", 0},              /* no path */
    {"https://example.com:8443/a", "https://example.com/a", CS_EAUTH},  /* port not guessed */
    {"https://example.com:80/a", "https://example.com/a", CS_EAUTH},    /* not https's default */
    {"http://example.com:443/a", "http://example.com/a", CS_EAUTH},
    {"https://example.com/a/", "https://example.com/a", CS_EAUTH}, /* no slash variants */
    {"https://example.com/a?b=1", "https://example.com/a?b=2", CS_EAUTH},
    {"https://example.com/a?b=1", "https://example.com/a?b=1&c=2", CS_EAUTH},
    {"https://example.com/a", "http://example.com/a", CS_EAUTH},
    {"https://example.com/a", "https://example.org/a", CS_EAUTH},
    {"https://example.com/a", "https://example.com/A", CS_EAUTH},
};

static void webhook_url_variants(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof webhook_rows / sizeof *webhook_rows; i++) {
        const struct variant_row *r = &webhook_rows[i];
        char sig[CS_TWILIO_SIG_LEN + 1];
        assert_int_equal(cs_twilio_sig_compute(sig, TOKEN, r->signed_url, doc_params, 5), 0);
        int rc = cs_twilio_sig_check_webhook(TOKEN, r->given_url, doc_params, 5, NULL, 0, sig);
        if (rc != r->want)
            fail_msg("signed %s, checked as %s: %d, want %d", r->signed_url, r->given_url, rc,
                     r->want);
    }
}

static const struct variant_row upgrade_rows[] = {
    {"wss://example.com/twilio/media", "wss://example.com/twilio/media", 0},
    {"wss://example.com:443/twilio/media", "wss://example.com/twilio/media", 0},
    {"wss://example.com/twilio/media/", "wss://example.com/twilio/media", 0},
    {"wss://example.com:443/twilio/media/", "wss://example.com/twilio/media", 0},
    {"wss://example.com/twilio/media", "wss://example.com:443/twilio/media/", 0},
    {"wss://example.com/twilio/media", "wss://example.com/twilio/media/", 0},
    {"wss://example.com/", "wss://example.com", 0},
    {"wss://example.com", "wss://example.com/", 0},
    {"https://example.com/twilio/media", "wss://example.com/twilio/media", CS_EAUTH},
    {"wss://example.com:80/twilio/media", "wss://example.com/twilio/media", CS_EAUTH},
    {"wss://example.com/twilio/media//", "wss://example.com/twilio/media", CS_EAUTH},
    {"wss://example.com/twilio/medi", "wss://example.com/twilio/media", CS_EAUTH},
    {"wss://example.com/twilio/media", "wss://example.net/twilio/media", CS_EAUTH},
};

static void upgrade_url_variants(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof upgrade_rows / sizeof *upgrade_rows; i++) {
        const struct variant_row *r = &upgrade_rows[i];
        char sig[CS_TWILIO_SIG_LEN + 1];
        sig_of(sig, r->signed_url);
        int rc = cs_twilio_sig_check_upgrade(TOKEN, r->given_url, sig);
        if (rc != r->want)
            fail_msg("signed %s, checked as %s: %d, want %d", r->signed_url, r->given_url, rc,
                     r->want);
    }
    /* the upgrade carries no params */
    char sig[CS_TWILIO_SIG_LEN + 1];
    assert_int_equal(
        cs_twilio_sig_compute(sig, TOKEN, "wss://example.com/twilio/media", doc_params, 5), 0);
    assert_int_equal(cs_twilio_sig_check_upgrade(TOKEN, "wss://example.com/twilio/media", sig),
                     CS_EAUTH);
}

/* §5.2: JSON bodies are covered by bodySHA256 in the signed URL. */
static void json_body(void **state)
{
    (void)state;
    static const char body[] = "{\"CallSid\":\"CA1234567890ABCDE\",\"Caller\":\"+12349013030\"}";
    static const char hash[] = "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9";
    uint8_t digest[CS_SHA256_LEN];
    char hex[2 * CS_SHA256_LEN + 1];
    cs_sha256(digest, body, strlen(body));
    cs_hex(hex, digest, CS_SHA256_LEN);
    assert_string_equal(hex, hash);

    const char *url = "https://example.com/myapp?bodySHA256="
                      "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9";
    char sig[CS_TWILIO_SIG_LEN + 1];
    sig_of(sig, url);
    size_t n = strlen(body);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, url, NULL, 0, body, n, sig), 0);
    /* params play no part once the body is hashed */
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, url, doc_params, 5, body, n, sig), 0);
    /* the port variants still apply */
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN,
                                                 "https://example.com:443/myapp?bodySHA256="
                                                 "5ccde7145dfb8f56479710896586cb9d5911809d83afbe3"
                                                 "4627818790db0aec9",
                                                 NULL, 0, body, n, sig),
                     0);
    /* another body, or none */
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, url, NULL, 0, body, n - 1, sig), CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, url, NULL, 0, NULL, 0, sig), CS_EAUTH);
    /* the hash among other query parameters, before a fragment */
    const char *amid = "https://example.com/myapp?a=1&bodySHA256=5ccde7145dfb8f56479710896586cb9d"
                       "5911809d83afbe34627818790db0aec9&z=2#frag";
    sig_of(sig, amid);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, amid, NULL, 0, body, n, sig), 0);
    /* a hash in uppercase is not what Twilio sends */
    const char *upper = "https://example.com/myapp?bodySHA256=5CCDE7145DFB8F56479710896586CB9D"
                        "5911809D83AFBE34627818790DB0AEC9";
    sig_of(sig, upper);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, upper, NULL, 0, body, n, sig), CS_EAUTH);
    /* a name that only ends like it is not the hash: a form request, params signed */
    const char *other = "https://example.com/myapp?xbodySHA256=0";
    assert_int_equal(cs_twilio_sig_compute(sig, TOKEN, other, doc_params, 5), 0);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, other, doc_params, 5, NULL, 0, sig), 0);
}

static void refusals(void **state)
{
    (void)state;
    const cs_kv changed[] = {
        {CS_STR("To"), CS_STR("+18005551213")},
        {CS_STR("Caller"), CS_STR("+14158675310")},
        {CS_STR("Digits"), CS_STR("1234")},
        {CS_STR("From"), CS_STR("+14158675310")},
        {CS_STR("CallSid"), CS_STR("CA1234567890ABCDE")},
    };
    const cs_kv extra[] = {
        {CS_STR("To"), CS_STR("+18005551212")},
        {CS_STR("Caller"), CS_STR("+14158675310")},
        {CS_STR("Digits"), CS_STR("1234")},
        {CS_STR("From"), CS_STR("+14158675310")},
        {CS_STR("CallSid"), CS_STR("CA1234567890ABCDE")},
        {CS_STR("Extra"), CS_STR("")},
    };
    assert_int_equal(cs_twilio_sig_check_webhook("12346", doc_url, doc_params, 5, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, changed, 5, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 4, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, extra, 6, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, "https://example.com/myapp.php?foo=1",
                                                 doc_params, 5, NULL, 0, doc_sig),
                     CS_EAUTH);
    static const char *const headers[] = {
        "",
        "garbage",
        "L/OH5YylLD5NRKLltdqwSvS0BnU",   /* one character short */
        "L/OH5YylLD5NRKLltdqwSvS0BnU==", /* one too many */
        "L/OH5YylLD5NRKLltdqwSvS0BnV=",
        "l/oh5yylld5nrklltdqwsvs0bnu=",
        "L/OH5YylLD5NRKLltdqwSvS0BnU= ",
        " L/OH5YylLD5NRKLltdqwSvS0BnU=",
        "L_OH5YylLD5NRKLltdqwSvS0BnU=",
    };
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        if (cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0, headers[i]) !=
            CS_EAUTH)
            fail_msg("accepted \"%s\"", headers[i]);
        assert_int_equal(cs_twilio_sig_check_upgrade(TOKEN, "wss://example.com/x", headers[i]),
                         CS_EAUTH);
    }
    /* missing pieces */
    char sig[CS_TWILIO_SIG_LEN + 1];
    assert_int_equal(cs_twilio_sig_compute(sig, "", doc_url, doc_params, 5), 0);
    assert_int_equal(cs_twilio_sig_check_webhook("", doc_url, doc_params, 5, NULL, 0, sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(NULL, doc_url, doc_params, 5, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, NULL, doc_params, 5, NULL, 0, doc_sig),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0, NULL),
                     CS_EAUTH);
    assert_int_equal(cs_twilio_sig_check_upgrade(TOKEN, "wss://example.com/x", NULL), CS_EAUTH);
    /* URLs without a scheme cannot have come from Twilio */
    static const char *const urls[] = {"example.com/x", "/twilio/media", "://example.com/x",
                                       "wss:/example.com/x", ""};
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        sig_of(sig, urls[i]);
        assert_int_equal(cs_twilio_sig_check_upgrade(TOKEN, urls[i], sig), CS_EAUTH);
        assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, urls[i], NULL, 0, NULL, 0, sig),
                         CS_EAUTH);
    }
}

static void compares_in_constant_time(void **state)
{
    (void)state;
    /* a header of the right length is compared with every variant through CRYPTO_memcmp */
    int before = ct_compares;
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0,
                                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                     CS_EAUTH);
    int right_length = ct_compares - before;
    before = ct_compares;
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0, "AAAA"),
                     CS_EAUTH);
    int wrong_length = ct_compares - before;
    assert_int_equal(right_length - wrong_length, 2); /* with and without the port */
    before = ct_compares;
    assert_int_equal(
        cs_twilio_sig_check_upgrade(TOKEN, "wss://example.com/x", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        CS_EAUTH);
    assert_true(ct_compares - before >= 4); /* ±port × ±slash */
    before = ct_compares;
    assert_int_equal(cs_twilio_sig_check_webhook(TOKEN, doc_url, doc_params, 5, NULL, 0, doc_sig),
                     0);
    assert_true(ct_compares > before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(published_vector),
        cmocka_unit_test(params_sorted_by_bytes),
        cmocka_unit_test(too_many_params),
        cmocka_unit_test(webhook_url_variants),
        cmocka_unit_test(upgrade_url_variants),
        cmocka_unit_test(json_body),
        cmocka_unit_test(refusals),
        cmocka_unit_test(compares_in_constant_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
