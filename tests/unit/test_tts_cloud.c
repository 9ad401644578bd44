/* The cloud TTS engines against local fakes of their services (elevenlabs_fake,
 * openai_tts_fake): streamed audio, word timings, the key sent and never logged, errors,
 * timeouts, cancelling, many jobs at once, destroying with jobs in flight. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio/g711.h"
#include "core/err.h"
#include "elevenlabs_fake.h"
#include "net/fetch.h"
#include "openai_tts_fake.h"
#include "testutil.h"
#include "tts/tts.h"

#define KEY      "sk-test-0123456789abcdefSECRET"
#define EL_KEY   "xi-0123456789abcdefSECRET"
#define EL_VOICE "fakeVoice_01"
#define MAX_JOBS 24
#define WAIT_MS  20000

typedef struct rec {
    const cs_tts_ops *ops;
    cs_tts_job *job;
    uint8_t *audio;
    size_t naudio;
    int sentences;
    char text[256];
    cs_tts_word words[64];
    size_t nwords;
    uint32_t audio_ms;
    int done_calls, err, late_calls;
    char why[256];
    bool cancelled;
    size_t cancel_after; /* cancel once this much audio came (0: never) */
} rec;

static void on_audio(void *data, const uint8_t *ulaw, size_t n)
{
    rec *r = data;
    if (r->cancelled || r->done_calls) r->late_calls++;
    r->audio = realloc(r->audio, r->naudio + n);
    memcpy(r->audio + r->naudio, ulaw, n);
    r->naudio += n;
    if (r->cancel_after && r->naudio >= r->cancel_after && !r->cancelled) {
        r->cancelled = true;
        r->ops->cancel(r->job);
    }
}

static void on_sentence(void *data, const char *text, size_t len, const cs_tts_word *words,
                        size_t nwords, uint32_t audio_ms)
{
    rec *r = data;
    if (r->cancelled || r->done_calls) r->late_calls++;
    r->sentences++;
    snprintf(r->text, sizeof r->text, "%.*s", (int)len, text);
    r->nwords = nwords < 64 ? nwords : 64;
    if (r->nwords) memcpy(r->words, words, r->nwords * sizeof *words);
    r->audio_ms = audio_ms;
}

static void on_error(void *data, const char *why)
{
    rec *r = data;
    snprintf(r->why, sizeof r->why, "%s", why);
}

static void on_done(void *data, int err)
{
    rec *r = data;
    if (r->cancelled) r->late_calls++;
    r->done_calls++;
    r->err = err;
    r->job = NULL;
}

typedef struct tctx {
    tu_env env;
    cs_fetch *fetch;
    cs_config cfg;
    const cs_tts_ops *ops;
    cs_tts *e;
    oa_fake *oa;
    el_fake *el;
    rec r[MAX_JOBS];
    size_t nr;
} tctx;

static cs_config config(void)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.tts_voice = "";
    c.tts_rate = 175;
    c.tts_pitch = 50;
    c.tts_queue_max = 64;
    c.tts_cloud_timeout_ms = 5000;
    c.openai_api_key = KEY;
    c.openai_tts_model = "gpt-4o-mini-tts";
    c.openai_tts_voice = "alloy";
    c.elevenlabs_api_key = EL_KEY;
    c.elevenlabs_voice_id = EL_VOICE;
    c.elevenlabs_model = "eleven_flash_v2_5";
    return c;
}

static tctx *open_ctx(void)
{
    tctx *t = calloc(1, sizeof *t);
    assert_int_equal(tu_env_open(&t->env, "ctts"), 0);
    assert_int_equal(cs_fetch_open(&t->fetch, &t->env.loop), 0);
    t->cfg = config();
    return t;
}

static int create(tctx *t, const cs_tts_ops *ops)
{
    t->ops = ops;
    cs_buf err = CS_BUF_INIT(1024);
    int rc = ops->create(&t->e, &(cs_tts_env){&t->cfg, &t->env.loop, t->env.mb, t->fetch}, &err);
    if (rc < 0) print_message("create: %s\n", err.data ? err.data : "");
    cs_buf_free(&err);
    return rc;
}

