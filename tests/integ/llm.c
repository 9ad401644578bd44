/* AGENT=llm end to end: real calls (the simulator playing corpus speech as a caller taking
 * turns), real pocketsphinx and espeak-ng, and a local server speaking OpenAI's streaming
 * chat completions (tests/unit/llm_fake.h). The recognized words reach the model as the
 * user's message; the first sentence is heard while the rest is still being written; the
 * greeting; tools (the operator's, signed, with every way a call can fail, the round
 * limit, end_call hanging up after the goodbye); an HTTP error, a stream cut, a malformed
 * chunk and a timeout, each apologized for while the call goes on; a refused connection
 * tried once more; barge-in cancelling the request and keeping only what was heard;
 * eight conversations at once; calls ending mid-request and mid-sentence; settings
 * refused at start-up. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/wav.h"
#include "core/buf.h"
#include "integ_util.h"
#include "llm_fake.h"

#define MODEL  "fake-model"
#define KEY    "sk-test-0123456789"
#define SECRET "tools-secret"

typedef struct rig {
    llm_fake *fake; /* NULL: none (the URL refuses) */
    it_server s;
    char wav[512];
} rig;

static const char *goforward(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s", it_corpus("ulaw8k/pocketsphinx_goforward.wav"));
    return path;
}

/* The fake, unless `o` is NULL. */
static bool fake_up(rig *r, const llm_fake_opts *o)
{
    memset(r, 0, sizeof *r);
    bool ok = !o || llm_fake_start(&r->fake, o) == 0;
    IT_CHECK(ok, "no fake LLM");
    return ok;
}

/* The gateway with AGENT=llm on the fake (or on a port where nothing listens); `extra`
 * settings after the common ones. */
static bool server_up(rig *r, int decoders, const char *const *extra)
{
    char sessions[16];
    snprintf(sessions, sizeof sessions, "%d", decoders);
    const char *args[64] = {"--agent",
                            "llm",
                            "--llm-url",
                            r->fake ? llm_fake_url(r->fake) : "http://127.0.0.1:9/v1",
                            "--llm-model",
                            MODEL,
                            "--llm-api-key",
                            KEY,
                            "--stt",
                            "pocketsphinx",
                            "--stt-max-sessions",
                            sessions};
    size_t n = 12;
    for (size_t i = 0; extra && extra[i] && n + 1 < 64; i++) args[n++] = extra[i];
    if (!it_server_up(&r->s, args)) {
        if (r->fake) llm_fake_free(r->fake);
        it_server_cleanup(&r->s);
        return false;
    }
    return true;
}

static bool rig_up(rig *r, const llm_fake_opts *o, int decoders, const char *const *extra)
{
    return fake_up(r, o) && server_up(r, decoders, extra);
}

static void rig_down(rig *r)
{
    IT_CHECK(it_server_stop(&r->s, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&r->s, KEY) == 0, "the API key is in the log");
    it_server_cleanup(&r->s);
    if (r->fake) llm_fake_free(r->fake);
}

/* A caller's audio in the test's dir: clips and silences (see it_wav_compose). */
static const char *compose(rig *r, const char *name, const char *const *clips, const unsigned *gaps,
                           size_t n)
{
    snprintf(r->wav, sizeof r->wav, "%s/%s.wav", r->s.dir, name);
    IT_CHECK(it_wav_compose(r->wav, clips, gaps, n, NULL) == 0, "cannot write %s", r->wav);
    return r->wav;
}

static llm_fake_stats stats(rig *r)
{
    llm_fake_stats st;
    llm_fake_stats_get(r->fake, &st);
    return st;
}

typedef struct want {
    rig *r;
    unsigned requests;
} want;

static bool requests_came(void *data)
{
    want *w = data;
    return stats(w->r).requests >= w->requests;
}

/* The k-th request the fake took (waiting up to 40 s for it), parsed; caller frees. */
static cJSON *request(rig *r, size_t k)
{
    want w = {r, (unsigned)k + 1};
    if (!it_until(requests_came, &w, 40000)) return NULL;
    cs_buf body = CS_BUF_INIT(16u << 20);
    cJSON *j = llm_fake_request(r->fake, k, &body) ? cJSON_Parse(body.data) : NULL;
    cs_buf_free(&body);
    return j;
}

static const cJSON *message(const cJSON *req, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(req, "messages"), i);
}

static int messages(const cJSON *req)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(req, "messages"));
}

/* "role:content" of message i ("" when absent; content null as "null"). */
static const char *said_in(const cJSON *req, int i)
{
    static char out[4096];
    const cJSON *m = message(req, i);
    const cJSON *c = cJSON_GetObjectItem(m, "content");
    snprintf(out, sizeof out, "%s:%s", it_str(m, "role"),
             cJSON_IsNull(c) ? "null" : it_str(m, "content"));
    return m ? out : "";
}

/* The last message of request k that has `role`: its content. */
static const char *last_of(const cJSON *req, const char *role)
{
    const char *found = "";
    for (int i = 0; i < messages(req); i++)
        if (!strcmp(it_str(message(req, i), "role"), role))
            found = it_str(message(req, i), "content");
    return found;
}

