#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "net/http.h"

#define MAXH CS_HTTP_MAX_HEAD_DEFAULT

/* Parses an exact-size heap copy, so reads past the end show up under ASan. */
static int parse_req(const char *raw, size_t len, size_t max_head, cs_http_req *req, int *status)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, raw, len);
    int rc = cs_http_parse_request(copy, len, max_head, req, status);
    free(copy);
    return rc;
}

/* Every prefix shorter than the head is "need more"; the head and anything longer give
 * the same answer. For malformed input, prefixes give 0 until the error shows. */
static void check_prefixes(const char *raw, size_t len, int want, int want_status)
{
    cs_http_req req;
    bool failed = false;
    for (size_t k = 0; k <= len; k++) {
        int st = 0;
        int rc = parse_req(raw, k, MAXH, &req, &st);
        if (want > 0) {
            assert_int_equal(rc, (int)k < want ? 0 : want);
        } else if (rc != 0) {
            assert_int_equal(rc, want);
            assert_int_equal(st, want_status);
            failed = true;
        } else {
            assert_false(failed);
        }
    }
}

/* ---- the request table ---- */

typedef struct row {
    const char *raw;
    size_t len;
    int status; /* 200: a valid head spanning all of raw; else the error status */
} row;

#define ROW(s, st)                                                                                 \
    {                                                                                              \
        s, sizeof(s) - 1, st                                                                       \
    }
#define HOST "Host: a\r\n"

