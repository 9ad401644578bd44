/* The Deepgram engine against a fake Deepgram (deepgram_fake.h): segments placed on the
 * call's timeline, the documented request, KeepAlive and CloseStream, reconnection with
 * the unfinalized audio resent, giving up, and the limits. */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h"

#include "audio/g711.h"
#include "core/err.h"
#include "net/form.h"
#include "net/ws.h"
#include "stt/stt.h"

/* Unit tests are built from one file plus testutil.c: the fake comes in with this one. */
#include "deepgram_fake.h"

#define KEY      "secret-key"
#define FRAME_MS 20
#define FRAME    (FRAME_MS * 8)
#define MAX_SEGS 1024
#define WAIT_MS  10000
#define TOL_MS   1     /* Deepgram's times are seconds as decimals */
#define BASE_MS  60000 /* where the speaker's audio starts on the call's timeline */

typedef struct seg_rec {
    uint64_t id;
    uint32_t start_ms, end_ms;
    bool final;
    float confidence;
    char *text;
} seg_rec;

typedef struct tctx {
    uv_loop_t loop;
    dg_fake *fake;
    cs_stt *e;
    cs_stt_session *s;
    seg_rec segs[MAX_SEGS];
    size_t nsegs, nfinals, want_finals;
    int errors, last_err;
    char why[256];
    bool closed;
    double phase; /* of the tone, continuous across frames */
} tctx;

/* ---- callbacks ---- */

static void on_segment(void *data, const cs_stt_segment *seg)
{
    tctx *t = data;
    assert_true(t->nsegs < MAX_SEGS);
    assert_false(t->closed);
    seg_rec *r = &t->segs[t->nsegs++];
    *r = (seg_rec){.id = seg->id,
                   .start_ms = seg->start_ms,
                   .end_ms = seg->end_ms,
                   .final = seg->final,
                   .confidence = seg->confidence,
                   .text = strdup(seg->text)};
    if (seg->final) t->nfinals++;
}

static void on_error(void *data, int err, const char *why)
{
    tctx *t = data;
    t->errors++;
    t->last_err = err;
    snprintf(t->why, sizeof t->why, "%s", why);
}

static void on_closed(void *data)
{
    tctx *t = data;
    assert_false(t->closed);
    t->closed = true;
}

/* ---- set-up ---- */

static cs_config config(const char *key, const char *url, const char *model, int64_t max)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.deepgram_api_key = (char *)key;
    c.deepgram_url = (char *)url;
    c.deepgram_model = (char *)model;
    c.stt_max_sessions = max;
    return c;
}

static tctx *start_engine(const dg_fake_opts *fo, const char *model, int64_t max)
{
    tctx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    dg_fake_opts o = *fo;
    if (!o.api_key) o.api_key = KEY;
    assert_int_equal(dg_fake_start(&t->fake, &t->loop, &o), 0);
    cs_config cfg = config(KEY, dg_fake_url(t->fake), model, max);
    cs_buf err = CS_BUF_INIT(1024);
    assert_int_equal(cs_stt_deepgram.create(&t->e, &cfg, &t->loop, NULL, &err), 0);
    cs_buf_free(&err);
    return t;
}

static int open_with(tctx *t, const char *keywords, const char *grammar, cs_stt_session **out)
{
    cs_stt_session_opts o = {.label = "CAtest/caller",
                             .keywords = keywords,
                             .grammar = grammar,
                             .on_segment = on_segment,
                             .on_error = on_error,
                             .on_closed = on_closed,
                             .data = t};
    return cs_stt_deepgram.open(t->e, &o, out);
}

static tctx *start(const dg_fake_opts *fo)
{
    tctx *t = start_engine(fo, "nova-2-phonecall", 4);
    assert_int_equal(open_with(t, NULL, NULL, &t->s), 0);
    return t;
}

static bool is_closed(void *d)
{
    return ((tctx *)d)->closed;
}

static bool has_error(void *d)
{
    return ((tctx *)d)->errors > 0;
}

static bool enough_finals(void *d)
{
    tctx *t = d;
    return t->nfinals >= t->want_finals;
}

static void close_session(tctx *t)
{
    cs_stt_deepgram.close(t->s);
    assert_false(t->closed); /* never from inside close() */
    assert_true(tu_run_until(&t->loop, is_closed, t, WAIT_MS));
}

