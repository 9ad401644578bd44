/* Cloud voices end to end: AGENT=llm on the fake chat API speaking through TTS=openai or
 * TTS=elevenlabs, each against its local fake (tests/unit/openai_tts_fake.h,
 * elevenlabs_fake.h), a caller on a media stream (it_phone) hearing the greeting, asking
 * (pocketsphinx hears it) and hearing the answer as the model streams it. Then the cloud
 * voice failing (an HTTP error, a refused key): espeak-ng answers instead, the call goes
 * on, a tts_fallback event says why and /metrics counts it. The keys never reach the log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "elevenlabs_fake.h"
#include "integ_util.h"
#include "llm_fake.h"
#include "openai_tts_fake.h"

#define LLM_KEY "sk-llm-0123456789"
#define OA_KEY  "sk-speech-0123456789SECRET"
#define EL_KEY  "xi-speech-0123456789SECRET"
#define WAIT_MS 40000

static const char greeting[] = "Hello, how can I help you today?";
static const char reply[] = "Sure. I will go forward ten meters now.";

typedef struct rig {
    llm_fake *llm;
    oa_fake *oa;
    el_fake *el;
    it_server s;
} rig;

/* The gateway on the fakes; `tts` the extra settings of the voice. */
static bool rig_up(rig *r, const char *const *tts)
{
    static const llm_fake_reply script[] = {{.kind = LLM_FAKE_TEXT, .text = reply, .every_ms = 10}};
    llm_fake_opts o = {.script = script, .nscript = 1, .api_key = LLM_KEY};
    IT_CHECK(llm_fake_start(&r->llm, &o) == 0, "no fake LLM");
    const char *args[64] = {"--agent",
                            "llm",
                            "--llm-url",
                            llm_fake_url(r->llm),
                            "--llm-model",
                            "fake-model",
                            "--llm-api-key",
                            LLM_KEY,
                            "--llm-greeting",
                            greeting,
                            "--stt",
                            "pocketsphinx",
                            "--stt-max-sessions",
                            "1"};
    size_t n = 14;
    for (size_t i = 0; tts[i] && n + 1 < 64; i++) args[n++] = tts[i];
    return it_server_up(&r->s, args);
}

static void rig_down(rig *r)
{
    IT_CHECK(it_server_stop(&r->s, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&r->s, OA_KEY) == 0 && it_log_count(&r->s, EL_KEY) == 0,
             "a speech API key is in the log");
    it_server_cleanup(&r->s);
    llm_fake_free(r->llm);
    if (r->oa) oa_fake_free(r->oa);
    if (r->el) el_fake_free(r->el);
}

static bool heard(const it_phone *p, void *data)
{
    (void)data;
    return p->heard;
}

/* A call: the greeting heard, the caller's question, the answer heard; the bytes of
 * speech each brought in *greeting_bytes and *answer_bytes. */
static void converse(rig *r, const char *sid, uint64_t *greeting_bytes, uint64_t *answer_bytes)
{
    it_phone p;
    char stream[40];
    snprintf(stream, sizeof stream, "MZ%s", sid + 2);
    IT_CHECK(it_phone_start(&p, r->s.port, sid, stream, NULL) == 0, "no media stream");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "no greeting heard");
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "the greeting did not end");
    *greeting_bytes = p.media_bytes;
    IT_CHECK(it_phone_say(&p, it_corpus("ulaw8k/pocketsphinx_goforward.wav")) == 0, "no clip");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "no answer heard");
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "the answer did not end");
    *answer_bytes = p.media_bytes - *greeting_bytes;
    it_phone_hangup(&p);
    it_phone_free(&p);
}

/* μ-law bytes of OpenAI's (fake) speech for every request it answered. */
static uint64_t openai_bytes(rig *r, unsigned *requests)
{
    uint64_t total = 0;
    cs_buf body = CS_BUF_INIT(1 << 20);
    for (*requests = 0; oa_fake_request(r->oa, *requests, &body); (*requests)++) {
        cJSON *j = cJSON_Parse(body.data);
        total += (oa_fake_samples(it_str(j, "input")) + 1) / 3;
        cJSON_Delete(j);
    }
    cs_buf_free(&body);
    return total;
}

static double metric(rig *r, const char *series)
{
    return it_metric(r->s.port, series);
}

static void openai_answers(void)
{
    rig r = {0};
    oa_fake_opts o = {.api_key = OA_KEY};
    IT_CHECK(oa_fake_start(&r.oa, &o) == 0, "no fake speech API");
    const char *tts[] = {
        "--tts", "openai", "--openai-api-key", OA_KEY, "--openai-tts-url", oa_fake_url(r.oa), NULL};
    if (!rig_up(&r, tts)) return rig_down(&r);
    uint64_t g, a;
    converse(&r, "CA20000000000000000000000000000001", &g, &a);
    unsigned requests;
    uint64_t want = openai_bytes(&r, &requests);
    /* The greeting and the answer's sentences, each its own request, all heard. */
    IT_CHECK(requests >= 2, "%u speech requests", requests);
    IT_CHECK(g > 0 && a > 0 && g + a >= want && g + a < want + 160 * requests,
             "heard %llu + %llu bytes of %llu made", (unsigned long long)g, (unsigned long long)a,
             (unsigned long long)want);
    cs_buf body = CS_BUF_INIT(1 << 20);
    IT_CHECK(oa_fake_request(r.oa, 0, &body) && strstr(body.data, greeting), "first request: %s",
             body.data ? body.data : "");
    cs_buf_free(&body);
    IT_CHECK(metric(&r, "callstream_tts_first_audio_seconds_count{engine=\"openai\"}") == requests,
             "first audio of openai");
    IT_CHECK(metric(&r, "callstream_tts_fallbacks_total") == 0, "fell back");
    rig_down(&r);
}