static const row rows[] = {
    /* valid */
    ROW("GET / HTTP/1.1\r\n" HOST "\r\n", 200),
    ROW("GET /twilio/voice?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 200),
    ROW("GET / HTTP/1.0\r\n\r\n", 200),
    ROW("OPTIONS * HTTP/1.1\r\n" HOST "\r\n", 200),
    ROW("POST /a HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\n", 200),
    ROW("POST /a HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n", 200),
    ROW("POST /a HTTP/1.1\r\n" HOST "Transfer-Encoding: Chunked\r\n\r\n", 200),
    ROW("POST /a HTTP/1.1\r\n" HOST "Content-Length: 7\r\nContent-Length: 007\r\n\r\n", 200),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: \t spaced\tvalue \t\r\n\r\n", 200),
    ROW("GET / HTTP/1.1\r\n" HOST "X-Empty:\r\nX-Blank:   \r\n\r\n", 200),
    ROW("GET / HTTP/1.1\r\n" HOST "X-Latin: caf\xe9\r\n\r\n", 200),
    ROW("\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n", 200),
    ROW("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),
    ROW("GET / HTTP/1.1\r\nHost:\r\n\r\n", 200),
    ROW("PROPFIND /x HTTP/1.1\r\n" HOST "\r\n", 200),
    ROW("GET /a/b;c=d?e=f/g?h#i HTTP/1.1\r\n" HOST "\r\n", 200),
    ROW("GET / HTTP/1.1\r\nhOsT: a\r\n!#$%&'*+-.^_`|~09azAZ: x\r\n\r\n", 200),
    /* request line: 400 */
    ROW("GET  / HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW(" GET / HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.1 \r\n" HOST "\r\n", 400),
    ROW("GET /\r\n\r\n", 400),
    ROW("GET / \r\n\r\n", 400),
    ROW("GET\r\n\r\n", 400),
    ROW("G(T / HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("G\xc9T / HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET http://a/ HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("CONNECT a:443 HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET * HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("OPTIONS *x HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET /a\x7f HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET /a\tb HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET /a\0b HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET / http/1.1\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.1x\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/11\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.10\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.1\rX\r\n" HOST "\r\n", 400),
    /* versions: 505 */
    ROW("GET / HTTP/2.0\r\n" HOST "\r\n", 505),
    ROW("GET / HTTP/1.2\r\n" HOST "\r\n", 505),
    ROW("GET / HTTP/0.9\r\n\r\n", 505),
    ROW("GET / HTTP/3.1\r\n" HOST "\r\n", 505),
    /* line endings and folding: 400 */
    ROW("GET / HTTP/1.1\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "\n", 400),
    ROW("GET / HTTP/1.1\n\n", 400),
    ROW("\nGET / HTTP/1.1\r\n" HOST "\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\r\n b\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\r\n\tb\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n " HOST "\r\n", 400),
    /* field lines: 400 */
    ROW("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST ": v\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "NoColon\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X(A): v\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\x01z\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\x7fz\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\0z\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\rz\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X-A: a\r\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST "X\0A: a\r\n\r\n", 400),
    /* Host: 400 */
    ROW("GET / HTTP/1.1\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\n" HOST HOST "\r\n", 400),
    ROW("GET / HTTP/1.0\r\n" HOST "Host: b\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ROW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    /* Content-Length: 400 */
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: abc\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: +5\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 0x5\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 1 2\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 18446744073709551616\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    /* Transfer-Encoding */
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        "\r\n",
        400),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\r\n\r\n", 400),
    ROW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n", 501),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, gzip\r\n\r\n", 501),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: identity\r\n\r\n", 501),
    ROW("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked;q=1\r\n\r\n", 501),
};

static void request_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const row *r = &rows[i];
        cs_http_req req;
        int st = -1;
        int rc = parse_req(r->raw, r->len, MAXH, &req, &st);
        if (r->status == 200) {
            if (rc != (int)r->len) fail_msg("row %zu: %d, status %d", i, rc, st);
            assert_int_equal(st, 0);
        } else {
            if (rc != CS_EPARSE || st != r->status)
                fail_msg("row %zu: %d status %d, want %d", i, rc, st, r->status);
        }
        check_prefixes(r->raw, r->len, r->status == 200 ? (int)r->len : rc, st);
    }
}

/* ---- what a valid head says ---- */

static void request_fields(void **state)
{
    (void)state;
    static const char raw[] = "POST /twilio/voice?CallSid=CA1&x= HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "X-Twilio-Signature:  abc= \r\n"
                              "Content-Length: 42\r\n"
                              "\r\n"
                              "body";
    cs_http_req req;
    int st;
    int n = cs_http_parse_request(raw, sizeof raw - 1, MAXH, &req, &st);
    assert_int_equal(n, (int)(sizeof raw - 1 - 4));
    assert_int_equal(req.method, CS_HTTP_POST);
    assert_true(cs_str_eqz(req.method_name, "POST"));
    assert_true(cs_str_eqz(req.target, "/twilio/voice?CallSid=CA1&x="));
    assert_true(cs_str_eqz(req.path, "/twilio/voice"));
    assert_true(cs_str_eqz(req.query, "CallSid=CA1&x="));
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nheaders, 4);
    assert_true(cs_str_eqz(req.headers[2].name, "X-Twilio-Signature"));
    assert_true(cs_str_eqz(req.headers[2].value, "abc="));
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 42);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.upgrade);
    assert_false(req.expect_continue);

    const cs_str *v = cs_http_header_get(req.headers, req.nheaders, "x-twilio-signature");
    assert_non_null(v);
    assert_true(cs_str_eqz(*v, "abc="));
    assert_null(cs_http_header_get(req.headers, req.nheaders, "X-Twilio"));
    assert_null(cs_http_header_get(req.headers, req.nheaders, "X-Twilio-Signatures"));
}

static void request_methods(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum cs_http_method method;
    } cases[] = {
        {"GET", CS_HTTP_GET},     {"HEAD", CS_HTTP_HEAD},     {"POST", CS_HTTP_POST},
        {"PUT", CS_HTTP_PUT},     {"DELETE", CS_HTTP_DELETE}, {"OPTIONS", CS_HTTP_OPTIONS},
        {"PATCH", CS_HTTP_PATCH}, {"get", CS_HTTP_OTHER},     {"GETS", CS_HTTP_OTHER},
        {"BREW", CS_HTTP_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char raw[128];
        int len = snprintf(raw, sizeof raw, "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", cases[i].name);
        cs_http_req req;
        int st;
        assert_int_equal(cs_http_parse_request(raw, (size_t)len, MAXH, &req, &st), len);
        assert_int_equal(req.method, cases[i].method);
        assert_true(cs_str_eqz(req.method_name, cases[i].name));
        assert_true(cs_str_eqz(req.path, "/x"));
        assert_int_equal(req.query.n, 0);
    }
}