/* The call from `from` (its SID in `sid`), once it ended, with its events. Caller frees. */
static cJSON *ended_call(rig *r, const char *from, char sid[64])
{
    if (!it_call_from(r->s.port, from, sid, 64, 10000)) return NULL;
    return it_call_recorded(r->s.port, sid, 20000);
}

/* The agent events of `state` in order; each detail in out[] (not copies). */
static int agent_events(const cJSON *call, const char *state, const cJSON **out, int cap)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (!strcmp(it_str(e, "type"), "agent") && !strcmp(it_str(d, "state"), state) && n < cap)
            out[n++] = d;
    }
    return n;
}

/* Whether `text` is what the recognizer gave for the caller in call `sid`: one of its
 * final segments, or consecutive ones joined (words said before the turn was answered). */
static bool recognized(rig *r, const char *sid, const char *text)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    for (int attempt = 0; attempt < 50; attempt++, it_sleep_ms(100)) {
        cJSON *j = it_get_json(r->s.port, target);
        const cJSON *segs = cJSON_GetObjectItem(j, "segments");
        int n = cJSON_GetArraySize(segs);
        bool found = false;
        for (int i = 0; i < n && !found; i++) {
            char joined[4096] = "";
            for (int k = i; k < n && !found; k++) {
                const cJSON *g = cJSON_GetArrayItem(segs, k);
                if (strcmp(it_str(g, "speaker"), "caller") != 0) continue;
                size_t at = strlen(joined);
                snprintf(joined + at, sizeof joined - at, "%s%s", at ? " " : "", it_str(g, "text"));
                found = strcmp(joined, text) == 0;
            }
        }
        cJSON_Delete(j);
        if (found) return true;
    }
    return false;
}

/* The caller's words as the model got them: the clip's ("go forward ten meters", give or
 * take a word) exactly as the recognizer gave them. */
static bool heard_ok(rig *r, const char *sid, const char *text)
{
    return strstr(text, "forward") && recognized(r, sid, text);
}

static double metric(rig *r, const char *series)
{
    return it_metric(r->s.port, series);
}

/* Runs the simulator for one call to its end; its exit status. */
static int call(rig *r, const char *wav, const char *from)
{
    int status = -1;
    cJSON_Delete(it_sim(&r->s, &status, "--wav %s --from %s", wav, from));
    return status;
}

/* ---- a reply streamed into the voice ---- */

static const char greeting[] = "Hello, how can I help you today?";
static const char reply[] =
    "Sure. I will go forward ten meters now. Then I will stop and wait for you.";

static long long frames_out(rig *r)
{
    cJSON *j = it_get_json(r->s.port, "/streams");
    const cJSON *st =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 0), "stats");
    long long n = cJSON_IsNumber(cJSON_GetObjectItem(st, "framesOut"))
                      ? (long long)cJSON_GetObjectItem(st, "framesOut")->valuedouble
                      : -1;
    cJSON_Delete(j);
    return n;
}

typedef struct grows {
    rig *r;
    long long from;
} grows;

static bool frames_grew(void *data)
{
    grows *g = data;
    return frames_out(g->r) > g->from;
}

/* The greeting, then the caller's words as the user's message; the reply's first sentence
 * is sent while the fake holds the rest of it back, which it gives once that is seen. */