static tctx *start_openai(const oa_fake_reply *script, size_t n, const char *key)
{
    tctx *t = open_ctx();
    oa_fake_opts o = {.api_key = KEY, .script = script, .nscript = n};
    assert_int_equal(oa_fake_start(&t->oa, &o), 0);
    t->cfg.openai_tts_url = (char *)oa_fake_url(t->oa);
    if (key) t->cfg.openai_api_key = (char *)key;
    assert_int_equal(create(t, &cs_tts_openai), 0);
    return t;
}

static tctx *start_el(el_fake_fault fault, unsigned every_ms, const char *key)
{
    tctx *t = open_ctx();
    el_fake_opts o = {.api_key = EL_KEY, .fault = fault, .faulty = -1, .every_ms = every_ms};
    assert_int_equal(el_fake_start(&t->el, &o), 0);
    t->cfg.elevenlabs_url = (char *)el_fake_url(t->el);
    if (key) t->cfg.elevenlabs_api_key = (char *)key;
    assert_int_equal(create(t, &cs_tts_elevenlabs), 0);
    return t;
}

static rec *say(tctx *t, const char *text)
{
    rec *r = &t->r[t->nr++];
    r->ops = t->ops;
    cs_tts_opts o = {.text = text,
                     .len = strlen(text),
                     .on_audio = on_audio,
                     .on_sentence = on_sentence,
                     .on_done = on_done,
                     .on_error = on_error,
                     .data = r};
    assert_int_equal(t->ops->speak(t->e, &o, &r->job), 0);
    return r;
}

static bool all_done(void *data)
{
    tctx *t = data;
    for (size_t i = 0; i < t->nr; i++)
        if (!t->r[i].done_calls && !t->r[i].cancelled) return false;
    return true;
}

static void run_all(tctx *t)
{
    assert_true(tu_run_until(&t->env.loop, all_done, t, WAIT_MS));
}

static bool loop_idle_fetch(void *data)
{
    tctx *t = data;
    return cs_fetch_count(t->fetch) == 0;
}

static void finish(tctx *t)
{
    /* The key went out, and never into the log. */
    assert_int_equal(tu_log_contains(KEY), 0);
    assert_int_equal(tu_log_contains(EL_KEY), 0);
    if (t->e) t->ops->destroy(t->e);
    tu_run_until(&t->env.loop, loop_idle_fetch, t, 1000);
    cs_fetch_close(t->fetch);
    for (int i = 0; i < 20; i++) uv_run(&t->env.loop, UV_RUN_NOWAIT), cs_mailbox_run(t->env.mb);
    for (size_t i = 0; i < t->nr; i++) {
        assert_int_equal(t->r[i].late_calls, 0);
        free(t->r[i].audio);
    }
    if (t->oa) oa_fake_free(t->oa);
    if (t->el) el_fake_free(t->el);
    assert_int_equal(tu_env_close(&t->env), 0);
    free(t);
}

/* ---- OpenAI ---- */

static void openai_speaks_resampled(void **state)
{
    (void)state;
    tctx *t = start_openai(NULL, 0, NULL);
    const char *text = "Hello there, how can I help you today?";
    rec *r = say(t, text);
    run_all(t);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->done_calls, 1);
    /* 24 kHz samples in, a third as many μ-law bytes out, exactly. */
    size_t in = oa_fake_samples(text);
    assert_int_equal(r->naudio, (in + 1) / 3);
    assert_int_equal(r->sentences, 1);
    assert_string_equal(r->text, text);
    assert_int_equal(r->nwords, 0); /* no timings: heard in proportion */
    assert_int_equal(r->audio_ms, r->naudio / 8);
    /* A tone, not silence: the middle of the audio has energy. */
    int16_t pcm[160];
    cs_ulaw_decode(pcm, r->audio + r->naudio / 2, 160);
    int peak = 0;
    for (int i = 0; i < 160; i++) peak = abs(pcm[i]) > peak ? abs(pcm[i]) : peak;
    assert_true(peak > 4000);
    cs_buf body = CS_BUF_INIT(1 << 16);
    assert_true(oa_fake_request(t->oa, 0, &body));
    assert_non_null(strstr(body.data, "\"model\":\"gpt-4o-mini-tts\""));
    assert_non_null(strstr(body.data, "\"voice\":\"alloy\""));
    assert_non_null(strstr(body.data, "\"response_format\":\"pcm\""));
    assert_non_null(strstr(body.data, "\"input\":\"Hello there, how can I help you today?\""));
    cs_buf_free(&body);
    oa_fake_stats st;
    oa_fake_stats_get(t->oa, &st);
    assert_int_equal(st.bad_auth, 0);
    assert_int_equal(st.answered, 1);
    cs_tts_stats ts;
    t->ops->stats(t->e, &ts);
    assert_int_equal(ts.jobs, 1);
    assert_int_equal(ts.first_audio.count, 1);
    assert_int_equal(ts.sentences, 1);
    assert_int_equal(ts.failures, 0);
    finish(t);
}