static void request_connection_flags(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        bool keep_alive, upgrade, expect_continue;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false, false,
         false},
        {"GET /m HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         "\r\n",
         true, true, false},
        {"GET /m HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", true, false, false},
        {"GET /m HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false, false},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", true,
         false, true},
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", false, false,
         false},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", true, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_http_req req;
        int st;
        size_t len = strlen(cases[i].raw);
        assert_int_equal(cs_http_parse_request(cases[i].raw, len, MAXH, &req, &st), (int)len);
        assert_int_equal(req.keep_alive, cases[i].keep_alive);
        assert_int_equal(req.upgrade, cases[i].upgrade);
        assert_int_equal(req.expect_continue, cases[i].expect_continue);
    }

    static const char te[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    cs_http_req req;
    int st;
    assert_int_equal(cs_http_parse_request(te, sizeof te - 1, MAXH, &req, &st), sizeof te - 1);
    assert_true(req.chunked);
    assert_false(req.has_content_length);
    assert_int_equal(req.content_length, 0);
}

static void request_byte_by_byte(void **state)
{
    (void)state;
    static const char raw[] = "POST /twilio/status HTTP/1.1\r\n"
                              "Host: gw.example.com\r\n"
                              "User-Agent: TwilioProxy/1.1\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: 11\r\n"
                              "Connection: close\r\n"
                              "\r\n";
    char buf[sizeof raw];
    cs_http_req req;
    int st;
    for (size_t k = 0; k < sizeof raw - 1; k++) {
        buf[k] = raw[k];
        int rc = cs_http_parse_request(buf, k + 1, MAXH, &req, &st);
        assert_int_equal(rc, k + 1 == sizeof raw - 1 ? (int)k + 1 : 0);
    }
    assert_int_equal(req.nheaders, 5);
    assert_int_equal(req.content_length, 11);
    assert_false(req.keep_alive);
    assert_true(cs_str_eqz(req.headers[1].value, "TwilioProxy/1.1"));
}

static void request_pipelined(void **state)
{
    (void)state;
    static const char raw[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /b?q HTTP/1.1\r\nHost: a\r\n\r\n"
                              "\r\nGET /c HTTP/1.0\r\n\r\n"
                              "GET /d HTTP/1.1\r\nHo";
    size_t pos = 0, len = sizeof raw - 1;
    cs_http_req req;
    int st;
    int n = cs_http_parse_request(raw, len, MAXH, &req, &st);
    assert_true(n > 0);
    assert_true(cs_str_eqz(req.path, "/a"));
    pos += (size_t)n + req.content_length;
    assert_memory_equal(raw + pos - 5, "hello", 5);

    n = cs_http_parse_request(raw + pos, len - pos, MAXH, &req, &st);
    assert_true(n > 0);
    assert_true(cs_str_eqz(req.path, "/b"));
    assert_true(cs_str_eqz(req.query, "q"));
    pos += (size_t)n;

    n = cs_http_parse_request(raw + pos, len - pos, MAXH, &req, &st);
    assert_true(n > 0);
    assert_true(cs_str_eqz(req.path, "/c"));
    assert_int_equal(req.minor, 0);
    pos += (size_t)n;

    assert_int_equal(cs_http_parse_request(raw + pos, len - pos, MAXH, &req, &st), 0);
}

/* ---- limits ---- */

static void limit_headers(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < CS_HTTP_MAX_HEADERS; i++) cs_buf_printf(&b, "X-%d: %d\r\n", i, i);
    size_t keep = b.len;
    cs_buf_puts(&b, "\r\n");
    cs_http_req req;
    int st;
    assert_int_equal(cs_http_parse_request(b.data, b.len, MAXH, &req, &st), (int)b.len);
    assert_int_equal(req.nheaders, CS_HTTP_MAX_HEADERS);

    b.len = keep;
    cs_buf_puts(&b, "X-Last: 1\r\n\r\n");
    assert_int_equal(cs_http_parse_request(b.data, b.len, MAXH, &req, &st), CS_ELIMIT);
    assert_int_equal(st, 431);
    cs_buf_free(&b);
}

