#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/ws.h"
#include "ws_feed.h"

/* ---- reader: a table of frame streams and what the reader must report ---- */

#define SERVER CS_WS_SERVER
#define CLIENT CS_WS_CLIENT

static const struct row {
    const char *name;
    enum cs_ws_role role;
    size_t max;       /* max_message; 0 means 1024 */
    size_t cut;       /* bytes removed from the end of the stream */
    wsf_frame f[6];   /* frames as the peer sends them */
    const char *want; /* transcript, see ws_feed.h */
} rows[] = {
    /* masking by role */
    {"masked text to a server", SERVER, 0, 0, {{0x81, WSF_S("Hello")}}, "text(Hello)"},
    {"unmasked text to a client", CLIENT, 0, 0, {{0x81, WSF_S("Hello")}}, "text(Hello)"},
    {"unmasked frame to a server",
     SERVER,
     0,
     0,
     {{0x81, WSF_S("Hello"), WSF_FLIP_MASK}},
     "fail(1002)"},
    {"masked frame to a client",
     CLIENT,
     0,
     0,
     {{0x81, WSF_S("Hello"), WSF_FLIP_MASK}},
     "fail(1002)"},
    {"binary with NUL bytes", SERVER, 0, 0, {{0x82, WSF_S("\0\1\2")}}, "binary(#3)"},
    {"empty text", SERVER, 0, 0, {{0x81, WSF_S("")}}, "text()"},
    {"several frames in one read",
     CLIENT,
     0,
     0,
     {{0x81, WSF_S("a")}, {0x89, WSF_S("p")}, {0x82, WSF_S("bb")}},
     "text(a) ping(p) binary(bb)"},

    /* incomplete input */
    {"frame missing its last byte",
     SERVER,
     0,
     1,
     {{0x81, WSF_S("a")}, {0x81, WSF_S("Hello")}},
     "text(a) rest(10)"},
    {"one header byte", SERVER, 0, 7, {{0x81, WSF_S("ab")}}, "rest(1)"},
    {"16-bit length incomplete", CLIENT, 0, 201, {{0x82, NULL, 200}}, "rest(3)"},

    /* header bits */
    {"RSV1", SERVER, 0, 0, {{0xc1, WSF_S("Hello")}}, "fail(1002)"},
    {"RSV2", SERVER, 0, 0, {{0xa1, WSF_S("Hello")}}, "fail(1002)"},
    {"RSV3 on a ping", SERVER, 0, 0, {{0x99, WSF_S("")}}, "fail(1002)"},
    {"reserved data opcode 3", SERVER, 0, 0, {{0x83, WSF_S("x")}}, "fail(1002)"},
    {"reserved data opcode 7", CLIENT, 0, 0, {{0x87, WSF_S("x")}}, "fail(1002)"},
    {"reserved control opcode 0xb", SERVER, 0, 0, {{0x8b, WSF_S("")}}, "fail(1002)"},
    {"reserved control opcode 0xf", CLIENT, 0, 0, {{0x8f, WSF_S("")}}, "fail(1002)"},

    /* control frames */
    {"ping", SERVER, 0, 0, {{0x89, WSF_S("hi")}}, "ping(hi)"},
    {"empty pong", SERVER, 0, 0, {{0x8a, WSF_S("")}}, "pong()"},
    {"ping of 125 bytes", SERVER, 0, 0, {{0x89, NULL, 125}}, "ping(#125)"},
    {"ping of 126 bytes", SERVER, 0, 0, {{0x89, NULL, 126}}, "fail(1002)"},
    {"pong with a 16-bit length", CLIENT, 0, 0, {{0x8a, WSF_S("x"), WSF_LEN16}}, "fail(1002)"},
    {"ping without FIN", SERVER, 0, 0, {{0x09, WSF_S("hi")}}, "fail(1002)"},
    {"close without FIN", SERVER, 0, 0, {{0x08, WSF_S("")}}, "fail(1002)"},
    {"close without a body", SERVER, 0, 0, {{0x88, WSF_S("")}}, "close(1005,)"},
    {"close with code and reason", CLIENT, 0, 0, {{0x88, WSF_S("\003\350bye")}}, "close(1000,bye)"},
    {"close body of one byte", SERVER, 0, 0, {{0x88, WSF_S("\x03")}}, "fail(1002)"},
    {"close codes at the edges of the valid ranges",
     SERVER,
     0,
     0,
     {{0x88, WSF_S("\x03\xeb")},
      {0x88, WSF_S("\x03\xef")},
      {0x88, WSF_S("\x03\xf3")},
      {0x88, WSF_S("\x0b\xb8")},
      {0x88, WSF_S("\x13\x87")}},
     "close(1003,) close(1007,) close(1011,) close(3000,) close(4999,)"},
    {"close code 999", SERVER, 0, 0, {{0x88, WSF_S("\x03\xe7")}}, "fail(1002)"},
    {"close code 1004", SERVER, 0, 0, {{0x88, WSF_S("\x03\xec")}}, "fail(1002)"},
    {"close code 1005 on the wire", SERVER, 0, 0, {{0x88, WSF_S("\x03\xed")}}, "fail(1002)"},
    {"close code 1006 on the wire", SERVER, 0, 0, {{0x88, WSF_S("\x03\xee")}}, "fail(1002)"},
    {"close code 1012", SERVER, 0, 0, {{0x88, WSF_S("\x03\xf4")}}, "fail(1002)"},
    {"close code 2999", SERVER, 0, 0, {{0x88, WSF_S("\x0b\xb7")}}, "fail(1002)"},
    {"close code 5000", SERVER, 0, 0, {{0x88, WSF_S("\x13\x88")}}, "fail(1002)"},
    {"close code 0", CLIENT, 0, 0, {{0x88, WSF_S("\0\0")}}, "fail(1002)"},
    {"close reason not UTF-8", SERVER, 0, 0, {{0x88, WSF_S("\x03\xe8\xff")}}, "fail(1007)"},

    /* fragmentation */
    {"text in two fragments",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("Hel")}, {0x80, WSF_S("lo")}},
     "text(Hello)"},
    {"ping between fragments",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("Hel")}, {0x89, WSF_S("p")}, {0x80, WSF_S("lo")}},
     "ping(p) text(Hello)"},
    {"pong and close between fragments",
     CLIENT,
     0,
     0,
     {{0x02, WSF_S("ab")},
      {0x8a, WSF_S("")},
      {0x00, WSF_S("cd")},
      {0x88, WSF_S("\x03\xe8")},
      {0x80, WSF_S("ef")}},
     "pong() close(1000,) binary(abcdef)"},
    {"empty fragments",
     SERVER,
     0,
     0,
     {{0x02, WSF_S("")}, {0x00, WSF_S("abc")}, {0x00, WSF_S("")}, {0x80, WSF_S("")}},
     "binary(abc)"},
    {"all fragments empty", SERVER, 0, 0, {{0x01, WSF_S("")}, {0x80, WSF_S("")}}, "text()"},
    {"continuation without a message", SERVER, 0, 0, {{0x80, WSF_S("x")}}, "fail(1002)"},
    {"text inside a fragmented message",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("a")}, {0x81, WSF_S("b")}},
     "fail(1002)"},
    {"binary inside a fragmented message",
     CLIENT,
     0,
     0,
     {{0x01, WSF_S("a")}, {0x02, WSF_S("b")}},
     "fail(1002)"},
    {"new message once the fragmented one ended",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("a")}, {0x80, WSF_S("b")}, {0x82, WSF_S("c")}},
     "text(ab) binary(c)"},

    /* length encodings */
    {"125 bytes in 7 bits", SERVER, 0, 0, {{0x82, NULL, 125}}, "binary(#125)"},
    {"16-bit length", SERVER, 0, 0, {{0x82, NULL, 200}}, "binary(#200)"},
    {"16-bit length at its maximum", CLIENT, 65535, 0, {{0x82, NULL, 65535}}, "binary(#65535)"},
    {"64-bit length", SERVER, 100000, 0, {{0x82, NULL, 70000}}, "binary(#70000)"},
    {"16-bit length for 5 bytes", SERVER, 0, 0, {{0x81, WSF_S("Hello"), WSF_LEN16}}, "fail(1002)"},
    {"16-bit length for 125 bytes", CLIENT, 0, 0, {{0x82, NULL, 125, WSF_LEN16}}, "fail(1002)"},
    {"64-bit length for 200 bytes", SERVER, 0, 0, {{0x82, NULL, 200, WSF_LEN64}}, "fail(1002)"},
    {"64-bit length for 65535 bytes", SERVER, 0, 0, {{0x82, NULL, 65535, WSF_LEN64}}, "fail(1002)"},
    {"64-bit length with its top bit set",
     SERVER,
     0,
     0,
     {{0x82, WSF_S("x"), WSF_LEN_MSB}},
     "fail(1002)"},

    /* oversize messages and the skip limit */
    {"message of exactly max_message", SERVER, 100, 0, {{0x82, NULL, 100}}, "binary(#100)"},
    {"oversize frame skipped, next one read",
     SERVER,
     100,
     0,
     {{0x81, NULL, 101}, {0x81, WSF_S("ok")}},
     "oversize(text,101) text(ok)"},
    {"oversize across fragments with a ping between",
     SERVER,
     100,
     0,
     {{0x02, NULL, 60}, {0x89, WSF_S("p")}, {0x00, NULL, 60}, {0x80, WSF_S("z")}},
     "ping(p) oversize(binary,121)"},
    {"oversize text is not UTF-8 checked",
     CLIENT,
     4,
     0,
     {{0x81, WSF_S("\xff\xff\xff\xff\xff")}},
     "oversize(text,5)"},
    {"skipped message still needs valid frames",
     SERVER,
     4,
     0,
     {{0x01, NULL, 10}, {0x81, WSF_S("x")}},
     "fail(1002)"},
    {"oversize frame cut short", SERVER, 100, 50, {{0x82, NULL, 200}}, "(none)"},
    {"skip limit reached exactly", SERVER, 16, 0, {{0x82, NULL, 1024}}, "oversize(binary,1024)"},
    {"skip limit passed by one frame", SERVER, 16, 0, {{0x82, NULL, 1025}}, "fail(1009)"},
    {"skip limit passed over fragments",
     CLIENT,
     16,
     0,
     {{0x02, NULL, 600}, {0x80, NULL, 600}},
     "fail(1009)"},

    /* UTF-8 */
    {"multi-byte text",
     SERVER,
     0,
     0,
     {{0x81, WSF_S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")}},
     "text(#11)"},
    {"U+10FFFF and U+FFFF",
     SERVER,
     0,
     0,
     {{0x81, WSF_S("\xf4\x8f\xbf\xbf\xef\xbf\xbf")}},
     "text(#7)"},
    {"overlong 2-byte slash", SERVER, 0, 0, {{0x81, WSF_S("\xc0\xaf")}}, "fail(1007)"},
    {"overlong 3-byte slash", SERVER, 0, 0, {{0x81, WSF_S("\xe0\x80\xaf")}}, "fail(1007)"},
    {"overlong 4-byte slash", SERVER, 0, 0, {{0x81, WSF_S("\xf0\x80\x80\xaf")}}, "fail(1007)"},
    {"surrogate U+D800", SERVER, 0, 0, {{0x81, WSF_S("\xed\xa0\x80")}}, "fail(1007)"},
    {"surrogate U+DFFF", CLIENT, 0, 0, {{0x81, WSF_S("\xed\xbf\xbf")}}, "fail(1007)"},
    {"U+110000", SERVER, 0, 0, {{0x81, WSF_S("\xf4\x90\x80\x80")}}, "fail(1007)"},
    {"lead byte 0xf5", SERVER, 0, 0, {{0x81, WSF_S("\xf5\x80\x80\x80")}}, "fail(1007)"},
    {"lone continuation byte", SERVER, 0, 0, {{0x81, WSF_S("a\x80")}}, "fail(1007)"},
    {"sequence cut at the end of the message",
     SERVER,
     0,
     0,
     {{0x81, WSF_S("ab\xe2\x82")}},
     "fail(1007)"},
    {"sequence cut at the end of the last fragment",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("\xe2")}, {0x80, WSF_S("\x82")}},
     "fail(1007)"},
    {"4-byte character split across fragments",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("\xf0\x9f")}, {0x80, WSF_S("\x98\x80")}},
     "text(#4)"},
    {"4-byte character split over three fragments",
     CLIENT,
     0,
     0,
     {{0x01, WSF_S("\xf0")}, {0x00, WSF_S("\x9f\x98")}, {0x80, WSF_S("\x80")}},
     "text(#4)"},
    {"invalid first fragment fails before the rest arrives",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("ok\xc0\x80")}},
     "fail(1007)"},
    {"invalid byte in a later fragment",
     SERVER,
     0,
     0,
     {{0x01, WSF_S("ab")}, {0x00, WSF_S("\xff")}, {0x80, WSF_S("c")}},
     "fail(1007)"},
    {"binary is not UTF-8 checked", SERVER, 0, 0, {{0x82, WSF_S("\xff\xc0")}}, "binary(#2)"},
};

