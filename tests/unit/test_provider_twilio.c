#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "provider/twilio.h"
#include "provider/twilio_int.h"

#define AC "AC0123456789abcdef0123456789abcdef"
#define CA "CA0123456789ABCDEF0123456789ABCDEF"
#define MZ "MZ00112233445566778899aabbccddeeff"

#define MAX_MSG (1 << 17)

static const cs_provider_ops *tw = &cs_provider_twilio;

/* One 20 ms frame, as Twilio sends it: 160 μ-law bytes, 216 base64 characters. */
static uint8_t frame[160];
static char frame_b64[CS_BASE64_ENCODED_LEN(160) + 1];

/* Each path parses its own copy with its own scratch: views stay valid until the next
 * parse, so the three results can be compared. */
enum { VIA_OPS, VIA_SLOW, VIA_FAST, NVIA };
static char copies[NVIA][MAX_MSG];
static cs_pscratch scratch[NVIA];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(0xff - i * 7);
    frame_b64[cs_base64_encode(frame_b64, frame, sizeof frame)] = '\0';
    for (int i = 0; i < NVIA; i++) cs_pscratch_init(&scratch[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NVIA; i++) cs_pscratch_free(&scratch[i]);
    return 0;
}

/* malloc'd printf; the caller frees. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    cs_buf b = CS_BUF_INIT(1 << 20);
    va_list ap;
    va_start(ap, f);
    assert_int_equal(cs_buf_vprintf(&b, f, ap), 0);
    va_end(ap);
    return cs_buf_detach(&b, NULL);
}

static void assert_str(cs_str s, const char *want)
{
    if (!cs_str_eqz(s, want)) fail_msg("got \"%.*s\", want \"%s\"", (int)s.n, s.p, want);
}

static void assert_same_str(cs_str a, cs_str b)
{
    if (!cs_str_eq(a, b)) fail_msg("\"%.*s\" != \"%.*s\"", (int)a.n, a.p, (int)b.n, b.p);
}

static void assert_same_event(const cs_pevent *a, const cs_pevent *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->seq, b->seq);
    assert_same_str(a->stream_id, b->stream_id);
    switch (a->type) {
    case CS_PEV_CONNECTED:
        assert_same_str(a->connected.protocol, b->connected.protocol);
        assert_same_str(a->connected.version, b->connected.version);
        break;
    case CS_PEV_START:
        assert_same_str(a->start.account_id, b->start.account_id);
        assert_same_str(a->start.call_id, b->start.call_id);
        assert_same_str(a->start.stream_id, b->start.stream_id);
        assert_int_equal(a->start.tracks, b->start.tracks);
        assert_same_str(a->start.encoding, b->start.encoding);
        assert_int_equal(a->start.sample_rate, b->start.sample_rate);
        assert_int_equal(a->start.channels, b->start.channels);
        assert_int_equal(a->start.nparams, b->start.nparams);
        for (size_t i = 0; i < a->start.nparams; i++) {
            assert_same_str(a->start.params[i].name, b->start.params[i].name);
            assert_same_str(a->start.params[i].value, b->start.params[i].value);
        }
        break;
    case CS_PEV_MEDIA:
        assert_int_equal(a->media.track, b->media.track);
        assert_int_equal(a->media.chunk, b->media.chunk);
        assert_int_equal(a->media.timestamp_ms, b->media.timestamp_ms);
        assert_int_equal(a->media.len, b->media.len);
        if (a->media.len) assert_memory_equal(a->media.payload, b->media.payload, a->media.len);
        break;
    case CS_PEV_DTMF:
        assert_int_equal(a->dtmf.digit, b->dtmf.digit);
        break;
    case CS_PEV_MARK:
        assert_same_str(a->mark.name, b->mark.name);
        break;
    case CS_PEV_STOP:
        assert_same_str(a->stop.account_id, b->stop.account_id);
        assert_same_str(a->stop.call_id, b->stop.call_id);
        break;
    case CS_PEV_PROMPT:
    case CS_PEV_INTERRUPT:
    case CS_PEV_PEER_ERROR:
        fail_msg("a relay event from the media parser");
        break;
    }
}

/* Parses `len` bytes through the provider's parse, the slow path and, when it takes the
 * message, the fast path; checks that all agree; returns the provider's result (*ev stays
 * valid until the next call). *fast tells whether the fast path took it. */
static int parse_n(const char *msg, size_t len, cs_pevent *ev, enum cs_bad *bad, bool *fast)
{
    assert_true(len <= MAX_MSG);
    for (int i = 0; i < NVIA; i++) memcpy(copies[i], msg, len);
    cs_pevent evs[NVIA];
    memset(evs, 0, sizeof evs);
    enum cs_bad bads[NVIA] = {CS_BAD_COUNT, CS_BAD_COUNT, CS_BAD_COUNT};
    int rc = tw->parse(copies[VIA_OPS], len, &evs[VIA_OPS], &scratch[VIA_OPS], &bads[VIA_OPS]);
    int slow = cs_twilio_parse_slow(copies[VIA_SLOW], len, &evs[VIA_SLOW], &scratch[VIA_SLOW],
                                    &bads[VIA_SLOW]);
    int quick = cs_twilio_parse_fast(copies[VIA_FAST], len, &evs[VIA_FAST], &scratch[VIA_FAST],
                                     &bads[VIA_FAST]);
    assert_true(rc == 0 || rc == CS_EPARSE);
    assert_int_equal(rc, slow);
    if (rc)
        assert_int_equal(bads[VIA_OPS], bads[VIA_SLOW]);
    else
        assert_same_event(&evs[VIA_OPS], &evs[VIA_SLOW]);
    if (quick != -EAGAIN) {
        assert_int_equal(quick, slow);
        if (quick)
            assert_int_equal(bads[VIA_FAST], bads[VIA_SLOW]);
        else
            assert_same_event(&evs[VIA_FAST], &evs[VIA_SLOW]);
    }
    if (fast) *fast = quick != -EAGAIN;
    *ev = evs[VIA_OPS];
    *bad = bads[VIA_OPS];
    return rc;
}

