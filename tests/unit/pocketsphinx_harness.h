/* The harness of the pocketsphinx engine's tests: an engine on a loop of the test's own,
 * sessions whose segments are recorded as they come, real recordings (8 kHz μ-law copies
 * of the speech corpus) fed at once or in real time, and checks on what came out. */
#ifndef CS_TEST_POCKETSPHINX_HARNESS_H
#define CS_TEST_POCKETSPHINX_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "audio/g711.h"
#include "audio/wav.h"
#include "core/err.h"
#include "stt/stt.h"
#include "stt_session.h"
#include "wer.h"

#define MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#define FRAME     160   /* 20 ms of μ-law */
#define BASE_MS   60000 /* where the speaker's audio starts on the call's timeline */
#define MAX_SEGS  256
#define WAIT_MS   60000 /* decoding runs at a tenth of real time; ASan makes it slower */
#define LEAD_MS   300   /* silence before a clip */

typedef struct seg_rec {
    uint64_t id;
    uint32_t start_ms, end_ms;
    bool final, refined;
    char text[512];
} seg_rec;

/* One session's results. */
typedef struct voice {
    seg_rec segs[MAX_SEGS];
    size_t nsegs;
    int errors, last_err;
    bool closed;
} voice;

typedef struct tctx {
    uv_loop_t loop;
    cs_mailbox *mb;
    cs_stt *e;
} tctx;

static inline void on_segment(void *data, const cs_stt_segment *seg)
{
    voice *v = data;
    assert_false(v->closed);
    assert_true(v->nsegs < MAX_SEGS);
    seg_rec *r = &v->segs[v->nsegs++];
    *r = (seg_rec){.id = seg->id,
                   .start_ms = seg->start_ms,
                   .end_ms = seg->end_ms,
                   .final = seg->final,
                   .refined = seg->refined};
    assert_true(seg->final || !seg->refined);
    snprintf(r->text, sizeof r->text, "%s", seg->text);
    assert_true(seg->confidence == -1);
}

static inline void on_error(void *data, int err, const char *why)
{
    voice *v = data;
    assert_non_null(why);
    v->errors++;
    v->last_err = err;
}

static inline void on_closed(void *data)
{
    voice *v = data;
    assert_false(v->closed);
    v->closed = true;
}

static inline bool is_closed(void *d)
{
    return ((voice *)d)->closed;
}

static inline cs_config config(const char *dir, int64_t sessions)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.stt_model_dir = (char *)dir;
    c.stt_max_sessions = sessions;
    return c;
}

/* An engine with settings `cfg`, its results on a loop of the test's own. */
static inline tctx *start_with(const cs_config *cfg)
{
    tctx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(cs_mailbox_open(&t->mb, &t->loop), 0);
    cs_buf err = CS_BUF_INIT(1024);
    int rc = cs_stt_pocketsphinx.create(&t->e, cfg, &t->loop, t->mb, &err);
    if (rc < 0) fail_msg("create: %s", err.data ? err.data : "?");
    cs_buf_free(&err);
    return t;
}

/* `sessions` decoders, finals from the forward pass alone, no refinement. */
static inline tctx *start(int64_t sessions)
{
    cs_config cfg = config(MODEL_DIR, sessions);
    return start_with(&cfg);
}

static inline void stop(tctx *t)
{
    cs_stt_pocketsphinx.destroy(t->e);
    cs_mailbox_close(t->mb);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    free(t);
}

static inline int open_voice(tctx *t, voice *v, const char *grammar, const char *keywords,
                             cs_stt_session **out)
{
    static const tu_stt_callbacks cb = {on_segment, on_error, on_closed};
    return tu_stt_open(&cs_stt_pocketsphinx, t->e, &cb, v, grammar, keywords, out);
}

/* A corpus recording as μ-law bytes. */
static inline uint8_t *clip(const char *name, size_t *n)
{
    char path[1024];
    const char *corpus = getenv("CS_CORPUS");
    snprintf(path, sizeof path, "%s/ulaw8k/%s.wav", corpus ? corpus : "tests/data/speech", name);
    int16_t *pcm;
    unsigned rate;
    assert_int_equal(cs_wav_load(path, &pcm, n, &rate), 0);
    assert_int_equal(rate, 8000);
    uint8_t *ulaw = malloc(*n);
    assert_non_null(ulaw);
    cs_ulaw_encode(ulaw, pcm, *n);
    free(pcm);
    return ulaw;
}

/* tests/data/grammars/cards.jsgf, which the cards clips speak (caller frees). */
static inline char *cards_grammar(void)
{
    size_t len;
    char *grammar = (char *)tu_read_file(tu_data_path("grammars/cards.jsgf"), &len);
    assert_non_null(grammar);
    return grammar;
}

/* Feeds `n` bytes at `pos_ms` in 20 ms frames, as the gateway does. */
static inline void feed(cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw, size_t n)
{
    for (size_t i = 0; i < n; i += FRAME)
        cs_stt_pocketsphinx.feed(s, pos_ms + (uint32_t)(i / 8), ulaw + i,
                                 n - i < FRAME ? n - i : FRAME);
}

/* The same in real time, as a call delivers it, with the loop running meanwhile. */
static inline void feed_live(tctx *t, cs_stt_session *s, uint32_t pos_ms, const uint8_t *ulaw,
                             size_t n)
{
    for (size_t i = 0; i < n; i += FRAME) {
        cs_stt_pocketsphinx.feed(s, pos_ms + (uint32_t)(i / 8), ulaw + i,
                                 n - i < FRAME ? n - i : FRAME);
        uv_run(&t->loop, UV_RUN_NOWAIT);
        uv_sleep(20);
    }
}