/* Transcript of a whole or split run; caller frees. */
static char *transcript(const struct row *row, uint64_t split, bool digest)
{
    cs_buf in = CS_BUF_INIT(1 << 20), out = CS_BUF_INIT(1 << 16);
    wsf_build_all(&in, row->role, row->f);
    in.len -= row->cut;
    wsf_run(&out, row->role, row->max ? row->max : 1024, (const uint8_t *)in.data, in.len, split,
            digest);
    cs_buf_free(&in);
    return out.len ? cs_buf_detach(&out, NULL) : strdup("(none)");
}

static void reader_table(void **state)
{
    (void)state;
    assert_true(sizeof rows / sizeof *rows >= 30);
    int failures = 0;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char *got = transcript(&rows[i], WSF_WHOLE, false);
        if (strcmp(got, rows[i].want) != 0) {
            print_error("%s: got \"%s\", want \"%s\"\n", rows[i].name, got, rows[i].want);
            failures++;
        }
        free(got);
    }
    assert_int_equal(failures, 0);
}

/* Every row gives the same events fed byte by byte or in random pieces. */
static void reader_splits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char *whole = transcript(&rows[i], WSF_WHOLE, true);
        for (uint64_t split = WSF_BYTES; split < 12; split++) {
            char *got = transcript(&rows[i], split, true);
            if (strcmp(got, whole) != 0)
                fail_msg("%s, split %llu: \"%s\" vs whole \"%s\"", rows[i].name,
                         (unsigned long long)split, got, whole);
            free(got);
        }
        free(whole);
    }
}

