/* The TTS engines, real ones (espeak-ng, flite with a 16 kHz and an 8 kHz voice), each
 * through the same tests: a text spoken sentence by sentence (μ-law audio of a plausible
 * length, sentences in order with their text, word timings inside the audio), rate and
 * pitch heard in the audio, cancelling at every point, jobs of several calls taking turns,
 * the queue's bound, bad voices and bad input, audio past the sentence limit, and the
 * engine destroyed with jobs in flight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "audio/g711.h"
#include "core/err.h"
#include "tts/sentence.h"
#include "tts/tts.h"

#define WAIT_MS   180000 /* flite's 16 kHz voices under ASan are slow; never a timing check */
#define MAX_SENT  64
#define MAX_WORDS 128
#define MAX_LOG   1024

typedef struct engine_case {
    const cs_tts_ops *ops;
    const char *voice;
    int64_t threads;
} engine_case;

static const engine_case espeak_case = {&cs_tts_espeak, "en-us", 1};
static const engine_case slt_case = {&cs_tts_flite, "slt", 2};
static const engine_case kal_case = {&cs_tts_flite, "kal", 2};

typedef struct sentence_rec {
    char text[CS_SENTENCE_MAX + 1];
    cs_tts_word words[MAX_WORDS];
    size_t nwords;
    uint32_t audio_ms;
    size_t audio_at, audio_n; /* its audio in the job's */
} sentence_rec;

/* Everything one job delivered, and what it should do on the way. */
typedef struct rec {
    const cs_tts_ops *ops;
    cs_tts_job *job;
    int id;
    uint8_t *audio;
    size_t naudio;
    size_t pending; /* audio not yet followed by its sentence */
    sentence_rec s[MAX_SENT];
    size_t ns;
    int done_calls, err;
    bool cancelled;   /* cancel was called */
    int late_calls;   /* callbacks after cancel (must stay 0) */
    size_t cancel_at; /* cancel in on_sentence once this many sentences came (0: never) */
    bool cancel_in_audio;
} rec;

/* The order in which all jobs' sentences and ends came: id * 1000 + sentence, or
 * id * 1000 + 999 for the end. */
static int order[MAX_LOG];
static size_t norder;

static void on_audio(void *data, const uint8_t *ulaw, size_t n)
{
    rec *r = data;
    if (r->cancelled) r->late_calls++;
    assert_int_equal(r->done_calls, 0);
    assert_true(n > 0);
    r->audio = realloc(r->audio, r->naudio + n);
    assert_non_null(r->audio);
    memcpy(r->audio + r->naudio, ulaw, n);
    r->naudio += n;
    r->pending += n;
    if (r->cancel_in_audio) {
        r->cancelled = true;
        r->ops->cancel(r->job);
    }
}

static void on_sentence(void *data, const char *text, size_t len, const cs_tts_word *words,
                        size_t nwords, uint32_t audio_ms)
{
    rec *r = data;
    if (r->cancelled) r->late_calls++;
    assert_int_equal(r->done_calls, 0);
    assert_true(r->ns < MAX_SENT);
    assert_true(len <= CS_SENTENCE_MAX);
    assert_true(nwords <= MAX_WORDS);
    sentence_rec *s = &r->s[r->ns++];
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    memcpy(s->words, words, nwords * sizeof *words);
    s->nwords = nwords;
    s->audio_ms = audio_ms;
    s->audio_n = r->pending;
    s->audio_at = r->naudio - r->pending;
    r->pending = 0;
    if (norder < MAX_LOG) order[norder++] = r->id * 1000 + (int)r->ns;
    if (r->cancel_at && r->ns == r->cancel_at) {
        r->cancelled = true;
        r->ops->cancel(r->job);
        r->ops->cancel(r->job); /* twice is harmless */
    }
}

static void on_done(void *data, int err)
{
    rec *r = data;
    if (r->cancelled) r->late_calls++;
    r->done_calls++;
    r->err = err;
    r->job = NULL;
    if (norder < MAX_LOG) order[norder++] = r->id * 1000 + 999;
}

typedef struct tctx {
    tu_env env;
    const engine_case *ec;
    cs_config cfg;
    cs_tts *e;
} tctx;