static void limit_target(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_http_req req;
    int st;
    for (size_t n = CS_HTTP_MAX_TARGET; n <= CS_HTTP_MAX_TARGET + 1; n++) {
        cs_buf_reset(&b);
        cs_buf_puts(&b, "GET /");
        for (size_t i = 1; i < n; i++) cs_buf_putc(&b, 'a');
        cs_buf_puts(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
        int rc = cs_http_parse_request(b.data, b.len, MAXH, &req, &st);
        if (n == CS_HTTP_MAX_TARGET) {
            assert_int_equal(rc, (int)b.len);
            assert_int_equal(req.target.n, n);
        } else {
            assert_int_equal(rc, CS_ELIMIT);
            assert_int_equal(st, 414);
        }
    }
    cs_buf_free(&b);
}

static void limit_head(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
    size_t len = sizeof raw - 1;
    cs_http_req req;
    int st;
    /* complete heads: exactly max_head fits, one byte over does not */
    assert_int_equal(cs_http_parse_request(raw, len, len, &req, &st), (int)len);
    assert_int_equal(cs_http_parse_request(raw, len, len - 1, &req, &st), CS_ELIMIT);
    assert_int_equal(st, 431);
    /* incomplete heads: waiting below max_head, refused once they reach it */
    assert_int_equal(cs_http_parse_request(raw, 20, 21, &req, &st), 0);
    assert_int_equal(cs_http_parse_request(raw, 20, 20, &req, &st), CS_ELIMIT);
    assert_int_equal(st, 431);
    /* a bare LF is refused before the head is complete */
    assert_int_equal(cs_http_parse_request("GET / HTTP/1.1\nHo", 17, MAXH, &req, &st), CS_EPARSE);
    assert_int_equal(st, 400);

    /* a long incomplete head arriving byte by byte is refused at max_head */
    size_t big = MAXH + 100;
    char *slow = malloc(big);
    memcpy(slow, "GET / HTTP/1.1\r\nX: ", 19);
    memset(slow + 19, 'a', big - 19);
    for (size_t k = 1; k <= big; k++) {
        int rc = cs_http_parse_request(slow, k, MAXH, &req, &st);
        assert_int_equal(rc, k < MAXH ? 0 : CS_ELIMIT);
    }
    free(slow);
}

/* ---- responses ---- */

static void response_valid(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        int status;
        const char *reason;
        int minor;
        bool keep_alive, chunked;
        int64_t content_length; /* -1: absent */
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, "OK", 1, true, false, 5},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         101, "Switching Protocols", 1, true, false, -1},
        {"HTTP/1.0 200 OK\r\n\r\n", 200, "OK", 0, false, false, -1},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", 200, "OK", 0, true, false, -1},
        {"HTTP/1.1 204\r\n\r\n", 204, "", 1, true, false, -1},
        {"HTTP/1.1 404 \r\nConnection: close\r\n\r\n", 404, "", 1, false, false, -1},
        {"HTTP/1.1 503 Service\tUnavailable \xff\r\n\r\n", 503, "Service\tUnavailable \xff", 1,
         true, false, -1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, "OK", 1, true, true, -1},
        {"HTTP/1.1 599 Whatever\r\n\r\n", 599, "Whatever", 1, true, false, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].raw);
        cs_http_resp resp;
        for (size_t k = 0; k < len; k++)
            assert_int_equal(cs_http_parse_response(cases[i].raw, k, MAXH, &resp), 0);
        assert_int_equal(cs_http_parse_response(cases[i].raw, len, MAXH, &resp), (int)len);
        assert_int_equal(resp.status, cases[i].status);
        assert_true(cs_str_eqz(resp.reason, cases[i].reason));
        assert_int_equal(resp.minor, cases[i].minor);
        assert_int_equal(resp.keep_alive, cases[i].keep_alive);
        assert_int_equal(resp.chunked, cases[i].chunked);
        assert_int_equal(resp.has_content_length, cases[i].content_length >= 0);
        if (cases[i].content_length >= 0)
            assert_int_equal(resp.content_length, cases[i].content_length);
    }

    static const char ws[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    cs_http_resp resp;
    assert_int_equal(cs_http_parse_response(ws, sizeof ws - 1, MAXH, &resp), sizeof ws - 1);
    const cs_str *acc = cs_http_header_get(resp.headers, resp.nheaders, "sec-websocket-accept");
    assert_non_null(acc);
    assert_true(cs_str_eqz(*acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

static void response_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 600 High\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\nServer: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_http_resp resp;
        int rc = cs_http_parse_response(bad[i], strlen(bad[i]), MAXH, &resp);
        if (rc != CS_EPARSE) fail_msg("case %zu: %d", i, rc);
    }

    cs_http_resp resp;
    static const char big[] = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    assert_int_equal(cs_http_parse_response(big, sizeof big - 1, 20, &resp), CS_ELIMIT);
    assert_int_equal(cs_http_parse_response(big, 20, 20, &resp), CS_ELIMIT);
    assert_int_equal(cs_http_parse_response(big, 19, 20, &resp), 0);

    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_buf_puts(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= CS_HTTP_MAX_HEADERS; i++) cs_buf_printf(&b, "X-%d: %d\r\n", i, i);
    cs_buf_puts(&b, "\r\n");
    assert_int_equal(cs_http_parse_response(b.data, b.len, MAXH, &resp), CS_ELIMIT);
    cs_buf_free(&b);
}

/* ---- chunked bodies ---- */

typedef struct chunked_result {
    int rc; /* total consumed, or the error */
    bool done;
    cs_buf body;
} chunked_result;

/* Feeds in[0..len) in pieces of `step` bytes (0: all at once), as a connection would:
 * stop at an error or once done. */
static chunked_result feed(const char *in, size_t len, size_t step, size_t max)
{
    chunked_result r = {0, false, CS_BUF_INIT(max)};
    cs_http_chunked d;
    cs_http_chunked_init(&d);
    size_t pos = 0;
    while (pos < len && !d.done) {
        size_t n = step && step < len - pos ? step : len - pos;
        char *piece = malloc(n);
        memcpy(piece, in + pos, n);
        int rc = cs_http_chunked_feed(&d, piece, n, &r.body);
        free(piece);
        if (rc < 0) {
            r.rc = rc;
            return r;
        }
        assert_true(d.done || (size_t)rc == n);
        pos += (size_t)rc;
    }
    r.rc = (int)pos;
    r.done = d.done;
    return r;
}

static void chunked_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *body;
        size_t consumed; /* 0: all of in */
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
        {"0\r\n\r\n", "", 0},
        {"3\r\nabc\r\na\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n0\r\n\r\n", "abc0123456789ABCDEFGHIJ",
         0},
        {"0005\r\nhello\r\n000\r\n\r\n", "hello", 0},
        {"5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello", 0},
        {"5 ; a=\"b c\"\t;x\r\nhello\r\n0\r\n\r\n", "hello", 0},
        {"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nChecksum:  abc \r\n\r\n", "hello", 0},
        {"2\r\n\r\n\r\n0\r\n\r\n", "\r\n", 0},
        {"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", 15},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].in);
        size_t want = cases[i].consumed ? cases[i].consumed : len;
        for (size_t step = 0; step <= len; step++) {
            chunked_result r = feed(cases[i].in, len, step, 1 << 16);
            if (r.rc != (int)want) fail_msg("case %zu step %zu: %d", i, step, r.rc);
            assert_true(r.done);
            assert_int_equal(r.body.len, strlen(cases[i].body));
            if (r.body.len) assert_memory_equal(r.body.data, cases[i].body, r.body.len);
            cs_buf_free(&r.body);
        }
    }
}