static void openai_wrong_key_reads_error_json(void **state)
{
    (void)state;
    tctx *t = start_openai(NULL, 0, "sk-wrong-key-99999999");
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_true(r->err < 0);
    assert_int_equal(r->naudio, 0);
    assert_non_null(strstr(r->why, "HTTP 401"));
    assert_non_null(strstr(r->why, "Incorrect API key provided"));
    assert_non_null(strstr(r->why, "invalid_api_key"));
    assert_null(strstr(r->why, "sk-wrong-key-99999999"));
    assert_int_equal(tu_log_contains("sk-wrong-key-99999999"), 0);
    cs_tts_stats ts;
    t->ops->stats(t->e, &ts);
    assert_int_equal(ts.failures, 1);
    finish(t);
}

static void openai_server_error(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_ERROR, .status = 503, .message = "overloaded"}};
    tctx *t = start_openai(s, 1, NULL);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_true(r->err < 0);
    assert_non_null(strstr(r->why, "HTTP 503: overloaded"));
    finish(t);
}

static void openai_cut_midway_fails(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_CUT}};
    tctx *t = start_openai(s, 1, NULL);
    rec *r = say(t, "A sentence that is cut off in the middle of its audio.");
    run_all(t);
    assert_true(r->err < 0);
    assert_true(r->naudio > 0); /* what came before the cut was passed on */
    assert_int_equal(r->sentences, 0);
    assert_true(r->why[0]);
    finish(t);
}

static void openai_silence_times_out(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_STALL}};
    tctx *t = open_ctx();
    t->cfg.tts_cloud_timeout_ms = 300;
    oa_fake_opts o = {.api_key = KEY, .script = s, .nscript = 1};
    assert_int_equal(oa_fake_start(&t->oa, &o), 0);
    t->cfg.openai_tts_url = (char *)oa_fake_url(t->oa);
    assert_int_equal(create(t, &cs_tts_openai), 0);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_int_equal(r->err, -ETIMEDOUT);
    assert_non_null(strstr(r->why, "no audio for 300 ms"));
    finish(t);
}

static void openai_unreachable(void **state)
{
    (void)state;
    tctx *t = open_ctx();
    t->cfg.openai_tts_url = "http://127.0.0.1:1/v1";
    assert_int_equal(create(t, &cs_tts_openai), 0);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_true(r->err < 0);
    assert_true(r->why[0]);
    finish(t);
}

static bool fake_saw_leave(void *data)
{
    tctx *t = data;
    oa_fake_stats st;
    oa_fake_stats_get(t->oa, &st);
    return st.left == 1 && st.live == 0;
}

static void openai_cancel_ends_the_request(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_SPEAK, .every_ms = 20}};
    tctx *t = start_openai(s, 1, NULL);
    const char *text = "A long answer that the caller talks over before it is done speaking.";
    rec *r = say(t, text);
    r->cancel_after = 1;
    run_all(t);
    assert_true(r->cancelled);
    assert_int_equal(r->done_calls, 0);
    assert_true(r->naudio < oa_fake_samples(text) / 3);
    assert_int_equal(cs_fetch_count(t->fetch), 0);
    assert_true(tu_run_until(&t->env.loop, fake_saw_leave, t, WAIT_MS));
    cs_tts_stats ts;
    t->ops->stats(t->e, &ts);
    assert_int_equal(ts.cancels, 1);
    finish(t);
}