static void stop(tctx *t)
{
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.sessions_open, 0);
    cs_stt_deepgram.destroy(t->e);
    dg_fake_free(t->fake);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    for (size_t i = 0; i < t->nsegs; i++) free(t->segs[i].text);
    free(t);
}

static void wait_finals(tctx *t, size_t n, unsigned timeout_ms)
{
    t->want_finals = n;
    assert_true(tu_run_until(&t->loop, enough_finals, t, timeout_ms));
}

/* ---- audio ---- */

static void make_frame(tctx *t, uint8_t *out, bool tone)
{
    for (size_t i = 0; i < FRAME; i++) {
        out[i] = tone ? cs_pcm_to_ulaw((int16_t)(8000 * sin(t->phase))) : CS_ULAW_SILENCE;
        t->phase += 2 * M_PI * 400 / 8000;
    }
}

/* Feeds `ms` of a tone (speech to the fake) or of silence at *pos, in 20 ms frames; with
 * `run`, the loop turns between frames so audio flows while it is fed. */
static void feed(tctx *t, uint32_t *pos, unsigned ms, bool tone, bool run)
{
    uint8_t frame[FRAME];
    for (unsigned done = 0; done < ms; done += FRAME_MS) {
        make_frame(t, frame, tone);
        cs_stt_deepgram.feed(t->s, *pos, frame, FRAME);
        *pos += FRAME_MS;
        if (run) uv_run(&t->loop, UV_RUN_NOWAIT);
    }
}

static void speak(tctx *t, uint32_t *pos, unsigned ms)
{
    feed(t, pos, ms, true, true);
}

static void hush(tctx *t, uint32_t *pos, unsigned ms)
{
    feed(t, pos, ms, false, true);
}

/* Two utterances: [500, 1300) and [2000, 2600) after `base`, then 1.5 s of silence. */
static void two_utterances(tctx *t, uint32_t base)
{
    uint32_t pos = base;
    hush(t, &pos, 500);
    speak(t, &pos, 800);
    hush(t, &pos, 700);
    speak(t, &pos, 600);
    hush(t, &pos, 1500);
}

/* ---- checks ---- */

static const seg_rec *final_no(const tctx *t, size_t k)
{
    for (size_t i = 0, n = 0; i < t->nsegs; i++)
        if (t->segs[i].final && n++ == k) return &t->segs[i];
    fail_msg("no final #%zu", k);
    return NULL;
}

static void check_final(const tctx *t, size_t k, const char *text, uint32_t start, uint32_t end)
{
    const seg_rec *r = final_no(t, k);
    assert_string_equal(r->text, text);
    assert_in_range(r->start_ms, start - TOL_MS, start + TOL_MS);
    assert_in_range(r->end_ms, end - TOL_MS, end + TOL_MS);
    assert_true(fabsf(r->confidence - (float)DG_FAKE_CONFIDENCE) < 1e-6f);
}

/* Every id has interims (if any) before its one final; ids are new per utterance. */
static void check_ids(const tctx *t)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        const seg_rec *r = &t->segs[i];
        assert_true(r->id > 0);
        for (size_t j = i + 1; j < t->nsegs; j++)
            if (t->segs[j].id == r->id) assert_false(r->final);
    }
}

static size_t interims_of(const tctx *t, uint64_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsegs; i++) n += !t->segs[i].final && t->segs[i].id == id;
    return n;
}

static void check_two_utterances(const tctx *t, uint32_t base)
{
    check_final(t, 0, "hello world", base + 500, base + 1300);
    check_final(t, 1, "goodbye", base + 2000, base + 2600);
    check_ids(t);
}

static const char *const script[] = {"hello world", "goodbye"};
#define SCRIPT .script = script, .nscript = 2

/* How many times the last upgrade request had name=value in its query. */
static size_t count_param(const tctx *t, const char *name, const char *value)
{
    cs_form q;
    const char *query = dg_fake_stats_get(t->fake)->query;
    assert_int_equal(cs_form_parse(&q, query, strlen(query)), 0);
    size_t n = 0;
    for (size_t i = 0; i < q.n; i++)
        n += strcmp(q.pairs[i].name, name) == 0 && strcmp(q.pairs[i].value, value) == 0;
    cs_form_free(&q);
    return n;
}

/* ---- configuration ---- */

