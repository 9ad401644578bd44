/* Call summaries end to end: a caller says a clip on a media stream, pocketsphinx
 * transcribes it, and once the call has ended and its transcription closed, the gateway
 * asks the fake chat model (JSON mode) for a summary, stores it, serves it at
 * /api/v1/calls/{sid}/summary and POSTs it, signed, to the operator's webhook as
 * call.summary. The model failing (5xx, 429 with Retry-After, no answer, an answer that is
 * not JSON, a 4xx) is retried with backoff a bounded number of times, or not at all for a
 * 4xx, and the last failure stored with its reason; no LLM, a silent call, an unknown call
 * each get their clear 404; a summary left pending by a gateway that stopped is made at
 * its next start. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "llm_fake.h"

#define HOOK_SECRET "summary-hook-secret"
#define LLM_KEY     "sk-summary-0123456789SECRET"
#define WAIT_MS     90000
#define GOOD                                                                                       \
    "{\"summary\":\"The caller asked the robot to go forward ten meters.\","                       \
    "\"key_points\":[\"go forward\",\"ten meters\"],\"action_items\":[\"move the robot\"],"        \
    "\"sentiment\":\"neutral\"}"

/* ---- the operator's webhook ---- */

typedef struct hook {
    it_hook *srv;
    int port;
    pthread_mutex_t lock;
    int summaries, bad_signature;
    char last[4096];
} hook;

static void hook_answer(void *data, const char *path, const char *body, bool signed_ok,
                        it_hook_answer *out)
{
    (void)path;
    hook *h = data;
    cJSON *j = cJSON_Parse(body);
    pthread_mutex_lock(&h->lock);
    if (j && strcmp(it_str(j, "event"), "call.summary") == 0) {
        h->summaries++;
        h->bad_signature += !signed_ok;
        snprintf(h->last, sizeof h->last, "%s", body);
    }
    pthread_mutex_unlock(&h->lock);
    cJSON_Delete(j);
    out->status = 200;
}

static bool hook_got(void *data)
{
    hook *h = data;
    pthread_mutex_lock(&h->lock);
    bool got = h->summaries > 0;
    pthread_mutex_unlock(&h->lock);
    return got;
}

/* ---- a rig: the fake model, the webhook receiver, the gateway ---- */

typedef struct rig {
    llm_fake *llm;
    hook h;
    it_server s;
} rig;

static bool rig_up(rig *r, const llm_fake_reply *script, size_t n, const char *const *extra)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->h.lock, NULL);
    r->h.srv = it_hook_start(HOOK_SECRET, hook_answer, &r->h, &r->h.port);
    llm_fake_opts o = {.script = script, .nscript = n, .api_key = LLM_KEY};
    if (script) IT_CHECK(llm_fake_start(&r->llm, &o) == 0, "no fake model");
    char hook_url[64];
    snprintf(hook_url, sizeof hook_url, "http://127.0.0.1:%d/hook", r->h.port);
    const char *args[32] = {"--stt",
                            "pocketsphinx",
                            "--stt-max-sessions",
                            "1",
                            "--stt-refine",
                            "0",
                            "--transcript-webhook-url",
                            hook_url,
                            "--transcript-webhook-secret",
                            HOOK_SECRET,
                            "--summary-retry-ms",
                            "100",
                            NULL};
    size_t k = 12;
    if (r->llm) {
        const char *more[] = {"--llm-url",  llm_fake_url(r->llm), "--llm-model",
                              "fake-model", "--llm-api-key",      LLM_KEY};
        for (size_t i = 0; i < 6; i++) args[k++] = more[i];
    }
    for (size_t i = 0; extra && extra[i]; i++) args[k++] = extra[i];
    args[k] = NULL;
    return it_server_up(&r->s, args);
}

static void rig_down(rig *r)
{
    IT_CHECK(it_server_stop(&r->s, SIGTERM, 30000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&r->s, LLM_KEY) == 0, "the API key is in the log");
    it_server_cleanup(&r->s);
    if (r->llm) llm_fake_free(r->llm);
    it_hook_stop(r->h.srv);
    pthread_mutex_destroy(&r->h.lock);
}

/* A call on a media stream: `clip` said (NULL: silence), then the caller hangs up. */
static void call(rig *r, const char *sid, const char *clip)
{
    it_phone p;
    char stream[40];
    snprintf(stream, sizeof stream, "MZ%s", sid + 2);
    IT_CHECK(it_phone_start(&p, r->s.port, sid, stream, NULL) == 0, "no media stream");
    it_phone_run(&p, 500);
    if (clip) IT_CHECK(it_phone_say(&p, it_corpus(clip)) == 0, "no clip %s", clip);
    it_phone_run(&p, clip ? 4500 : 2500);
    it_phone_hangup(&p);
    it_phone_free(&p);
}