static void chunked_two_way_splits(void **state)
{
    (void)state;
    static const char in[] = "4;ext\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n"
                             "0\r\nExpires: never\r\n\r\n";
    size_t len = sizeof in - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        cs_http_chunked d;
        cs_http_chunked_init(&d);
        cs_buf body = CS_BUF_INIT(1024);
        assert_int_equal(cs_http_chunked_feed(&d, in, cut, &body), (int)cut);
        assert_int_equal(d.done, cut == len);
        assert_int_equal(cs_http_chunked_feed(&d, in + cut, len - cut, &body), (int)(len - cut));
        assert_true(d.done);
        assert_int_equal(body.len, 24);
        assert_memory_equal(body.data, "Wikipedia in \r\n\r\nchunks.", 24);
        assert_int_equal(cs_http_chunked_feed(&d, "x", 1, &body), 0);
        cs_buf_free(&body);
    }
}

static void chunked_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\r\n",
        "x\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\rhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        "5;a\x01\r\nhello\r\n0\r\n\r\n",
        "5;a\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\r\nhello\rX0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "3\r\nhello\r\n0\r\n\r\n",
        "0\r\n\n",
        "0\r\n\rX",
        "0\r\nX-T: 1\n\r\n",
        "0\r\n folded: x\r\n\r\n",
        "0\r\nBad Name: x\r\n\r\n",
        "0\r\nX-T: a\x7f\r\n\r\n",
        "0\r\nNoColon\r\n\r\n",
        "10000000000000000\r\n",
        "123456789abcdef01\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = strlen(bad[i]);
        for (size_t step = 0; step <= len; step++) {
            chunked_result r = feed(bad[i], len, step, 1 << 16);
            if (r.rc != CS_EPARSE) fail_msg("case %zu step %zu: %d", i, step, r.rc);
            cs_buf_free(&r.body);
        }
    }

    /* the size line is bounded: leading zeros cannot go on forever */
    char line[CS_HTTP_MAX_CHUNK_LINE + 8];
    memset(line, '0', sizeof line);
    chunked_result r = feed(line, CS_HTTP_MAX_CHUNK_LINE - 2, 1, 64);
    assert_int_equal(r.rc, CS_HTTP_MAX_CHUNK_LINE - 2);
    assert_false(r.done);
    cs_buf_free(&r.body);
    memcpy(line + CS_HTTP_MAX_CHUNK_LINE - 2, "\r\n\r\n", 4);
    r = feed(line, CS_HTTP_MAX_CHUNK_LINE + 2, 0, 64);
    assert_int_equal(r.rc, CS_HTTP_MAX_CHUNK_LINE + 2);
    assert_true(r.done);
    cs_buf_free(&r.body);
    memset(line, '0', sizeof line);
    memcpy(line + CS_HTTP_MAX_CHUNK_LINE - 1, "\r\n\r\n", 4);
    r = feed(line, CS_HTTP_MAX_CHUNK_LINE + 3, 0, 64);
    assert_int_equal(r.rc, CS_EPARSE);
    cs_buf_free(&r.body);

    /* the largest size that fits 64 bits parses, and is refused by the body limit */
    r = feed("ffffffffffffffff\r\n", 18, 0, 64);
    assert_int_equal(r.rc, -EMSGSIZE);
    cs_buf_free(&r.body);
}

