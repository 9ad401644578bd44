/* Deterministic mutation fuzzing of the HTTP parsers, run as a unit test: a seeded PRNG
 * mutates a corpus of valid requests, responses and chunked bodies, and every mutant is
 * checked against invariants (results in range, views inside the input, the same answer
 * whether the bytes arrive at once or in pieces). CS_FUZZ_ITERATIONS overrides the count;
 * tests/fuzz/fuzz_net_http.c is the coverage-guided counterpart. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/http.h"

#define ITERATIONS     200000
#define FUZZ_MAX_INPUT 4096

static const char *const corpus[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /twilio/media?x=1 HTTP/1.1\r\nHost: gw.example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n",
    "POST /twilio/voice HTTP/1.1\r\nHost: gw.example.com\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: abc=\r\n"
    "Content-Length: 15\r\n\r\nCallSid=CA1&a=b",
    "POST /up HTTP/1.1\r\nHost: a:8080\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
    "\r\n5\r\nhello\r\n0\r\n\r\n",
    "OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
    "\r\nDELETE /api/v1/calls/CA1 HTTP/1.1\r\nHost: [::1]\r\nX-Empty:\r\nX-Ows: \t v \t\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    "HTTP/1.0 404\r\nTransfer-Encoding: chunked\r\n\r\n",
    "5\r\nhello\r\n0\r\n\r\n",
    "4;ext=1\r\nWiki\r\n6 ; a=\"b\"\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n",
    "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nExpires: never\r\nX: y\r\n\r\nNEXT",
    "00000005\r\nhello\r\nFFFFFFFF\r\n",
};

static const char *const tokens[] = {
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\r",
    ": ",
    " ",
    "\t",
    ";",
    "0\r\n\r\n",
    "HTTP/1.1",
    "HTTP/1.0",
    "Host: a\r\n",
    "Content-Length: 5\r\n",
    "Transfer-Encoding: chunked\r\n",
    "chunked",
    "Connection: close\r\n",
    "ffffffffffffffff",
    "%",
    "?",
    "*",
    "\x80",
    "\0",
};

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* splitmix64 */
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static size_t insert(char *b, size_t len, size_t at, const char *s, size_t n)
{
    if (len + n > FUZZ_MAX_INPUT) return len;
    memmove(b + at + n, b + at, len - at);
    memcpy(b + at, s, n);
    return len + n;
}

/* Applies one random mutation to b[0..len); returns the new length. */
static size_t mutate(char *b, size_t len)
{
    size_t at = below(len + 1);
    switch (below(8)) {
    case 0: /* bit flip */
        if (len) b[below(len)] ^= (char)(1u << below(8));
        return len;
    case 1: /* random byte */
        if (len) b[below(len)] = (char)rnd();
        return len;
    case 2: { /* insert random bytes */
        char r[4];
        size_t n = 1 + below(sizeof r);
        for (size_t i = 0; i < n; i++) r[i] = (char)rnd();
        return insert(b, len, at, r, n);
    }
    case 3: { /* delete a range */
        size_t n = below(len - at + 1) % 16;
        memmove(b + at, b + at + n, len - at - n);
        return len - n;
    }
    case 4: { /* duplicate a range */
        if (!len) return len;
        size_t from = below(len), n = 1 + below(len - from);
        char tmp[FUZZ_MAX_INPUT];
        memcpy(tmp, b + from, n);
        return insert(b, len, at, tmp, n);
    }
    case 5: { /* splice: our head, another entry's tail */
        const char *o = corpus[below(sizeof corpus / sizeof *corpus)];
        size_t olen = strlen(o), from = below(olen + 1);
        size_t n = olen - from < FUZZ_MAX_INPUT - at ? olen - from : FUZZ_MAX_INPUT - at;
        memcpy(b + at, o + from, n);
        return at + n;
    }
    case 6: /* truncate */
        return at;
    default: { /* insert a token that matters to the grammar */
        const char *t = tokens[below(sizeof tokens / sizeof *tokens)];
        return insert(b, len, at, t, t[0] ? strlen(t) : 1);
    }
    }
}