static cs_config config(const engine_case *ec, const char *voice, int64_t queue_max)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.tts_voice = (char *)(voice ? voice : ec->voice);
    c.tts_rate = 175;
    c.tts_pitch = 50;
    c.tts_threads = ec->threads;
    c.tts_queue_max = queue_max;
    return c;
}

static tctx *start_q(const engine_case *ec, int64_t queue_max)
{
    tctx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(tu_env_open(&t->env, "tts"), 0);
    t->ec = ec;
    t->cfg = config(ec, NULL, queue_max);
    cs_buf err = CS_BUF_INIT(1024);
    int rc = ec->ops->create(&t->e, &(cs_tts_env){&t->cfg, &t->env.loop, t->env.mb, NULL}, &err);
    if (rc < 0) fail_msg("create: %s", err.data ? err.data : cs_strerror(rc));
    cs_buf_free(&err);
    norder = 0;
    return t;
}

static tctx *start(const engine_case *ec)
{
    return start_q(ec, 64);
}

static cs_tts_stats stats(tctx *t)
{
    cs_tts_stats st;
    t->ec->ops->stats(t->e, &st);
    return st;
}

static bool idle(void *d)
{
    return stats(d).jobs_live == 0;
}

static void stop(tctx *t)
{
    assert_true(tu_run_until(&t->env.loop, idle, t, WAIT_MS));
    t->ec->ops->destroy(t->e);
    assert_int_equal(tu_env_close(&t->env), 0);
    free(t);
}

static void rec_init(rec *r, const tctx *t, int id)
{
    memset(r, 0, sizeof *r);
    r->ops = t->ec->ops;
    r->id = id;
}

static void rec_free(rec *r)
{
    free(r->audio);
    r->audio = NULL;
}

static int speak_full(tctx *t, rec *r, const char *text, size_t len, const char *voice, int rate,
                      int pitch)
{
    cs_tts_opts o = {.text = text,
                     .len = len,
                     .voice = voice,
                     .rate = rate,
                     .pitch = pitch,
                     .on_audio = on_audio,
                     .on_sentence = on_sentence,
                     .on_done = on_done,
                     .data = r};
    int rc = t->ec->ops->speak(t->e, &o, &r->job);
    assert_int_equal(r->done_calls, 0); /* never from inside speak */
    return rc;
}

static void speak(tctx *t, rec *r, const char *text)
{
    int rc = speak_full(t, r, text, strlen(text), NULL, 0, 0);
    if (rc < 0) fail_msg("speak: %s", cs_strerror(rc));
}

static bool is_done(void *d)
{
    return ((rec *)d)->done_calls > 0;
}

static void wait_done(tctx *t, rec *r)
{
    assert_true(tu_run_until(&t->env.loop, is_done, r, WAIT_MS));
    assert_int_equal(r->done_calls, 1);
}

/* Root mean square of decoded μ-law. */
static double rms(const uint8_t *ulaw, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)cs_ulaw_to_pcm[ulaw[i]] * cs_ulaw_to_pcm[ulaw[i]];
    return n ? sqrt(sum / (double)n) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median pitch of the voiced 40 ms frames, by autocorrelation (60–400 Hz). */
static double median_f0(const uint8_t *ulaw, size_t n)
{
    enum { FRAME = 320, HOP = 160, LAG_MIN = 20, LAG_MAX = 133 };
    size_t cap = n / HOP + 1, nf = 0;
    double *f0 = malloc(cap * sizeof *f0);
    assert_non_null(f0);
    for (size_t at = 0; at + FRAME + LAG_MAX <= n; at += HOP) {
        if (rms(ulaw + at, FRAME) < 800) continue;
        double best = 0;
        int best_lag = 0;
        for (int lag = LAG_MIN; lag <= LAG_MAX; lag++) {
            double xy = 0, xx = 0, yy = 0;
            for (size_t i = at; i < at + FRAME; i++) {
                double x = cs_ulaw_to_pcm[ulaw[i]], y = cs_ulaw_to_pcm[ulaw[i + lag]];
                xy += x * y;
                xx += x * x;
                yy += y * y;
            }
            double r = xy / sqrt(xx * yy + 1);
            if (r > best) {
                best = r;
                best_lag = lag;
            }
        }
        if (best > 0.6) f0[nf++] = 8000.0 / best_lag;
    }
    assert_true(nf >= 5);
    qsort(f0, nf, sizeof *f0, cmp_double);
    double m = f0[nf / 2];
    free(f0);
    return m;
}