static int parse(const char *msg, cs_pevent *ev, enum cs_bad *bad, bool *fast)
{
    return parse_n(msg, strlen(msg), ev, bad, fast);
}

static void parse_ok(const char *msg, cs_pevent *ev)
{
    enum cs_bad bad;
    if (parse(msg, ev, &bad, NULL)) fail_msg("refused (%s): %s", cs_bad_label(bad), msg);
}

/* A media message with the documented key order. */
static char *media_msg(const char *payload)
{
    return fmt("{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":\"inbound\","
               "\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"%s\"},\"streamSid\":\"" MZ "\"}",
               payload);
}

static void check_frame_event(const cs_pevent *ev)
{
    assert_int_equal(ev->type, CS_PEV_MEDIA);
    assert_int_equal(ev->seq, 4);
    assert_str(ev->stream_id, MZ);
    assert_int_equal(ev->media.track, CS_TRACK_INBOUND);
    assert_int_equal(ev->media.chunk, 2);
    assert_int_equal(ev->media.timestamp_ms, 5);
    assert_int_equal(ev->media.len, sizeof frame);
    assert_memory_equal(ev->media.payload, frame, sizeof frame);
}

/* ---- every documented message (§1.1) ---- */

static void documented_connected(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\"event\": \"connected\", \"protocol\": \"Call\", \"version\": \"1.0.0\"}", &ev);
    assert_int_equal(ev.type, CS_PEV_CONNECTED);
    assert_int_equal(ev.seq, -1);
    assert_int_equal(ev.stream_id.n, 0);
    assert_str(ev.connected.protocol, "Call");
    assert_str(ev.connected.version, "1.0.0");
}

static void documented_start(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\n"
             "  \"event\": \"start\",\n"
             "  \"sequenceNumber\": \"1\",\n"
             "  \"start\": {\n"
             "    \"accountSid\": \"" AC "\",\n"
             "    \"streamSid\":  \"" MZ "\",\n"
             "    \"callSid\":    \"" CA "\",\n"
             "    \"tracks\": [\"inbound\"],\n"
             "    \"mediaFormat\": {\"encoding\": \"audio/x-mulaw\", \"sampleRate\": 8000, "
             "\"channels\": 1},\n"
             "    \"customParameters\": {\"FirstName\": \"Jane\", \"LastName\": \"Doe\", "
             "\"RemoteParty\": \"Bob\"}\n"
             "  },\n"
             "  \"streamSid\": \"" MZ "\"\n"
             "}",
             &ev);
    assert_int_equal(ev.type, CS_PEV_START);
    assert_int_equal(ev.seq, 1);
    assert_str(ev.stream_id, MZ);
    assert_str(ev.start.account_id, AC);
    assert_str(ev.start.call_id, CA);
    assert_str(ev.start.stream_id, MZ);
    assert_int_equal(ev.start.tracks, CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_str(ev.start.encoding, "audio/x-mulaw");
    assert_int_equal(ev.start.sample_rate, 8000);
    assert_int_equal(ev.start.channels, 1);
    assert_int_equal(ev.start.nparams, 3);
    static const char *const want[][2] = {
        {"FirstName", "Jane"}, {"LastName", "Doe"}, {"RemoteParty", "Bob"}};
    for (size_t i = 0; i < 3; i++) {
        assert_str(ev.start.params[i].name, want[i][0]);
        assert_str(ev.start.params[i].value, want[i][1]);
    }
}

static void start_both_tracks_no_params(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":\"" AC
             "\",\"streamSid\":\"" MZ "\",\"callSid\":\"" CA
             "\",\"tracks\":[\"inbound\",\"outbound\"],\"mediaFormat\":{\"encoding\":"
             "\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1}},\"streamSid\":\"" MZ "\"}",
             &ev);
    assert_int_equal(ev.start.tracks,
                     CS_TRACK_BIT(CS_TRACK_INBOUND) | CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    assert_int_equal(ev.start.nparams, 0);
}

static void documented_media(void **state)
{
    (void)state;
    char *msg = media_msg(frame_b64);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(parse(msg, &ev, &bad, &fast), 0);
    assert_true(fast);
    check_frame_event(&ev);
    /* the views point into the message itself */
    assert_true(ev.stream_id.p >= copies[VIA_OPS] && ev.stream_id.p < copies[VIA_OPS] + MAX_MSG);
    free(msg);
}

static void media_outbound_without_chunk(void **state)
{
    (void)state;
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(
        parse("{\"event\":\"media\",\"streamSid\":\"" MZ
              "\",\"media\":{\"track\":\"outbound\",\"timestamp\":\"18446744073709551615"
              "\",\"payload\":\"\"}}",
              &ev, &bad, &fast),
        0);
    assert_true(fast);
    assert_int_equal(ev.seq, -1);
    assert_int_equal(ev.media.track, CS_TRACK_OUTBOUND);
    assert_int_equal(ev.media.chunk, 0);
    assert_int_equal(ev.media.timestamp_ms, UINT64_MAX);
    assert_int_equal(ev.media.len, 0);
}

static void documented_dtmf(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\"event\": \"dtmf\", \"streamSid\": \"" MZ "\", \"sequenceNumber\": \"5\", "
             "\"dtmf\": {\"track\": \"inbound_track\", \"digit\": \"1\"}}",
             &ev);
    assert_int_equal(ev.type, CS_PEV_DTMF);
    assert_int_equal(ev.seq, 5);
    assert_str(ev.stream_id, MZ);
    assert_int_equal(ev.dtmf.digit, '1');
    for (const char *d = "0123456789*#ABCD"; *d; d++) {
        char *msg =
            fmt("{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":\"%c\"}}", *d);
        parse_ok(msg, &ev);
        assert_int_equal(ev.dtmf.digit, *d);
        free(msg);
    }
}