static void plain_reply(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_TEXT, .text = reply, .every_ms = 10, .gate = true},
    };
    llm_fake_opts o = {.script = script, .nscript = 1, .api_key = KEY};
    const char *extra[] = {"--llm-greeting", greeting, NULL};
    rig r;
    if (!rig_up(&r, &o, 1, extra)) return;
    const char *clips[] = {NULL, goforward()};
    const unsigned gaps[] = {3000, 9000};
    pid_t sim =
        it_sim_spawn(&r.s, "--wav %s --from +15550010001", compose(&r, "plain", clips, gaps, 2));
    cJSON *req = request(&r, 0);
    IT_CHECK(req, "the model was never asked");
    long long before = frames_out(&r);
    /* Nothing of the reply past its first sentence has been written yet. */
    grows g = {&r, before};
    bool first = it_until(frames_grew, &g, 20000);
    IT_CHECK(first && stats(&r).answered == 0,
             "the first sentence was not sent while the rest was held back (%lld frames)", before);
    llm_fake_release(r.fake);
    int exit_status;
    cJSON_Delete(it_sim_wait(sim, &exit_status));
    IT_CHECK(exit_status == 0, "the call failed");

    IT_CHECK(messages(req) == 3, "%d messages", messages(req));
    IT_CHECK(!strcmp(said_in(req, 0), "system:You are a friendly voice assistant answering a "
                                      "phone call. Answer in one to three short spoken "
                                      "sentences, with no lists or markup. Call end_call when "
                                      "the caller is done."),
             "system prompt: %s", said_in(req, 0));
    IT_CHECK(!strcmp(said_in(req, 1), "assistant:Hello, how can I help you today?"),
             "the greeting as heard: %s", said_in(req, 1));
    char sid[64];
    cJSON *c = ended_call(&r, "+15550010001", sid);
    const char *words = it_str(message(req, 2), "content");
    IT_CHECK(!strcmp(it_str(message(req, 2), "role"), "user") && heard_ok(&r, sid, words),
             "the caller's words: %s", said_in(req, 2));
    IT_CHECK(!strcmp(it_str(req, "model"), MODEL), "model %s", it_str(req, "model"));
    llm_fake_stats st = stats(&r);
    IT_CHECK(st.requests == 1 && st.answered == 1 && st.left == 0 && st.bad_auth == 0 &&
                 st.bad_requests == 0,
             "fake: %u requests, %u answered, %u left, %u bad keys, %u bad", st.requests,
             st.answered, st.left, st.bad_auth, st.bad_requests);
    const cJSON *ev[8];
    IT_CHECK(agent_events(c, "user", ev, 8) == 1 && !strcmp(it_str(ev[0], "text"), words),
             "no user event");
    cJSON_Delete(req);
    int n = agent_events(c, "said", ev, 8);
    IT_CHECK(n == 2, "%d said events", n);
    if (n == 2) {
        IT_CHECK(!strcmp(it_str(ev[0], "said"), "greeting") &&
                     !strcmp(it_str(ev[0], "text"), greeting),
                 "greeting event: %s", it_str(ev[0], "text"));
        IT_CHECK(!strcmp(it_str(ev[1], "said"), "reply") && !strcmp(it_str(ev[1], "text"), reply) &&
                     cJSON_IsFalse(cJSON_GetObjectItem(ev[1], "cut")),
                 "reply event: %s", it_str(ev[1], "text"));
        /* The usage chunk (stream_options.include_usage) read. */
        IT_CHECK(it_num(ev[1], "promptTokens") == 12 && it_num(ev[1], "completionTokens") == 7,
                 "usage: %d, %d", it_num(ev[1], "promptTokens"), it_num(ev[1], "completionTokens"));
    }
    IT_CHECK(it_call_events(c, "turn", NULL) >= 1, "no turn event");
    cJSON_Delete(c);
    IT_CHECK(metric(&r, "callstream_llm_requests_total") == 1 &&
                 metric(&r, "callstream_llm_replies_total") == 1 &&
                 metric(&r, "callstream_llm_first_token_seconds_count") == 1,
             "llm metrics");
    rig_down(&r);
}

/* ---- tools ---- */

/* Turn 1: the operator's tool (signed, its answer fed back), a tool that does not exist,
 * arguments that are not JSON, a tool answering 500; the fifth answer is asked with
 * tool_choice none. Turn 2: a tool that never answers (its timeout), then end_call with a
 * goodbye: the call ends once it has played. */
