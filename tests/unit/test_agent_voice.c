/* An agent's voice, with the real espeak-ng engine and the real call layer: text whole or
 * in pieces becomes utterances of sentences with their marks and text; a clear stops the
 * voice making what nobody will hear; a stream ending while it speaks leaves nothing. A
 * cloud voice (OpenAI's, against its fake) that fails has espeak-ng say the rest of the
 * utterance, with an event. */
#include "testutil.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "openai_tts_fake.h"

#include "agent/agent.h"
#include "agent/voice.h"
#include "core/err.h"

typedef struct vagent {
    cs_agent base;
    cs_voice voice;
} vagent;

/* One test's world: a loop, the engine, the calls, a fake socket. */
static struct world {
    tu_env env;
    cs_config cfg;
    cs_tts *tts;
    cs_agent_env aenv;
    cs_calls calls;
    cs_stream *s;
    vagent *agent;
    size_t media_bytes, marks, clears, media_after_clear;
    bool cleared;
    char marks_seen[512];
    char heard[512];
    int played;
    /* With a cloud voice: OpenAI's fake, espeak-ng as its fallback. */
    oa_fake *oa;
    cs_fetch *fetch;
    cs_tts *cloud;
    cs_tts_fallback fb;
    char events[2048];
} w;

static void on_event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                     int64_t at_ms, const char *detail)
{
    (void)o, (void)call, (void)s, (void)at_ms;
    size_t at = strlen(w.events);
    if (type == CS_EVENT_AGENT && detail)
        snprintf(w.events + at, sizeof w.events - at, "%s\n", detail);
}

static int sink_media(void *data, const uint8_t *ulaw, size_t n)
{
    (void)data, (void)ulaw;
    w.media_bytes += n;
    if (w.cleared) w.media_after_clear += n;
    return 0;
}

static int sink_mark(void *data, cs_str name)
{
    (void)data;
    w.marks++;
    size_t at = strlen(w.marks_seen);
    snprintf(w.marks_seen + at, sizeof w.marks_seen - at, "%.*s ", (int)name.n, name.p);
    return 0;
}

static int sink_clear(void *data)
{
    (void)data;
    w.clears++;
    return 0;
}

static int va_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s;
    vagent *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    cs_voice_init(&a->voice, &a->base, env->tts_ops, env->tts);
    a->voice.fallback = env->tts_fallback;
    w.agent = a;
    *out = &a->base;
    return 0;
}

static void va_played(cs_agent *a, const cs_heard *h)
{
    (void)a;
    w.played++;
    snprintf(w.heard, sizeof w.heard, "%s", h->text);
}

static void va_cleared(cs_agent *a, const cs_heard *h, enum cs_clear_why why)
{
    (void)why;
    snprintf(w.heard, sizeof w.heard, "%s", h->text);
    cs_voice_stop(&((vagent *)a)->voice);
}

static void va_close(cs_agent *a)
{
    cs_voice_free(&((vagent *)a)->voice);
    cs_agent_closed(a);
    free(a);
    w.agent = NULL;
}

static const cs_agent_ops voice_agent = {
    .name = "voice",
    .speaks_text = true,
    .interruptible = true,
    .open = va_open,
    .played = va_played,
    .cleared = va_cleared,
    .close = va_close,
};

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return &voice_agent;
}

/* The loop, the settings and espeak-ng. */
static int world_open(void)
{
    memset(&w, 0, sizeof w);
    if (tu_env_open(&w.env, "voice") < 0) return -1;
    w.cfg.tts_voice = "";
    w.cfg.tts_rate = 175;
    w.cfg.tts_pitch = 50;
    w.cfg.tts_threads = 1;
    w.cfg.tts_queue_max = 64;
    w.cfg.tts_cloud_timeout_ms = 5000;
    cs_buf err = CS_BUF_INIT(1024);
    int rc = cs_tts_espeak.create(&w.tts, &(cs_tts_env){&w.cfg, &w.env.loop, w.env.mb, NULL}, &err);
    if (rc < 0) fprintf(stderr, "espeak: %s\n", err.data ? err.data : cs_strerror(rc));
    cs_buf_free(&err);
    return rc < 0 ? -1 : 0;
}

