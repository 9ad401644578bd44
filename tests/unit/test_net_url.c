#include "testutil.h"

#include <string.h>

#include "core/err.h"
#include "net/url.h"

static void parse_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *scheme, *host;
        unsigned port;
        bool port_explicit, tls;
        const char *path, *query, *host_header;
    } cases[] = {
        {"http://example.com", "http", "example.com", 80, false, false, "/", "", "example.com"},
        {"https://example.com/", "https", "example.com", 443, false, true, "/", "", "example.com"},
        {"ws://gw.local:8080/twilio/media", "ws", "gw.local", 8080, true, false, "/twilio/media",
         "", "gw.local:8080"},
        {"wss://gw.example.com/twilio/media?token=a%20b&x=1", "wss", "gw.example.com", 443, false,
         true, "/twilio/media", "token=a%20b&x=1", "gw.example.com"},
        {"HTTPS://Example.COM:8443/Twilio/Voice?A=B#Frag", "https", "example.com", 8443, true, true,
         "/Twilio/Voice", "A=B", "example.com:8443"},
        {"http://host:80/x", "http", "host", 80, true, false, "/x", "", "host"},
        {"https://host:443", "https", "host", 443, true, true, "/", "", "host"},
        {"https://host:80", "https", "host", 80, true, true, "/", "", "host:80"},
        {"http://host:/p", "http", "host", 80, false, false, "/p", "", "host"},
        {"http://host:65535", "http", "host", 65535, true, false, "/", "", "host:65535"},
        {"http://host:00080/", "http", "host", 80, true, false, "/", "", "host"},
        {"ws://user:pa%40ss@host:81/", "ws", "host", 81, true, false, "/", "", "host:81"},
        {"http://a@b@host/", "http", "host", 80, false, false, "/", "", "host"},
        {"wss://[::1]:8443/media", "wss", "::1", 8443, true, true, "/media", "", "[::1]:8443"},
        {"http://[2001:DB8::1]/", "http", "2001:db8::1", 80, false, false, "/", "",
         "[2001:db8::1]"},
        {"http://[::ffff:192.0.2.1]:80", "http", "::ffff:192.0.2.1", 80, true, false, "/", "",
         "[::ffff:192.0.2.1]"},
        {"http://192.0.2.1:8000?x", "http", "192.0.2.1", 8000, true, false, "/", "x",
         "192.0.2.1:8000"},
        {"http://h?", "http", "h", 80, false, false, "/", "", "h"},
        {"http://h#frag?not-query", "http", "h", 80, false, false, "/", "", "h"},
        {"http://h/a?b?c#d", "http", "h", 80, false, false, "/a", "b?c", "h"},
        {"http://h//double/", "http", "h", 80, false, false, "//double/", "", "h"},
        {"http://my-host_1.example~/", "http", "my-host_1.example~", 80, false, false, "/", "",
         "my-host_1.example~"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_url u;
        if (cs_url_parse(&u, cases[i].in) != 0) fail_msg("case %zu: %s", i, cases[i].in);
        assert_string_equal(u.scheme, cases[i].scheme);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.port_explicit, cases[i].port_explicit);
        assert_int_equal(u.tls, cases[i].tls);
        assert_string_equal(u.path, cases[i].path);
        assert_string_equal(u.query, cases[i].query);
        char hh[CS_URL_MAX_HOST + 9];
        cs_url_host_header(&u, hh, sizeof hh);
        assert_string_equal(hh, cases[i].host_header);
    }
}

static void parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "example.com",
        "//example.com/",
        "ftp://example.com/",
        "http:/example.com",
        "http:example.com",
        "https://",
        "http:///path",
        "http://?q",
        "http://:80/",
        "http://user@/",
        "http://h:0/",
        "http://h:65536/",
        "http://h:99999999999999999999999/",
        "http://h:-1/",
        "http://h:8x/",
        "http://h:80:81/",
        "http://h x/",
        "http://h/a b",
        "http://h/a\tb",
        "http://h/\x01",
        "http://h\x7f/",
        "http://h/caf\xc3\xa9",
        " http://h/",
        "http://h/ ",
        "http://[::1/",
        "http://[]/",
        "http://[zz::1]/",
        "http://[127.0.0.1]/",
        "http://[::1]x/",
        "http://a%41/",
        "http://a\"b/",
        "http://a<b/",
        "http://a[b/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_url u;
        if (cs_url_parse(&u, bad[i]) != CS_EPARSE) fail_msg("case %zu: %s", i, bad[i]);
    }
}