static void tools(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_TOOL,
         .text = "Let me check.",
         .tool = "lookup",
         .args = "{\"order\":\"42\"}"},
        {.kind = LLM_FAKE_TOOL, .tool = "nosuch", .args = "{}"},
        {.kind = LLM_FAKE_TOOL, .tool = "lookup", .args = "{oops"},
        {.kind = LLM_FAKE_TOOL, .tool = "fail", .args = "{\"x\":1}"},
        {.kind = LLM_FAKE_TEXT, .text = "Your order ships tomorrow."},
        {.kind = LLM_FAKE_TOOL, .tool = "slow", .args = "{}"},
        {.kind = LLM_FAKE_TOOL,
         .text = "Goodbye.",
         .tool = "end_call",
         .args = "{\"reason\":\"done\"}"},
    };
    llm_fake_opts o = {.script = script,
                       .nscript = sizeof script / sizeof *script,
                       .tool_secret = SECRET,
                       .tool_result = "{\"status\":\"ships tomorrow\"}"};
    rig r;
    if (!fake_up(&r, &o)) return;
    /* The tools file names the fake's port. */
    char path[] = "/tmp/callstream-tools-XXXXXX";
    int fd = mkstemp(path);
    char lookup[128], fail[128], slow[128];
    llm_fake_tool_url(r.fake, "lookup", lookup, sizeof lookup);
    llm_fake_tool_url(r.fake, "fail", fail, sizeof fail);
    llm_fake_tool_url(r.fake, "slow", slow, sizeof slow);
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "[{\"name\":\"lookup\",\"description\":\"An order's status\",\"parameters\":{\"type\":"
            "\"object\",\"properties\":{\"order\":{\"type\":\"string\"}}},\"url\":\"%s\"},"
            "{\"name\":\"fail\",\"url\":\"%s\"},{\"name\":\"slow\",\"url\":\"%s\","
            "\"timeout_ms\":300}]",
            lookup, fail, slow);
    fclose(f);
    const char *extra[] = {
        "--llm-tools-file", path, "--agent-webhook-secret", SECRET, "--llm-history-chars", "400", NULL};
    bool up = server_up(&r, 1, extra);
    unlink(path);
    if (!up) return;
    const char *clips[] = {NULL, goforward(), goforward()};
    const unsigned gaps[] = {1000, 9000, 8000};
    call(&r, compose(&r, "tools", clips, gaps, 3), "+15550010002");

    cJSON *req[7];
    for (int k = 0; k < 7; k++) req[k] = request(&r, (size_t)k);
    IT_CHECK(req[6], "not every request came");
    if (req[6]) {
        /* Request 1 carries the call (with the text said before it) and its answer. */
        IT_CHECK(!strcmp(said_in(req[1], 2), "assistant:Let me check."), "%s", said_in(req[1], 2));
        const cJSON *tc =
            cJSON_GetArrayItem(cJSON_GetObjectItem(message(req[1], 2), "tool_calls"), 0);
        const cJSON *fn = cJSON_GetObjectItem(tc, "function");
        IT_CHECK(!strcmp(it_str(tc, "id"), "call_fake_0") &&
                     !strcmp(it_str(fn, "name"), "lookup") &&
                     !strcmp(it_str(fn, "arguments"), "{\"order\":\"42\"}"),
                 "the tool call kept: %s %s", it_str(tc, "id"), it_str(fn, "arguments"));
        IT_CHECK(!strcmp(said_in(req[1], 3), "tool:{\"status\":\"ships tomorrow\"}") &&
                     !strcmp(it_str(message(req[1], 3), "tool_call_id"), "call_fake_0"),
                 "the tool's answer: %s", said_in(req[1], 3));
        IT_CHECK(!strcmp(last_of(req[2], "tool"), "{\"error\":\"there is no tool named nosuch\"}"),
                 "unknown tool: %s", last_of(req[2], "tool"));
        IT_CHECK(
            !strcmp(last_of(req[3], "tool"), "{\"error\":\"the arguments are not a JSON object\"}"),
            "bad arguments: %s", last_of(req[3], "tool"));
        IT_CHECK(!strcmp(last_of(req[4], "tool"), "{\"error\":\"the tool answered HTTP 500\"}"),
                 "failing tool: %s", last_of(req[4], "tool"));
        for (int k = 0; k < 4; k++)
            IT_CHECK(!cJSON_GetObjectItem(req[k], "tool_choice"), "request %d: tool_choice", k);
        IT_CHECK(!strcmp(it_str(req[4], "tool_choice"), "none"),
                 "no tool_choice none at the limit");
        IT_CHECK(!strcmp(it_str(req[5], "tool_choice"), ""), "the limit is per turn");
        IT_CHECK(strstr(last_of(req[6], "tool"), "no answer") != NULL, "slow tool: %s",
                 last_of(req[6], "tool"));
        IT_CHECK(strstr(last_of(req[6], "user"), "forward"), "turn 2: %s", last_of(req[6], "user"));
        /* Turn 1 is over LLM_HISTORY_CHARS: dropped whole when turn 2 is asked. */
        IT_CHECK(messages(req[5]) == 2 && !strcmp(it_str(message(req[5], 1), "role"), "user"),
                 "turn 2 was asked with %d messages", messages(req[5]));
    }
    for (int k = 0; k < 7; k++) cJSON_Delete(req[k]);
    llm_fake_stats st = stats(&r);
    IT_CHECK(st.requests == 7, "%u requests: end_call asks nothing more", st.requests);
    IT_CHECK(st.tool_calls == 3 && st.tool_bad_signatures == 0, "%u tool calls, %u bad signatures",
             st.tool_calls, st.tool_bad_signatures);
    cs_buf body = CS_BUF_INIT(1 << 20);
    char name[64] = "";
    if (llm_fake_tool_call(r.fake, 0, &body, name, sizeof name)) {
        cJSON *j = cJSON_Parse(body.data);
        IT_CHECK(!strcmp(name, "lookup") && !strcmp(it_str(j, "tool"), "lookup") &&
                     !strcmp(it_str(j, "call_id"), "call_fake_0") &&
                     it_str(j, "call_sid")[0] == 'C' &&
                     !strcmp(it_str(cJSON_GetObjectItem(j, "arguments"), "order"), "42"),
                 "the tool's request: %s", body.data);
        cJSON_Delete(j);
    }
    cs_buf_free(&body);

    char sid[64];
    cJSON *c = ended_call(&r, "+15550010002", sid);
    const cJSON *ev[16];
    int n = agent_events(c, "tool", ev, 16);
    IT_CHECK(n == 6, "%d tool events", n);
    if (n == 6) {
        static const char *const names[] = {"lookup", "nosuch", "lookup",
                                            "fail",   "slow",   "end_call"};
        static const bool oks[] = {true, false, false, false, false, true};
        for (int i = 0; i < 6; i++)
            IT_CHECK(!strcmp(it_str(ev[i], "tool"), names[i]) &&
                         cJSON_IsBool(cJSON_GetObjectItem(ev[i], "ok")) &&
                         cJSON_IsTrue(cJSON_GetObjectItem(ev[i], "ok")) == oks[i],
                     "tool event %d: %s", i, it_str(ev[i], "tool"));
    }
    n = agent_events(c, "said", ev, 16);
    IT_CHECK(n >= 1 && !strcmp(it_str(ev[n - 1], "text"), "Goodbye.") &&
                 cJSON_IsFalse(cJSON_GetObjectItem(ev[n - 1], "cut")),
             "the goodbye was not heard whole before the end");
    cJSON_Delete(c);
    IT_CHECK(it_log_count(&r.s, "the agent ends the call") == 1, "the agent did not hang up");
    IT_CHECK(metric(&r, "callstream_llm_hangups_total") == 1 &&
                 metric(&r, "callstream_llm_tool_calls_total") == 3 &&
                 metric(&r, "callstream_llm_tool_failures_total") == 2 &&
                 metric(&r, "callstream_llm_tool_rounds_limited_total") == 1 &&
                 metric(&r, "callstream_llm_history_dropped_total") == 1,
             "tool metrics");
    rig_down(&r);
}

