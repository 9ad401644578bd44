/* The Server-Sent Events parser: a table of streams and the events they must give (line
 * ends, comments, fields, ids, the spec's corner cases), each fed whole, byte by byte and
 * in every two-piece split, which must agree; the bound on one event; a callback that
 * stops; and a real OpenAI chat completion stream. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "net/sse.h"

/* Events as "type|id|data" lines, joined with '\n' ('\n' inside data shown as "\\n"). */
static int collect(void *data, const cs_sse_event *ev)
{
    cs_buf *out = data;
    cs_buf_append(out, ev->type, ev->type_len);
    cs_buf_putc(out, '|');
    cs_buf_append(out, ev->id, ev->id_len);
    cs_buf_putc(out, '|');
    for (size_t i = 0; i < ev->data_len; i++) {
        if (ev->data[i] == '\n')
            cs_buf_puts(out, "\\n");
        else
            cs_buf_putc(out, ev->data[i]);
    }
    cs_buf_putc(out, '\n');
    assert_int_equal(ev->data[ev->data_len], '\0');
    return 0;
}

/* Feeds `in` cut at the offsets in `cuts` (ascending, the last its length); the events in
 * `out`, the last result returned. */
static ssize_t feed_cut(const char *in, const size_t *cuts, size_t ncuts, size_t max, cs_buf *out,
                        bool *partial)
{
    cs_sse p;
    cs_sse_init(&p, max);
    ssize_t rc = 0;
    size_t at = 0;
    for (size_t i = 0; i < ncuts && rc >= 0; i++) {
        rc = cs_sse_feed(&p, in + at, cuts[i] - at, collect, out);
        if (rc >= 0) assert_int_equal(rc, cuts[i] - at);
        at = cuts[i];
    }
    if (partial) *partial = cs_sse_partial(&p);
    cs_sse_free(&p);
    return rc;
}

/* The events of `in`, checked to be the same whole, byte by byte and split in two at every
 * place. Returns the events (a static buffer) and the result. */
static const cs_buf *events_in(const char *in, size_t n, size_t max, ssize_t *result, bool *partial)
{
    static cs_buf whole = CS_BUF_INIT(1 << 20);
    cs_buf_reset(&whole);
    size_t all[1] = {n};
    ssize_t rc = feed_cut(in, all, 1, max, &whole, partial);
    cs_buf other = CS_BUF_INIT(1 << 20);
    size_t *bytes = calloc(n + 1, sizeof *bytes);
    for (size_t i = 0; i < n; i++) bytes[i] = i + 1;
    bool part2;
    ssize_t rc2 = feed_cut(in, bytes, n, max, &other, &part2);
    assert_int_equal(rc < 0 ? rc : 0, rc2 < 0 ? rc2 : 0);
    assert_string_equal(whole.data ? whole.data : "", other.data ? other.data : "");
    if (rc >= 0) assert_int_equal(*partial, part2);
    for (size_t k = 1; k < n; k++) {
        cs_buf_reset(&other);
        size_t two[2] = {k, n};
        rc2 = feed_cut(in, two, 2, max, &other, &part2);
        assert_int_equal(rc < 0 ? rc : 0, rc2 < 0 ? rc2 : 0);
        assert_string_equal(whole.data ? whole.data : "", other.data ? other.data : "");
    }
    free(bytes);
    cs_buf_free(&other);
    *result = rc;
    if (!whole.data) cs_buf_puts(&whole, "");
    return &whole;
}

static const char *events_of(const char *in, size_t n, size_t max, ssize_t *result, bool *partial)
{
    return events_in(in, n, max, result, partial)->data;
}

#define ROW(name, in, events, partial)                                                             \
    {                                                                                              \
        name, in, sizeof(in) - 1, events, sizeof(events) - 1, partial                              \
    }

static const struct {
    const char *name;
    const char *in; /* may hold NULs */
    size_t n;
    const char *events;
    size_t events_len;
    bool partial; /* an event was left open */
} rows[] = {
    ROW("one event", "data: hi\n\n", "message||hi\n", false),
    ROW("CRLF", "data: hi\r\n\r\n", "message||hi\n", false),
    ROW("CR", "data: hi\r\r", "message||hi\n", false),
    ROW("mixed ends", "data: a\r\ndata: b\rdata: c\n\r\n", "message||a\\nb\\nc\n", false),
    ROW("CR then LF is one end", "data: a\r\n\rdata: b\n\n", "message||a\nmessage||b\n", false),
    ROW("multi-line data", "data: a\ndata:b\ndata:  c\n\n", "message||a\\nb\\n c\n", false),
    ROW("empty data line", "data\n\n", "message||\n", false),
    ROW("two empty data lines", "data:\ndata\n\n", "message||\\n\n", false),
    ROW("no data: no event", "event: x\nid: 1\n\n", "", false),
    ROW("comments", ": hello\n:\ndata: x\n: more\n\n", "message||x\n", false),
    ROW("event type", "event: update\ndata: 1\n\ndata: 2\n\n", "update||1\nmessage||2\n", false),
    ROW("id persists", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
        "message|7|a\nmessage|7|b\nmessage||c\n", false),
    ROW("id with NUL ignored", "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n",
        "message|1|a\nmessage|1|b\n", false),
    ROW("unknown fields", "foo: bar\ndata: a\nDATA: b\n\n", "message||a\n", false),
    ROW("colon in value", "data: a: b:c\n\n", "message||a: b:c\n", false),
    ROW("only one space stripped", "data:   x\n\n", "message||  x\n", false),
    ROW("leading BOM",
        "\xEF\xBB\xBF"
        "data: a\n\n",
        "message||a\n", false),
    ROW("BOM only at the start",
        "data: a\n\n\xEF\xBB\xBF"
        "data: b\n\n",
        "message||a\n", false),
    ROW("no end: not dispatched", "data: a\n\ndata: b\n", "message||a\n", true),
    ROW("unfinished line", "data: a\n\ndata: b", "message||a\n", true),
    ROW("unfinished event type", "event: x\n", "", true),
    ROW("NUL in data", "data: a\0b\n\n", "message||a\0b\n", false),
    ROW("retry is not data", "retry: 3000\ndata: a\n\n", "message||a\n", false),
    ROW("empty stream", "", "", false),
    ROW("blank lines only", "\n\r\n\r\r\n", "", false),
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        ssize_t rc;
        bool partial;
        const cs_buf *got = events_in(rows[i].in, rows[i].n, 0, &rc, &partial);
        if (rc != (ssize_t)rows[i].n || got->len != rows[i].events_len ||
            memcmp(got->data, rows[i].events, got->len) != 0)
            fail_msg("%s: got \"%s\" (%zd)", rows[i].name, got->data, rc);
        if (partial != rows[i].partial) fail_msg("%s: partial %d", rows[i].name, partial);
    }
}