static void reader_zero_copy(void **state)
{
    (void)state;
    cs_ws_reader r;
    cs_ws_reader_init(&r, CS_WS_SERVER, 1024);
    cs_buf in = CS_BUF_INIT(4096);
    wsf_frame f[] = {{0x81, WSF_S("Hello")}, {0x01, WSF_S("Hel")}, {0x80, WSF_S("lo")}, {0}};
    wsf_build_all(&in, CS_WS_SERVER, f);
    cs_ws_event ev;

    assert_int_equal(cs_ws_read(&r, in.data, in.len, &ev), 11);
    assert_int_equal(ev.type, CS_WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, in.data + 6); /* unmasked where it arrived */
    assert_memory_equal(ev.data, "Hello", 5);

    assert_int_equal(cs_ws_read(&r, in.data + 11, in.len - 11, &ev), 9);
    assert_int_equal(ev.type, CS_WS_EV_NONE);
    assert_int_equal(cs_ws_read(&r, in.data + 20, in.len - 20, &ev), 8);
    assert_int_equal(ev.type, CS_WS_EV_MESSAGE);
    assert_ptr_equal(ev.data, r.msg.data); /* joined in the reader */
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    cs_ws_reader_free(&r);
    cs_ws_reader_free(&r);
    cs_buf_free(&in);
}