/* ---- failures ---- */

static const char apology[] = "Sorry, I didn't catch that. Could you say it again?";

/* A 500 with OpenAI's error JSON, a stream cut midway, a malformed chunk after a whole
 * sentence, no token within LLM_TIMEOUT_MS (keep-alive comments only), a stream stalled
 * after its first sentence: each is apologized for and said in an event, what was whole
 * of the answer is said, and the next turn is answered. */
static void failures(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_ERROR, .status = 500, .text = "the fake is down"},
        {.kind = LLM_FAKE_CUT, .text = "I was saying some"},
        {.kind = LLM_FAKE_MALFORMED, .text = "Well, let me see. Hmm"},
        {.kind = LLM_FAKE_STALL, .every_ms = 200},
        {.kind = LLM_FAKE_TEXT, .text = "Hold on. I will", .gate = true},
        {.kind = LLM_FAKE_TEXT, .text = "All good now."},
    };
    llm_fake_opts o = {.script = script, .nscript = 6, .api_key = KEY};
    const char *extra[] = {"--llm-timeout-ms", "1500", "--llm-history-turns", "2", NULL};
    rig r;
    if (!rig_up(&r, &o, 1, extra)) return;
    const char *clips[7] = {NULL};
    unsigned gaps[7] = {500};
    for (int i = 1; i < 7; i++) clips[i] = goforward(), gaps[i] = 6000;
    IT_CHECK(call(&r, compose(&r, "failures", clips, gaps, 7), "+15550010003") == 0,
             "the call did not go on");
    cJSON *last_req = request(&r, 5);
    IT_CHECK(last_req, "the sixth turn was not asked");
    cJSON_Delete(last_req);
    cJSON *req = request(&r, 4);
    /* LLM_HISTORY_TURNS 2: turns 1 to 3 dropped, oldest first. */
    IT_CHECK(req && messages(req) == 4 &&
                 !strcmp(said_in(req, 2), "assistant:Sorry, I didn't "
                                          "catch that. Could you say it "
                                          "again?"),
             "the fifth turn: %d messages", req ? messages(req) : 0);
    IT_CHECK(metric(&r, "callstream_llm_history_dropped_total") == 4, "dropped: %g",
             metric(&r, "callstream_llm_history_dropped_total"));
    cJSON_Delete(req);
    req = request(&r, 1);
    IT_CHECK(req && messages(req) == 4 &&
                 !strcmp(said_in(req, 2), "assistant:Sorry, I didn't catch "
                                          "that. Could you say it again?"),
             "the apology in history: %s", said_in(req, 2));
    cJSON_Delete(req);

    char sid[64];
    cJSON *c = ended_call(&r, "+15550010003", sid);
    const cJSON *ev[16];
    int n = agent_events(c, "error", ev, 16);
    static const char *const kinds[] = {"http", "cut", "malformed", "timeout", "timeout"};
    IT_CHECK(n == 5, "%d error events", n);
    for (int i = 0; i < n && i < 5; i++)
        IT_CHECK(!strcmp(it_str(ev[i], "kind"), kinds[i]), "error %d: %s: %s", i,
                 it_str(ev[i], "kind"), it_str(ev[i], "message"));
    if (n == 5) {
        IT_CHECK(it_num(ev[0], "status") == 500 &&
                     strstr(it_str(ev[0], "message"), "the fake is down (server_error)"),
                 "the 500: %s", it_str(ev[0], "message"));
        IT_CHECK(strstr(it_str(ev[2], "message"), "not JSON"), "malformed: %s",
                 it_str(ev[2], "message"));
        IT_CHECK(strstr(it_str(ev[3], "message"), "no token within 1500 ms"), "timeout: %s",
                 it_str(ev[3], "message"));
        IT_CHECK(strstr(it_str(ev[4], "message"), "the stream stalled for 1500 ms"), "stall: %s",
                 it_str(ev[4], "message"));
    }
    n = agent_events(c, "said", ev, 16);
    int apologies = 0;
    int whole_sentences = 0;
    bool last = false;
    for (int i = 0; i < n; i++) {
        apologies +=
            !strcmp(it_str(ev[i], "said"), "apology") && !strcmp(it_str(ev[i], "text"), apology);
        whole_sentences += !strcmp(it_str(ev[i], "text"), "Well, let me see.") ||
                           !strcmp(it_str(ev[i], "text"), "Hold on.");
        last = !strcmp(it_str(ev[i], "text"), "All good now.");
    }
    IT_CHECK(apologies == 5, "%d apologies heard", apologies);
    IT_CHECK(whole_sentences == 2, "the sentences complete before a failure were not said");
    IT_CHECK(last, "the turn after the failures was not answered");
    cJSON_Delete(c);
    static const char *const series[] = {"callstream_llm_failures_total{kind=\"http\"}",
                                         "callstream_llm_failures_total{kind=\"cut\"}",
                                         "callstream_llm_failures_total{kind=\"malformed\"}",
                                         "callstream_llm_failures_total{kind=\"timeout\"}"};
    for (int i = 0; i < 4; i++)
        IT_CHECK(metric(&r, series[i]) == (i == 3 ? 2 : 1), "%s", series[i]);
    IT_CHECK(metric(&r, "callstream_llm_failures_total{kind=\"connect\"}") == 0, "connect");
    rig_down(&r);
}