/* Whether v lies inside base[0..n). */
static bool inside(cs_str v, const char *base, size_t n)
{
    return v.p >= base && v.n <= n && (size_t)(v.p - base) <= n - v.n;
}

static void check_headers(const cs_http_header *h, size_t n, const char *base, size_t len)
{
    assert_true(n <= CS_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        assert_true(inside(h[i].name, base, len));
        assert_true(inside(h[i].value, base, len));
        assert_true(h[i].name.n > 0);
    }
}

/* The same head parsed from two copies of the bytes: equal fields, at equal offsets. */
static void same_str(cs_str a, const char *base_a, cs_str b, const char *base_b)
{
    assert_int_equal(a.n, b.n);
    assert_int_equal(a.p - base_a, b.p - base_b);
}

static void same_req(const cs_http_req *a, const char *base_a, const cs_http_req *b,
                     const char *base_b)
{
    assert_int_equal(a->method, b->method);
    same_str(a->method_name, base_a, b->method_name, base_b);
    same_str(a->target, base_a, b->target, base_b);
    same_str(a->path, base_a, b->path, base_b);
    same_str(a->query, base_a, b->query, base_b);
    assert_int_equal(a->minor, b->minor);
    assert_int_equal(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        same_str(a->headers[i].name, base_a, b->headers[i].name, base_b);
        same_str(a->headers[i].value, base_a, b->headers[i].value, base_b);
    }
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->has_content_length, b->has_content_length);
    assert_int_equal(a->chunked, b->chunked);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->upgrade, b->upgrade);
    assert_int_equal(a->expect_continue, b->expect_continue);
}

static cs_http_req req_whole, req_part;

/* Parses the prefix in[0..k) from a copy placed flush with the end of `scratch` (an
 * allocation of len bytes), so that reading past it reaches ASan's redzone. */
static int parse_prefix(const char *in, size_t k, char *scratch, size_t len, size_t max_head,
                        int *st, const char **base)
{
    *base = scratch + len - k;
    memcpy(scratch + len - k, in, k);
    return cs_http_parse_request(*base, k, max_head, &req_part, st);
}

/* `in` and `scratch` are allocations of exactly len bytes. */
static void check_request(const char *in, size_t len, char *scratch, size_t max_head)
{
    int st = -1;
    int rc = cs_http_parse_request(in, len, max_head, &req_whole, &st);
    if (rc < 0) {
        assert_true(rc == CS_EPARSE || rc == CS_ELIMIT);
        bool limit = st == 414 || st == 431;
        assert_true(limit || st == 400 || st == 501 || st == 505);
        assert_int_equal(rc == CS_ELIMIT, limit);
    } else {
        assert_int_equal(st, 0);
        assert_true((size_t)rc <= len && (size_t)rc <= max_head);
    }
    if (rc > 0) {
        assert_true(inside(req_whole.method_name, in, (size_t)rc));
        assert_true(inside(req_whole.target, in, (size_t)rc));
        assert_true(inside(req_whole.path, req_whole.target.p, req_whole.target.n));
        assert_true(inside(req_whole.query, req_whole.target.p, req_whole.target.n));
        assert_true(req_whole.target.n > 0 && req_whole.target.n <= CS_HTTP_MAX_TARGET);
        assert_true(req_whole.minor == 0 || req_whole.minor == 1);
        check_headers(req_whole.headers, req_whole.nheaders, in, (size_t)rc);
        assert_false(req_whole.chunked && req_whole.has_content_length);
    }

    /* the same bytes arriving in pieces: "need more" until the answer, then the answer */
    const char *base;
    int pst;
    if (rc > 0) {
        assert_int_equal(parse_prefix(in, (size_t)rc - 1, scratch, len, max_head, &pst, &base), 0);
        assert_int_equal(parse_prefix(in, (size_t)rc, scratch, len, max_head, &pst, &base), rc);
        same_req(&req_whole, in, &req_part, base);
    }
    bool answered = false;
    for (size_t k = 0; k <= len; k += 1 + below(len / 6 + 1)) {
        int prc = parse_prefix(in, k, scratch, len, max_head, &pst, &base);
        if (rc > 0) {
            assert_int_equal(prc, k < (size_t)rc ? 0 : rc);
        } else if (prc) {
            assert_int_equal(prc, rc);
            assert_int_equal(pst, st);
            answered = true;
        } else {
            assert_false(answered);
        }
    }
}