static void openai_many_jobs_at_once(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_SPEAK, .every_ms = 5}};
    tctx *t = start_openai(s, 1, NULL);
    char texts[MAX_JOBS][64];
    for (int i = 0; i < MAX_JOBS; i++) {
        snprintf(texts[i], sizeof texts[i], "Caller number %d, hello%.*s.", i, i % 7, "!!!!!!!");
        say(t, texts[i]);
    }
    run_all(t);
    for (int i = 0; i < MAX_JOBS; i++) {
        assert_int_equal(t->r[i].err, 0);
        assert_int_equal(t->r[i].naudio, (oa_fake_samples(texts[i]) + 1) / 3);
    }
    finish(t);
}

/* Over the API's 4,096 characters: failed at once (so a voice falls back), never sent. */
static void openai_input_too_long(void **state)
{
    (void)state;
    tctx *t = start_openai(NULL, 0, NULL);
    char *text = malloc(5001);
    for (int i = 0; i < 5000; i++) text[i] = i % 5 == 4 ? ' ' : 'a';
    text[5000] = '\0';
    rec *r = say(t, text);
    free(text);
    run_all(t);
    assert_int_equal(r->err, -EMSGSIZE);
    assert_string_equal(r->why, "openai: input over 4096 characters");
    oa_fake_stats st;
    oa_fake_stats_get(t->oa, &st);
    assert_int_equal(st.requests, 0);
    finish(t);
}

static void openai_needs_a_key(void **state)
{
    (void)state;
    tctx *t = open_ctx();
    t->cfg.openai_api_key = "";
    t->cfg.openai_tts_url = "http://127.0.0.1:9/v1";
    assert_int_equal(create(t, &cs_tts_openai), CS_ECONFIG);
    t->cfg.openai_api_key = KEY;
    t->cfg.openai_tts_url = "ftp://example.com";
    assert_int_equal(create(t, &cs_tts_openai), CS_ECONFIG);
    t->e = NULL;
    finish(t);
}

static void openai_destroy_with_jobs_in_flight(void **state)
{
    (void)state;
    oa_fake_reply s[] = {{.kind = OA_FAKE_SPEAK, .every_ms = 50}};
    tctx *t = start_openai(s, 1, NULL);
    rec *a = say(t, "First of two long answers, still being spoken.");
    rec *b = say(t, "Second of two long answers, still being spoken.");
    for (int i = 0; i < 5; i++) uv_run(&t->env.loop, UV_RUN_ONCE);
    t->ops->destroy(t->e);
    t->e = NULL;
    assert_int_equal(a->done_calls + b->done_calls, 0); /* never from inside destroy */
    run_all(t);
    assert_int_equal(a->err, CS_ECLOSED);
    assert_int_equal(b->err, CS_ECLOSED);
    finish(t);
}

/* ---- ElevenLabs ---- */