static const char *const text3 = "Hello there. This is a test of 3.5 sentences!  Is \xC3\xA9"
                                 "clair working?";

static void speaks_sentence_by_sentence(void **state)
{
    tctx *t = start(*state);
    rec r;
    rec_init(&r, t, 1);
    speak(t, &r, text3);
    wait_done(t, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.late_calls, 0);
    assert_int_equal(r.ns, 3);
    assert_string_equal(r.s[0].text, "Hello there.");
    assert_string_equal(r.s[1].text, "This is a test of 3.5 sentences!");
    assert_string_equal(r.s[2].text, "Is \xC3\xA9"
                                     "clair working?");
    assert_int_equal(r.pending, 0); /* every piece of audio was followed by its sentence */

    size_t total_ms = 0, total_n = 0;
    for (size_t i = 0; i < r.ns; i++) {
        sentence_rec *s = &r.s[i];
        /* 8 kHz: the length in ms is the audio's; speech of plausible length */
        assert_int_equal(s->audio_ms, s->audio_n / 8);
        size_t chars = strlen(s->text);
        if (s->audio_ms < 30 * chars || s->audio_ms > 200 * chars)
            fail_msg("sentence %zu: %u ms for %zu characters", i, s->audio_ms, chars);
        total_ms += s->audio_ms;
        /* μ-law speech: loud in the middle, a silent pause at the end */
        const uint8_t *a = r.audio + s->audio_at;
        double mid = rms(a + s->audio_n / 4, s->audio_n / 2);
        double tail = rms(a + s->audio_n - 80, 80);
        if (mid < 500 || mid > 16000 || tail > 200)
            fail_msg("sentence %zu: rms %.0f in the middle, %.0f at the end", i, mid, tail);
        /* words: in order, inside the text and the audio, each a word of the text */
        assert_true(s->nwords >= 2);
        for (size_t w = 0; w < s->nwords; w++) {
            const cs_tts_word *wd = &s->words[w];
            assert_true(wd->len > 0);
            assert_true(wd->off + wd->len <= chars);
            assert_true(wd->start_ms < s->audio_ms);
            assert_true(wd->off == 0 || s->text[wd->off - 1] == ' ');
            if (w > 0) {
                assert_true(wd->off >= s->words[w - 1].off + s->words[w - 1].len);
                assert_true(wd->start_ms >= s->words[w - 1].start_ms);
            }
        }
        /* the last word starts well into the audio */
        if (s->words[s->nwords - 1].start_ms < s->audio_ms / 4)
            fail_msg("sentence %zu: its last word starts at %u of %u ms", i,
                     s->words[s->nwords - 1].start_ms, s->audio_ms);
        total_n += s->audio_n;
    }
    assert_int_equal(r.naudio, total_n);
    /* "Hello there." is two words; "3.5" one entry however the engine says it */
    assert_int_equal(r.s[0].nwords, 2);
    assert_memory_equal(r.s[0].text + r.s[0].words[1].off, "there", 5);
    bool three_five = false;
    for (size_t w = 0; w < r.s[1].nwords; w++)
        three_five = three_five || (r.s[1].words[w].len == 3 &&
                                    memcmp(r.s[1].text + r.s[1].words[w].off, "3.5", 3) == 0);
    assert_true(three_five);

    cs_tts_stats st = stats(t);
    assert_int_equal(st.jobs, 1);
    assert_int_equal(st.sentences, 3);
    assert_int_equal(st.audio_ms, total_ms);
    assert_int_equal(st.first_audio.count, 1);
    assert_int_equal(st.failures + st.cancels + st.refused + st.sentences_cut, 0);
    assert_true(st.synth_us > 0);
    rec_free(&r);
    stop(t);
}