static void check_response(const char *in, size_t len, size_t max_head)
{
    cs_http_resp resp;
    int rc = cs_http_parse_response(in, len, max_head, &resp);
    assert_true(rc == CS_EPARSE || rc == CS_ELIMIT || (rc >= 0 && (size_t)rc <= len));
    if (rc > 0) {
        assert_true(resp.status >= 100 && resp.status <= 599);
        assert_true(inside(resp.reason, in, (size_t)rc));
        check_headers(resp.headers, resp.nheaders, in, (size_t)rc);
        cs_http_resp again;
        assert_int_equal(cs_http_parse_response(in, (size_t)rc, max_head, &again), rc);
        if (rc > 1)
            assert_int_equal(cs_http_parse_response(in, (size_t)rc - 1, max_head, &again), 0);
    }
}

/* Decodes in[0..len) fed in pieces (step 0: at once); the total consumed or the error. */
static int decode(const char *in, size_t len, size_t step, cs_buf *body, bool *done)
{
    cs_http_chunked d;
    cs_http_chunked_init(&d);
    size_t pos = 0;
    while (pos < len && !d.done) {
        size_t n = len - pos;
        size_t piece = step ? 1 + below(step) : n;
        if (piece < n) n = piece;
        int rc = cs_http_chunked_feed(&d, in + pos, n, body);
        if (rc < 0) return rc;
        assert_true((size_t)rc <= n);
        assert_true(d.done || (size_t)rc == n);
        pos += (size_t)rc;
    }
    *done = d.done;
    return (int)pos;
}

static void check_chunked(const char *in, size_t len)
{
    size_t max = below(2) ? 16 : FUZZ_MAX_INPUT;
    cs_buf whole = CS_BUF_INIT(max), split = CS_BUF_INIT(max);
    bool done_whole = false, done_split = false;
    int rc = decode(in, len, 0, &whole, &done_whole);
    assert_true(rc == CS_EPARSE || rc == -EMSGSIZE || (rc >= 0 && (size_t)rc <= len));
    assert_true(whole.len <= max);
    size_t step = below(3) ? 1 + below(8) : 1;
    int rc_split = decode(in, len, step, &split, &done_split);
    assert_int_equal(rc_split, rc);
    if (rc >= 0) {
        assert_int_equal(done_split, done_whole);
        assert_int_equal(split.len, whole.len);
        if (whole.len) assert_memory_equal(split.data, whole.data, whole.len);
    }
    cs_buf_free(&whole);
    cs_buf_free(&split);
}

static void fuzz_parsers(void **state)
{
    (void)state;
    const char *env = getenv("CS_FUZZ_ITERATIONS");
    long iterations = env ? atol(env) : ITERATIONS;
    char work[FUZZ_MAX_INPUT];
    for (long it = 0; it < iterations; it++) {
        const char *seed = corpus[below(sizeof corpus / sizeof *corpus)];
        size_t len = strlen(seed);
        memcpy(work, seed, len);
        for (size_t m = 1 + below(4); m > 0; m--) len = mutate(work, len);

        char *in = malloc(len ? len : 1), *scratch = malloc(len ? len : 1);
        memcpy(in, work, len);
        size_t max_head = below(4) ? CS_HTTP_MAX_HEAD_DEFAULT : 1 + below(len + 8);
        check_request(in, len, scratch, max_head);
        check_response(in, len, max_head);
        check_chunked(in, len);
        free(in);
        free(scratch);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fuzz_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