/* Nothing listens at LLM_URL: the request is tried once more, then apologized for. */
static void refused_connection(void)
{
    rig r;
    if (!rig_up(&r, NULL, 1, NULL)) return;
    const char *clips[] = {NULL, goforward()};
    const unsigned gaps[] = {500, 5000};
    IT_CHECK(call(&r, compose(&r, "refused", clips, gaps, 2), "+15550010004") == 0, "the call");
    char sid[64];
    cJSON *c = ended_call(&r, "+15550010004", sid);
    const cJSON *ev[4];
    IT_CHECK(agent_events(c, "error", ev, 4) == 1 && !strcmp(it_str(ev[0], "kind"), "connect"),
             "no connect error event");
    IT_CHECK(agent_events(c, "said", ev, 4) == 1 && !strcmp(it_str(ev[0], "text"), apology),
             "no apology");
    cJSON_Delete(c);
    IT_CHECK(metric(&r, "callstream_llm_requests_ended_total{outcome=\"retried\"}") == 1 &&
                 metric(&r, "callstream_llm_requests_total") == 2 &&
                 metric(&r, "callstream_llm_failures_total{kind=\"connect\"}") == 1,
             "one retry, then a failure");
    rig_down(&r);
}

/* ---- barge-in ---- */

static const char long_reply[] =
    "Sure. I will go forward ten meters now. After that I will turn left and wait for you "
    "there. Then we can decide together where to go next, if you like.";

/* The caller speaks again while the reply plays and is still being written: clear, the
 * request cancelled (the fake sees its client leave), and the next request shows the
 * reply cut to what was heard. */
static void barge_in(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_TEXT, .text = long_reply, .every_ms = 100},
        {.kind = LLM_FAKE_TEXT, .text = "Okay, stopping."},
    };
    llm_fake_opts o = {.script = script, .nscript = 2, .api_key = KEY};
    rig r;
    if (!rig_up(&r, &o, 1, NULL)) return;
    const char *clips[] = {NULL, goforward(), goforward()};
    const unsigned gaps[] = {500, 1500, 6000};
    IT_CHECK(call(&r, compose(&r, "barge", clips, gaps, 3), "+15550010005") == 0, "the call");
    cJSON *req = request(&r, 1);
    IT_CHECK(req && messages(req) == 4, "the second turn: %d messages", req ? messages(req) : 0);
    char cut[sizeof long_reply];
    snprintf(cut, sizeof cut, "%s", it_str(message(req, 2), "content"));
    IT_CHECK(!strcmp(it_str(message(req, 2), "role"), "assistant") && cut[0] &&
                 strlen(cut) < strlen(long_reply) && !strncmp(long_reply, cut, strlen(cut)),
             "the reply in history is not cut to what was heard: '%s'", cut);
    char sid[64];
    cJSON *c = ended_call(&r, "+15550010005", sid);
    IT_CHECK(!strcmp(it_str(message(req, 3), "role"), "user") &&
                 heard_ok(&r, sid, it_str(message(req, 3), "content")),
             "%s", said_in(req, 3));
    cJSON_Delete(req);
    llm_fake_stats st = stats(&r);
    IT_CHECK(st.left >= 1, "the fake never saw the request cancelled");
    IT_CHECK(it_call_events(c, "barge_in", NULL) >= 1, "no barge-in");
    const cJSON *ev[8];
    int n = agent_events(c, "said", ev, 8);
    IT_CHECK(n >= 1 && cJSON_IsTrue(cJSON_GetObjectItem(ev[0], "cut")) &&
                 !strcmp(it_str(ev[0], "text"), cut),
             "the said event is not the cut text");
    cJSON_Delete(c);
    IT_CHECK(metric(&r, "callstream_llm_requests_ended_total{outcome=\"cancelled\"}") >= 1,
             "no cancel counted");
    rig_down(&r);
}

/* ---- the caller going on ---- */

/* 300 ms of loud white noise (a cough, a knock) as a WAV in the test's dir. */
static const char *noise(rig *r)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/noise.wav", r->s.dir);
    int16_t pcm[2400];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < 2400; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        pcm[i] = (int16_t)((int)(x >> 49) - 16384);
    }
    cs_wav_writer w;
    IT_CHECK(cs_wav_writer_open(&w, path, 8000, 1) == 0 &&
                 cs_wav_writer_write(&w, 0, pcm, 2400) == 0 && cs_wav_writer_close(&w, false) == 0,
             "cannot write %s", path);
    return path;
}