static void chunked_body_limit(void **state)
{
    (void)state;
    static const char in[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for (size_t step = 0; step < sizeof in; step++) {
        chunked_result r = feed(in, sizeof in - 1, step, 11);
        assert_int_equal(r.rc, sizeof in - 1);
        cs_buf_free(&r.body);
        r = feed(in, sizeof in - 1, step, 10);
        assert_int_equal(r.rc, -EMSGSIZE);
        /* refused at the size line: the first chunk is in, nothing of the second */
        assert_int_equal(r.body.len, 5);
        cs_buf_free(&r.body);
    }

    /* a failed decoder keeps failing */
    cs_http_chunked d;
    cs_http_chunked_init(&d);
    cs_buf body = CS_BUF_INIT(4);
    assert_int_equal(cs_http_chunked_feed(&d, in, sizeof in - 1, &body), -EMSGSIZE);
    assert_int_equal(cs_http_chunked_feed(&d, "0\r\n\r\n", 5, &body), -EMSGSIZE);
    cs_http_chunked_init(&d);
    assert_int_equal(cs_http_chunked_feed(&d, "0\r\n\r\n", 5, &body), 5);
    assert_true(d.done);
    cs_buf_free(&body);
}

/* ---- writers ---- */

/* Checks the Date line is an IMF-fixdate close to now and returns it. */
static void check_date(const char *head, char date[30])
{
    const char *p = strstr(head, "\r\nDate: ");
    assert_non_null(p);
    p += 8;
    const char *e = strstr(p, "\r\n");
    assert_int_equal(e - p, 29);
    memcpy(date, p, 29);
    date[29] = '\0';
    struct tm tm = {0};
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
    time_t t = timegm(&tm);
    time_t now = time(NULL);
    assert_true(t <= now && now - t < 5);
    char again[64];
    strftime(again, sizeof again, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_string_equal(again, date);
}

static void write_head_golden(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(4096);
    char date[30], want[512];

    assert_int_equal(cs_http_write_head(&b, 200, "text/xml", 37, NULL, true), 0);
    check_date(b.data, date);
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\nServer: callstream\r\nDate: %s\r\nContent-Type: text/xml\r\n"
             "Content-Length: 37\r\nConnection: keep-alive\r\n\r\n",
             date);
    assert_string_equal(b.data, want);

    cs_buf_reset(&b);
    assert_int_equal(cs_http_write_head(&b, 404, NULL, -1, "X-A: 1\r\nX-B: 2\r\n", false), 0);
    check_date(b.data, date);
    snprintf(want, sizeof want,
             "HTTP/1.1 404 Not Found\r\nServer: callstream\r\nDate: %s\r\nX-A: 1\r\nX-B: 2\r\n"
             "Connection: close\r\n\r\n",
             date);
    assert_string_equal(b.data, want);

    cs_buf_reset(&b);
    assert_int_equal(cs_http_write_head(&b, 299, NULL, 0, NULL, true), 0);
    assert_true(strncmp(b.data, "HTTP/1.1 299 Unknown\r\n", 22) == 0);
    assert_non_null(strstr(b.data, "\r\nContent-Length: 0\r\n"));

    /* what we write, we parse */
    cs_http_resp resp;
    assert_int_equal(cs_http_parse_response(b.data, b.len, MAXH, &resp), (int)b.len);
    assert_int_equal(resp.status, 299);
    assert_true(resp.has_content_length);
    assert_true(resp.keep_alive);
    cs_buf_free(&b);

    /* a head that does not fit leaves the buffer as it was */
    cs_buf small = CS_BUF_INIT(100);
    cs_buf_puts(&small, "previous");
    assert_int_equal(cs_http_write_head(&small, 200, "text/plain", 5, NULL, true), -EMSGSIZE);
    assert_string_equal(small.data, "previous");
    cs_buf_free(&small);
}

static void reasons(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
        {0, "Unknown"},
        {999, "Unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(cs_http_reason(cases[i].status), cases[i].reason);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_table),
        cmocka_unit_test(request_fields),
        cmocka_unit_test(request_methods),
        cmocka_unit_test(request_connection_flags),
        cmocka_unit_test(request_byte_by_byte),
        cmocka_unit_test(request_pipelined),
        cmocka_unit_test(limit_headers),
        cmocka_unit_test(limit_target),
        cmocka_unit_test(limit_head),
        cmocka_unit_test(response_valid),
        cmocka_unit_test(response_invalid),
        cmocka_unit_test(chunked_valid),
        cmocka_unit_test(chunked_two_way_splits),
        cmocka_unit_test(chunked_malformed),
        cmocka_unit_test(chunked_body_limit),
        cmocka_unit_test(write_head_golden),
        cmocka_unit_test(reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
