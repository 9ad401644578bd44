/* The harness of the Deepgram engine's tests: an engine and one session against a fake
 * Deepgram (deepgram_fake.h) on a loop of the test's own, segments recorded as they come,
 * audio fed as a tone (speech to the fake) or silence, and checks on what came out. */
#ifndef CS_TEST_DEEPGRAM_HARNESS_H
#define CS_TEST_DEEPGRAM_HARNESS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "audio/g711.h"
#include "core/err.h"
#include "deepgram_fake.h"
#include "net/form.h"
#include "stt/stt.h"
#include "stt_session.h"

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
    char why[640]; /* the engine's last on_error */
    bool closed;
    double phase; /* of the tone, continuous across frames */
} tctx;

/* ---- callbacks ---- */

static inline void on_segment(void *data, const cs_stt_segment *seg)
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

static inline void on_error(void *data, int err, const char *why)
{
    tctx *t = data;
    t->errors++;
    t->last_err = err;
    snprintf(t->why, sizeof t->why, "%s", why);
}

static inline void on_closed(void *data)
{
    tctx *t = data;
    assert_false(t->closed);
    t->closed = true;
}

/* ---- set-up ---- */

static inline cs_config config(const char *key, const char *url, const char *model, int64_t max)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.deepgram_api_key = (char *)key;
    c.deepgram_url = (char *)url;
    c.deepgram_model = (char *)model;
    c.stt_max_sessions = max;
    return c;
}

static inline tctx *start_engine(const dg_fake_opts *fo, const char *model, int64_t max)
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

static inline int open_with(tctx *t, const char *keywords, const char *grammar,
                            cs_stt_session **out)
{
    static const tu_stt_callbacks cb = {on_segment, on_error, on_closed};
    return tu_stt_open(&cs_stt_deepgram, t->e, &cb, t, grammar, keywords, out);
}

static inline tctx *start(const dg_fake_opts *fo)
{
    tctx *t = start_engine(fo, "nova-2-phonecall", 4);
    assert_int_equal(open_with(t, NULL, NULL, &t->s), 0);
    return t;
}

static inline bool is_closed(void *d)
{
    return ((tctx *)d)->closed;
}

static inline bool has_error(void *d)
{
    return ((tctx *)d)->errors > 0;
}

static inline bool never(void *d)
{
    (void)d;
    return false;
}

/* Runs the loop for `ms`. */
static inline void run_for(tctx *t, unsigned ms)
{
    tu_run_until(&t->loop, never, NULL, ms);
}

static inline bool enough_finals(void *d)
{
    tctx *t = d;
    return t->nfinals >= t->want_finals;
}

static inline cs_stt_stats stats_of(tctx *t)
{
    cs_stt_stats st;
    cs_stt_deepgram.stats(t->e, &st);
    return st;
}

static inline void close_session(tctx *t)
{
    cs_stt_deepgram.close(t->s);
    assert_false(t->closed); /* never from inside close() */
    assert_true(tu_run_until(&t->loop, is_closed, t, WAIT_MS));
}

static inline void stop(tctx *t)
{
    assert_int_equal(stats_of(t).sessions_open, 0);
    cs_stt_deepgram.destroy(t->e);
    dg_fake_free(t->fake);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    for (size_t i = 0; i < t->nsegs; i++) free(t->segs[i].text);
    free(t);
}

static inline void wait_finals(tctx *t, size_t n, unsigned timeout_ms)
{
    t->want_finals = n;
    assert_true(tu_run_until(&t->loop, enough_finals, t, timeout_ms));
}

/* ---- audio ---- */

static inline void make_frame(tctx *t, uint8_t *out, bool tone)
{
    for (size_t i = 0; i < FRAME; i++) {
        out[i] = tone ? cs_pcm_to_ulaw((int16_t)(8000 * sin(t->phase))) : CS_ULAW_SILENCE;
        t->phase += 2 * M_PI * 400 / 8000;
    }
}

/* Feeds `ms` of a tone (speech to the fake) or of silence at *pos, in 20 ms frames; with
 * `run`, the loop turns between frames so audio flows while it is fed. */
static inline void feed(tctx *t, uint32_t *pos, unsigned ms, bool tone, bool run)
{
    uint8_t frame[FRAME];
    for (unsigned done = 0; done < ms; done += FRAME_MS) {
        make_frame(t, frame, tone);
        cs_stt_deepgram.feed(t->s, *pos, frame, FRAME);
        *pos += FRAME_MS;
        if (run) uv_run(&t->loop, UV_RUN_NOWAIT);
    }
}

static inline void speak(tctx *t, uint32_t *pos, unsigned ms)
{
    feed(t, pos, ms, true, true);
}

static inline void hush(tctx *t, uint32_t *pos, unsigned ms)
{
    feed(t, pos, ms, false, true);
}

/* Two utterances: [500, 1300) and [2000, 2600) after `base`, then 1.5 s of silence. */
static inline void two_utterances(tctx *t, uint32_t base)
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

static inline void check_final(const tctx *t, size_t k, const char *text, uint32_t start,
                               uint32_t end)
{
    const seg_rec *r = final_no(t, k);
    assert_string_equal(r->text, text);
    assert_in_range(r->start_ms, start - TOL_MS, start + TOL_MS);
    assert_in_range(r->end_ms, end - TOL_MS, end + TOL_MS);
    assert_true(fabsf(r->confidence - (float)DG_FAKE_CONFIDENCE) < 1e-6f);
}

/* Every id has interims (if any) before its one final; ids are new per utterance. */
static inline void check_ids(const tctx *t)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        const seg_rec *r = &t->segs[i];
        assert_true(r->id > 0);
        for (size_t j = i + 1; j < t->nsegs; j++)
            if (t->segs[j].id == r->id) assert_false(r->final);
    }
}

static inline size_t interims_of(const tctx *t, uint64_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsegs; i++) n += !t->segs[i].final && t->segs[i].id == id;
    return n;
}

static inline void check_two_utterances(const tctx *t, uint32_t base)
{
    check_final(t, 0, "hello world", base + 500, base + 1300);
    check_final(t, 1, "goodbye", base + 2000, base + 2600);
    check_ids(t);
}

static const char *const script[] = {"hello world", "goodbye"};
#define SCRIPT .script = script, .nscript = 2

/* How many times the last upgrade request had name=value in its query. */
static inline size_t count_param(const tctx *t, const char *name, const char *value)
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

static inline bool upgraded(void *d)
{
    return dg_fake_stats_get(((tctx *)d)->fake)->upgrades > 0;
}

#endif
