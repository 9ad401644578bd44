/* The binary-audio provider: formats, frames of any size (the odd byte of PCM carried,
 * a part of a millisecond held back), resampling at the edge both ways, the frame limit,
 * and the small JSON text messages. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/err.h"
#include "provider/provider.h"

static const cs_provider_ops *const ops = &cs_provider_binary;

static cs_pscratch scratch;

static cs_pcodec *codec(const char *format, unsigned rate, cs_pcodec_stats *st)
{
    cs_pcodec *c = NULL;
    assert_int_equal(ops->codec_new(&c, format, rate, st), 0);
    return c;
}

/* A 440 Hz tone at `rate` as little-endian PCM bytes. */
static uint8_t *tone_le(size_t n, unsigned rate, int16_t **samples)
{
    uint8_t *b = malloc(2 * n);
    int16_t *s = malloc(n * sizeof *s);
    assert_non_null(b);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i] = (int16_t)lrint(12000.0 * sin(2 * M_PI * 440.0 * (double)i / rate));
        b[2 * i] = (uint8_t)((uint16_t)s[i] & 0xff);
        b[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
    }
    *samples = s;
    return b;
}

/* Feeds `in` in frames whose sizes cycle through `sizes`; the μ-law given out, in order,
 * into `out` (its length returned). Checks each event's timestamp counts what came
 * before it in whole milliseconds. */
static size_t feed(cs_pcodec *c, const uint8_t *in, size_t len, const size_t *sizes, size_t nsizes,
                   uint8_t *out)
{
    size_t got = 0;
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t n = sizes[i % nsizes] < len - off ? sizes[i % nsizes] : len - off;
        cs_pevent ev;
        enum cs_bad bad;
        assert_int_equal(ops->parse_binary(c, in + off, n, &ev, &scratch, &bad), 0);
        assert_int_equal(ev.type, CS_PEV_MEDIA);
        assert_int_equal(ev.media.track, CS_TRACK_INBOUND);
        assert_int_equal(ev.media.len % 8, 0);
        assert_int_equal(ev.media.timestamp_ms, got / 8);
        memcpy(out + got, ev.media.payload, ev.media.len);
        got += ev.media.len;
        off += n;
    }
    return got;
}

static void formats(void **state)
{
    (void)state;
    cs_pcodec_stats st = {0};
    cs_pcodec *c;
    assert_int_equal(ops->codec_new(&c, "mulaw", 8000, &st), 0);
    ops->codec_free(c);
    assert_int_equal(ops->codec_new(&c, "pcm16", 8000, &st), 0);
    ops->codec_free(c);
    assert_int_equal(ops->codec_new(&c, "pcm16", 16000, &st), 0);
    ops->codec_free(c);
    assert_int_equal(ops->codec_new(&c, "mulaw", 16000, &st), CS_EPARSE);
    assert_int_equal(ops->codec_new(&c, "pcm16", 11025, &st), CS_EPARSE);
    assert_int_equal(ops->codec_new(&c, "pcm16", 0, &st), CS_EPARSE);
    assert_int_equal(ops->codec_new(&c, "opus", 8000, &st), CS_EPARSE);
    assert_int_equal(ops->codec_new(&c, "", 8000, &st), CS_EPARSE);
    ops->codec_free(NULL);
}

/* μ-law goes through as sent, in whole milliseconds: the rest waits for the next frame. */
static void mulaw_whole_milliseconds(void **state)
{
    (void)state;
    cs_pcodec_stats st = {0};
    cs_pcodec *c = codec("mulaw", 8000, &st);
    uint8_t in[1000], out[1000];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)(i * 7);
    static const size_t sizes[] = {3, 7, 160, 1, 5, 0};
    size_t got = feed(c, in, sizeof in, sizes, 6, out);
    assert_int_equal(got, sizeof in); /* 1000 = 125 ms exactly */
    assert_memory_equal(out, in, got);
    assert_true(st.frames_in > 6);
    assert_int_equal(st.odd_bytes, 0);
    assert_int_equal(st.resampled, 0);
    ops->codec_free(c);
}

/* PCM at 8 kHz in odd-sized frames gives exactly the μ-law of the whole signal: no byte
 * lost or misaligned at a frame's edge. */