/* The caller goes on before anything of the answer was said: the request is dropped and
 * asked again once they pause, with all their words. Three callers: one pausing long
 * enough for the voice activity detector to end their speech (its next onset drops the
 * request), one pausing only for the recognizer (its next final does), one who only
 * coughs (no final comes: the detector's end of speech asks again). */
static void caller_goes_on(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_TEXT, .text = "Too late.", .first_ms = 4000},
        {.kind = LLM_FAKE_TEXT, .text = "Both heard."},
        {.kind = LLM_FAKE_TEXT, .text = "Too late.", .first_ms = 4000},
        {.kind = LLM_FAKE_TEXT, .text = "Both heard."},
        {.kind = LLM_FAKE_TEXT, .text = "Too late.", .first_ms = 4000},
        {.kind = LLM_FAKE_TEXT, .text = "Both heard."},
    };
    llm_fake_opts o = {.script = script, .nscript = 6, .api_key = KEY};
    rig r;
    if (!rig_up(&r, &o, 1, NULL)) return;
    static const unsigned pauses[] = {900, 350};
    for (int k = 0; k < 3; k++) {
        const char *clips[] = {NULL, goforward(), k < 2 ? goforward() : noise(&r)};
        const unsigned gaps[] = {500, k < 2 ? pauses[k] : 900, 6000};
        char from[32], name[16], sid[64];
        snprintf(from, sizeof from, "+1555001002%d", k);
        snprintf(name, sizeof name, "goes-on-%d", k);
        IT_CHECK(call(&r, compose(&r, name, clips, gaps, 3), from) == 0, "call %d", k);
        cJSON *first = request(&r, (size_t)(2 * k)), *again = request(&r, (size_t)(2 * k + 1));
        cJSON *c = ended_call(&r, from, sid);
        const char *asked = last_of(first, "user"), *words = last_of(again, "user");
        printf("llm: caller %d: asked '%s', then '%s'\n", k, asked, words);
        IT_CHECK(again && messages(again) == 2, "call %d: %d messages: the dropped turn is kept", k,
                 again ? messages(again) : 0);
        if (k < 2)
            IT_CHECK(strlen(words) > strlen(asked) && !strncmp(words, asked, strlen(asked)) &&
                         heard_ok(&r, sid, words),
                     "call %d: asked again with '%s'", k, words);
        else
            IT_CHECK(!strcmp(words, asked), "the cough: asked again with '%s'", words);
        const cJSON *ev[4];
        IT_CHECK(agent_events(c, "said", ev, 4) == 1 &&
                     !strcmp(it_str(ev[0], "text"), "Both heard."),
                 "call %d: the answer to both", k);
        cJSON_Delete(first);
        cJSON_Delete(again);
        cJSON_Delete(c);
    }
    IT_CHECK(metric(&r, "callstream_llm_requests_ended_total{outcome=\"reasked\"}") == 3,
             "reasked: %g", metric(&r, "callstream_llm_requests_ended_total{outcome=\"reasked\"}"));
    rig_down(&r);
}

/* ---- many at once ---- */

/* Eight callers at once on an instant model: each heard its answer whole. */

#define CONCURRENT 8

static void many_calls(void)
{
    static const char hello[] = "Hello there. How can I help you?";
    static const llm_fake_reply script[] = {{.kind = LLM_FAKE_TEXT, .text = hello}};
    llm_fake_opts o = {.script = script, .nscript = 1, .api_key = KEY};
    rig r;
    if (!fake_up(&r, &o)) return;
    /* LLM_URL given whole, as some servers' documentation shows it. */
    char whole[128];
    snprintf(whole, sizeof whole, "%s/chat/completions/", llm_fake_url(r.fake));
    const char *extra[] = {"--llm-url", whole, NULL};
    if (!server_up(&r, CONCURRENT, extra)) return;
    const char *clips[] = {NULL, goforward()};
    const unsigned gaps[] = {500, 6000};
    const char *wav = compose(&r, "many", clips, gaps, 2);
    pid_t sims[CONCURRENT];
    for (int i = 0; i < CONCURRENT; i++)
        sims[i] = it_sim_spawn(&r.s, "--wav %s --from +155500110%02d", wav, i);
    for (int i = 0; i < CONCURRENT; i++) {
        int status;
        cJSON_Delete(it_sim_wait(sims[i], &status));
        IT_CHECK(status == 0, "call %d failed", i);
    }
    llm_fake_stats st = stats(&r);
    IT_CHECK(st.requests == CONCURRENT && st.answered == CONCURRENT && st.left == 0,
             "%u requests, %u answered, %u left", st.requests, st.answered, st.left);
    for (int i = 0; i < CONCURRENT; i++) {
        cJSON *req = request(&r, (size_t)i);
        IT_CHECK(strstr(last_of(req, "user"), "forward"), "request %d: '%s'", i,
                 last_of(req, "user"));
        cJSON_Delete(req);
        char from[32], sid[64];
        snprintf(from, sizeof from, "+155500110%02d", i);
        cJSON *c = ended_call(&r, from, sid);
        const cJSON *ev[4];
        IT_CHECK(agent_events(c, "said", ev, 4) == 1 && !strcmp(it_str(ev[0], "text"), hello) &&
                     it_call_events(c, "turn", NULL) >= 1,
                 "call %d: the reply was not heard whole", i);
        cJSON_Delete(c);
    }
    rig_down(&r);
}

