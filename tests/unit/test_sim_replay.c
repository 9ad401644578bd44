/* Replay's reading of a call export (good, truncated, another version, values out of
 * range or past their bounds) and its schedule: the caller's audio in 20 ms frames from
 * a point of the call, each key after the frame its time falls in. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/err.h"
#include "sim/sim_int.h"

#define SID "CA0123456789abcdef0123456789abcdef"

static char err[256];

/* An export with `events` (a JSON array), and `frames` bytes of audio: byte i is i % 251
 * (never silence's 0xFF), the whole call when `audio_json` is NULL. */
static char *export_doc(const char *events, size_t frames, const char *audio_json)
{
    uint8_t *ulaw = malloc(frames + 1);
    for (size_t i = 0; i < frames; i++) ulaw[i] = (uint8_t)(i % 251);
    char *b64 = malloc(CS_BASE64_ENCODED_LEN(frames) + 1);
    b64[cs_base64_encode(b64, ulaw, frames)] = '\0';
    cs_buf doc = CS_BUF_INIT(64u << 20);
    cs_buf_printf(&doc,
                  "{\"format\":\"callstream-call-export\",\"version\":1,"
                  "\"call\":{\"sid\":\"" SID
                  "\",\"from\":\"+15551230000\",\"to\":\"+15559870000\"},"
                  "\"streams\":[],\"events\":%s,\"events_truncated\":false,"
                  "\"transcript\":{\"segments\":["
                  "{\"speaker\":\"caller\",\"start_ms\":100,\"text\":\"go forward\"},"
                  "{\"speaker\":\"agent\",\"start_ms\":900,\"text\":\"you said\"},"
                  "{\"speaker\":\"caller\",\"start_ms\":1500,\"text\":\"ten meters\"}],"
                  "\"truncated\":false},",
                  events);
    if (audio_json)
        cs_buf_printf(&doc, "\"audio\":%s}", audio_json);
    else
        cs_buf_printf(&doc,
                      "\"audio\":{\"url\":\"/api/v1/calls/" SID "/recording.wav\",\"channel\":0,"
                      "\"track\":\"caller\",\"sample_rate\":8000,\"offset_ms\":0,"
                      "\"encoding\":\"audio/x-mulaw\",\"frames\":%zu,\"data\":\"%s\"}}",
                      frames, b64);
    free(ulaw);
    free(b64);
    return doc.data;
}

static const char *const EVENTS =
    "[{\"offset_ms\":-1,\"type\":\"webhook\",\"detail\":{}},"
    "{\"offset_ms\":500,\"type\":\"mark\",\"detail\":{\"name\":\"m1\"}},"
    "{\"offset_ms\":1250,\"type\":\"dtmf\",\"detail\":{\"digit\":\"#\"}},"
    "{\"offset_ms\":1000,\"type\":\"dtmf\",\"detail\":{\"digit\":\"5\"}},"
    "{\"offset_ms\":1010,\"type\":\"dtmf\",\"detail\":{\"digit\":\"7\"}}]";

static void reads_a_good_export(void **state)
{
    (void)state;
    char *doc = export_doc(EVENTS, 16000, NULL); /* 2 s */
    sim_export e;
    assert_int_equal(sim_export_parse(doc, strlen(doc), &e, err, sizeof err), 0);
    assert_string_equal(e.call_sid, SID);
    assert_string_equal(e.from, "+15551230000");
    assert_string_equal(e.to, "+15559870000");
    assert_int_equal(e.nulaw, 16000);
    for (size_t i = 0; i < e.nulaw; i++) assert_int_equal(e.ulaw[i], i % 251);
    assert_string_equal(e.audio_url, "/api/v1/calls/" SID "/recording.wav");
    /* keys in time order whatever the order of the events */
    assert_int_equal(e.nkeys, 3);
    assert_int_equal(e.keys[0].at_ms, 1000);
    assert_int_equal(e.keys[0].digit, '5');
    assert_int_equal(e.keys[1].digit, '7');
    assert_int_equal(e.keys[2].digit, '#');
    assert_int_equal(e.nmarks, 1);
    assert_false(e.events_truncated);
    /* the caller's words only, cut to a span */
    cs_buf w = CS_BUF_INIT(4096);
    assert_int_equal(sim_export_words(&e, 0, 0, &w), 0);
    assert_string_equal(w.data, "go forward ten meters");
    cs_buf_reset(&w);
    assert_int_equal(sim_export_words(&e, 1000, 0, &w), 0);
    assert_string_equal(w.data, "ten meters");
    cs_buf_free(&w);
    sim_export_free(&e);
    free(doc);
}