static void parse_limits(void **state)
{
    (void)state;
    static char s[CS_URL_MAX + 16];
    cs_url u;

    /* host: 255 bytes fit, 256 do not */
    strcpy(s, "http://");
    memset(s + 7, 'h', CS_URL_MAX_HOST);
    strcpy(s + 7 + CS_URL_MAX_HOST, "/p");
    assert_int_equal(cs_url_parse(&u, s), 0);
    assert_int_equal(strlen(u.host), CS_URL_MAX_HOST);
    char hh[CS_URL_MAX_HOST + 9];
    u.port = 65535;
    u.port_explicit = true;
    cs_url_host_header(&u, hh, sizeof hh);
    assert_int_equal(strlen(hh), CS_URL_MAX_HOST + 6);
    char tiny[8];
    cs_url_host_header(&u, tiny, sizeof tiny);
    assert_string_equal(tiny, "hhhhhhh");

    strcpy(s, "http://");
    memset(s + 7, 'h', CS_URL_MAX_HOST + 1);
    strcpy(s + 8 + CS_URL_MAX_HOST, "/p");
    assert_int_equal(cs_url_parse(&u, s), CS_EPARSE);

    /* the whole URL: CS_URL_MAX - 1 characters fit */
    strcpy(s, "http://h/");
    memset(s + 9, 'p', CS_URL_MAX - 10);
    s[CS_URL_MAX - 1] = '\0';
    assert_int_equal(cs_url_parse(&u, s), 0);
    assert_int_equal(strlen(u.path), CS_URL_MAX - 9);
    s[CS_URL_MAX - 1] = 'p';
    s[CS_URL_MAX] = '\0';
    assert_int_equal(cs_url_parse(&u, s), CS_EPARSE);

    /* a long query fits too */
    strcpy(s, "http://h?");
    memset(s + 9, 'q', CS_URL_MAX - 10);
    s[CS_URL_MAX - 1] = '\0';
    assert_int_equal(cs_url_parse(&u, s), 0);
    assert_int_equal(strlen(u.query), CS_URL_MAX - 10);
    assert_string_equal(u.path, "/");
}

/* Redis's URL, and the credentials of any URL: percent-decoded, malformed escapes refused. */
static void credentials(void **state)
{
    (void)state;
    cs_url u;
    char user[16], pass[16];
    assert_int_equal(cs_url_parse(&u, "redis://:p%40ss%3Aw%25rd@Cache.local/2"), 0);
    assert_string_equal(u.scheme, "redis");
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 6379);
    assert_false(u.tls);
    assert_string_equal(u.path, "/2");
    assert_string_equal(u.userinfo, ":p%40ss%3Aw%25rd");
    assert_int_equal(cs_url_credentials(&u, user, pass, sizeof user), 0);
    assert_string_equal(user, "");
    assert_string_equal(pass, "p@ss:w%rd");
    static const struct {
        const char *in, *user, *pass;
    } ok[] = {
        {"redis://h", "", ""},
        {"redis://al%69ce:pw@[::1]:7000", "alice", "pw"},
        {"ws://us+er:a:b@h/", "us+er", "a:b"}, /* '+' is itself; the first ':' splits */
        {"http://only@h/", "only", ""},
        {"http://a@b@h/", "a@b", ""},
        {"redis://:%7e%7E@h", "", "~~"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        assert_int_equal(cs_url_parse(&u, ok[i].in), 0);
        if (cs_url_credentials(&u, user, pass, sizeof user) != 0) fail_msg("%s", ok[i].in);
        assert_string_equal(user, ok[i].user);
        assert_string_equal(pass, ok[i].pass);
    }
    static const char *const bad[] = {"redis://:p%4@h", "redis://:p%@h", "redis://:%zz@h",
                                      "redis://u%4g:p@h", "redis://:a%00b@h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(cs_url_parse(&u, bad[i]), 0);
        if (cs_url_credentials(&u, user, pass, sizeof user) != CS_EPARSE) fail_msg("%s", bad[i]);
        assert_string_equal(pass, "");
    }
    /* 15 bytes fit in 16, decoded; 16 do not */
    assert_int_equal(cs_url_parse(&u, "redis://:%41%41%41%41%41aaaaaaaaaa@h"), 0);
    assert_int_equal(cs_url_credentials(&u, user, pass, sizeof user), 0);
    assert_string_equal(pass, "AAAAAaaaaaaaaaa");
    assert_int_equal(cs_url_parse(&u, "redis://:aaaaaaaaaaaaaaaa@h"), 0);
    assert_int_equal(cs_url_credentials(&u, user, pass, sizeof user), CS_ELIMIT);
    /* the userinfo's bound */
    static char s[CS_URL_MAX_USERINFO + 32];
    strcpy(s, "redis://");
    memset(s + 8, 'u', CS_URL_MAX_USERINFO);
    strcpy(s + 8 + CS_URL_MAX_USERINFO, "@h");
    assert_int_equal(cs_url_parse(&u, s), 0);
    assert_int_equal(strlen(u.userinfo), CS_URL_MAX_USERINFO);
    strcpy(s + 8 + CS_URL_MAX_USERINFO, "u@h");
    assert_int_equal(cs_url_parse(&u, s), CS_EPARSE);
    assert_int_equal(cs_url_parse(&u, "rediss://h"), CS_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid),
        cmocka_unit_test(parse_invalid),
        cmocka_unit_test(parse_limits),
        cmocka_unit_test(credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