/* Rate changes the length, pitch the voice's fundamental frequency. */
static void rate_and_pitch_are_heard(void **state)
{
    tctx *t = start(*state);
    const char *text = "The weather today is mild and clear, with a light breeze from the west.";
    rec slow, fast, low, high;
    rec_init(&slow, t, 1);
    rec_init(&fast, t, 2);
    rec_init(&low, t, 3);
    rec_init(&high, t, 4);
    assert_int_equal(speak_full(t, &slow, text, strlen(text), NULL, 120, 0), 0);
    assert_int_equal(speak_full(t, &fast, text, strlen(text), NULL, 300, 0), 0);
    assert_int_equal(speak_full(t, &low, text, strlen(text), NULL, 0, 15), 0);
    assert_int_equal(speak_full(t, &high, text, strlen(text), NULL, 0, 85), 0);
    wait_done(t, &slow);
    wait_done(t, &fast);
    wait_done(t, &low);
    wait_done(t, &high);
    double ratio = (double)slow.naudio / (double)fast.naudio;
    if (ratio < 1.6) fail_msg("rate 120 vs 300: %zu vs %zu bytes", slow.naudio, fast.naudio);
    double f_low = median_f0(low.audio, low.naudio), f_high = median_f0(high.audio, high.naudio);
    if (f_high < 1.2 * f_low) fail_msg("pitch 15 vs 85: %.0f vs %.0f Hz", f_low, f_high);
    rec_free(&slow);
    rec_free(&fast);
    rec_free(&low);
    rec_free(&high);
    stop(t);
}

static const char *const long_text =
    "One sentence comes first. A second one follows it. Then there is a third. The fourth is "
    "here. Number five arrives. Six is next in line. Seven keeps going. Eight is almost the end. "
    "Nine is the one before last. Ten closes the text.";

static bool ended(void *d)
{
    tctx *t = d;
    return stats(t).jobs_live == 0;
}

/* A cancelled job calls nothing more, wherever the cancel comes from; the engine goes on. */
static void cancel_stops_everything(void **state)
{
    tctx *t = start(*state);
    rec in_sentence, in_audio, at_once, later;
    rec_init(&in_sentence, t, 1);
    rec_init(&in_audio, t, 2);
    rec_init(&at_once, t, 3);
    rec_init(&later, t, 4);
    in_sentence.cancel_at = 2;
    in_audio.cancel_in_audio = true;
    speak(t, &in_sentence, long_text);
    speak(t, &in_audio, long_text);
    speak(t, &at_once, long_text);
    t->ec->ops->cancel(at_once.job);
    at_once.cancelled = true;
    assert_true(tu_run_until(&t->env.loop, ended, t, WAIT_MS));
    assert_int_equal(in_sentence.ns, 2);
    assert_int_equal(in_audio.ns, 0);
    assert_true(in_audio.naudio > 0);
    assert_int_equal(at_once.naudio + at_once.ns, 0);
    rec *all[] = {&in_sentence, &in_audio, &at_once};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(all[i]->late_calls, 0);
        assert_int_equal(all[i]->done_calls, 0);
    }
    cs_tts_stats st = stats(t);
    assert_int_equal(st.cancels, 3);
    assert_int_equal(st.failures, 0);
    /* The engine still speaks. */
    speak(t, &later, "Still here.");
    wait_done(t, &later);
    assert_int_equal(later.err, 0);
    assert_int_equal(later.ns, 1);
    for (size_t i = 0; i < 3; i++) rec_free(all[i]);
    rec_free(&later);
    stop(t);
}

/* Long replies queued first, as many as there are workers, then seven other calls' short
 * ones: the short ones are all done long before the long ones, and (one worker) in the
 * order they came. A queue that served jobs whole would finish the long replies first. */