static void elevenlabs_streams_audio_byte_exact(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_NONE, 0, NULL);
    const char *text = "Hello brave new world, héllo again.";
    rec *r = say(t, text);
    run_all(t);
    assert_int_equal(r->err, 0);
    /* What the fake spoke for our text (with the space the API wants at its end), byte for
     * byte. */
    cs_buf want = CS_BUF_INIT(1 << 20);
    char sent[128];
    snprintf(sent, sizeof sent, "%s ", text);
    el_fake_audio(sent, strlen(sent), &want);
    assert_int_equal(r->naudio, want.len);
    assert_memory_equal(r->audio, want.data, want.len);
    cs_buf_free(&want);
    /* Words from the alignment: each starts with its first character, 50 ms a character
     * (counted across messages). */
    assert_string_equal(r->text, text);
    static const struct {
        uint32_t off, len, ms;
    } words[] = {{0, 5, 0}, {6, 5, 300}, {12, 3, 600}, {16, 6, 800}, {23, 6, 1150}, {30, 6, 1450}};
    assert_int_equal(r->nwords, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r->words[i].off, words[i].off);
        assert_int_equal(r->words[i].len, words[i].len);
        assert_int_equal(r->words[i].start_ms, words[i].ms);
    }
    /* The request: path, query, key header, and the documented messages in order. */
    el_fake_stats st;
    el_fake_stats_get(t->el, &st);
    assert_string_equal(st.path,
                        "/v1/text-to-speech/" EL_VOICE
                        "/stream-input?model_id=eleven_flash_v2_5&output_format=ulaw_8000");
    assert_string_equal(st.key, EL_KEY);
    assert_int_equal(st.finals, 1);
    cs_buf m = CS_BUF_INIT(1 << 20);
    assert_true(el_fake_messages(t->el, 0, &m));
    char *first = m.data, *second = strchr(first, '\n') + 1, *third = strchr(second, '\n') + 1;
    assert_true(strncmp(first, "{\"text\":\" \",\"voice_settings\":{", 30) == 0);
    assert_non_null(strstr(second, "{\"text\":\"Hello brave new world, héllo again. \""));
    assert_non_null(strstr(second, "\"try_trigger_generation\":true"));
    assert_string_equal(third, "{\"text\":\"\"}\n");
    cs_buf_free(&m);
    cs_tts_stats ts;
    t->ops->stats(t->e, &ts);
    assert_int_equal(ts.first_audio.count, 1);
    assert_int_equal(ts.audio_ms, r->naudio / 8);
    finish(t);
}

static void elevenlabs_wrong_key_is_refused(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_NONE, 0, "xi-not-the-key-777777");
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_true(r->err < 0);
    assert_non_null(strstr(r->why, "HTTP 401"));
    assert_non_null(strstr(r->why, "invalid_api_key"));
    assert_int_equal(tu_log_contains("xi-not-the-key-777777"), 0);
    finish(t);
}

static void elevenlabs_error_message_then_close(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_ERROR, 0, NULL);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_int_equal(r->err, CS_EBACKEND);
    assert_non_null(strstr(r->why, "quota_exceeded"));
    assert_non_null(strstr(r->why, "exceeds your quota"));
    finish(t);
}

static void elevenlabs_cut_midway_fails(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_CUT, 0, NULL);
    rec *r = say(t, "A sentence long enough for several audio messages.");
    run_all(t);
    assert_true(r->err < 0);
    assert_int_equal(r->naudio, EL_FAKE_CHARS_PER_MSG * EL_FAKE_BYTES_PER_CHAR);
    assert_int_equal(r->sentences, 0);
    finish(t);
}

static void elevenlabs_silence_times_out(void **state)
{
    (void)state;
    tctx *t = open_ctx();
    t->cfg.tts_cloud_timeout_ms = 300;
    el_fake_opts o = {.api_key = EL_KEY, .fault = EL_FAKE_STALL, .faulty = -1};
    assert_int_equal(el_fake_start(&t->el, &o), 0);
    t->cfg.elevenlabs_url = (char *)el_fake_url(t->el);
    assert_int_equal(create(t, &cs_tts_elevenlabs), 0);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_int_equal(r->err, -ETIMEDOUT);
    finish(t);
}

static void elevenlabs_unreachable(void **state)
{
    (void)state;
    tctx *t = open_ctx();
    t->cfg.elevenlabs_url = "ws://127.0.0.1:1";
    assert_int_equal(create(t, &cs_tts_elevenlabs), 0);
    rec *r = say(t, "Hello.");
    run_all(t);
    assert_true(r->err < 0);
    assert_non_null(strstr(r->why, "elevenlabs: "));
    finish(t);
}

static bool el_socket_gone(void *data)
{
    tctx *t = data;
    el_fake_stats st;
    el_fake_stats_get(t->el, &st);
    return st.upgrades == 1 && st.live == 0;
}

static void elevenlabs_cancel_closes_the_socket(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_NONE, 30, NULL);
    rec *r = say(t, "A long answer that the caller talks over before it is done speaking.");
    r->cancel_after = 1;
    run_all(t);
    assert_true(r->cancelled);
    assert_true(tu_run_until(&t->env.loop, el_socket_gone, t, WAIT_MS));
    el_fake_stats st;
    el_fake_stats_get(t->el, &st);
    assert_int_equal(st.finals, 0); /* closed before the end */
    assert_true(r->naudio < 20 * EL_FAKE_BYTES_PER_CHAR);
    finish(t);
}