/* An incomplete frame is left as it was, so the caller can present it again. */
static void reader_incomplete_untouched(void **state)
{
    (void)state;
    cs_ws_reader r;
    cs_ws_reader_init(&r, CS_WS_SERVER, 1024);
    cs_buf in = CS_BUF_INIT(4096);
    wsf_frame f[] = {{0x81, WSF_S("Hello")}, {0}};
    wsf_build_all(&in, CS_WS_SERVER, f);
    char copy[16];
    memcpy(copy, in.data, in.len);
    cs_ws_event ev;
    for (size_t n = 0; n < in.len; n++) {
        assert_int_equal(cs_ws_read(&r, in.data, n, &ev), 0);
        assert_int_equal(ev.type, CS_WS_EV_NONE);
        assert_memory_equal(in.data, copy, in.len);
    }
    cs_ws_reader_free(&r);
    cs_buf_free(&in);
}

/* Skipped payload is consumed as it arrives, never held back. */
static void reader_skips_as_bytes_arrive(void **state)
{
    (void)state;
    cs_ws_reader r;
    cs_ws_reader_init(&r, CS_WS_SERVER, 100);
    cs_buf in = CS_BUF_INIT(4096);
    wsf_frame f[] = {{0x82, NULL, 300}, {0}};
    wsf_build_all(&in, CS_WS_SERVER, f);
    assert_int_equal(in.len, 8 + 300);
    cs_ws_event ev;
    assert_int_equal(cs_ws_read(&r, in.data, 5, &ev), 0); /* header not complete yet */
    assert_int_equal(cs_ws_read(&r, in.data, 18, &ev), 18);
    assert_int_equal(ev.type, CS_WS_EV_NONE);
    assert_int_equal(cs_ws_read(&r, in.data + 18, 0, &ev), 0);
    assert_int_equal(cs_ws_read(&r, in.data + 18, 289, &ev), 289);
    assert_int_equal(ev.type, CS_WS_EV_NONE);
    assert_int_equal(cs_ws_read(&r, in.data + 307, 1, &ev), 1);
    assert_int_equal(ev.type, CS_WS_EV_OVERSIZE);
    assert_int_equal(ev.opcode, CS_WS_OP_BINARY);
    assert_int_equal(ev.skipped, 300);
    cs_ws_reader_free(&r);
    cs_buf_free(&in);
}