static void documented_mark(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\"event\": \"mark\", \"sequenceNumber\": \"4\", \"streamSid\": \"" MZ "\", "
             "\"mark\": {\"name\": \"my label\"}}",
             &ev);
    assert_int_equal(ev.type, CS_PEV_MARK);
    assert_int_equal(ev.seq, 4);
    assert_str(ev.mark.name, "my label");
}

static void documented_stop(void **state)
{
    (void)state;
    cs_pevent ev;
    parse_ok("{\"event\": \"stop\", \"sequenceNumber\": \"5\", \"stop\": {\"accountSid\": \"" AC
             "\", \"callSid\": \"" CA "\"}, \"streamSid\": \"" MZ "\"}",
             &ev);
    assert_int_equal(ev.type, CS_PEV_STOP);
    assert_int_equal(ev.seq, 5);
    assert_str(ev.stream_id, MZ);
    assert_str(ev.stop.account_id, AC);
    assert_str(ev.stop.call_id, CA);
    /* nothing in the stop object is needed */
    parse_ok("{\"event\":\"stop\",\"streamSid\":\"" MZ "\"}", &ev);
    assert_int_equal(ev.stop.call_id.n, 0);
}

/* ---- fast path: key order, whitespace, escapes, fallbacks ---- */

static void permute(size_t *idx, size_t n, size_t k, void (*fn)(const size_t *, void *), void *arg)
{
    if (k == n) {
        fn(idx, arg);
        return;
    }
    for (size_t i = k; i < n; i++) {
        size_t t = idx[k];
        idx[k] = idx[i];
        idx[i] = t;
        permute(idx, n, k + 1, fn, arg);
        idx[i] = idx[k];
        idx[k] = t;
    }
}

/* Top-level members of a media message; NULL stands for the "media" object. */
static const char *const top_members[4] = {"\"event\":\"media\"", "\"sequenceNumber\":\"4\"", NULL,
                                           "\"streamSid\":\"" MZ "\""};

static void parse_with_top_order(const size_t *top, void *arg)
{
    const char *media = arg;
    const char *m[4];
    for (size_t i = 0; i < 4; i++) m[i] = top_members[top[i]] ? top_members[top[i]] : media;
    char *msg = fmt("{%s,%s,%s,%s}", m[0], m[1], m[2], m[3]);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(parse(msg, &ev, &bad, &fast), 0);
    assert_true(fast);
    check_frame_event(&ev);
    free(msg);
}

static void parse_with_media_order(const size_t *inner, void *arg)
{
    (void)arg;
    char payload[300];
    snprintf(payload, sizeof payload, "\"payload\":\"%s\"", frame_b64);
    const char *fields[4] = {"\"track\":\"inbound\"", "\"chunk\":\"2\"", "\"timestamp\":\"5\"",
                             payload};
    char *media = fmt("\"media\":{%s,%s,%s,%s}", fields[inner[0]], fields[inner[1]],
                      fields[inner[2]], fields[inner[3]]);
    size_t top[4] = {0, 1, 2, 3};
    permute(top, 4, 0, parse_with_top_order, media);
    free(media);
}

static void any_key_order(void **state)
{
    (void)state;
    size_t inner[4] = {0, 1, 2, 3};
    permute(inner, 4, 0, parse_with_media_order, NULL); /* 24 × 24 messages */
}

static void whitespace_everywhere(void **state)
{
    (void)state;
    char *msg = fmt(" \r\n{ \"event\" :\t\"media\" ,\n \"sequenceNumber\" : \"4\",\"media\" : {\n"
                    "  \"track\" : \"inbound\" , \"chunk\":\"2\",\n  \"timestamp\": \"5\",\n"
                    "  \"payload\": \"%s\"\n } ,\"streamSid\":\"" MZ "\" \n}\n\t ",
                    frame_b64);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(parse(msg, &ev, &bad, &fast), 0);
    assert_true(fast);
    check_frame_event(&ev);
    free(msg);
}

/* Messages the fast path hands to cJSON, which must still read them right. */
static void fast_path_falls_back(void **state)
{
    (void)state;
    char *unknown_key = fmt("{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":"
                            "\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"%s\","
                            "\"extra\":\"x\"},\"streamSid\":\"" MZ "\",\"more\":{\"a\":[1,2]}}",
                            frame_b64);
    char *escaped_sid = fmt("{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":"
                            "\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"%s\"},"
                            "\"streamSid\":\"\\u004dZ00112233445566778899aabbccddeeff\"}",
                            frame_b64);
    char *escaped_event = fmt("{\"event\":\"m\\u0065dia\",\"sequenceNumber\":\"4\",\"media\":{"
                              "\"track\":\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\","
                              "\"payload\":\"%s\"},\"streamSid\":\"" MZ "\"}",
                              frame_b64);
    char *bom =
        fmt("\xef\xbb\xbf{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":"
            "\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"%s\"},"
            "\"streamSid\":\"" MZ "\"}",
            frame_b64);
    /* JSON lets '/' be escaped, and base64 is full of them */
    cs_buf b = CS_BUF_INIT(1 << 16);
    for (const char *p = frame_b64; *p; p++)
        assert_int_equal(*p == '/' ? cs_buf_puts(&b, "\\/") : cs_buf_putc(&b, *p), 0);
    assert_non_null(strchr(frame_b64, '/'));
    char *slashes = media_msg(b.data);
    const char *const msgs[] = {unknown_key, escaped_sid, escaped_event, bom, slashes};
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
        cs_pevent ev;
        enum cs_bad bad;
        bool fast;
        if (parse(msgs[i], &ev, &bad, &fast)) fail_msg("refused: %s", msgs[i]);
        assert_false(fast);
        check_frame_event(&ev);
    }
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) free((void *)msgs[i]);
    cs_buf_free(&b);
}