static void test_create_refuses_bad_configuration(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct {
        const char *key, *url, *says;
    } cases[] = {
        {"", "ws://127.0.0.1:1/v1/listen", "DEEPGRAM_API_KEY"},
        {"two\r\nlines", "ws://127.0.0.1:1/v1/listen", "DEEPGRAM_API_KEY"},
        {KEY, "https://api.deepgram.com/v1/listen", "DEEPGRAM_URL"},
        {KEY, "not a url", "DEEPGRAM_URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_config cfg = config(cases[i].key, cases[i].url, "nova-2", 4);
        cs_buf err = CS_BUF_INIT(1024);
        cs_stt *e = NULL;
        assert_int_equal(cs_stt_deepgram.create(&e, &cfg, &loop, NULL, &err), CS_ECONFIG);
        assert_null(e);
        assert_non_null(err.data);
        assert_non_null(strstr(err.data, cases[i].says));
        cs_buf_free(&err);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_create_wss_uses_system_cas(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_config cfg = config(KEY, "wss://api.deepgram.com/v1/listen", "nova-2", 4);
    cs_buf err = CS_BUF_INIT(1024);
    cs_stt *e = NULL;
    assert_int_equal(cs_stt_deepgram.create(&e, &cfg, &loop, NULL, &err), 0);
    cs_stt_deepgram.destroy(e);
    cs_buf_free(&err);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_open_refuses_grammar_and_too_many_keywords(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 4);
    cs_stt_session *s = NULL;
    assert_int_equal(open_with(t, NULL, "#JSGF V1.0; grammar g; public <a> = yes;", &s), CS_EPARSE);
    cs_buf many = CS_BUF_INIT(1 << 20);
    for (int i = 0; i < 1000; i++) cs_buf_printf(&many, "keyword%d /1e-20/\n", i);
    assert_int_equal(open_with(t, many.data, NULL, &s), CS_EPARSE);
    assert_null(s);
    cs_buf_free(&many);
    stop(t);
}

static void test_full_beyond_max_sessions(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 1);
    assert_int_equal(open_with(t, NULL, NULL, &t->s), 0);
    cs_stt_session *second = NULL;
    assert_int_equal(open_with(t, NULL, NULL, &second), CS_EFULL);
    assert_null(second);
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.sessions_open, 1);
    close_session(t);
    stop(t);
}

/* ---- the stream ---- */

static void test_two_utterances_on_call_timeline(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    two_utterances(t, BASE_MS);
    uint32_t pos = BASE_MS + 4100;
    speak(t, &pos, 400); /* still speaking at the end: CloseStream flushes it */
    wait_finals(t, 2, WAIT_MS);
    close_session(t);

    check_two_utterances(t, BASE_MS);
    check_final(t, 2, "utterance 3", BASE_MS + 4100, BASE_MS + 4500);
    assert_int_equal(t->nfinals, 3);
    assert_true(interims_of(t, final_no(t, 0)->id) >= 2);
    assert_true(interims_of(t, final_no(t, 1)->id) >= 1);
    assert_int_not_equal(final_no(t, 0)->id, final_no(t, 1)->id);
    for (size_t i = 0; i < t->nsegs; i++) /* interims are the final text word by word */
        if (!t->segs[i].final && t->segs[i].id == final_no(t, 0)->id)
            assert_true(strncmp("hello world", t->segs[i].text, strlen(t->segs[i].text)) == 0);

    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_string_equal(fs->authorization, "Token " KEY);
    assert_int_equal(fs->upgrades, 1);
    assert_int_equal(fs->close_streams, 1);
    assert_int_equal(fs->audio_bytes, 4500 * 8);
    static const char *const want[][2] = {
        {"encoding", "mulaw"},        {"sample_rate", "8000"},       {"channels", "1"},
        {"interim_results", "true"},  {"punctuate", "true"},         {"endpointing", "300"},
        {"utterance_end_ms", "1000"}, {"model", "nova-2-phonecall"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(count_param(t, want[i][0], want[i][1]), 1);
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.finals, 3);
    assert_int_equal(st.interims, t->nsegs - 3);
    assert_int_equal(st.audio_ms, 4500);
    assert_int_equal(st.dropped_ms, 0);
    assert_int_equal(st.sessions_total, 1);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static bool upgraded(void *d)
{
    return dg_fake_stats_get(((tctx *)d)->fake)->upgrades > 0;
}

static void test_keywords_become_parameters(void **state)
{
    (void)state;
    static const struct {
        const char *model, *param;
    } cases[] = {{"nova-2-phonecall", "keywords"}, {"nova-3", "keyterm"}};
    for (size_t i = 0; i < 2; i++) {
        dg_fake_opts fo = {SCRIPT};
        tctx *t = start_engine(&fo, cases[i].model, 4);
        assert_int_equal(open_with(t, "callstream /1e-20/\n  acme corp /1e-10/ \n\n", NULL, &t->s),
                         0);
        assert_true(tu_run_until(&t->loop, upgraded, t, WAIT_MS));
        assert_int_equal(count_param(t, cases[i].param, "callstream"), 1);
        assert_int_equal(count_param(t, cases[i].param, "acme corp"), 1);
        close_session(t);
        stop(t);
    }
}

static bool kept_alive(void *d)
{
    return dg_fake_stats_get(((tctx *)d)->fake)->keepalives > 0;
}

static void test_keepalive_during_silence(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 500);
    /* No audio now: a KeepAlive within Deepgram's 10 s, so the stream is not closed. */
    assert_true(tu_run_until(&t->loop, kept_alive, t, 9000));
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->net0001, 0);
    assert_int_equal(fs->upgrades, 1);
    close_session(t);
    assert_int_equal(fs->close_streams, 1);
    stop(t);
}

static void test_noisy_line_ends_utterances_by_utterance_end(void **state)
{
    (void)state;
    static const char *const words[] = {"good", "morning", "again"};
    dg_fake_opts fo = {.script = words, .nscript = 3, .noisy = true};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 500);
    speak(t, &pos, 400);
    hush(t, &pos, 500); /* a pause, but the next words come before UtteranceEnd */
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    speak(t, &pos, 300);
    hush(t, &pos, 1500);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_final(t, 0, "good morning", 500, 1800);
    check_final(t, 1, "again", 3300, 3600);
    assert_int_equal(t->nfinals, 2);
    check_ids(t);
    stop(t);
}