static void elevenlabs_answers(void)
{
    rig r = {0};
    el_fake_opts o = {.api_key = EL_KEY};
    IT_CHECK(el_fake_start(&r.el, &o) == 0, "no fake speech API");
    const char *tts[] = {"--tts", "elevenlabs",       "--elevenlabs-api-key",
                         EL_KEY,  "--elevenlabs-url", el_fake_url(r.el),
                         NULL};
    if (!rig_up(&r, tts)) return rig_down(&r);
    uint64_t g, a;
    converse(&r, "CA20000000000000000000000000000002", &g, &a);
    /* The greeting: one socket, its text and a space, EL_FAKE_BYTES_PER_CHAR a character. */
    uint64_t want = (uint64_t)(sizeof greeting) * EL_FAKE_BYTES_PER_CHAR;
    IT_CHECK(g >= want && g < want + 160, "greeting: %llu bytes, %llu made", (unsigned long long)g,
             (unsigned long long)want);
    IT_CHECK(a > 0, "no answer");
    el_fake_stats st;
    el_fake_stats_get(r.el, &st);
    IT_CHECK(st.upgrades >= 2 && st.finals == st.upgrades && st.refused == 0,
             "%u sockets, %u finals, %u refused", st.upgrades, st.finals, st.refused);
    IT_CHECK(metric(&r, "callstream_tts_first_audio_seconds_count{engine=\"elevenlabs\"}") ==
                 st.upgrades,
             "first audio of elevenlabs");
    rig_down(&r);
}

/* The call's tts_fallback events, once it is recorded. */
static int fallback_events(rig *r, const char *sid, const char *engine)
{
    cJSON *c = it_call_recorded(r->s.port, sid, 20000);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        n += !strcmp(it_str(e, "type"), "agent") && !strcmp(it_str(d, "state"), "tts_fallback") &&
             !strcmp(it_str(d, "engine"), engine) && !strcmp(it_str(d, "fallback"), "espeak");
    }
    cJSON_Delete(c);
    return n;
}

/* The speech API fails every request: espeak-ng says the greeting and the answer. */
static void openai_failing_falls_back(void)
{
    rig r = {0};
    static const oa_fake_reply script[] = {
        {.kind = OA_FAKE_ERROR, .status = 500, .message = "The server had an error"}};
    oa_fake_opts o = {.api_key = OA_KEY, .script = script, .nscript = 1};
    IT_CHECK(oa_fake_start(&r.oa, &o) == 0, "no fake speech API");
    const char *tts[] = {
        "--tts", "openai", "--openai-api-key", OA_KEY, "--openai-tts-url", oa_fake_url(r.oa), NULL};
    if (!rig_up(&r, tts)) return rig_down(&r);
    const char *sid = "CA20000000000000000000000000000003";
    uint64_t g, a;
    converse(&r, sid, &g, &a);
    IT_CHECK(g > 8000 && a > 8000, "espeak-ng's speech: %llu and %llu bytes", (unsigned long long)g,
             (unsigned long long)a);
    int n = fallback_events(&r, sid, "openai");
    IT_CHECK(n == 2, "%d tts_fallback events", n); /* the greeting's, the answer's */
    IT_CHECK(metric(&r, "callstream_tts_fallbacks_total") == 2, "fallbacks counted");
    IT_CHECK(metric(&r, "callstream_tts_first_audio_seconds_count{engine=\"espeak\"}") >= 2,
             "first audio of espeak");
    IT_CHECK(it_log_count(&r.s, "HTTP 500: The server had an error") >= 1, "why, in the log");
    rig_down(&r);
}

/* ElevenLabs refuses the key: espeak-ng speaks. */
static void elevenlabs_refused_falls_back(void)
{
    rig r = {0};
    el_fake_opts o = {.api_key = "xi-another-key"};
    IT_CHECK(el_fake_start(&r.el, &o) == 0, "no fake speech API");
    const char *tts[] = {"--tts", "elevenlabs",       "--elevenlabs-api-key",
                         EL_KEY,  "--elevenlabs-url", el_fake_url(r.el),
                         NULL};
    if (!rig_up(&r, tts)) return rig_down(&r);
    const char *sid = "CA20000000000000000000000000000004";
    uint64_t g, a;
    converse(&r, sid, &g, &a);
    IT_CHECK(g > 8000 && a > 8000, "espeak-ng's speech: %llu and %llu bytes", (unsigned long long)g,
             (unsigned long long)a);
    IT_CHECK(fallback_events(&r, sid, "elevenlabs") == 2, "tts_fallback events");
    IT_CHECK(it_log_count(&r.s, "elevenlabs: refused: HTTP 401") >= 1, "why, in the log");
    rig_down(&r);
}

static const it_case tests[] = {
    {"openai_answers", openai_answers},
    {"elevenlabs_answers", elevenlabs_answers},
    {"openai_failing_falls_back", openai_failing_falls_back},
    {"elevenlabs_refused_falls_back", elevenlabs_refused_falls_back},
};

int main(int argc, char **argv)
{
    return it_run("cloud_tts", tests, sizeof tests / sizeof *tests, argc, argv);
}