static void repeated_key_takes_the_first(void **state)
{
    (void)state;
    char *msg = fmt("{\"event\":\"media\",\"sequenceNumber\":\"4\",\"sequenceNumber\":\"9\","
                    "\"media\":{\"track\":\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\","
                    "\"payload\":\"%s\"},\"streamSid\":\"" MZ "\"}",
                    frame_b64);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(parse(msg, &ev, &bad, &fast), 0);
    assert_false(fast);
    check_frame_event(&ev);
    free(msg);
}

static void payload_size_limit(void **state)
{
    (void)state;
    static uint8_t big[CS_PEV_MAX_PAYLOAD + 3];
    static char enc[CS_BASE64_ENCODED_LEN(sizeof big) + 1];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 13);
    size_t n = cs_base64_encode(enc, big, CS_PEV_MAX_PAYLOAD);
    enc[n] = '\0';
    char *msg = media_msg(enc);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;
    assert_int_equal(parse(msg, &ev, &bad, &fast), 0);
    assert_true(fast);
    assert_int_equal(ev.media.len, CS_PEV_MAX_PAYLOAD);
    assert_memory_equal(ev.media.payload, big, CS_PEV_MAX_PAYLOAD);
    free(msg);

    n = cs_base64_encode(enc, big, sizeof big);
    enc[n] = '\0';
    msg = media_msg(enc);
    assert_int_equal(parse(msg, &ev, &bad, &fast), CS_EPARSE);
    assert_int_equal(bad, CS_BAD_BASE64);
    free(msg);
}

static void custom_parameters_limit(void **state)
{
    (void)state;
    for (size_t count = CS_PEV_MAX_PARAMS; count <= CS_PEV_MAX_PARAMS + 1; count++) {
        cs_buf params = CS_BUF_INIT(1 << 16);
        for (size_t i = 0; i < count; i++)
            assert_int_equal(cs_buf_printf(&params, "%s\"p%zu\":\"v%zu\"", i ? "," : "", i, i), 0);
        char *msg =
            fmt("{\"event\":\"start\",\"start\":{\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ
                "\",\"callSid\":\"" CA "\",\"tracks\":[\"inbound\"],\"mediaFormat\":{\"encoding\":"
                "\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1},"
                "\"customParameters\":{%s}},\"streamSid\":\"" MZ "\"}",
                params.data);
        cs_pevent ev;
        enum cs_bad bad;
        if (count == CS_PEV_MAX_PARAMS) {
            parse_ok(msg, &ev);
            assert_int_equal(ev.start.nparams, CS_PEV_MAX_PARAMS);
            assert_str(ev.start.params[98].name, "p98");
            assert_str(ev.start.params[98].value, "v98");
        } else {
            assert_int_equal(parse(msg, &ev, &bad, NULL), CS_EPARSE);
            assert_int_equal(bad, CS_BAD_FIELD);
        }
        free(msg);
        cs_buf_free(&params);
    }
}

/* ---- refused messages: every kind, several ways ---- */

#define START_WITH(start_body)                                                                     \
    "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{" start_body "},\"streamSid\":\"" MZ \
    "\"}"
#define SIDS "\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ "\",\"callSid\":\"" CA "\","
#define FORMAT(enc, rate, ch)                                                                      \
    "\"mediaFormat\":{\"encoding\":" enc ",\"sampleRate\":" rate ",\"channels\":" ch "}"
#define GOOD_FORMAT FORMAT("\"audio/x-mulaw\"", "8000", "1")
#define TRACKS      "\"tracks\":[\"inbound\"],"
#define MEDIA_WITH(media_body)                                                                     \
    "{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{" media_body "},\"streamSid\":\"" MZ \
    "\"}"
#define PAYLOAD "\"payload\":\"AAAA\""