static void calls_take_turns(void **state)
{
    tctx *t = start(*state);
    char text[8192] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, "This sentence of the long reply is long enough to take some time to "
                     "say, and it goes on for a good while before it ends. ");
    enum { LONGS_MAX = 4, SHORTS = 7 };
    size_t nlong = (size_t)t->ec->threads;
    assert_true(nlong <= LONGS_MAX);
    rec lng[LONGS_MAX], shorts[SHORTS];
    for (size_t i = 0; i < nlong; i++) {
        rec_init(&lng[i], t, 1); /* all "1" in the order log */
        speak(t, &lng[i], text);
    }
    for (int i = 0; i < SHORTS; i++) {
        rec_init(&shorts[i], t, 2 + i);
        speak(t, &shorts[i], "A short answer.");
    }
    for (size_t i = 0; i < nlong; i++) {
        wait_done(t, &lng[i]);
        assert_int_equal(lng[i].ns, 30);
    }
    for (int i = 0; i < SHORTS; i++) {
        wait_done(t, &shorts[i]);
        assert_int_equal(shorts[i].err, 0);
    }
    /* How many of the long replies' sentences came before the last short reply ended. */
    size_t long_before = 0, last_short_end = 0;
    for (size_t i = 0; i < norder; i++)
        if (order[i] % 1000 == 999 && order[i] / 1000 >= 2) last_short_end = i;
    for (size_t i = 0; i < last_short_end; i++) long_before += order[i] / 1000 == 1;
    if (long_before > 8 * nlong)
        fail_msg("%zu of the long replies' sentences came before the short replies ended",
                 long_before);
    if (nlong == 1) { /* one worker: strictly in turn */
        int next = 2;
        for (size_t i = 0; i < norder; i++)
            if (order[i] / 1000 >= 2 && order[i] % 1000 == 999)
                assert_int_equal(order[i] / 1000, next++);
    }
    stop(t);
    for (size_t i = 0; i < nlong; i++) rec_free(&lng[i]);
    for (int i = 0; i < SHORTS; i++) rec_free(&shorts[i]);
}

static void queue_is_bounded(void **state)
{
    tctx *t = start_q(*state, 3);
    rec r[5];
    for (int i = 0; i < 5; i++) rec_init(&r[i], t, i + 1);
    for (int i = 0; i < 3; i++) speak(t, &r[i], long_text);
    assert_int_equal(speak_full(t, &r[3], "More.", 5, NULL, 0, 0), CS_EFULL);
    assert_int_equal(stats(t).refused, 1);
    assert_int_equal(stats(t).jobs_live, 3);
    wait_done(t, &r[0]);
    speak(t, &r[4], "Room again.");
    wait_done(t, &r[4]);
    assert_int_equal(r[4].err, 0);
    stop(t);
    for (int i = 0; i < 5; i++) rec_free(&r[i]);
}

static void bad_voice_at_create(void **state)
{
    const engine_case *ec = *state;
    tu_env env;
    assert_int_equal(tu_env_open(&env, "tts"), 0);
    cs_config cfg = config(ec, "no-such-voice", 8);
    cs_buf err = CS_BUF_INIT(1024);
    cs_tts *e = NULL;
    assert_int_equal(ec->ops->create(&e, &(cs_tts_env){&cfg, &env.loop, env.mb, NULL}, &err),
                     CS_ECONFIG);
    assert_null(e);
    assert_non_null(err.data);
    assert_non_null(strstr(err.data, "TTS_VOICE"));
    assert_non_null(strstr(err.data, "no-such-voice"));
    cs_buf_free(&err);
    assert_int_equal(tu_env_close(&env), 0);
}

/* A job with a voice the engine lacks fails (at once if the engine can tell, else in
 * on_done); the next job speaks with the default voice. */
static void bad_voice_in_a_job(void **state)
{
    tctx *t = start(*state);
    rec bad, good;
    rec_init(&bad, t, 1);
    rec_init(&good, t, 2);
    int rc = speak_full(t, &bad, "Hello.", 6, "no-such-voice", 0, 0);
    if (rc == 0) {
        wait_done(t, &bad);
        assert_int_equal(bad.err, CS_ECONFIG);
        assert_int_equal(bad.naudio + bad.ns, 0);
        assert_int_equal(stats(t).failures, 1);
    } else {
        assert_int_equal(rc, CS_ECONFIG);
    }
    speak(t, &good, "Hello.");
    wait_done(t, &good);
    assert_int_equal(good.err, 0);
    assert_int_equal(good.ns, 1);
    rec_free(&bad);
    rec_free(&good);
    stop(t);
}