/* ---- writers ---- */

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static void writer_rfc_examples(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 20);
    /* §5.7 */
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_TEXT, "Hello", 5, NULL), 0);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "\x81\x05\x48\x65\x6c\x6c\x6f", 7);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_TEXT, "Hello", 5, rfc_mask), 0);
    assert_int_equal(out.len, 11);
    assert_memory_equal(out.data, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_PING, "Hello", 5, NULL), 0);
    assert_memory_equal(out.data, "\x89\x05\x48\x65\x6c\x6c\x6f", 7);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_PONG, "Hello", 5, rfc_mask), 0);
    assert_memory_equal(out.data, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);

    uint8_t h[CS_WS_MAX_HEADER];
    assert_int_equal(cs_ws_frame_header(h, CS_WS_OP_TEXT, false, 3, NULL), 2);
    assert_memory_equal(h, "\x01\x03", 2);
    assert_int_equal(cs_ws_frame_header(h, CS_WS_OP_CONT, true, 2, NULL), 2);
    assert_memory_equal(h, "\x80\x02", 2);
    assert_int_equal(cs_ws_frame_header(h, CS_WS_OP_BINARY, true, 125, NULL), 2);
    assert_memory_equal(h, "\x82\x7d", 2);
    assert_int_equal(cs_ws_frame_header(h, CS_WS_OP_BINARY, true, 126, NULL), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);

    static char big[65536];
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_BINARY, big, 256, NULL), 0);
    assert_int_equal(out.len, 4 + 256);
    assert_memory_equal(out.data, "\x82\x7e\x01\x00", 4);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_BINARY, big, sizeof big, NULL), 0);
    assert_int_equal(out.len, 10 + sizeof big);
    assert_memory_equal(out.data, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_BINARY, big, 65535, rfc_mask), 0);
    assert_memory_equal(out.data, "\x82\xfe\xff\xff\x37\xfa\x21\x3d", 8);
    assert_int_equal(cs_ws_frame_header(h, CS_WS_OP_BINARY, true, 1ull << 40, rfc_mask), 14);
    assert_memory_equal(h, "\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00\x37\xfa\x21\x3d", 14);
    cs_buf_free(&out);
}

