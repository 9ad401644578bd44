/* libFuzzer target for the HTTP parsers: the input is parsed as a request head, a
 * response head and a chunked body, whole and in pieces, and the answers must agree.
 * The first byte picks the limits and the split (bench/fuzz runs it; see fuzz.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "net/http.h"

static bool inside(cs_str v, const char *base, size_t n)
{
    return v.p >= base && v.n <= n && (size_t)(v.p - base) <= n - v.n;
}

static void fuzz_request(const char *in, size_t len, size_t max_head)
{
    static cs_http_req req, part;
    int st;
    int rc = cs_http_parse_request(in, len, max_head, &req, &st);
    fuzz_check(rc == CS_EPARSE || rc == CS_ELIMIT || (rc >= 0 && (size_t)rc <= len));
    if (rc <= 0) return;
    fuzz_check(inside(req.target, in, (size_t)rc) && inside(req.method_name, in, (size_t)rc));
    fuzz_check(inside(req.path, in, (size_t)rc) && inside(req.query, in, (size_t)rc));
    for (size_t i = 0; i < req.nheaders; i++)
        fuzz_check(inside(req.headers[i].name, in, (size_t)rc) &&
                   inside(req.headers[i].value, in, (size_t)rc));
    /* the head alone gives the same answer, one byte less is "need more" */
    fuzz_check(cs_http_parse_request(in, (size_t)rc, max_head, &part, &st) == rc);
    fuzz_check(part.nheaders == req.nheaders && part.content_length == req.content_length &&
               part.chunked == req.chunked && part.keep_alive == req.keep_alive);
    fuzz_check(cs_http_parse_request(in, (size_t)rc - 1, max_head, &part, &st) == 0);
}

static void fuzz_response(const char *in, size_t len)
{
    static cs_http_resp resp;
    int rc = cs_http_parse_response(in, len, CS_HTTP_MAX_HEAD_DEFAULT, &resp);
    fuzz_check(rc == CS_EPARSE || rc == CS_ELIMIT || (rc >= 0 && (size_t)rc <= len));
    if (rc > 0) fuzz_check(resp.status >= 100 && resp.status <= 599);
}

/* Feeds in pieces of `step` bytes (0: at once); total consumed or the error. */
static int decode(const char *in, size_t len, size_t step, cs_buf *body, bool *done)
{
    cs_http_chunked d;
    cs_http_chunked_init(&d);
    size_t pos = 0;
    while (pos < len && !d.done) {
        size_t n = step && step < len - pos ? step : len - pos;
        int rc = cs_http_chunked_feed(&d, in + pos, n, body);
        if (rc < 0) return rc;
        fuzz_check(d.done || (size_t)rc == n);
        pos += (size_t)rc;
    }
    *done = d.done;
    return (int)pos;
}

static void fuzz_chunked(const char *in, size_t len, size_t step, size_t max)
{
    cs_buf a = CS_BUF_INIT(max), b = CS_BUF_INIT(max);
    bool done_a = false, done_b = false;
    int rc_a = decode(in, len, 0, &a, &done_a);
    int rc_b = decode(in, len, step, &b, &done_b);
    fuzz_check(rc_a == rc_b);
    fuzz_check(rc_a == CS_EPARSE || rc_a == -EMSGSIZE || (rc_a >= 0 && (size_t)rc_a <= len));
    if (rc_a >= 0)
        fuzz_check(done_a == done_b && a.len == b.len &&
                   (a.len == 0 || !memcmp(a.data, b.data, a.len)));
    cs_buf_free(&a);
    cs_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* the first byte picks the limits and the split, the rest is the message */
    uint8_t knobs = data[0];
    size_t len = size - 1;
    char *in = fuzz_copy(data + 1, len, 0);
    size_t max_head = knobs & 1 ? CS_HTTP_MAX_HEAD_DEFAULT : 16 + (size_t)(knobs >> 1) * 4;
    fuzz_request(in, len, max_head);
    fuzz_response(in, len);
    fuzz_chunked(in, len, 1 + (knobs >> 4), knobs & 2 ? 64 : 1 << 20);
    free(in);
    return 0;
}