/* GET …/summary until it is no longer pending: its answer (caller frees). */
static void summary_of(rig *r, const char *sid, it_resp *out)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/summary", sid);
    for (long long end = it_now_ms() + WAIT_MS;; it_sleep_ms(100)) {
        IT_CHECK(it_http(r->s.port, "GET", target, NULL, NULL, out) == 0, "no answer");
        bool pending = out->status == 404 && strcmp(it_str(out->json, "status"), "pending") == 0;
        if (!pending || it_now_ms() > end) return;
        it_resp_free(out);
    }
}

/* A call with `clip` said (NULL: silence) and its summary's answer, once not pending. */
static void call_summary(rig *r, const char *sid, const char *clip, it_resp *out)
{
    call(r, sid, clip);
    summary_of(r, sid, out);
}

/* The answer is a 404 with `status` and `reason` holding `why` (NULL: any); freed. */
static void no_summary(it_resp *resp, const char *status, const char *why, const char *what)
{
    IT_CHECK(resp->status == 404 && strcmp(it_str(resp->json, "status"), status) == 0 &&
                 (!why || strstr(it_str(resp->json, "reason"), why)),
             "%s: %d %s, expected 404 %s '%s'", what, resp->status, resp->body, status,
             why ? why : "");
    it_resp_free(resp);
}

static double outcome(rig *r, const char *what)
{
    char series[96];
    snprintf(series, sizeof series, "callstream_summaries_total{outcome=\"%s\"}", what);
    return it_metric(r->s.port, series);
}

/* The model failed twice (500), then answered: stored, served, POSTed, retried twice. */
static void end_to_end(void)
{
    static const llm_fake_reply script[] = {
        {LLM_FAKE_ERROR, "the model is overloaded", .status = 500},
        {LLM_FAKE_ERROR, "the model is overloaded", .status = 500},
        {LLM_FAKE_TEXT, "```json\n" GOOD "\n```"},
    };
    rig r;
    if (!rig_up(&r, script, 3, NULL)) return rig_down(&r);
    const char *sid = "CA50000000000000000000000000000001";
    call(&r, sid, "ulaw8k/pocketsphinx_goforward.wav");
    it_resp resp;
    summary_of(&r, sid, &resp);
    IT_CHECK(resp.status == 200, "summary: %d %s", resp.status, resp.body);
    IT_CHECK(strcmp(it_str(resp.json, "summary"),
                    "The caller asked the robot to go forward ten meters.") == 0 &&
                 strcmp(it_str(resp.json, "sentiment"), "neutral") == 0 &&
                 strcmp(it_str(resp.json, "call_sid"), sid) == 0 &&
                 cJSON_GetArraySize(cJSON_GetObjectItem(resp.json, "key_points")) == 2 &&
                 cJSON_GetArraySize(cJSON_GetObjectItem(resp.json, "action_items")) == 1,
             "summary: %s", resp.body);
    it_resp_free(&resp);

    /* The request: JSON mode, the model, the transcript's words. */
    llm_fake_stats st;
    llm_fake_stats_get(r.llm, &st);
    IT_CHECK(st.json_requests == 3 && st.bad_requests == 0 && st.bad_auth == 0,
             "%u JSON-mode requests, %u bad, %u unauthorized", st.json_requests, st.bad_requests,
             st.bad_auth);
    cs_buf body = CS_BUF_INIT(1 << 20);
    IT_CHECK(llm_fake_json_request(r.llm, 2, &body), "no request kept");
    cJSON *req = cJSON_Parse(body.data ? body.data : "");
    const cJSON *msgs = cJSON_GetObjectItem(req, "messages");
    const char *user = it_str(cJSON_GetArrayItem(msgs, 1), "content");
    IT_CHECK(strcmp(it_str(req, "model"), "fake-model") == 0 &&
                 strcmp(it_str(cJSON_GetObjectItem(req, "response_format"), "type"),
                        "json_object") == 0 &&
                 strstr(user, "Caller: ") && strstr(user, "forward"),
             "request: %.600s", body.data);
    cJSON_Delete(req);
    cs_buf_free(&body);

    /* The call's row has it; the operator got it, signed. */
    cJSON *c = it_call(r.s.port, sid);
    IT_CHECK(strcmp(it_str(c, "summary_status"), "done") == 0 &&
                 cJSON_IsObject(cJSON_GetObjectItem(c, "summary")),
             "the call's row has no summary");
    cJSON_Delete(c);
    IT_CHECK(it_until(hook_got, &r.h, WAIT_MS), "the webhook got no call.summary");
    pthread_mutex_lock(&r.h.lock);
    cJSON *w = cJSON_Parse(r.h.last);
    IT_CHECK(r.h.summaries == 1 && r.h.bad_signature == 0 &&
                 strcmp(it_str(w, "call_sid"), sid) == 0 &&
                 strcmp(it_str(cJSON_GetObjectItem(w, "summary"), "sentiment"), "neutral") == 0,
             "%d call.summary deliveries (%d badly signed): %s", r.h.summaries, r.h.bad_signature,
             r.h.last);
    cJSON_Delete(w);
    pthread_mutex_unlock(&r.h.lock);
    IT_CHECK(outcome(&r, "requested") == 1 && outcome(&r, "done") == 1 &&
                 outcome(&r, "retried") == 2 && outcome(&r, "failed") == 0,
             "metrics: requested %.0f done %.0f retried %.0f failed %.0f", outcome(&r, "requested"),
             outcome(&r, "done"), outcome(&r, "retried"), outcome(&r, "failed"));
    rig_down(&r);
}