/* ---- calls ending with the agent busy ---- */

/* The caller hangs up while the model has not answered, then while a reply is being
 * said and written: both requests are cancelled, the agents finish, the gateway exits
 * cleanly (under ASan: nothing leaks). */
static void ends_mid_reply(void)
{
    static const llm_fake_reply script[] = {
        {.kind = LLM_FAKE_STALL},
        {.kind = LLM_FAKE_TEXT, .text = long_reply, .every_ms = 100},
    };
    llm_fake_opts o = {.script = script, .nscript = 2, .api_key = KEY};
    rig r;
    if (!rig_up(&r, &o, 1, NULL)) return;
    const char *clips[] = {NULL, goforward()};
    const unsigned gaps[] = {500, 1500};
    const char *wav = compose(&r, "short", clips, gaps, 2);
    IT_CHECK(call(&r, wav, "+15550010006") == 0, "the first call");
    IT_CHECK(call(&r, wav, "+15550010007") == 0, "the second call");
    IT_CHECK(stats(&r).requests == 2, "%u requests", stats(&r).requests);
    char sid[64];
    cJSON *c = ended_call(&r, "+15550010007", sid);
    const cJSON *ev[4];
    IT_CHECK(agent_events(c, "said", ev, 4) == 1 && cJSON_IsTrue(cJSON_GetObjectItem(ev[0], "cut")),
             "the reply cut by the call's end");
    cJSON_Delete(c);
    IT_CHECK(metric(&r, "callstream_llm_requests_ended_total{outcome=\"cancelled\"}") == 2,
             "cancelled: %g",
             metric(&r, "callstream_llm_requests_ended_total{outcome=\"cancelled\"}"));
    rig_down(&r);
}

/* ---- settings ---- */

static void bad_settings(void)
{
    const char *no_url[] = {"--agent", "llm", NULL};
    it_refused(no_url, "AGENT=llm needs LLM_URL");
    const char *no_model[] = {"--agent", "llm", "--llm-url", "http://127.0.0.1:9/v1", NULL};
    it_refused(no_model, "LLM_MODEL: the model to ask is needed");
    const char *ftp[] = {"--agent", "llm", "--llm-url", "ftp://x/v1", "--llm-model", "m", NULL};
    it_refused(ftp, "LLM_URL: 'ftp://x/v1' is not an http(s) URL");
    const char *mute[] = {"--agent", "llm",   "--llm-url", "http://x/v1", "--llm-model",
                          "m",       "--tts", "none",      NULL};
    it_refused(mute, "AGENT=llm speaks: TTS cannot be none");
    const char *temp[] = {"--agent",           "llm",         "--llm-url",
                          "http://x/v1",       "--llm-model", "m",
                          "--llm-temperature", "hot",         NULL};
    it_refused(temp, "LLM_TEMPERATURE: 'hot' is not a number from 0 to 2");
    const char *unsigned_tools[] = {"--agent",     "llm", "--llm-url",        "http://x/v1",
                                    "--llm-model", "m",   "--llm-tools-file", "/nonexistent.json",
                                    NULL};
    it_refused(unsigned_tools, "AGENT_WEBHOOK_SECRET: needed with LLM_TOOLS_FILE");
    const char *missing[] = {"--agent",
                             "llm",
                             "--llm-url",
                             "http://x/v1",
                             "--llm-model",
                             "m",
                             "--llm-tools-file",
                             "/nonexistent.json",
                             "--agent-webhook-secret",
                             "s",
                             NULL};
    it_refused(missing, "LLM_TOOLS_FILE /nonexistent.json: No such file or directory");
    char path[] = "/tmp/callstream-tools-XXXXXX";
    int fd = mkstemp(path);
    IT_CHECK(write(fd, "[{\"name\":\"x\",\"url\":\"http://h/\",\"timeout\":1}]", 45) == 45,
             "write");
    close(fd);
    const char *typo[] = {
        "--agent",          "llm", "--llm-url",          "http://x/v1", "--llm-model", "m",
        "--llm-tools-file", path,  "--agent-webhook-secret", "s",           NULL};
    it_refused(typo, "tool 1 (x): unknown key 'timeout'");
    unlink(path);
    /* Another agent with LLM_URL unset starts as before. */
    it_server s;
    const char *echo[] = {"--agent", "echo", NULL};
    if (it_server_up(&s, echo))
        IT_CHECK(it_metric(s.port, "callstream_llm_requests_total") == -1,
                 "llm metrics without it");
    it_server_cleanup(&s);
}

static const it_case tests[] = {
    {"bad_settings", bad_settings},
    {"plain_reply", plain_reply},
    {"tools", tools},
    {"failures", failures},
    {"refused_connection", refused_connection},
    {"barge_in", barge_in},
    {"caller_goes_on", caller_goes_on},
    {"many_calls", many_calls},
    {"ends_mid_reply", ends_mid_reply},
};

int main(int argc, char **argv)
{
    return it_run("llm", tests, sizeof tests / sizeof *tests, argc, argv);
}