static void an_export_without_audio_data(void **state)
{
    (void)state;
    char *doc = export_doc("[]", 0, "{\"url\":\"/api/v1/calls/" SID "/recording.wav\"}");
    sim_export e;
    assert_int_equal(sim_export_parse(doc, strlen(doc), &e, err, sizeof err), 0);
    assert_null(e.ulaw);
    assert_string_equal(e.audio_url, "/api/v1/calls/" SID "/recording.wav");
    sim_export_free(&e);
    free(doc);
    doc = export_doc("[]", 0, "null");
    /* the exporter cut the events short: said */
    memcpy(strstr(doc, "\"events_truncated\":false"), "\"events_truncated\":true ", 24);
    assert_int_equal(sim_export_parse(doc, strlen(doc), &e, err, sizeof err), 0);
    assert_null(e.ulaw);
    assert_string_equal(e.audio_url, "");
    assert_true(e.events_truncated);
    sim_export_free(&e);
    free(doc);
}

/* `doc` is refused with CS_EPARSE (or `rc`) and a message holding `why`. */
static void refused(const char *doc, size_t n, int rc, const char *why)
{
    sim_export e;
    err[0] = '\0';
    assert_int_equal(sim_export_parse(doc, n, &e, err, sizeof err), rc);
    if (!strstr(err, why)) fail_msg("'%s' does not say '%s'", err, why);
    assert_null(e.ulaw); /* nothing kept */
    assert_null(e.keys);
    assert_null(e.segs);
}

static void refuses_truncated_and_other_versions(void **state)
{
    (void)state;
    char *doc = export_doc(EVENTS, 8000, NULL);
    size_t n = strlen(doc);
    /* cut anywhere: in the audio's data, in the events, at the start */
    refused(doc, n - 3, CS_EPARSE, "not JSON");
    refused(doc, n / 2, CS_EPARSE, "not JSON");
    refused(doc, 10, CS_EPARSE, "not JSON");
    refused(doc, 0, CS_EPARSE, "not JSON");
    /* audio.data shorter than audio.frames says (a document cut and mended) */
    char *short_data = export_doc(EVENTS, 8000, NULL);
    char *frames = strstr(short_data, "\"frames\":8000");
    memcpy(frames, "\"frames\":8003", 13);
    refused(short_data, strlen(short_data), CS_EPARSE, "does not hold audio.frames");
    free(short_data);
    /* another version, another format, no call */
    char *v2 = strdup(doc);
    memcpy(strstr(v2, "\"version\":1"), "\"version\":2", 11);
    refused(v2, strlen(v2), CS_EPARSE, "version 2 is not supported");
    free(v2);
    const char *other = "{\"format\":\"something-else\",\"version\":1}";
    refused(other, strlen(other), CS_EPARSE, "not a call export");
    const char *nocall = "{\"format\":\"callstream-call-export\",\"version\":1}";
    refused(nocall, strlen(nocall), CS_EPARSE, "no call object");
    free(doc);
}