static void writer_mask_in_pieces(void **state)
{
    (void)state;
    uint8_t whole[40], pieces[40];
    for (size_t len = 0; len <= sizeof whole; len++)
        for (size_t cut = 0; cut <= len; cut++) {
            for (size_t i = 0; i < len; i++) whole[i] = pieces[i] = (uint8_t)(i * 7 + 1);
            cs_ws_mask(whole, len, rfc_mask, 0);
            cs_ws_mask(pieces, cut, rfc_mask, 0);
            cs_ws_mask(pieces + cut, len - cut, rfc_mask, cut);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(whole[i], (uint8_t)((i * 7 + 1) ^ rfc_mask[i & 3]));
            assert_memory_equal(whole, pieces, len);
        }
}

/* What one side writes, the other side reads back, at each length encoding. */
static void writer_round_trip(void **state)
{
    (void)state;
    static char payload[70000];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)('A' + i % 50);
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, sizeof payload};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        for (int masked = 0; masked <= 1; masked++) {
            cs_buf out = CS_BUF_INIT(1 << 20);
            assert_int_equal(
                cs_ws_write_frame(&out, CS_WS_OP_TEXT, payload, lens[i], masked ? rfc_mask : NULL),
                0);
            cs_ws_reader r;
            cs_ws_reader_init(&r, masked ? CS_WS_SERVER : CS_WS_CLIENT, sizeof payload);
            cs_ws_event ev;
            assert_int_equal(cs_ws_read(&r, out.data, out.len, &ev), (ssize_t)out.len);
            assert_int_equal(ev.type, CS_WS_EV_MESSAGE);
            assert_int_equal(ev.opcode, CS_WS_OP_TEXT);
            assert_int_equal(ev.len, lens[i]);
            assert_memory_equal(ev.data, payload, lens[i]);
            cs_ws_reader_free(&r);
            cs_buf_free(&out);
        }
}

static void writer_close(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1024);
    assert_int_equal(cs_ws_write_close(&out, CS_WS_CLOSE_NORMAL, "bye", NULL), 0);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "\x88\x05\x03\xe8\x62\x79\x65", 7);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_close(&out, CS_WS_CLOSE_GOING_AWAY, NULL, NULL), 0);
    assert_memory_equal(out.data, "\x88\x02\x03\xe9", 4);
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_close(&out, CS_WS_CLOSE_NO_STATUS, "ignored", NULL), 0);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "\x88\x00", 2);

    /* A long reason is cut between characters: 122 ASCII bytes, then a 2-byte one that
     * would end at byte 124 of the 123 allowed. */
    char reason[200];
    memset(reason, 'r', 122);
    strcpy(reason + 122, "\xc3\xa9 and more");
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_close(&out, CS_WS_CLOSE_POLICY, reason, rfc_mask), 0);
    cs_ws_reader r;
    cs_ws_reader_init(&r, CS_WS_SERVER, 1024);
    cs_ws_event ev;
    assert_int_equal(cs_ws_read(&r, out.data, out.len, &ev), (ssize_t)out.len);
    assert_int_equal(ev.type, CS_WS_EV_CLOSE);
    assert_int_equal(ev.close_code, CS_WS_CLOSE_POLICY);
    assert_int_equal(ev.len, 122);
    cs_ws_reader_free(&r);

    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_close(&out, CS_WS_CLOSE_POLICY, reason, NULL), 0);
    assert_int_equal(out.len, 2 + CS_WS_MAX_CONTROL);
    cs_buf_free(&out);
}