static const struct bad_row {
    const char *json;
    enum cs_bad bad;
} bad_rows[] = {
    /* not JSON, or not an object */
    {"", CS_BAD_JSON},
    {"hello", CS_BAD_JSON},
    {"[{\"event\":\"mark\"}]", CS_BAD_JSON},
    {"\"media\"", CS_BAD_JSON},
    {"{\"event\":\"media\"", CS_BAD_JSON},
    {"{\"event\":\"stop\",\"streamSid\":\"" MZ "\"} {}", CS_BAD_JSON},
    {"{\"event\":\"stop\",\"streamSid\":\"" MZ "\",}", CS_BAD_JSON},
    {"{'event':'stop'}", CS_BAD_JSON},
    /* missing or unknown event */
    {"{}", CS_BAD_EVENT},
    {"{\"streamSid\":\"" MZ "\",\"media\":{}}", CS_BAD_EVENT},
    {"{\"event\":\"hello\",\"streamSid\":\"" MZ "\"}", CS_BAD_EVENT},
    {"{\"event\":\"Media\",\"streamSid\":\"" MZ "\"}", CS_BAD_EVENT},
    {"{\"event\":5}", CS_BAD_EVENT},
    {"{\"event\":null}", CS_BAD_EVENT},
    {"{\"Event\":\"media\"}", CS_BAD_EVENT},
    /* top-level members */
    {"{\"event\":\"mark\",\"sequenceNumber\":4,\"streamSid\":\"" MZ "\",\"mark\":{\"name\":\"a\"}}",
     CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"sequenceNumber\":\"-4\",\"streamSid\":\"" MZ
     "\",\"mark\":{\"name\":\"a\"}}",
     CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"sequenceNumber\":\"99999999999999999999\",\"streamSid\":\"" MZ
     "\",\"mark\":{\"name\":\"a\"}}",
     CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"mark\":{\"name\":\"a\"}}", CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"streamSid\":5,\"mark\":{\"name\":\"a\"}}", CS_BAD_FIELD},
    {"{\"event\":\"connected\",\"protocol\":1}", CS_BAD_FIELD},
    /* media */
    {"{\"event\":\"media\",\"sequenceNumber\":4,\"media\":{\"track\":\"inbound\",\"chunk\":\"2\","
     "\"timestamp\":\"5\"," PAYLOAD "},\"streamSid\":\"" MZ "\"}",
     CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"chunk\":\"2\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":5," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5.0\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"chunk\":2,\"timestamp\":\"5\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"chunk\":\"\",\"timestamp\":\"5\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"both\",\"timestamp\":\"5\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound_track\",\"timestamp\":\"5\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"timestamp\":\"5\"," PAYLOAD), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\""), CS_BAD_FIELD},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":null"), CS_BAD_FIELD},
    {"{\"event\":\"media\",\"media\":\"x\",\"streamSid\":\"" MZ "\"}", CS_BAD_FIELD},
    {"{\"event\":\"media\",\"streamSid\":\"" MZ "\"}", CS_BAD_FIELD},
    {"{\"event\":\"media\",\"media\":{\"track\":\"inbound\",\"timestamp\":\"5\"," PAYLOAD "}}",
     CS_BAD_FIELD},
    /* media payload */
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"AAA\""), CS_BAD_BASE64},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"AA!A\""), CS_BAD_BASE64},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"Zh==\""), CS_BAD_BASE64},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"AA\\nAA\""),
     CS_BAD_BASE64},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"AA\nAA\""), CS_BAD_BASE64},
    {MEDIA_WITH("\"track\":\"inbound\",\"timestamp\":\"5\",\"payload\":\"AA-_\""), CS_BAD_BASE64},
    /* dtmf */
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":\"12\"}}", CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":\"E\"}}", CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":\"a\"}}", CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":\"\"}}", CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"digit\":1}}", CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\",\"dtmf\":{\"track\":\"inbound_track\"}}",
     CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ
     "\",\"dtmf\":{\"track\":\"inbound\",\"digit\":\"1\"}}",
     CS_BAD_FIELD},
    {"{\"event\":\"dtmf\",\"streamSid\":\"" MZ "\"}", CS_BAD_FIELD},
    /* mark */
    {"{\"event\":\"mark\",\"streamSid\":\"" MZ "\"}", CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"streamSid\":\"" MZ "\",\"mark\":{}}", CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"streamSid\":\"" MZ "\",\"mark\":{\"name\":7}}", CS_BAD_FIELD},
    {"{\"event\":\"mark\",\"streamSid\":\"" MZ "\",\"mark\":[{\"name\":\"a\"}]}", CS_BAD_FIELD},
    /* stop */
    {"{\"event\":\"stop\",\"streamSid\":\"" MZ "\",\"stop\":\"now\"}", CS_BAD_FIELD},
    {"{\"event\":\"stop\",\"streamSid\":\"" MZ "\",\"stop\":{\"callSid\":1}}", CS_BAD_FIELD},
    /* start: SIDs */
    {START_WITH("\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ "\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"accountSid\":\"" AC "\",\"callSid\":\"" CA "\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"streamSid\":\"" MZ "\",\"callSid\":\"" CA "\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ
                "\",\"callSid\":\"CA123\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"accountSid\":\"" AC "\",\"streamSid\":\"" CA "\",\"callSid\":\"" CA
                "\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ
                "\",\"callSid\":\"CA0123456789ABCDEF0123456789ABCDEG\"," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {START_WITH("\"accountSid\":\"" AC "\",\"streamSid\":\"" MZ
                "\",\"callSid\":5," TRACKS GOOD_FORMAT),
     CS_BAD_FIELD},
    {"{\"event\":\"start\",\"start\":{" SIDS TRACKS GOOD_FORMAT
     "},\"streamSid\":\"MZ00112233445566778899aabbccddeef0\"}",
     CS_BAD_FIELD},
    {"{\"event\":\"start\",\"start\":{" SIDS TRACKS GOOD_FORMAT "}}", CS_BAD_FIELD},
    {"{\"event\":\"start\",\"streamSid\":\"" MZ "\"}", CS_BAD_FIELD},
    {"{\"event\":\"start\",\"streamSid\":\"" MZ "\",\"start\":[]}", CS_BAD_FIELD},
    /* start: tracks */
    {START_WITH(SIDS GOOD_FORMAT), CS_BAD_FIELD},
    {START_WITH(SIDS "\"tracks\":[]," GOOD_FORMAT), CS_BAD_FIELD},
    {START_WITH(SIDS "\"tracks\":[\"both_tracks\"]," GOOD_FORMAT), CS_BAD_FIELD},
    {START_WITH(SIDS "\"tracks\":\"inbound\"," GOOD_FORMAT), CS_BAD_FIELD},
    {START_WITH(SIDS "\"tracks\":[\"inbound\",1]," GOOD_FORMAT), CS_BAD_FIELD},
    /* start: media format */
    {START_WITH(SIDS TRACKS FORMAT("\"audio/l16\"", "8000", "1")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("\"audio/x-mulaw\"", "16000", "1")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("\"audio/x-mulaw\"", "8000", "2")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("\"audio/x-mulaw\"", "\"8000\"", "1")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("\"audio/x-mulaw\"", "8000", "\"1\"")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("\"audio/x-mulaw\"", "8000.5", "1")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS FORMAT("null", "8000", "1")), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS "\"mediaFormat\":{}"), CS_BAD_FIELD},
    {START_WITH(SIDS "\"tracks\":[\"inbound\"]"), CS_BAD_FIELD},
    /* start: customParameters */
    {START_WITH(SIDS TRACKS GOOD_FORMAT ",\"customParameters\":{\"a\":1}"), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS GOOD_FORMAT ",\"customParameters\":{\"a\":\"x\",\"b\":{}}"),
     CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS GOOD_FORMAT ",\"customParameters\":{\"a\":null}"), CS_BAD_FIELD},
    {START_WITH(SIDS TRACKS GOOD_FORMAT ",\"customParameters\":[\"a\"]"), CS_BAD_FIELD},
};