/* The calls, and a two-way stream whose agent speaks with w.aenv's voice. */
static int stream_begin(void)
{
    cs_calls_init(&w.calls, NULL);
    cs_call_observer obs = {.event = on_event};
    cs_calls_observe(&w.calls, &obs);
    w.calls.talk.agent_for = agent_for;
    w.calls.talk.env = &w.aenv;
    w.calls.talk.lead_ms = 60000; /* everything goes out at once: the test's clock stands */
    cs_pevent start = {
        .type = CS_PEV_START,
        .seq = 1,
        .stream_id = CS_STR("MZ1"),
        .start = {.account_id = CS_STR("AC1"),
                  .call_id = CS_STR("CA1"),
                  .stream_id = CS_STR("MZ1"),
                  .tracks = CS_TRACK_BIT(CS_TRACK_INBOUND)},
    };
    cs_stream_sink sink = {sink_media, sink_mark, sink_clear, NULL, NULL};
    return cs_stream_begin(&w.calls, &start, CS_MODE_TWO_WAY, false, &sink, NULL, NULL, &w.s);
}

static int setup(void **state)
{
    (void)state;
    if (world_open() < 0) return -1;
    w.aenv = (cs_agent_env){.cfg = &w.cfg, .tts_ops = &cs_tts_espeak, .tts = w.tts};
    return stream_begin();
}

static int teardown(void **state)
{
    (void)state;
    cs_calls_free(&w.calls, CS_END_SHUTDOWN);
    cs_tts_espeak.destroy(w.tts);
    if (w.cloud) cs_tts_openai.destroy(w.cloud);
    for (int i = 0; i < 10; i++) uv_run(&w.env.loop, UV_RUN_NOWAIT), cs_mailbox_run(w.env.mb);
    if (w.fetch) cs_fetch_close(w.fetch);
    uv_run(&w.env.loop, UV_RUN_NOWAIT);
    if (w.oa) oa_fake_free(w.oa);
    return tu_env_close(&w.env);
}

/* The voice speaks with OpenAI's (fake) voice; espeak-ng falls back. */
static int setup_cloud(void **state)
{
    const oa_fake_reply *script = *state;
    if (world_open() < 0) return -1;
    w.cfg.openai_api_key = "sk-voice-test";
    w.cfg.openai_tts_model = "gpt-4o-mini-tts";
    w.cfg.openai_tts_voice = "alloy";
    if (script[0].kind == OA_FAKE_STALL) w.cfg.tts_cloud_timeout_ms = 300; /* not 5 s */
    size_t n = 0;
    while (script[n].kind != OA_FAKE_SPEAK || script[n].every_ms != 1) n++; /* its end */
    oa_fake_opts o = {.api_key = "sk-voice-test", .script = script, .nscript = n};
    if (oa_fake_start(&w.oa, &o) < 0 || cs_fetch_open(&w.fetch, &w.env.loop) < 0) return -1;
    w.cfg.openai_tts_url = (char *)oa_fake_url(w.oa);
    cs_buf err = CS_BUF_INIT(1024);
    int rc =
        cs_tts_openai.create(&w.cloud, &(cs_tts_env){&w.cfg, &w.env.loop, w.env.mb, w.fetch}, &err);
    if (rc < 0) fprintf(stderr, "openai: %s\n", err.data ? err.data : cs_strerror(rc));
    cs_buf_free(&err);
    if (rc < 0) return -1;
    w.fb = (cs_tts_fallback){&cs_tts_espeak, w.tts, 0};
    w.aenv = (cs_agent_env){
        .cfg = &w.cfg, .tts_ops = &cs_tts_openai, .tts = w.cloud, .tts_fallback = &w.fb};
    return stream_begin();
}

static bool quiet(void *data)
{
    (void)data;
    return !w.agent || !cs_voice_busy(&w.agent->voice);
}

static void echo(const char *name)
{
    cs_pevent ev = {.type = CS_PEV_MARK, .seq = -1, .mark = {.name = cs_str_of(name)}};
    assert_int_equal(cs_stream_event(w.s, &ev, NULL), 0);
}

static void a_text_is_spoken_sentence_by_sentence(void **state)
{
    (void)state;
    const char *text = "Hello there. How are you today?";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(cs_stream_talking(w.s));
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-s2 u1-end ");
    assert_true(w.media_bytes > 8000); /* over a second of speech */
    echo("u1-s1");
    echo("u1-s2");
    echo("u1-end");
    assert_int_equal(w.played, 1);
    assert_string_equal(w.heard, text);
}