static void refuses_values_out_of_range(void **state)
{
    (void)state;
    static const struct {
        const char *events, *audio, *why;
        int rc;
    } cases[] = {
        {"[{\"offset_ms\":1e300,\"type\":\"dtmf\",\"detail\":{\"digit\":\"1\"}}]", NULL,
         "offset_ms is missing or out of range", CS_EPARSE},
        {"[{\"offset_ms\":-5,\"type\":\"dtmf\",\"detail\":{\"digit\":\"1\"}}]", NULL,
         "offset_ms is missing or out of range", CS_EPARSE},
        {"[{\"offset_ms\":1.5,\"type\":\"dtmf\",\"detail\":{\"digit\":\"1\"}}]", NULL,
         "offset_ms is missing or out of range", CS_EPARSE},
        {"[{\"offset_ms\":5,\"type\":\"dtmf\",\"detail\":{\"digit\":\"12\"}}]", NULL,
         "without a DTMF digit", CS_EPARSE},
        {"[{\"offset_ms\":5,\"type\":\"dtmf\",\"detail\":{\"digit\":\"x\"}}]", NULL,
         "without a DTMF digit", CS_EPARSE},
        {"[{\"offset_ms\":5}]", NULL, "without a type", CS_EPARSE},
        {"{}", NULL, "events is not an array", CS_EPARSE},
        {"[]",
         "{\"sample_rate\":16000,\"offset_ms\":0,\"frames\":0,\"encoding\":\"audio/x-mulaw\","
         "\"data\":\"\"}",
         "8 kHz", CS_EPARSE},
        {"[]",
         "{\"sample_rate\":8000,\"offset_ms\":0,\"frames\":1e15,\"encoding\":\"audio/x-mulaw\","
         "\"data\":\"\"}",
         "frames is missing or out of range", CS_EPARSE},
        {"[]",
         "{\"sample_rate\":8000,\"offset_ms\":0,\"frames\":3,\"encoding\":\"audio/x-mulaw\","
         "\"data\":\"!!!!\"}",
         "not base64", CS_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *doc = export_doc(cases[i].events, 800, cases[i].audio);
        refused(doc, strlen(doc), cases[i].rc, cases[i].why);
        free(doc);
    }
    /* a SID or a number longer than any */
    char *doc = export_doc("[]", 800, NULL);
    char big[8192];
    const char *from = strstr(doc, "+15551230000");
    snprintf(big, sizeof big, "%.*s%0*d%s", (int)(from - doc), doc, 200, 1, from + 12);
    refused(big, strlen(big), CS_EPARSE, "from is not a string of its size");
    free(doc);
    /* more keys than replay takes */
    cs_buf many = CS_BUF_INIT(1u << 20);
    cs_buf_putc(&many, '[');
    for (int i = 0; i <= SIM_REPLAY_KEYS_MAX; i++)
        cs_buf_printf(&many, "%s{\"offset_ms\":%d,\"type\":\"dtmf\",\"detail\":{\"digit\":\"1\"}}",
                      i ? "," : "", i);
    cs_buf_putc(&many, ']');
    doc = export_doc(many.data, 800, NULL);
    refused(doc, strlen(doc), CS_ELIMIT, "more than 4096 DTMF events");
    free(doc);
    cs_buf_free(&many);
    /* a document larger than any export replay reads: refused before it is parsed */
    refused("{}", SIM_EXPORT_MAX_BYTES + 1, CS_ELIMIT, "larger than");
}

static void schedule_frames_and_keys_in_order(void **state)
{
    (void)state;
    char *doc = export_doc(EVENTS, 16000, NULL); /* 2 s: 100 frames */
    sim_export e;
    assert_int_equal(sim_export_parse(doc, strlen(doc), &e, err, sizeof err), 0);
    sim_replay r;
    assert_int_equal(sim_replay_cut(&r, &e, 0, 0), 0);
    assert_int_equal(r.frames, 100);
    /* frame k holds the audio of [20k, 20k + 20) ms; keys after the frame they fall in */
    uint8_t frame[SIM_FRAME_BYTES];
    size_t next = 0;
    char sent[8] = "";
    uint64_t sent_at[8];
    size_t nsent = 0;
    for (uint64_t k = 0; k < r.frames; k++) {
        sim_replay_frame(&r, k, frame);
        for (size_t i = 0; i < SIM_FRAME_BYTES; i++)
            assert_int_equal(frame[i], (k * SIM_FRAME_BYTES + i) % 251);
        for (char d; (d = sim_replay_key(&r, &next, k));) {
            sent_at[nsent] = k;
            sent[nsent++] = d;
        }
    }
    assert_string_equal(sent, "57#");
    assert_int_equal(sent_at[0], 50); /* 1000 ms: frame 50, [1000, 1020) */
    assert_int_equal(sent_at[1], 50); /* 1010 ms: the same frame */
    assert_int_equal(sent_at[2], 62); /* 1250 ms: [1240, 1260) */

    /* From 1005 ms to 1300 ms: the audio from there, the keys in the span, shifted. */
    assert_int_equal(sim_replay_cut(&r, &e, 1005, 1300), 0);
    assert_int_equal(r.frames, 15); /* 295 ms, the last frame partly past the end */
    sim_replay_frame(&r, 0, frame);
    assert_int_equal(frame[0], (1005 * 8) % 251);
    next = 0;
    nsent = 0;
    memset(sent, 0, sizeof sent);
    for (uint64_t k = 0; k < r.frames; k++)
        for (char d; (d = sim_replay_key(&r, &next, k));) {
            sent_at[nsent] = k;
            sent[nsent++] = d;
        }
    assert_string_equal(sent, "7#");  /* the 5 at 1000 ms is before the span */
    assert_int_equal(sent_at[0], 0);  /* 1010 ms: 5 ms in */
    assert_int_equal(sent_at[1], 12); /* 1250 ms: 245 ms in */

    /* past the audio: silence; a key after the audio lengthens the call to it */
    sim_replay_frame(&r, 1000, frame);
    for (size_t i = 0; i < SIM_FRAME_BYTES; i++) assert_int_equal(frame[i], CS_ULAW_SILENCE);
    assert_int_equal(sim_replay_cut(&r, &e, 2000, 0), CS_EPARSE); /* nothing left */
    sim_export_free(&e);
    free(doc);

    char *late = export_doc("[{\"offset_ms\":3000,\"type\":\"dtmf\",\"detail\":{\"digit\":\"9\"}}]",
                            800, NULL);
    assert_int_equal(sim_export_parse(late, strlen(late), &e, err, sizeof err), 0);
    assert_int_equal(sim_replay_cut(&r, &e, 0, 0), 0);
    assert_int_equal(r.frames, 151); /* through the key's frame */
    next = 0;
    for (uint64_t k = 0; k < 150; k++) assert_int_equal(sim_replay_key(&r, &next, k), 0);
    assert_int_equal(sim_replay_key(&r, &next, 150), '9');
    sim_export_free(&e);
    free(late);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_good_export),
        cmocka_unit_test(an_export_without_audio_data),
        cmocka_unit_test(refuses_truncated_and_other_versions),
        cmocka_unit_test(refuses_values_out_of_range),
        cmocka_unit_test(schedule_frames_and_keys_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