static void pcm8k_odd_frames(void **state)
{
    (void)state;
    cs_pcodec_stats st = {0};
    cs_pcodec *c = codec("pcm16", 8000, &st);
    enum { N = 4000 };
    int16_t *s;
    uint8_t *in = tone_le(N, 8000, &s);
    uint8_t want[N], out[N];
    cs_ulaw_encode(want, s, N);
    static const size_t sizes[] = {1, 3, 321, 2, 5, 160, 999};
    size_t got = feed(c, in, 2 * N, sizes, 7, out);
    assert_int_equal(got, N);
    assert_memory_equal(out, want, N);
    assert_true(st.odd_bytes > 0);
    assert_int_equal(st.resampled, 0);
    /* A one-byte frame alone gives nothing yet, and is counted. */
    cs_pevent ev;
    enum cs_bad bad;
    uint64_t odd = st.odd_bytes;
    assert_int_equal(ops->parse_binary(c, in, 1, &ev, &scratch, &bad), 0);
    assert_int_equal(ev.media.len, 0);
    assert_int_equal(st.odd_bytes, odd + 1);
    free(in);
    free(s);
    ops->codec_free(c);
}

/* PCM at 16 kHz is resampled to 8 kHz whatever the frame sizes: the same output as one
 * frame of it all, half as many samples (less the filter's delay, held back), and a
 * faithful tone. */
static void pcm16k_down(void **state)
{
    (void)state;
    enum { N = 16000 };
    int16_t *s;
    uint8_t *in = tone_le(N, 16000, &s);
    static uint8_t whole[N], split[N];
    cs_pcodec_stats st = {0};
    cs_pcodec *a = codec("pcm16", 16000, &st), *b = codec("pcm16", 16000, &st);
    static const size_t one[] = {2 * N};
    size_t na = feed(a, in, 2 * N, one, 1, whole);
    static const size_t sizes[] = {641, 639, 1, 320, 959, 3};
    size_t nb = feed(b, in, 2 * N, sizes, 6, split);
    assert_int_equal(na, nb);
    assert_memory_equal(whole, split, na);
    assert_true(na <= N / 2 && na >= N / 2 - 64);
    assert_true(st.resampled > 6 && st.odd_bytes > 0);
    /* The tone at 8 kHz, within μ-law's precision, away from the edges. */
    int16_t dec[N / 2];
    cs_ulaw_decode(dec, whole, na);
    double err = 0, sig = 0;
    for (size_t k = 100; k + 100 < na; k++) {
        double ideal = 12000.0 * sin(2 * M_PI * 440.0 * (double)k / 8000);
        err += (dec[k] - ideal) * (dec[k] - ideal);
        sig += ideal * ideal;
    }
    assert_true(10 * log10(sig / err) > 30);
    free(in);
    free(s);
    ops->codec_free(a);
    ops->codec_free(b);
}

/* Our μ-law goes back in the source's format: as is, as PCM, or as PCM at 16 kHz. */
static void write_back(void **state)
{
    (void)state;
    cs_pcodec_stats st = {0};
    uint8_t ulaw[160];
    for (size_t i = 0; i < sizeof ulaw; i++) ulaw[i] = (uint8_t)(0x80 + i % 64);
    int16_t pcm[160];
    cs_ulaw_decode(pcm, ulaw, 160);
    cs_buf out = CS_BUF_INIT(1 << 20);

    cs_pcodec *c = codec("mulaw", 8000, &st);
    assert_int_equal(ops->write_binary(c, &out, ulaw, 160), 0);
    assert_int_equal(out.len, 160);
    assert_memory_equal(out.data, ulaw, 160);
    ops->codec_free(c);

    cs_buf_reset(&out);
    c = codec("pcm16", 8000, &st);
    assert_int_equal(ops->write_binary(c, &out, ulaw, 160), 0);
    assert_int_equal(out.len, 320);
    for (size_t i = 0; i < 160; i++)
        assert_int_equal((int16_t)(uint16_t)((uint8_t)out.data[2 * i] |
                                             (uint8_t)out.data[2 * i + 1] << 8),
                         pcm[i]);
    ops->codec_free(c);

    /* 16 kHz: twice the samples over a stream, less the filter's delay. */
    cs_buf_reset(&out);
    c = codec("pcm16", 16000, &st);
    uint64_t frames = st.frames_out;
    for (int k = 0; k < 50; k++) assert_int_equal(ops->write_binary(c, &out, ulaw, 160), 0);
    assert_int_equal(out.len % 2, 0);
    assert_true(out.len / 2 <= 50 * 320 && out.len / 2 >= 50 * 320 - 128);
    assert_int_equal(st.frames_out, frames + 50);
    assert_true(st.resampled >= 50);
    ops->codec_free(c);
    cs_buf_free(&out);
}

/* A frame over the limit is refused (counted by the caller as oversize); one at the
 * limit fits the event's payload in every format. */