static void writer_respects_buffer_max(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(10);
    assert_int_equal(cs_buf_puts(&out, "abc"), 0);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_TEXT, "Hello!", 6, NULL), -EMSGSIZE);
    assert_int_equal(out.len, 3);
    assert_int_equal(cs_ws_write_frame(&out, CS_WS_OP_TEXT, "Hello", 5, NULL), 0);
    assert_int_equal(out.len, 10);
    cs_buf_free(&out);
}

/* ---- handshake ---- */

/* Headers from "Name: value" lines ended by NULL; returns how many. */
static size_t headers(cs_http_header *h, const char *const *lines)
{
    size_t n = 0;
    for (; *lines; lines++, n++) {
        const char *colon = strchr(*lines, ':');
        h[n].name = (cs_str){*lines, (size_t)(colon - *lines)};
        h[n].value = cs_str_of(colon + 2);
    }
    return n;
}

static cs_http_req request(enum cs_http_method method, int minor, const char *const *lines)
{
    cs_http_req req = {.method = method, .minor = minor};
    req.nheaders = headers(req.headers, lines);
    return req;
}

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static void handshake_accept_key(void **state)
{
    (void)state;
    char accept[29];
    cs_ws_accept_key(accept, CS_STR(RFC_KEY));
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* §1.3 */
}

static void handshake_server(void **state)
{
    (void)state;
    static const char *const good[] = {"Host: server.example.com",  "Upgrade: websocket",
                                       "Connection: Upgrade",       "Sec-WebSocket-Key: " RFC_KEY,
                                       "Sec-WebSocket-Version: 13", NULL};
    cs_str key;
    cs_http_req req = request(CS_HTTP_GET, 1, good);
    assert_int_equal(cs_ws_check_upgrade(&req, &key), 0);
    assert_true(cs_str_eqz(key, RFC_KEY));

    static const char *const browser[] = {"Upgrade: WebSocket", "Connection: keep-alive, Upgrade",
                                          "Sec-WebSocket-Version: 13",
                                          "sec-websocket-key: " RFC_KEY, NULL};
    req = request(CS_HTTP_GET, 1, browser);
    assert_int_equal(cs_ws_check_upgrade(&req, &key), 0);
    static const char *const split_connection[] = {
        "Upgrade: websocket",        "Connection: keep-alive",      "Connection: Upgrade",
        "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: " RFC_KEY, NULL};
    req = request(CS_HTTP_GET, 1, split_connection);
    assert_int_equal(cs_ws_check_upgrade(&req, &key), 0);

    cs_buf out = CS_BUF_INIT(1024);
    assert_int_equal(cs_ws_write_accept(&out, CS_STR(RFC_KEY), NULL), 0);
    assert_string_equal(out.data, "HTTP/1.1 101 Switching Protocols\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                  "\r\n");
    cs_buf_reset(&out);
    assert_int_equal(cs_ws_write_accept(&out, CS_STR(RFC_KEY), "chat"), 0);
    assert_non_null(strstr(out.data, "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"));
    cs_buf_free(&out);
}

static void handshake_server_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum cs_http_method method;
        int minor;
        const char *lines[7];
        int want;
    } cases[] = {
        {"not GET",
         CS_HTTP_POST,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 13"},
         400},
        {"HTTP/1.0",
         CS_HTTP_GET,
         0,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 13"},
         400},
        {"no Upgrade",
         CS_HTTP_GET,
         1,
         {"Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY, "Sec-WebSocket-Version: 13"},
         400},
        {"Upgrade to another protocol",
         CS_HTTP_GET,
         1,
         {"Upgrade: h2c", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 13"},
         400},
        {"no upgrade token in Connection",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: keep-alive", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 13"},
         400},
        {"no Connection",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Sec-WebSocket-Key: " RFC_KEY, "Sec-WebSocket-Version: 13"},
         400},
        {"no key",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"},
         400},
        {"key too short",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==", "Sec-WebSocket-Version: 13"},
         400},
        {"key not base64",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==", "Sec-WebSocket-Version: 13"},
         400},
        {"key of 18 bytes",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA", "Sec-WebSocket-Version: 13"},
         400},
        {"key twice",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Key: " RFC_KEY, "Sec-WebSocket-Version: 13"},
         400},
        {"no version",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY},
         400},
        {"version 8",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 8"},
         426},
        {"version list",
         CS_HTTP_GET,
         1,
         {"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " RFC_KEY,
          "Sec-WebSocket-Version: 13, 8"},
         426},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_http_req req = request(cases[i].method, cases[i].minor, cases[i].lines);
        cs_str key = CS_STR_NULL;
        int got = cs_ws_check_upgrade(&req, &key);
        if (got != cases[i].want)
            fail_msg("%s: got %d, want %d", cases[i].name, got, cases[i].want);
    }
}