static void test_retry(void **state)
{
    (void)state;
    cs_sse p;
    cs_sse_init(&p, 0);
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(p.retry_ms, -1);
    const char *in = "retry: 2500\nretry: x1\nretry:\nretry: 12a\n";
    cs_sse_feed(&p, in, strlen(in), collect, &out);
    assert_int_equal(p.retry_ms, 2500); /* the others are not all digits: ignored */
    cs_sse_free(&p);
    cs_buf_free(&out);
}

/* An event holding more than the bound: CS_ELIMIT, then every feed says so. Whole or in
 * pieces, at the same place (events_of checks). */
static void test_bound(void **state)
{
    (void)state;
    ssize_t rc;
    bool partial;
    /* 16 bytes: "data: 0123456789" is 16, and the data held (11) plus the next line fit. */
    const char *fits = "data: 0123456789\n\n";
    const char *got = events_of(fits, strlen(fits), 16, &rc, &partial);
    assert_int_equal(rc, (ssize_t)strlen(fits));
    assert_string_equal(got, "message||0123456789\n");
    /* One byte more. */
    const char *over = "data: a\n\ndata: 01234567890\n\ndata: b\n\n";
    got = events_of(over, strlen(over), 16, &rc, &partial);
    assert_int_equal(rc, CS_ELIMIT);
    assert_string_equal(got, "message||a\n");
    /* Many lines of one event: their data adds up. */
    const char *lines = "data: 12345\ndata: 12345\ndata: 12345\n\n";
    got = events_of(lines, strlen(lines), 16, &rc, &partial);
    assert_int_equal(rc, CS_ELIMIT);
    assert_string_equal(got, "");
    /* A comment line longer than the bound: the bytes are held all the same. */
    const char *comment = ": 0123456789abcdefghij\ndata: a\n\n";
    got = events_of(comment, strlen(comment), 16, &rc, &partial);
    assert_int_equal(rc, CS_ELIMIT);
    /* Sticky. */
    cs_sse p;
    cs_sse_init(&p, 16);
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(cs_sse_feed(&p, over, strlen(over), collect, &out), CS_ELIMIT);
    assert_int_equal(cs_sse_feed(&p, "data: c\n\n", 9, collect, &out), CS_ELIMIT);
    assert_string_equal(out.data, "message||a\n");
    cs_sse_free(&p);
    cs_buf_free(&out);
}

static int stop_at_done(void *data, const cs_sse_event *ev)
{
    int *n = data;
    (*n)++;
    return ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6) ? CS_ECLOSED : 0;
}

/* The callback's error stops the feed and sticks. */
static void test_callback_stops(void **state)
{
    (void)state;
    cs_sse p;
    cs_sse_init(&p, 0);
    int n = 0;
    const char *in = "data: 1\n\ndata: [DONE]\n\ndata: 2\n\n";
    assert_int_equal(cs_sse_feed(&p, in, strlen(in), stop_at_done, &n), CS_ECLOSED);
    assert_int_equal(n, 2);
    assert_int_equal(cs_sse_feed(&p, "data: 3\n\n", 9, stop_at_done, &n), CS_ECLOSED);
    assert_int_equal(n, 2);
    cs_sse_free(&p);
}

/* A chat completion stream as OpenAI's API sends it (recorded shape), CRLF and all. */
static void test_openai_stream(void **state)
{
    (void)state;
    const char *in =
        "data: "
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n"
        "data: "
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\r\n\r\n"
        "data: "
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
        "data: [DONE]\r\n\r\n";
    ssize_t rc;
    bool partial;
    const char *got = events_of(in, strlen(in), 1024, &rc, &partial);
    assert_int_equal(rc, (ssize_t)strlen(in));
    assert_false(partial);
    const char *last = strstr(got, "message||[DONE]\n");
    assert_non_null(last);
    assert_string_equal(last, "message||[DONE]\n");
    assert_non_null(strstr(got, "\"content\":\"Hello\""));
    int lines = 0;
    for (const char *s = got; *s; s++) lines += *s == '\n';
    assert_int_equal(lines, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),         cmocka_unit_test(test_retry),
        cmocka_unit_test(test_bound),         cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_openai_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