/* One failing script on one call: the stored outcome, and the requests the model got. */
static void failing(const llm_fake_reply *script, size_t n, const char *const *extra,
                    const char *sid, int want_status, const char *want, unsigned want_requests)
{
    rig r;
    if (!rig_up(&r, script, n, extra)) return rig_down(&r);
    it_resp resp;
    call_summary(&r, sid, "ulaw8k/pocketsphinx_goforward.wav", &resp);
    if (want_status == 404) {
        no_summary(&resp, "failed", want, sid);
    } else {
        IT_CHECK(resp.status == 200 && strstr(it_str(resp.json, "summary"), want),
                 "%s: %d %s, expected 200 with '%s'", sid, resp.status, resp.body, want);
        it_resp_free(&resp);
    }
    llm_fake_stats st;
    llm_fake_stats_get(r.llm, &st);
    IT_CHECK(st.json_requests == want_requests, "%s: %u requests, expected %u", sid,
             st.json_requests, want_requests);
    IT_CHECK(outcome(&r, want_status == 200 ? "done" : "failed") == 1 &&
                 outcome(&r, "retried") == want_requests - 1,
             "%s: done %.0f failed %.0f retried %.0f", sid, outcome(&r, "done"),
             outcome(&r, "failed"), outcome(&r, "retried"));
    rig_down(&r);
}

/* Always 503: four attempts, then failed with the model's last words. */
static void always_failing(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_ERROR, "no capacity", .status = 503}};
    failing(script, 1, NULL, "CA50000000000000000000000000000002", 404,
            "HTTP 503: no capacity (server_error) (after 4 attempts)", 4);
}

/* A 4xx other than 429 is not tried again. */
static void refused_not_retried(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_ERROR, "context too long", .status = 400}};
    failing(script, 1, NULL, "CA50000000000000000000000000000003", 404,
            "HTTP 400: context too long", 1);
}

/* 429 with Retry-After, an answer that is not JSON, content that is not the JSON asked
 * for: each tried again, then the good answer. */
static void garbage_and_429_retried(void)
{
    static const llm_fake_reply script[] = {
        {LLM_FAKE_ERROR, "slow down", .status = 429, .retry_after_s = 1},
        {LLM_FAKE_MALFORMED},
        {LLM_FAKE_TEXT, "Sure! Here is your summary: the caller wants to go forward."},
        {LLM_FAKE_TEXT, GOOD},
    };
    failing(script, 4, NULL, "CA50000000000000000000000000000004", 200, "go forward ten meters", 4);
}

/* No answer within SUMMARY_TIMEOUT_MS, every time. */
static void timeouts(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_STALL}};
    const char *extra[] = {"--summary-timeout-ms", "300", NULL};
    failing(script, 1, extra, "CA50000000000000000000000000000005", 404,
            "the model did not answer in time (after 4 attempts)", 4);
}