static void handshake_client(void **state)
{
    (void)state;
    char key[25], other[25];
    cs_ws_client_key(key);
    cs_ws_client_key(other);
    assert_int_equal(strlen(key), 24);
    assert_string_not_equal(key, other);

    cs_buf out = CS_BUF_INIT(1024);
    assert_int_equal(cs_ws_write_client_upgrade(&out, "example.com:8080", "/media?x=1", key,
                                                "Sec-WebSocket-Protocol: audio\r\n"),
                     0);
    char want[512];
    snprintf(want, sizeof want,
             "GET /media?x=1 HTTP/1.1\r\n"
             "Host: example.com:8080\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: audio\r\n"
             "\r\n",
             key);
    assert_string_equal(out.data, want);
    cs_buf_free(&out);

    /* The key we send is one our own server accepts. */
    char line[64];
    snprintf(line, sizeof line, "Sec-WebSocket-Key: %s", key);
    const char *const lines[] = {"Upgrade: websocket", "Connection: Upgrade", line,
                                 "Sec-WebSocket-Version: 13", NULL};
    cs_http_req req = request(CS_HTTP_GET, 1, lines);
    cs_str got;
    assert_int_equal(cs_ws_check_upgrade(&req, &got), 0);

    char accept[29], accept_line[64];
    cs_ws_accept_key(accept, cs_str_of(key));
    snprintf(accept_line, sizeof accept_line, "Sec-WebSocket-Accept: %s", accept);
    cs_http_resp resp = {.status = 101, .minor = 1};
    const char *const ok[] = {"Upgrade: websocket", "Connection: Upgrade", accept_line, NULL};
    resp.nheaders = headers(resp.headers, ok);
    assert_int_equal(cs_ws_check_accept(&resp, key), 0);
    assert_int_equal(cs_ws_check_accept(&resp, other), CS_EPARSE);

    resp.status = 200;
    assert_int_equal(cs_ws_check_accept(&resp, key), CS_EPARSE);
    resp.status = 101;

    const char *const *bad[] = {
        (const char *const[]){"Connection: Upgrade", accept_line, NULL},
        (const char *const[]){"Upgrade: websocket", accept_line, NULL},
        (const char *const[]){"Upgrade: websocket", "Connection: Upgrade", NULL},
        (const char *const[]){"Upgrade: websocket", "Connection: Upgrade",
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL},
        (const char *const[]){"Upgrade: websocket", "Connection: Upgrade", accept_line,
                              "Sec-WebSocket-Extensions: permessage-deflate", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        resp.nheaders = headers(resp.headers, bad[i]);
        assert_int_equal(cs_ws_check_accept(&resp, key), CS_EPARSE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_table),
        cmocka_unit_test(reader_splits),
        cmocka_unit_test(reader_zero_copy),
        cmocka_unit_test(reader_incomplete_untouched),
        cmocka_unit_test(reader_skips_as_bytes_arrive),
        cmocka_unit_test(writer_rfc_examples),
        cmocka_unit_test(writer_mask_in_pieces),
        cmocka_unit_test(writer_round_trip),
        cmocka_unit_test(writer_close),
        cmocka_unit_test(writer_respects_buffer_max),
        cmocka_unit_test(handshake_accept_key),
        cmocka_unit_test(handshake_server),
        cmocka_unit_test(handshake_server_refusals),
        cmocka_unit_test(handshake_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