static void bad_input_is_refused(void **state)
{
    tctx *t = start(*state);
    rec r;
    rec_init(&r, t, 1);
    char *big = malloc(CS_TTS_TEXT_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', CS_TTS_TEXT_MAX + 1);
    assert_int_equal(speak_full(t, &r, big, CS_TTS_TEXT_MAX + 1, NULL, 0, 0), -EMSGSIZE);
    free(big);
    assert_int_equal(speak_full(t, &r, "bad \xC3( byte", 11, NULL, 0, 0), -EILSEQ);
    assert_int_equal(speak_full(t, &r, "nul\0inside", 10, NULL, 0, 0), -EILSEQ);
    assert_int_equal(speak_full(t, &r, "slow", 4, NULL, 79, 0), -EINVAL);
    assert_int_equal(speak_full(t, &r, "fast", 4, NULL, 451, 0), -EINVAL);
    assert_int_equal(speak_full(t, &r, "high", 4, NULL, 0, 101), -EINVAL);
    assert_int_equal(speak_full(t, &r, "low", 3, NULL, 0, -1), -EINVAL);
    char voice[CS_TTS_VOICE_MAX + 1];
    memset(voice, 'v', CS_TTS_VOICE_MAX);
    voice[CS_TTS_VOICE_MAX] = '\0';
    assert_int_equal(speak_full(t, &r, "long voice", 10, voice, 0, 0), -EINVAL);
    cs_tts_opts o = {.text = "no end", .len = 6};
    assert_int_equal(t->ec->ops->speak(t->e, &o, &r.job), -EINVAL);
    assert_int_equal(stats(t).jobs, 0);
    /* Nothing to say: accepted, and done later without a sentence. */
    assert_int_equal(speak_full(t, &r, " ... -- \n ", 10, NULL, 0, 0), 0);
    wait_done(t, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.ns + r.naudio, 0);
    rec_free(&r);
    stop(t);
}

/* A sentence that would speak for longer than CS_TTS_SENTENCE_MS is cut there. */
static void long_audio_is_cut(void **state)
{
    tctx *t = start(*state);
    char text[CS_SENTENCE_MAX + 1] = "";
    while (strlen(text) + 12 <= CS_SENTENCE_MAX) strcat(text, "98765432198 ");
    rec r;
    rec_init(&r, t, 1);
    assert_int_equal(speak_full(t, &r, text, strlen(text), NULL, 80, 0), 0);
    wait_done(t, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.ns, 1);
    assert_int_equal(r.s[0].audio_ms, CS_TTS_SENTENCE_MS);
    assert_int_equal(stats(t).sentences_cut, 1);
    for (size_t w = 0; w < r.s[0].nwords; w++)
        assert_true(r.s[0].words[w].start_ms <= CS_TTS_SENTENCE_MS);
    rec_free(&r);
    stop(t);
}

/* Destroyed with jobs queued, running and cancelled: the live ones end with CS_ECLOSED
 * (or finish), later, through the mailbox; nothing leaks (ASan). */
static void destroy_with_jobs_in_flight(void **state)
{
    const engine_case *ec = *state;
    tctx *t = start(ec);
    char text[8192] = ""; /* long enough that the last job cannot end before destroy */
    for (int i = 0; i < 12; i++) strcat(text, long_text);
    rec r[4];
    for (int i = 0; i < 4; i++) {
        rec_init(&r[i], t, i + 1);
        speak(t, &r[i], text);
    }
    t->ec->ops->cancel(r[3].job);
    r[3].cancelled = true;
    ec->ops->destroy(t->e);
    for (int i = 0; i < 3; i++) assert_int_equal(r[i].done_calls, 0);
    cs_mailbox_run(t->env.mb);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].done_calls, 1);
        assert_true(r[i].err == 0 || r[i].err == CS_ECLOSED);
    }
    assert_true(r[2].err == CS_ECLOSED); /* the last one cannot have been reached */
    assert_int_equal(r[3].done_calls + r[3].late_calls, 0);
    for (int i = 0; i < 4; i++) rec_free(&r[i]);
    assert_int_equal(tu_env_close(&t->env), 0);
    free(t);
}