static void test_gaps_keep_times_right(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 300);
    speak(t, &pos, 400);
    uint8_t frames[2 * FRAME];
    memset(frames, CS_ULAW_SILENCE, sizeof frames);
    cs_stt_deepgram.feed(t->s, pos - 2 * FRAME_MS, frames, FRAME);     /* all seen: cut */
    cs_stt_deepgram.feed(t->s, pos - FRAME_MS, frames, sizeof frames); /* half new */
    pos += FRAME_MS;
    hush(t, &pos, 200);
    pos += 200; /* lost packets: sent as silence */
    speak(t, &pos, 500);
    hush(t, &pos, 500);
    pos += 10000; /* a long gap: not sent in full */
    hush(t, &pos, 200);
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    wait_finals(t, 3, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", 300, 700);
    check_final(t, 1, "goodbye", 1120, 1620);
    check_final(t, 2, "utterance 3", 12320, 12720);
    /* What went out: the audio, the short gap and 1 s of the long one. */
    assert_int_equal(dg_fake_stats_get(t->fake)->audio_bytes,
                     (700 + 20 + 400 + 1000 + 1000 + 2100) * 8);
    stop(t);
}

static void test_long_text_is_bounded(void **state)
{
    (void)state;
    cs_buf a = CS_BUF_INIT(8192), b = CS_BUF_INIT(8192), c = CS_BUF_INIT(8192);
    for (int i = 0; i < 300; i++) cs_buf_puts(&a, i ? " aaaaaaaa" : "aaaaaaaa");
    for (int i = 0; i < 300; i++) cs_buf_puts(&b, i ? " bbbbbbbb" : "bbbbbbbb");
    cs_buf_putc(&c, 'x');
    for (int i = 0; i < 2500; i++) cs_buf_puts(&c, "\xc3\xa9"); /* é */
    const char *chunks[] = {a.data, b.data, c.data};
    dg_fake_opts fo = {.script = chunks, .nscript = 3, .noisy = true};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak(t, &pos, 400);
    hush(t, &pos, 500);
    speak(t, &pos, 400); /* same utterance, but together too long for one segment */
    hush(t, &pos, 1500);
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    wait_finals(t, 3, WAIT_MS);
    close_session(t);
    assert_string_equal(final_no(t, 0)->text, a.data);
    assert_string_equal(final_no(t, 1)->text, b.data);
    const char *cut = final_no(t, 2)->text;
    assert_int_equal(strlen(cut), CS_STT_TEXT_MAX - 1); /* between characters */
    assert_true(cs_utf8_valid(cut, strlen(cut)));
    for (size_t i = 0; i < t->nsegs; i++) assert_true(strlen(t->segs[i].text) <= CS_STT_TEXT_MAX);
    check_ids(t);
    cs_buf_free(&a);
    cs_buf_free(&b);
    cs_buf_free(&c);
    stop(t);
}