static void elevenlabs_many_jobs_at_once(void **state)
{
    (void)state;
    tctx *t = start_el(EL_FAKE_NONE, 5, NULL);
    char texts[MAX_JOBS][64];
    for (int i = 0; i < MAX_JOBS; i++) {
        snprintf(texts[i], sizeof texts[i], "Caller number %d, hello%.*s.", i, i % 7, "!!!!!!!");
        say(t, texts[i]);
    }
    run_all(t);
    cs_buf want = CS_BUF_INIT(1 << 20);
    for (int i = 0; i < MAX_JOBS; i++) {
        assert_int_equal(t->r[i].err, 0);
        char sent[80]; /* its text, and the space the engine adds */
        snprintf(sent, sizeof sent, "%.63s ", texts[i]);
        el_fake_audio(sent, strlen(sent), &want);
        assert_int_equal(t->r[i].naudio, want.len);
        assert_memory_equal(t->r[i].audio, want.data, want.len);
    }
    cs_buf_free(&want);
    el_fake_stats st;
    el_fake_stats_get(t->el, &st);
    assert_int_equal(st.upgrades, MAX_JOBS);
    assert_true(st.max_live > 1);
    finish(t);
}

static void elevenlabs_checks_settings(void **state)
{
    (void)state;
    tctx *t = open_ctx();
    t->cfg.elevenlabs_url = "ws://127.0.0.1:9";
    t->cfg.elevenlabs_api_key = "";
    assert_int_equal(create(t, &cs_tts_elevenlabs), CS_ECONFIG);
    t->cfg.elevenlabs_api_key = EL_KEY;
    t->cfg.elevenlabs_url = "https://api.elevenlabs.io";
    assert_int_equal(create(t, &cs_tts_elevenlabs), CS_ECONFIG);
    t->cfg.elevenlabs_url = "ws://127.0.0.1:9";
    t->cfg.elevenlabs_voice_id = "../etc";
    assert_int_equal(create(t, &cs_tts_elevenlabs), CS_ECONFIG);
    t->e = NULL;
    finish(t);
}

static void finds_cloud_engines(void **state)
{
    (void)state;
    const cs_tts_ops *ops;
    assert_int_equal(cs_tts_find("openai", &ops), 0);
    assert_ptr_equal(ops, &cs_tts_openai);
    assert_true(ops->cloud);
    assert_int_equal(cs_tts_find("elevenlabs", &ops), 0);
    assert_ptr_equal(ops, &cs_tts_elevenlabs);
    assert_true(ops->cloud);
    assert_int_equal(cs_tts_find("espeak", &ops), 0);
    assert_false(ops->cloud);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the fakes write to clients that left */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_cloud_engines),
        cmocka_unit_test(openai_speaks_resampled),
        cmocka_unit_test(openai_wrong_key_reads_error_json),
        cmocka_unit_test(openai_server_error),
        cmocka_unit_test(openai_cut_midway_fails),
        cmocka_unit_test(openai_silence_times_out),
        cmocka_unit_test(openai_unreachable),
        cmocka_unit_test(openai_cancel_ends_the_request),
        cmocka_unit_test(openai_many_jobs_at_once),
        cmocka_unit_test(openai_input_too_long),
        cmocka_unit_test(openai_needs_a_key),
        cmocka_unit_test(openai_destroy_with_jobs_in_flight),
        cmocka_unit_test(elevenlabs_streams_audio_byte_exact),
        cmocka_unit_test(elevenlabs_wrong_key_is_refused),
        cmocka_unit_test(elevenlabs_error_message_then_close),
        cmocka_unit_test(elevenlabs_cut_midway_fails),
        cmocka_unit_test(elevenlabs_silence_times_out),
        cmocka_unit_test(elevenlabs_unreachable),
        cmocka_unit_test(elevenlabs_cancel_closes_the_socket),
        cmocka_unit_test(elevenlabs_many_jobs_at_once),
        cmocka_unit_test(elevenlabs_checks_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