/* Both engines' jobs, run until both end. */
static void wait_both(tctx *a, rec *ra, tctx *b, rec *rb)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000;
    while ((!ra->done_calls || !rb->done_calls) && uv_hrtime() < deadline) {
        uv_run(&a->env.loop, UV_RUN_NOWAIT);
        uv_run(&b->env.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(ra->done_calls, 1);
    assert_int_equal(rb->done_calls, 1);
}

/* espeak-ng's state is global: the engines of one process (one per event loop) take turns
 * at it, each job with its own voice whatever the other engine spoke meanwhile, and
 * engines come and go. */
static void espeak_engines_take_turns(void **state)
{
    (void)state;
    static const char text[] = "Turns at the library, one sentence each. And another one.";
    static const char *const voices[2] = {"en-us", "en-us+f3"};
    rec solo[2];
    for (int v = 0; v < 2; v++) { /* each voice alone: what it must sound like */
        tctx *t = start(&espeak_case);
        rec_init(&solo[v], t, v + 1);
        assert_int_equal(speak_full(t, &solo[v], text, strlen(text), voices[v], 0, 0), 0);
        wait_done(t, &solo[v]);
        assert_true(solo[v].naudio > 0);
        stop(t);
    }
    /* the voices differ in pitch: a job given the other's voice would show */
    double f0[2] = {median_f0(solo[0].audio, solo[0].naudio),
                    median_f0(solo[1].audio, solo[1].naudio)};
    assert_true(f0[1] > 1.3 * f0[0]);
    tctx *a = start(&espeak_case), *b = start(&espeak_case);
    for (int round = 0; round < 4; round++) {
        rec ra, rb;
        rec_init(&ra, a, 1);
        rec_init(&rb, b, 2);
        assert_int_equal(speak_full(a, &ra, text, strlen(text), voices[0], 0, 0), 0);
        assert_int_equal(speak_full(b, &rb, text, strlen(text), voices[1], 0, 0), 0);
        wait_both(a, &ra, b, &rb);
        rec *got[2] = {&ra, &rb};
        for (int v = 0; v < 2; v++) { /* the same speech (within what the library's
                                         state between sentences changes: < 1%) */
            assert_int_equal(got[v]->err, 0);
            assert_int_equal(got[v]->ns, solo[v].ns);
            assert_true(got[v]->naudio * 100 > solo[v].naudio * 99 &&
                        got[v]->naudio * 100 < solo[v].naudio * 101);
            double f = median_f0(got[v]->audio, got[v]->naudio);
            assert_true(f > 0.9 * f0[v] && f < 1.1 * f0[v]);
        }
        rec_free(&ra);
        rec_free(&rb);
    }
    stop(a);
    rec r;
    rec_init(&r, b, 1);
    speak(b, &r, "Still here.");
    wait_done(b, &r);
    assert_int_equal(r.ns, 1);
    rec_free(&r);
    stop(b);
    rec_free(&solo[0]);
    rec_free(&solo[1]);
}

static void finds_engines_by_name(void **state)
{
    (void)state;
    const cs_tts_ops *ops = &cs_tts_espeak;
    assert_int_equal(cs_tts_find("none", &ops), 0);
    assert_null(ops);
    assert_int_equal(cs_tts_find("", &ops), 0);
    assert_null(ops);
    assert_int_equal(cs_tts_find("espeak", &ops), 0);
    assert_ptr_equal(ops, &cs_tts_espeak);
    assert_int_equal(cs_tts_find("flite", &ops), 0);
    assert_ptr_equal(ops, &cs_tts_flite);
    assert_int_equal(cs_tts_find("festival", &ops), CS_ECONFIG);
}

#define EACH(test)                                                                                 \
    cmocka_unit_test_prestate(test, (void *)&espeak_case),                                         \
        cmocka_unit_test_prestate(test, (void *)&slt_case),                                        \
        cmocka_unit_test_prestate(test, (void *)&kal_case)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_engines_by_name),
        EACH(speaks_sentence_by_sentence),
        EACH(rate_and_pitch_are_heard),
        EACH(cancel_stops_everything),
        EACH(calls_take_turns),
        EACH(queue_is_bounded),
        EACH(bad_voice_at_create),
        EACH(bad_voice_in_a_job),
        EACH(bad_input_is_refused),
        cmocka_unit_test_prestate(long_audio_is_cut, (void *)&espeak_case),
        cmocka_unit_test_prestate(long_audio_is_cut, (void *)&kal_case),
        EACH(destroy_with_jobs_in_flight),
        cmocka_unit_test(espeak_engines_take_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