static void pieces_make_the_same_sentences(void **state)
{
    (void)state;
    static const char *const pieces[] = {"Hel", "lo there", ". How", " are you", " today?"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(cs_voice_feed(&w.agent->voice, pieces[i], strlen(pieces[i])), 0);
    assert_int_equal(cs_voice_end(&w.agent->voice), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-s2 u1-end ");
    /* A second utterance follows the first. */
    assert_int_equal(cs_voice_say(&w.agent->voice, "Goodbye.", 8), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-s2 u1-end u2-s1 u2-end ");
}

static bool some_audio(void *data)
{
    (void)data;
    return w.media_bytes > 0;
}

static bool engine_idle(void *data)
{
    (void)data;
    cs_tts_stats st;
    cs_tts_espeak.stats(w.tts, &st);
    return st.jobs_live == 0;
}

static void a_clear_stops_the_voice(void **state)
{
    (void)state;
    const char *text = "One sentence here. Another sentence follows it. And a third one comes "
                       "after that. Then a fourth. And a fifth to end it.";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(tu_run_until(&w.env.loop, some_audio, NULL, TU_WAIT_MS));
    assert_int_equal(cs_stream_clear(w.s, CS_CLEAR_SPEECH), 0);
    w.cleared = true;
    assert_false(cs_voice_busy(&w.agent->voice));
    /* What played by then, in whole words: the start of the first sentence at most. */
    assert_true(strncmp(w.heard, "One sentence here.", strlen(w.heard)) == 0);
    /* The engine lets the job go (its worker stops within the sentence); nothing more of
     * it was sent. */
    assert_true(tu_run_until(&w.env.loop, engine_idle, NULL, TU_WAIT_MS));
    assert_int_equal(w.media_after_clear, 0);
    /* The voice speaks again afterwards. */
    assert_int_equal(cs_voice_say(&w.agent->voice, "Yes?", 4), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_true(w.media_after_clear > 0);
}

static void the_stream_ends_while_it_speaks(void **state)
{
    (void)state;
    const char *text = "A long answer that will never be finished. It goes on. And on.";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(tu_run_until(&w.env.loop, some_audio, NULL, TU_WAIT_MS));
    cs_stream_end(w.s, CS_END_STOP);
    assert_null(w.agent);
    assert_int_equal(w.calls.talk.closing, 0);
    uv_run(&w.env.loop, UV_RUN_NOWAIT); /* nothing comes back for the freed agent */
}

/* ---- a cloud voice and its fallback ---- */

#define SCRIPT_END                                                                                 \
    {                                                                                              \
        .kind = OA_FAKE_SPEAK, .every_ms = 1                                                       \
    }

static const oa_fake_reply fails_then_speaks[] = {
    {.kind = OA_FAKE_ERROR, .status = 500, .message = "The server had an error"},
    {.kind = OA_FAKE_SPEAK},
    SCRIPT_END,
};
static const oa_fake_reply cut_then_speaks[] = {
    {.kind = OA_FAKE_CUT}, {.kind = OA_FAKE_SPEAK}, SCRIPT_END};
static const oa_fake_reply stalls_then_speaks[] = {
    {.kind = OA_FAKE_STALL}, {.kind = OA_FAKE_SPEAK}, SCRIPT_END};
static const oa_fake_reply always_speaks[] = {{.kind = OA_FAKE_SPEAK}, SCRIPT_END};
static const oa_fake_reply speaks_slowly[] = {{.kind = OA_FAKE_SPEAK, .every_ms = 40}, SCRIPT_END};

static unsigned cloud_requests(void)
{
    oa_fake_stats st;
    oa_fake_stats_get(w.oa, &st);
    return st.requests;
}

static void the_cloud_voice_speaks(void **state)
{
    (void)state;
    const char *text = "Hello there. How are you today?";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-s2 u1-end ");
    /* Each sentence in a third of the fake's 24 kHz samples. */
    assert_int_equal(w.media_bytes, (oa_fake_samples("Hello there.") + 1) / 3 +
                                        (oa_fake_samples("How are you today?") + 1) / 3);
    assert_int_equal(cloud_requests(), 2);
    assert_int_equal(w.fb.utterances, 0);
    assert_null(strstr(w.events, "tts_fallback"));
}

/* The first sentence fails: espeak-ng says it and the rest of that utterance; the next
 * utterance tries the cloud voice again. */
static void a_failing_cloud_voice_falls_back(void **state)
{
    (void)state;
    const char *text = "Hello there. How are you today?";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-s2 u1-end ");
    assert_true(w.media_bytes > 8000);     /* espeak-ng's speech, over a second */
    assert_int_equal(cloud_requests(), 1); /* the second sentence went to espeak-ng alone */
    assert_int_equal(w.fb.utterances, 1);
    assert_non_null(strstr(w.events,
                           "\"state\":\"tts_fallback\",\"engine\":\"openai\","
                           "\"error\":\"openai: HTTP 500: The server had an error (server_error)\","
                           "\"fallback\":\"espeak\""));
    echo("u1-s1");
    echo("u1-s2");
    echo("u1-end");
    assert_string_equal(w.heard, text);
    size_t before = w.media_bytes;
    assert_int_equal(cs_voice_say(&w.agent->voice, "Goodbye.", 8), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_int_equal(cloud_requests(), 2);
    assert_int_equal(w.media_bytes - before, (oa_fake_samples("Goodbye.") + 1) / 3);
    assert_int_equal(w.fb.utterances, 1);
}

static void a_stream_cut_midway_falls_back(void **state)
{
    (void)state;
    assert_int_equal(cs_voice_say(&w.agent->voice, "Hello there.", 12), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-end ");
    assert_int_equal(w.fb.utterances, 1);
    assert_non_null(strstr(w.events, "\"engine\":\"openai\""));
    /* What came before the cut, then espeak-ng's whole sentence. */
    assert_true(w.media_bytes > (oa_fake_samples("Hello there.") + 1) / 6 + 4000);
}

/* A cloud voice that says nothing: after TTS_CLOUD_TIMEOUT_MS, espeak-ng speaks. */
static void a_silent_cloud_voice_falls_back(void **state)
{
    (void)state;
    assert_int_equal(cs_voice_say(&w.agent->voice, "Hello there.", 12), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-s1 u1-end ");
    assert_true(w.media_bytes > 4000);
    assert_int_equal(w.fb.utterances, 1);
    assert_non_null(strstr(w.events, "\"error\":\"openai: no audio for 300 ms\""));
}

/* TTS_FALLBACK=none: the failed sentence is not heard, and nothing says it fell back. */
static void without_a_fallback_the_sentence_is_lost(void **state)
{
    (void)state;
    w.agent->voice.fallback = NULL;
    assert_int_equal(cs_voice_say(&w.agent->voice, "Hello there.", 12), 0);
    assert_true(tu_run_until(&w.env.loop, quiet, NULL, TU_WAIT_MS));
    assert_string_equal(w.marks_seen, "u1-end ");
    assert_int_equal(w.media_bytes, 0);
    assert_null(strstr(w.events, "tts_fallback"));
}

static bool cloud_left(void *data)
{
    (void)data;
    oa_fake_stats st;
    oa_fake_stats_get(w.oa, &st);
    return st.left == 1 && cs_fetch_count(w.fetch) == 0;
}

/* Barge-in while the cloud voice streams: the request ends, nothing more is sent. */
static void a_clear_ends_the_cloud_request(void **state)
{
    (void)state;
    const char *text = "A long answer that the caller talks over before it is done speaking.";
    assert_int_equal(cs_voice_say(&w.agent->voice, text, strlen(text)), 0);
    assert_true(tu_run_until(&w.env.loop, some_audio, NULL, TU_WAIT_MS));
    assert_int_equal(cs_stream_clear(w.s, CS_CLEAR_SPEECH), 0);
    w.cleared = true;
    assert_false(cs_voice_busy(&w.agent->voice));
    assert_true(tu_run_until(&w.env.loop, cloud_left, NULL, TU_WAIT_MS));
    assert_int_equal(w.media_after_clear, 0);
    assert_int_equal(w.fb.utterances, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the fake writes to clients that left */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_text_is_spoken_sentence_by_sentence, setup, teardown),
        cmocka_unit_test_setup_teardown(pieces_make_the_same_sentences, setup, teardown),
        cmocka_unit_test_setup_teardown(a_clear_stops_the_voice, setup, teardown),
        cmocka_unit_test_setup_teardown(the_stream_ends_while_it_speaks, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(the_cloud_voice_speaks, setup_cloud, teardown,
                                                 (void *)always_speaks),
        cmocka_unit_test_prestate_setup_teardown(a_failing_cloud_voice_falls_back, setup_cloud,
                                                 teardown, (void *)fails_then_speaks),
        cmocka_unit_test_prestate_setup_teardown(a_stream_cut_midway_falls_back, setup_cloud,
                                                 teardown, (void *)cut_then_speaks),
        cmocka_unit_test_prestate_setup_teardown(a_silent_cloud_voice_falls_back, setup_cloud,
                                                 teardown, (void *)stalls_then_speaks),
        cmocka_unit_test_prestate_setup_teardown(without_a_fallback_the_sentence_is_lost,
                                                 setup_cloud, teardown, (void *)fails_then_speaks),
        cmocka_unit_test_prestate_setup_teardown(a_clear_ends_the_cloud_request, setup_cloud,
                                                 teardown, (void *)speaks_slowly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