/* ---- failures ---- */

static void check_reconnected(tctx *t)
{
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(t->nfinals, 2);
    assert_int_equal(t->errors, 0);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 2);
}

static void test_reconnects_after_drop(void **state)
{
    (void)state;
    /* Dropped 2 s into the audio: after utterance 1's final, during utterance 2. */
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_DROP, .faulty = 1, .fault_after = 2000 * 8};
    tctx *t = start(&fo);
    tu_log_capture_start();
    two_utterances(t, BASE_MS);
    check_reconnected(t);
    assert_true(tu_log_contains("reconnecting"));
    tu_log_capture_stop();
    stop(t);
}

static void test_reconnects_after_error_message(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_ERROR, .faulty = 1, .fault_after = 2000 * 8};
    tctx *t = start(&fo);
    tu_log_capture_start();
    two_utterances(t, BASE_MS);
    check_reconnected(t);
    assert_true(tu_log_contains("fake internal error"));
    tu_log_capture_stop();
    stop(t);
}

static void test_reconnects_after_stall(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_STALL, .faulty = 1};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    hush(t, &pos, 500);
    speak(t, &pos, 800);
    hush(t, &pos, 12000); /* more than DG_STALL_MS without an answer */
    speak(t, &pos, 600);
    hush(t, &pos, 1500);
    wait_finals(t, 2, 25000);
    close_session(t);
    check_final(t, 0, "hello world", BASE_MS + 500, BASE_MS + 1300);
    check_final(t, 1, "goodbye", BASE_MS + 13300, BASE_MS + 13900);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 2);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_junk_messages_are_skipped(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_JUNK, .faulty = 1};
    tctx *t = start(&fo);
    tu_log_capture_start();
    two_utterances(t, BASE_MS);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 1);
    assert_true(tu_log_contains("skipped a message that is not a typed JSON object"));
    assert_true(tu_log_contains("skipped a Results message"));
    tu_log_capture_stop();
    stop(t);
}

static void test_close_while_disconnected_still_flushes(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = 2, .refuse_status = 503};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    feed(t, &pos, 500, false, false);
    feed(t, &pos, 800, true, false);
    feed(t, &pos, 700, false, false);
    feed(t, &pos, 600, true, false);
    feed(t, &pos, 1500, false, false);
    close_session(t); /* the audio waits for a connection that works */
    check_two_utterances(t, BASE_MS);
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->refused, 2);
    assert_int_equal(fs->upgrades, 1);
    assert_int_equal(fs->close_streams, 1);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_close_times_out_on_a_silent_server(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_STALL, .faulty = -1};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak(t, &pos, 600);
    assert_true(tu_run_until(&t->loop, upgraded, t, WAIT_MS));
    close_session(t);
    assert_int_equal(dg_fake_stats_get(t->fake)->close_streams, 1);
    assert_int_equal(t->nsegs, 0);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_gives_up_after_repeated_failures(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = -1, .refuse_status = 503};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak(t, &pos, 400);
    assert_true(tu_run_until(&t->loop, has_error, t, 30000));
    assert_int_equal(t->last_err, CS_EBACKEND);
    assert_non_null(strstr(t->why, "503"));
    unsigned tries = dg_fake_stats_get(t->fake)->refused;
    assert_true(tries > 2);
    hush(t, &pos, 400); /* taken and ignored: the session is failed */
    uv_sleep(600);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    assert_int_equal(dg_fake_stats_get(t->fake)->refused, tries);
    close_session(t);
    assert_int_equal(t->errors, 1);
    assert_int_equal(t->nsegs, 0);
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.failures, 1);
    stop(t);
}