static void refuses_bad_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_rows / sizeof *bad_rows; i++) {
        cs_pevent ev;
        enum cs_bad bad = CS_BAD_COUNT;
        if (parse(bad_rows[i].json, &ev, &bad, NULL) != CS_EPARSE)
            fail_msg("accepted: %s", bad_rows[i].json);
        if (bad != bad_rows[i].bad)
            fail_msg("%s instead of %s: %s", cs_bad_label(bad), cs_bad_label(bad_rows[i].bad),
                     bad_rows[i].json);
    }
}

static void every_bad_kind_has_examples(void **state)
{
    (void)state;
    const enum cs_bad parse_kinds[] = {CS_BAD_JSON, CS_BAD_EVENT, CS_BAD_FIELD, CS_BAD_BASE64};
    for (size_t k = 0; k < sizeof parse_kinds / sizeof *parse_kinds; k++) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof bad_rows / sizeof *bad_rows; i++)
            n += bad_rows[i].bad == parse_kinds[k];
        assert_true(n >= 2);
    }
}

static void refuses_nul_bytes(void **state)
{
    (void)state;
    char *msg = media_msg(frame_b64);
    size_t len = strlen(msg);
    char *sid = strstr(msg, MZ);
    sid[10] = '\0'; /* cJSON would cut the string here */
    cs_pevent ev;
    enum cs_bad bad;
    assert_int_equal(parse_n(msg, len, &ev, &bad, NULL), CS_EPARSE);
    assert_int_equal(bad, CS_BAD_JSON);
    free(msg);
}

/* ---- round trips: what Twilio sends → our parser; what we send → Twilio's side ---- */

static void peer_to_server(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 16);
    cs_pevent ev;
    enum cs_bad bad;
    bool fast;

    assert_int_equal(cs_twilio_peer_connected(&out), 0);
    parse_ok(out.data, &ev);
    assert_int_equal(ev.type, CS_PEV_CONNECTED);
    assert_str(ev.connected.protocol, "Call");

    const cs_kv params[] = {
        {CS_STR("from"), CS_STR("+15550001111")},
        {CS_STR("quote\"back\\slash"), CS_STR("line\nbreak\ttab \xc3\xa9 \x01")},
        {CS_STR("empty"), CS_STR("")},
    };
    const cs_twilio_start st = {AC, CA, MZ, CS_TRACK_BIT(CS_TRACK_INBOUND), params, 3};
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_start(&out, 1, &st), 0);
    parse_ok(out.data, &ev);
    assert_int_equal(ev.type, CS_PEV_START);
    assert_int_equal(ev.seq, 1);
    assert_str(ev.stream_id, MZ);
    assert_str(ev.start.account_id, AC);
    assert_str(ev.start.call_id, CA);
    assert_int_equal(ev.start.tracks, CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(ev.start.nparams, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_same_str(ev.start.params[i].name, params[i].name);
        assert_same_str(ev.start.params[i].value, params[i].value);
    }

    for (int t = CS_TRACK_INBOUND; t <= CS_TRACK_OUTBOUND; t++) {
        cs_buf_reset(&out);
        assert_int_equal(
            cs_twilio_peer_media(&out, MZ, 7, (enum cs_track)t, 3, 40, frame, sizeof frame), 0);
        assert_int_equal(parse(out.data, &ev, &bad, &fast), 0);
        assert_true(fast);
        assert_int_equal(ev.seq, 7);
        assert_str(ev.stream_id, MZ);
        assert_int_equal(ev.media.track, t);
        assert_int_equal(ev.media.chunk, 3);
        assert_int_equal(ev.media.timestamp_ms, 40);
        assert_int_equal(ev.media.len, sizeof frame);
        assert_memory_equal(ev.media.payload, frame, sizeof frame);
    }
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_media(&out, MZ, 7, (enum cs_track)2, 3, 40, frame, 1), -EINVAL);
    assert_int_equal(out.len, 0);

    for (const char *d = "0123456789*#ABCD"; *d; d++) {
        cs_buf_reset(&out);
        assert_int_equal(cs_twilio_peer_dtmf(&out, MZ, 9, *d), 0);
        parse_ok(out.data, &ev);
        assert_int_equal(ev.type, CS_PEV_DTMF);
        assert_int_equal(ev.seq, 9);
        assert_int_equal(ev.dtmf.digit, *d);
    }

    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_mark(&out, MZ, 10, CS_STR("chunk \"7\" \\ done")), 0);
    parse_ok(out.data, &ev);
    assert_int_equal(ev.type, CS_PEV_MARK);
    assert_str(ev.mark.name, "chunk \"7\" \\ done");

    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_stop(&out, MZ, 11, AC, CA), 0);
    parse_ok(out.data, &ev);
    assert_int_equal(ev.type, CS_PEV_STOP);
    assert_int_equal(ev.seq, 11);
    assert_str(ev.stop.account_id, AC);
    assert_str(ev.stop.call_id, CA);
    cs_buf_free(&out);
}