static inline void silence(cs_stt_session *s, uint32_t pos_ms, uint32_t ms)
{
    uint8_t quiet[FRAME];
    memset(quiet, 0xFF, sizeof quiet);
    for (uint32_t i = 0; i < ms; i += 20) cs_stt_pocketsphinx.feed(s, pos_ms + i, quiet, FRAME);
}

static inline void finish(tctx *t, voice *v, cs_stt_session *s)
{
    cs_stt_pocketsphinx.close(s);
    assert_false(v->closed); /* never from inside close */
    assert_true(tu_run_until(&t->loop, is_closed, v, WAIT_MS));
}

/* The (fast) finals joined, and checks that every segment is sane: interims of an
 * utterance come before its final, ids grow, times lie within [lo, hi]. Refined finals
 * are left to the refinement tests. */
static inline void finals(const voice *v, char *out, size_t cap, uint32_t lo, uint32_t hi)
{
    size_t n = 0;
    uint64_t last_final = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->nsegs; i++) {
        const seg_rec *r = &v->segs[i];
        if (r->refined) continue;
        assert_true(r->id > last_final);
        assert_true(r->start_ms >= lo && r->end_ms <= hi && r->start_ms <= r->end_ms);
        if (!r->final) continue;
        last_final = r->id;
        if (!r->text[0]) continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", r->text);
    }
}

static inline size_t count(const voice *v, bool final)
{
    size_t n = 0;
    for (size_t i = 0; i < v->nsegs; i++) n += v->segs[i].final == final && !v->segs[i].refined;
    return n;
}

static inline double wer_against(const char *name, const char *hyp)
{
    char ref[2048];
    const char *corpus = getenv("CS_CORPUS");
    assert_true(wer_reference(corpus ? corpus : "tests/data/speech", name, ref, sizeof ref));
    cs_wer_count c = {0};
    assert_int_equal(cs_wer_add(&c, ref, hyp), 0);
    return cs_wer_rate(&c);
}

/* A clip placed a minute into the call (BASE_MS) and fed in real time, with half a second
 * of silence before and a second after, in a session of its own, closed. Its length in
 * ms goes to *len_ms; the session's results are returned (caller frees). */
static inline voice *play_live(tctx *t, const char *name, uint32_t *len_ms)
{
    voice *v = calloc(1, sizeof *v);
    assert_non_null(v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    size_t n;
    uint8_t *audio = clip(name, &n);
    *len_ms = (uint32_t)(n / 8);
    silence(s, BASE_MS - 500, 500);
    feed_live(t, s, BASE_MS, audio, n);
    silence(s, BASE_MS + *len_ms, 1000);
    finish(t, v, s);
    free(audio);
    return v;
}

/* Transcribes one clip in a session of its own, as a call would: a little silence, the
 * clip, a second of silence, close. The finals joined go to `text`; the session's results
 * are returned (caller frees). */
static inline voice *transcribe(tctx *t, const char *name, const char *grammar,
                                const char *keywords, char *text, size_t cap)
{
    voice *v = calloc(1, sizeof *v);
    assert_non_null(v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, grammar, keywords, &s), 0);
    size_t n;
    uint8_t *audio = clip(name, &n);
    uint32_t end_ms = LEAD_MS + (uint32_t)(n / 8);
    silence(s, 0, LEAD_MS);
    feed(s, LEAD_MS, audio, n);
    silence(s, end_ms, 1000);
    finish(t, v, s);
    finals(v, text, cap, 0, end_ms + 1000);
    print_message("%s: \"%s\"\n", name, text);
    free(audio);
    return v;
}

/* ---- refinement ---- */

/* An engine of `sessions` decoders refining with one decoder (its default passes), its
 * queue `queue` long and utterances up to `max_ms`. */
static inline tctx *start_refining(int64_t sessions, int64_t queue, int64_t max_ms)
{
    cs_config cfg = config(MODEL_DIR, sessions);
    cfg.stt_refine = 1;
    cfg.stt_refine_decoders = 1;
    cfg.stt_refine_queue = queue;
    cfg.stt_refine_max_ms = max_ms;
    return start_with(&cfg);
}

static inline size_t refined_count(const voice *v)
{
    size_t n = 0;
    for (size_t i = 0; i < v->nsegs; i++) n += v->segs[i].refined;
    return n;
}

/* Every refined final follows a fast final with words and the same id, once; times lie
 * within [lo, hi]. Returns how many fast finals with words there were. */
static inline size_t check_refined(const voice *v, uint32_t lo, uint32_t hi)
{
    size_t spoken = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        const seg_rec *r = &v->segs[i];
        if (r->final && !r->refined && r->text[0]) spoken++;
        if (!r->refined) continue;
        assert_true(r->text[0] != '\0');
        assert_true(r->start_ms >= lo && r->end_ms <= hi && r->start_ms <= r->end_ms);
        size_t fast = 0, again = 0;
        for (size_t k = 0; k < v->nsegs; k++) {
            if (v->segs[k].id != r->id || !v->segs[k].final) continue;
            if (k < i && !v->segs[k].refined && v->segs[k].text[0]) fast++;
            if (k != i && v->segs[k].refined) again++;
        }
        assert_int_equal(fast, 1);
        assert_int_equal(again, 0);
    }
    return spoken;
}

#endif