static void test_final_refusals_give_up_at_once(void **state)
{
    (void)state;
    static const struct {
        dg_fake_opts fake;
        int err;
        const char *status;
    } cases[] = {
        {{SCRIPT, .api_key = "another-key"}, CS_EAUTH, "401"},
        {{SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = -1, .refuse_status = 400}, CS_EBACKEND, "400"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tctx *t = start(&cases[i].fake);
        assert_true(tu_run_until(&t->loop, has_error, t, WAIT_MS));
        assert_int_equal(t->last_err, cases[i].err);
        assert_non_null(strstr(t->why, cases[i].status));
        uv_sleep(1000); /* a retry would have come by now */
        uv_run(&t->loop, UV_RUN_NOWAIT);
        assert_int_equal(dg_fake_stats_get(t->fake)->refused, 1);
        close_session(t);
        assert_int_equal(t->errors, 1);
        stop(t);
    }
}

/* The descriptor the next socket would get. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static void test_connect_failure_is_retried(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 4);
    tu_log_capture_start();
    struct rlimit was, tight;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    tight = was;
    tight.rlim_cur = (rlim_t)lowest_free_fd(); /* no socket for the first attempt */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    int rc = open_with(t, NULL, NULL, &t->s);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_int_equal(rc, 0);
    assert_true(tu_log_contains("cannot connect"));
    tu_log_capture_stop();
    two_utterances(t, BASE_MS);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 1);
    stop(t);
}

static void test_buffer_drops_oldest_while_disconnected(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    /* 35 s fed before the connection is up: the first 5 s do not fit in the buffer. */
    feed(t, &pos, 2000, false, false);
    feed(t, &pos, 800, true, false); /* lost */
    feed(t, &pos, 17200, false, false);
    feed(t, &pos, 800, true, false);
    feed(t, &pos, 12200, false, false);
    feed(t, &pos, 600, true, false);
    feed(t, &pos, 1400, false, false);
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.audio_ms, 35000);
    assert_int_equal(st.dropped_ms, 5000);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", 20000, 20800);
    check_final(t, 1, "goodbye", 33000, 33600);
    stop(t);
}

static void test_feed_larger_than_buffer_keeps_its_end(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    size_t n = 31000 * 8;
    uint8_t *audio = malloc(n);
    assert_non_null(audio);
    for (size_t at = 0; at < n; at += FRAME)
        make_frame(t, audio + at, at >= 30000 * 8 && at < 30600 * 8);
    cs_stt_deepgram.feed(t->s, BASE_MS, audio, n);
    free(audio);
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_int_equal(st.dropped_ms, 1000);
    wait_finals(t, 1, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", BASE_MS + 30000, BASE_MS + 30600);
    stop(t);
}

static void test_too_many_gaps_drop_audio(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    for (int i = 0; i < 24; i++) { /* each gap needs a run while nothing is finalized */
        feed(t, &pos, FRAME_MS, false, false);
        pos += 2000;
    }
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    assert_true(st.dropped_ms > 0);
    assert_true(st.dropped_ms < 24 * FRAME_MS);
    close_session(t);
    stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_refuses_bad_configuration),
        cmocka_unit_test(test_create_wss_uses_system_cas),
        cmocka_unit_test(test_open_refuses_grammar_and_too_many_keywords),
        cmocka_unit_test(test_full_beyond_max_sessions),
        cmocka_unit_test(test_two_utterances_on_call_timeline),
        cmocka_unit_test(test_keywords_become_parameters),
        cmocka_unit_test(test_keepalive_during_silence),
        cmocka_unit_test(test_noisy_line_ends_utterances_by_utterance_end),
        cmocka_unit_test(test_gaps_keep_times_right),
        cmocka_unit_test(test_long_text_is_bounded),
        cmocka_unit_test(test_reconnects_after_drop),
        cmocka_unit_test(test_reconnects_after_error_message),
        cmocka_unit_test(test_reconnects_after_stall),
        cmocka_unit_test(test_junk_messages_are_skipped),
        cmocka_unit_test(test_close_while_disconnected_still_flushes),
        cmocka_unit_test(test_close_times_out_on_a_silent_server),
        cmocka_unit_test(test_gives_up_after_repeated_failures),
        cmocka_unit_test(test_final_refusals_give_up_at_once),
        cmocka_unit_test(test_connect_failure_is_retried),
        cmocka_unit_test(test_buffer_drops_oldest_while_disconnected),
        cmocka_unit_test(test_feed_larger_than_buffer_keeps_its_end),
        cmocka_unit_test(test_too_many_gaps_drop_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