static void peer_writes_as_twilio(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 16);
    static const uint8_t three[] = {0xff, 0x7f, 0x00};
    assert_int_equal(cs_twilio_peer_connected(&out), 0);
    assert_string_equal(out.data, "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":"
                                  "\"1.0.0\"}");
    cs_buf_reset(&out);
    const cs_kv params[] = {{CS_STR("FirstName"), CS_STR("Jane")}};
    const cs_twilio_start st = {AC, CA, MZ, CS_TRACK_BIT(CS_TRACK_INBOUND), params, 1};
    assert_int_equal(cs_twilio_peer_start(&out, 1, &st), 0);
    assert_string_equal(out.data,
                        "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":"
                        "\"" AC "\",\"streamSid\":\"" MZ "\",\"callSid\":\"" CA "\",\"tracks\":["
                        "\"inbound\"],\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
                        "\"sampleRate\":8000,\"channels\":1},\"customParameters\":{\"FirstName\":"
                        "\"Jane\"}},\"streamSid\":\"" MZ "\"}");
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_media(&out, MZ, 4, CS_TRACK_INBOUND, 2, 5, three, 3), 0);
    assert_string_equal(out.data,
                        "{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":"
                        "\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"/38A\"},"
                        "\"streamSid\":\"" MZ "\"}");
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_dtmf(&out, MZ, 5, '1'), 0);
    assert_string_equal(out.data, "{\"event\":\"dtmf\",\"streamSid\":\"" MZ
                                  "\",\"sequenceNumber\":\"5\",\"dtmf\":{\"track\":"
                                  "\"inbound_track\",\"digit\":\"1\"}}");
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_mark(&out, MZ, 4, CS_STR("my label")), 0);
    assert_string_equal(out.data, "{\"event\":\"mark\",\"sequenceNumber\":\"4\",\"streamSid\":\"" MZ
                                  "\",\"mark\":{\"name\":\"my label\"}}");
    cs_buf_reset(&out);
    assert_int_equal(cs_twilio_peer_stop(&out, MZ, 5, AC, CA), 0);
    assert_string_equal(out.data, "{\"event\":\"stop\",\"sequenceNumber\":\"5\",\"stop\":{"
                                  "\"accountSid\":\"" AC "\",\"callSid\":\"" CA
                                  "\"},\"streamSid\":\"" MZ "\"}");
    cs_buf_free(&out);
}

static void server_writes_documented_json(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 16);
    static const uint8_t three[] = {0xff, 0x7f, 0x00};
    assert_int_equal(tw->write_media(&out, CS_STR(MZ), three, 3), 0);
    assert_string_equal(out.data, "{\"event\":\"media\",\"streamSid\":\"" MZ
                                  "\",\"media\":{\"payload\":\"/38A\"}}");
    cs_buf_reset(&out);
    assert_int_equal(tw->write_mark(&out, CS_STR(MZ), CS_STR("my label")), 0);
    assert_string_equal(out.data, "{\"event\":\"mark\",\"streamSid\":\"" MZ
                                  "\",\"mark\":{\"name\":\"my label\"}}");
    cs_buf_reset(&out);
    assert_int_equal(tw->write_mark(&out, CS_STR(MZ), CS_STR("a\"b\\c\nd\x01")), 0);
    assert_string_equal(out.data, "{\"event\":\"mark\",\"streamSid\":\"" MZ
                                  "\",\"mark\":{\"name\":\"a\\\"b\\\\c\\nd\\u0001\"}}");
    cs_buf_reset(&out);
    assert_int_equal(tw->write_clear(&out, CS_STR(MZ)), 0);
    assert_string_equal(out.data, "{\"event\":\"clear\",\"streamSid\":\"" MZ "\"}");
    /* messages are appended */
    assert_int_equal(tw->write_clear(&out, CS_STR(MZ)), 0);
    assert_int_equal(out.len, 2 * strlen("{\"event\":\"clear\",\"streamSid\":\"" MZ "\"}"));
    cs_buf_free(&out);
}

/* The writers, each appending one message. */
static int write_one(int which, cs_buf *out)
{
    switch (which) {
    case 0:
        return tw->write_media(out, CS_STR(MZ), frame, sizeof frame);
    case 1:
        return tw->write_mark(out, CS_STR(MZ), CS_STR("a \"quoted\" mark name"));
    case 2:
        return tw->write_clear(out, CS_STR(MZ));
    case 3:
        return cs_twilio_peer_media(out, MZ, 1, CS_TRACK_INBOUND, 1, 0, frame, sizeof frame);
    default:
        return cs_twilio_peer_stop(out, MZ, 2, AC, CA);
    }
}

static void writers_leave_no_partial_message(void **state)
{
    (void)state;
    static const char prefix[] = "[earlier]";
    for (int which = 0; which < 5; which++) {
        cs_buf full = CS_BUF_INIT(1 << 16);
        assert_int_equal(write_one(which, &full), 0);
        /* every size too small by at least one byte */
        for (size_t max = sizeof prefix - 1; max < sizeof prefix - 1 + full.len; max++) {
            cs_buf out = CS_BUF_INIT(max);
            assert_int_equal(cs_buf_puts(&out, prefix), 0);
            assert_int_equal(write_one(which, &out), -EMSGSIZE);
            assert_string_equal(out.data, prefix);
            cs_buf_free(&out);
        }
        cs_buf_free(&full);
    }
}