/* A model nobody answers for (the connection refused): tried again, then failed. */
static void unreachable(void)
{
    const char *extra[] = {"--llm-url", "http://127.0.0.1:1/v1", "--llm-model", "m", NULL};
    rig r;
    if (!rig_up(&r, NULL, 0, extra)) return rig_down(&r);
    it_resp resp;
    call_summary(&r, "CA5000000000000000000000000000000a", "ulaw8k/pocketsphinx_goforward.wav",
                 &resp);
    no_summary(&resp, "failed", "(after 4 attempts)", "unreachable");
    IT_CHECK(outcome(&r, "failed") == 1 && outcome(&r, "retried") == 3 &&
                 it_metric(r.s.port, "callstream_summary_requests_total") == 4,
             "failed %.0f retried %.0f", outcome(&r, "failed"), outcome(&r, "retried"));
    rig_down(&r);
}

/* No LLM_URL: no_llm. A call nobody has: 404 no such call. No token: 401. */
static void no_llm_and_unknown(void)
{
    rig r;
    if (!rig_up(&r, NULL, 0, NULL)) return rig_down(&r);
    it_resp resp;
    call_summary(&r, "CA50000000000000000000000000000006", "ulaw8k/pocketsphinx_goforward.wav",
                 &resp);
    no_summary(&resp, "no_llm", "LLM_URL", "no LLM");
    IT_CHECK(it_http(r.s.port, "GET", "/api/v1/calls/CA5000000000000000000000000000dead/summary",
                     NULL, NULL, &resp) == 0 &&
                 resp.status == 404 && strstr(resp.body, "no such call"),
             "unknown call: %d %s", resp.status, resp.body);
    it_resp_free(&resp);
    IT_CHECK(it_http_browser(r.s.port, "GET",
                             "/api/v1/calls/"
                             "CA50000000000000000000000000000006"
                             "/summary",
                             NULL, NULL, &resp) == 0 &&
                 resp.status == 401,
             "without a credential: %d", resp.status);
    it_resp_free(&resp);
    IT_CHECK(it_metric(r.s.port, "callstream_summaries_total{outcome=\"requested\"}") < 0,
             "summary metrics without a summarizer");
    /* A model set up later: the call that ended before is never summarized, and says so
     * once it has ended a while ago (rather than "pending" for ever). */
    IT_CHECK(it_server_stop(&r.s, SIGTERM, 30000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_sql_exec(it_db(&r.s), "UPDATE calls SET ended_at = ended_at - 120000") == 0,
             "cannot age the call");
    static const llm_fake_reply good[] = {{LLM_FAKE_TEXT, GOOD}};
    llm_fake_opts o = {.script = good, .nscript = 1, .api_key = LLM_KEY};
    IT_CHECK(llm_fake_start(&r.llm, &o) == 0, "no fake model");
    const char *args[] = {"--stt",       "none",       "--llm-url",     llm_fake_url(r.llm),
                          "--llm-model", "fake-model", "--llm-api-key", LLM_KEY,
                          NULL};
    IT_CHECK(it_server_restart(&r.s, args) == 0, "no restart");
    summary_of(&r, "CA50000000000000000000000000000006", &resp);
    no_summary(&resp, "none", "not summarized", "ended before the model");
    rig_down(&r);
}

/* SUMMARY=0: off, and the model is never asked. */
static void turned_off(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_TEXT, GOOD}};
    const char *extra[] = {"--summary", "0", NULL};
    rig r;
    if (!rig_up(&r, script, 1, extra)) return rig_down(&r);
    const char *sid = "CA50000000000000000000000000000009";
    call(&r, sid, "ulaw8k/pocketsphinx_goforward.wav");
    char target[96];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    it_resp resp;
    for (long long end = it_now_ms() + WAIT_MS; it_now_ms() < end; it_sleep_ms(100)) {
        cJSON *t = it_get_json(r.s.port, target);
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(t, "segments"));
        cJSON_Delete(t);
        if (n > 0) break;
    }
    summary_of(&r, sid, &resp);
    no_summary(&resp, "off", "SUMMARY=0", "SUMMARY=0");
    llm_fake_stats st;
    llm_fake_stats_get(r.llm, &st);
    IT_CHECK(st.json_requests == 0 && st.requests == 0, "%u requests with SUMMARY=0",
             st.json_requests);
    rig_down(&r);
}