static void frame_limit(void **state)
{
    (void)state;
    static uint8_t big[CS_PCODEC_MAX_FRAME + 1];
    const char *fmts[] = {"mulaw", "pcm16", "pcm16"};
    const unsigned rates[] = {8000, 8000, 16000};
    for (int i = 0; i < 3; i++) {
        cs_pcodec_stats st = {0};
        cs_pcodec *c = codec(fmts[i], rates[i], &st);
        cs_pevent ev;
        enum cs_bad bad = CS_BAD_JSON;
        assert_int_equal(ops->parse_binary(c, big, sizeof big, &ev, &scratch, &bad), CS_EPARSE);
        assert_int_equal(bad, CS_BAD_OVERSIZE);
        assert_int_equal(ops->parse_binary(c, big, 7, &ev, &scratch, &bad), 0);
        assert_int_equal(ops->parse_binary(c, big, CS_PCODEC_MAX_FRAME, &ev, &scratch, &bad), 0);
        assert_true(ev.media.len <= CS_PEV_MAX_PAYLOAD);
        ops->codec_free(c);
    }
}

static int parse(const char *text, cs_pevent *ev, enum cs_bad *bad)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", text);
    return ops->parse(msg, strlen(msg), ev, &scratch, bad);
}

static void text_messages(void **state)
{
    (void)state;
    cs_pevent ev;
    enum cs_bad bad;
    assert_int_equal(parse("{\"event\":\"dtmf\",\"digit\":\"#\"}", &ev, &bad), 0);
    assert_int_equal(ev.type, CS_PEV_DTMF);
    assert_int_equal(ev.dtmf.digit, '#');
    assert_int_equal(parse("{\"event\":\"mark\",\"name\":\"u1\"}", &ev, &bad), 0);
    assert_int_equal(ev.type, CS_PEV_MARK);
    assert_true(cs_str_eqz(ev.mark.name, "u1"));
    static const struct {
        const char *msg;
        enum cs_bad why;
    } refused[] = {
        {"not json", CS_BAD_JSON},
        {"[1]", CS_BAD_JSON},
        {"{\"digit\":\"5\"}", CS_BAD_EVENT},
        {"{\"event\":\"media\"}", CS_BAD_EVENT},
        {"{\"event\":\"dtmf\",\"digit\":\"55\"}", CS_BAD_FIELD},
        {"{\"event\":\"dtmf\",\"digit\":\"x\"}", CS_BAD_FIELD},
        {"{\"event\":\"dtmf\"}", CS_BAD_FIELD},
        {"{\"event\":\"mark\",\"name\":\"\"}", CS_BAD_FIELD},
        {"{\"event\":\"mark\",\"name\":5}", CS_BAD_FIELD},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        bad = CS_BAD_COUNT;
        assert_int_equal(parse(refused[i].msg, &ev, &bad), CS_EPARSE);
        assert_int_equal(bad, refused[i].why);
    }
    cs_buf out = CS_BUF_INIT(256);
    assert_int_equal(ops->write_mark(&out, CS_STR("CSx"), CS_STR("a\"b")), 0);
    assert_string_equal(out.data, "{\"event\":\"mark\",\"name\":\"a\\\"b\"}");
    cs_buf_reset(&out);
    assert_int_equal(ops->write_clear(&out, CS_STR("CSx")), 0);
    assert_string_equal(out.data, "{\"event\":\"clear\"}");
    cs_buf_free(&out);
}

/* Our ids are told apart from Twilio's. */
static void call_ids(void **state)
{
    (void)state;
    assert_true(cs_call_sid_valid(CS_STR("CA0123456789abcdef0123456789abcdef")));
    assert_true(cs_call_sid_valid(CS_STR("CS0123456789abcdef0123456789abcdef")));
    assert_false(cs_call_sid_valid(CS_STR("MZ0123456789abcdef0123456789abcdef")));
    assert_false(cs_call_sid_valid(CS_STR("CS0123456789abcdef0123456789abcde")));
    assert_false(cs_call_sid_valid(CS_STR("CS0123456789abcdef0123456789abcdeg")));
}

static int teardown(void **state)
{
    (void)state;
    cs_pscratch_free(&scratch);
    return 0;
}

int main(void)
{
    cs_pscratch_init(&scratch);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats),         cmocka_unit_test(mulaw_whole_milliseconds),
        cmocka_unit_test(pcm8k_odd_frames), cmocka_unit_test(pcm16k_down),
        cmocka_unit_test(write_back),      cmocka_unit_test(frame_limit),
        cmocka_unit_test(text_messages),   cmocka_unit_test(call_ids),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