static void server_to_peer(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 16);
    cs_twilio_out o;
    uint8_t buf[400];

    assert_int_equal(tw->write_media(&out, CS_STR(MZ), frame, sizeof frame), 0);
    assert_int_equal(cs_twilio_peer_parse(out.data, out.len, &o, buf, sizeof buf), 0);
    assert_int_equal(o.type, CS_TWOUT_MEDIA);
    assert_str(o.stream_sid, MZ);
    assert_int_equal(o.len, sizeof frame);
    assert_memory_equal(o.payload, frame, sizeof frame);
    /* no room for the payload */
    cs_buf_reset(&out);
    assert_int_equal(tw->write_media(&out, CS_STR(MZ), frame, sizeof frame), 0);
    assert_int_equal(cs_twilio_peer_parse(out.data, out.len, &o, buf, 100), CS_EPARSE);

    static const char name[] = "reply 3 \"part\" \\ é\n";
    cs_buf_reset(&out);
    assert_int_equal(tw->write_mark(&out, CS_STR(MZ), CS_STR(name)), 0);
    assert_int_equal(cs_twilio_peer_parse(out.data, out.len, &o, buf, sizeof buf), 0);
    assert_int_equal(o.type, CS_TWOUT_MARK);
    assert_str(o.stream_sid, MZ);
    assert_str(o.mark_name, name);

    cs_buf_reset(&out);
    assert_int_equal(tw->write_clear(&out, CS_STR(MZ)), 0);
    assert_int_equal(cs_twilio_peer_parse(out.data, out.len, &o, buf, sizeof buf), 0);
    assert_int_equal(o.type, CS_TWOUT_CLEAR);
    assert_str(o.stream_sid, MZ);

    static const char *const bad[] = {
        "{\"event\":\"clear\"}",
        "{\"event\":\"start\",\"streamSid\":\"" MZ "\"}",
        "{\"event\":\"mark\",\"streamSid\":\"" MZ "\"}",
        "{\"event\":\"media\",\"streamSid\":\"" MZ "\",\"media\":{\"payload\":\"A\"}}",
        "{\"event\":\"media\",\"streamSid\":\"" MZ "\"}",
        "{\"event\":\"clear\",\"streamSid\":\"" MZ "\"}x",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *copy = strdup(bad[i]);
        if (cs_twilio_peer_parse(copy, strlen(copy), &o, buf, sizeof buf) != CS_EPARSE)
            fail_msg("accepted: %s", bad[i]);
        free(copy);
    }
    cs_buf_free(&out);
}

/* ---- the rest of the contract ---- */

static void sids(void **state)
{
    (void)state;
    assert_true(cs_twilio_sid_valid(CS_STR(MZ), "MZ"));
    assert_true(cs_twilio_sid_valid(CS_STR(CA), "CA"));
    assert_false(cs_twilio_sid_valid(CS_STR(MZ), "CA"));
    assert_false(cs_twilio_sid_valid(CS_STR("mz00112233445566778899aabbccddeeff"), "MZ"));
    assert_false(cs_twilio_sid_valid(CS_STR("MZ00112233445566778899aabbccddeef"), "MZ"));
    assert_false(cs_twilio_sid_valid(CS_STR("MZ00112233445566778899aabbccddeeff0"), "MZ"));
    assert_false(cs_twilio_sid_valid(CS_STR("MZ00112233445566778899aabbccddeefg"), "MZ"));
    assert_false(cs_twilio_sid_valid(CS_STR(""), "MZ"));
}

static void registry_and_labels(void **state)
{
    (void)state;
    assert_ptr_equal(cs_provider_find("twilio"), &cs_provider_twilio);
    assert_null(cs_provider_find("telnyx"));
    assert_string_equal(cs_provider_twilio.name, "twilio");
    assert_string_equal(cs_bad_label(CS_BAD_JSON), "json");
    assert_string_equal(cs_bad_label(CS_BAD_BASE64), "base64");
    assert_string_equal(cs_bad_label(CS_BAD_EVENT), "unknown_event");
    assert_string_equal(cs_bad_label(CS_BAD_FIELD), "bad_field");
    assert_string_equal(cs_bad_label(CS_BAD_STREAM), "wrong_stream");
    assert_string_equal(cs_bad_label(CS_BAD_COUNT), "unknown");
}

/* A loop thread's scratch serves one message after another, fast and slow. */
static void scratch_reuse(void **state)
{
    (void)state;
    cs_pscratch s;
    cs_pscratch_init(&s);
    char *media = media_msg(frame_b64);
    char copy[1024];
    for (int i = 0; i < 3; i++) {
        cs_pevent ev;
        enum cs_bad bad;
        char mark[] = "{\"event\":\"mark\",\"streamSid\":\"" MZ "\",\"mark\":{\"name\":\"x\"}}";
        assert_int_equal(tw->parse(mark, strlen(mark), &ev, &s, &bad), 0);
        assert_str(ev.mark.name, "x");
        strcpy(copy, media);
        assert_int_equal(tw->parse(copy, strlen(copy), &ev, &s, &bad), 0);
        check_frame_event(&ev);
    }
    cs_pscratch_free(&s);
    cs_pscratch_free(&s);
    free(media);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(documented_connected),
        cmocka_unit_test(documented_start),
        cmocka_unit_test(start_both_tracks_no_params),
        cmocka_unit_test(documented_media),
        cmocka_unit_test(media_outbound_without_chunk),
        cmocka_unit_test(documented_dtmf),
        cmocka_unit_test(documented_mark),
        cmocka_unit_test(documented_stop),
        cmocka_unit_test(any_key_order),
        cmocka_unit_test(whitespace_everywhere),
        cmocka_unit_test(fast_path_falls_back),
        cmocka_unit_test(repeated_key_takes_the_first),
        cmocka_unit_test(payload_size_limit),
        cmocka_unit_test(custom_parameters_limit),
        cmocka_unit_test(refuses_bad_messages),
        cmocka_unit_test(every_bad_kind_has_examples),
        cmocka_unit_test(refuses_nul_bytes),
        cmocka_unit_test(peer_to_server),
        cmocka_unit_test(peer_writes_as_twilio),
        cmocka_unit_test(server_writes_documented_json),
        cmocka_unit_test(writers_leave_no_partial_message),
        cmocka_unit_test(server_to_peer),
        cmocka_unit_test(sids),
        cmocka_unit_test(registry_and_labels),
        cmocka_unit_test(scratch_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