/* Nothing said: no_speech, and no request. */
static void silent_call(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_TEXT, GOOD}};
    rig r;
    if (!rig_up(&r, script, 1, NULL)) return rig_down(&r);
    it_resp resp;
    call_summary(&r, "CA50000000000000000000000000000007", NULL, &resp);
    no_summary(&resp, "no_speech", NULL, "silent call");
    llm_fake_stats st;
    llm_fake_stats_get(r.llm, &st);
    IT_CHECK(st.json_requests == 0 && st.requests == 0 && outcome(&r, "skipped") == 1,
             "%u requests, %.0f skipped", st.json_requests, outcome(&r, "skipped"));
    rig_down(&r);
}

/* The gateway started again on its data, with the model: the call's summary is made. */
static void restarted(rig *r, const char *sid, const char *what)
{
    const char *args[] = {"--stt",       "none",       "--llm-url",     llm_fake_url(r->llm),
                          "--llm-model", "fake-model", "--llm-api-key", LLM_KEY,
                          NULL};
    IT_CHECK(it_server_restart(&r->s, args) == 0, "no restart");
    it_resp resp;
    summary_of(r, sid, &resp);
    IT_CHECK(resp.status == 200 && strstr(it_str(resp.json, "summary"), "ten meters"),
             "after the %s: %d %s", what, resp.status, resp.body);
    it_resp_free(&resp);
}

/* The gateway stops while the model has not answered: the summary stays pending, and the
 * next start makes it. */
static void pending_resumed(void)
{
    static const llm_fake_reply stall[] = {{LLM_FAKE_STALL}};
    rig r;
    if (!rig_up(&r, stall, 1, NULL)) return rig_down(&r);
    const char *sid = "CA50000000000000000000000000000008";
    call(&r, sid, "ulaw8k/pocketsphinx_goforward.wav");
    llm_fake_stats st;
    for (long long end = it_now_ms() + WAIT_MS; it_now_ms() < end; it_sleep_ms(50)) {
        llm_fake_stats_get(r.llm, &st);
        if (st.json_requests) break;
    }
    IT_CHECK(st.json_requests == 1, "the model was never asked");
    IT_CHECK(it_server_stop(&r.s, SIGTERM, 30000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_sql(it_db(&r.s), "SELECT COUNT(*) FROM calls WHERE summary_status = 'pending'") ==
                 1,
             "the summary was not left pending");
    /* Again, with a model that answers. */
    llm_fake_free(r.llm);
    static const llm_fake_reply good[] = {{LLM_FAKE_TEXT, GOOD}};
    llm_fake_opts o = {.script = good, .nscript = 1, .api_key = LLM_KEY};
    IT_CHECK(llm_fake_start(&r.llm, &o) == 0, "no fake model");
    restarted(&r, sid, "restart");
    rig_down(&r);
}

/* The gateway dies (SIGKILL) during a call: the next start ends the call and makes its
 * summary from the transcript stored before. */
static void crashed_call(void)
{
    static const llm_fake_reply good[] = {{LLM_FAKE_TEXT, GOOD}};
    rig r;
    if (!rig_up(&r, good, 1, NULL)) return rig_down(&r);
    const char *sid = "CA5000000000000000000000000000000b";
    it_phone p;
    IT_CHECK(it_phone_start(&p, r.s.port, sid, "MZ5000000000000000000000000000000b", NULL) == 0,
             "no media stream");
    IT_CHECK(it_phone_say(&p, it_corpus("ulaw8k/pocketsphinx_goforward.wav")) == 0, "no clip");
    char target[96];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    int n = 0;
    for (long long end = it_now_ms() + WAIT_MS; n == 0 && it_now_ms() < end;) {
        it_phone_run(&p, 200);
        cJSON *t = it_get_json(r.s.port, target);
        n = cJSON_GetArraySize(cJSON_GetObjectItem(t, "segments"));
        cJSON_Delete(t);
    }
    IT_CHECK(n > 0, "nothing transcribed");
    it_server_stop(&r.s, SIGKILL, 10000);
    it_phone_free(&p);
    restarted(&r, sid, "crash");
    rig_down(&r);
}

static const it_case tests[] = {
    {"end_to_end", end_to_end},
    {"always_failing", always_failing},
    {"refused_not_retried", refused_not_retried},
    {"garbage_and_429_retried", garbage_and_429_retried},
    {"timeouts", timeouts},
    {"unreachable", unreachable},
    {"no_llm_and_unknown", no_llm_and_unknown},
    {"turned_off", turned_off},
    {"silent_call", silent_call},
    {"pending_resumed", pending_resumed},
    {"crashed_call", crashed_call},
};

int main(int argc, char **argv)
{
    return it_run("summary", tests, sizeof tests / sizeof *tests, argc, argv);
}
