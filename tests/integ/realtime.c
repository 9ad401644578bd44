/* AGENT=openai-realtime end to end: the real binary, callers on media streams (it_phone),
 * and a local server speaking OpenAI's Realtime API in its GA shape
 * (tests/unit/realtime_fake.h), which refuses beta shapes. The session's shape; audio
 * byte for byte both ways; the model's speech_started clearing the call and truncating
 * the item to what the caller heard, with the response cancelled; the call's own
 * barge-in doing the same; end_call; an `error` event; the socket dropping mid-answer
 * (reconnected, session sent again, the caller told); calls ending mid-answer; settings
 * refused at start-up. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "integ_util.h"
#include "realtime_fake.h"

#define KEY     "sk-realtime-test-0123456789"
#define WAIT_MS 30000

typedef struct rig {
    rt_fake *fake;
    it_server s;
} rig;

static bool rig_up(rig *r, const rt_fake_opts *extra, const char *const *args)
{
    memset(r, 0, sizeof *r);
    rt_fake_opts o = {.api_key = KEY, .model = "gpt-realtime"};
    if (extra) o.on_create = extra->on_create;
    if (rt_fake_start(&r->fake, &o) != 0) {
        IT_CHECK(false, "no fake Realtime server");
        return false;
    }
    const char *argv[48] = {"--agent", "openai-realtime", "--openai-api-key", KEY,
                            "--openai-realtime-url", rt_fake_url(r->fake), "--stt", "none"};
    size_t n = 8;
    for (size_t i = 0; args && args[i] && n + 1 < 48; i++) argv[n++] = args[i];
    if (!it_server_up(&r->s, argv)) {
        rt_fake_free(r->fake);
        it_server_cleanup(&r->s);
        return false;
    }
    return true;
}

static void rig_down(rig *r)
{
    IT_CHECK(it_server_stop(&r->s, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&r->s, KEY) == 0, "the API key is in the log");
    it_server_cleanup(&r->s);
    rt_fake_free(r->fake);
}

static void call(rig *r, it_phone *p, const char *sid)
{
    char stream[40];
    snprintf(stream, sizeof stream, "MZ%s", sid + 2);
    IT_CHECK(it_phone_start(p, r->s.port, sid, stream, NULL) == 0, "%s: no media stream", sid);
}

static rt_fake_stats stats(rig *r)
{
    rt_fake_stats st;
    rt_fake_stats_get(r->fake, &st);
    return st;
}

/* Conditions on the fake, for it_phone_until. */
typedef struct want {
    rig *r;
    const char *type; /* a client event's type, or NULL */
    unsigned n;       /* that many of them (or: sessions) */
} want;

static bool fake_has(const it_phone *p, void *data)
{
    (void)p;
    want *w = data;
    if (w->type) return rt_fake_count(w->r->fake, w->type) >= w->n;
    return stats(w->r).sessions >= w->n;
}

static bool wait_fake(rig *r, it_phone *p, const char *type, unsigned n)
{
    want w = {r, type, n};
    return it_phone_until(p, fake_has, &w, WAIT_MS);
}

static bool playing(const it_phone *p, void *data)
{
    return p->media_bytes >= *(uint64_t *)data;
}

static bool cleared(const it_phone *p, void *data)
{
    (void)data;
    return p->clears > 0;
}

/* The k-th client event of `type`, parsed (caller frees), NULL if none. */
static cJSON *client_event(rig *r, const char *type, size_t k)
{
    cs_buf b = CS_BUF_INIT(8u << 20);
    cJSON *j = rt_fake_event(r->fake, type, k, &b) ? cJSON_Parse(b.data) : NULL;
    cs_buf_free(&b);
    return j;
}

/* The agent events of `state` of call `sid`; the first's detail copied into *first. */
static int agent_events(rig *r, const char *sid, const char *state, cJSON **first)
{
    cJSON *c = it_call(r->s.port, sid);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (strcmp(it_str(e, "type"), "agent") || strcmp(it_str(d, "state"), state)) continue;
        if (n++ == 0 && first) *first = cJSON_Duplicate(d, true);
    }
    cJSON_Delete(c);
    return n;
}

typedef struct ev_want {
    rig *r;
    const char *sid, *state;
} ev_want;

static bool has_event(void *data)
{
    ev_want *w = data;
    return agent_events(w->r, w->sid, w->state, NULL) > 0;
}

static bool wait_event(rig *r, const char *sid, const char *state)
{
    ev_want w = {r, sid, state};
    return it_until(has_event, &w, WAIT_MS);
}

/* The call's lines of `speaker` in its transcript, joined with " | ". */
static void lines(rig *r, const char *sid, const char *speaker, char *out, size_t cap)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    cJSON *j = it_get_json(r->s.port, target);
    size_t n = 0;
    out[0] = '\0';
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "segments"))
    {
        if (strcmp(it_str(s, "speaker"), speaker) == 0 && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " | " : "", it_str(s, "text"));
    }
    cJSON_Delete(j);
}

static const char *goforward(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s", it_corpus("ulaw8k/pocketsphinx_goforward.wav"));
    return path;
}

/* ---- the bridge ---- */

static const char answer[] = "Sure, I can help with that. Where would you like to go?";
/* A long answer, its transcript streaming alongside its audio. */
static const char long_answer[] =
    "Sure. Let me see. There are three trains. The first leaves at nine. The second at ten. "
    "The third at noon. Each takes two hours. Tickets cost twenty dollars. You can buy them "
    "on board. Which one would you like?";

/* The session in the GA shape; the caller's audio reaches the model byte for byte, as it
 * was sent; the model's audio reaches the caller byte for byte, with marks; the agent's
 * line of the transcript is the model's transcript. */
static void bridge(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000001";
    it_phone p;
    cs_buf got = CS_BUF_INIT(1u << 20), sent = CS_BUF_INIT(4u << 20);
    call(&r, &p, sid);
    p.got = &got;
    p.sent = &sent;
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session.update in the GA shape");
    rt_fake_stats st = stats(&r);
    IT_CHECK(st.upgrades == 1 && st.bad_sessions == 0 && st.beta_refused == 0,
             "upgrades %u, bad sessions %u, beta %u", st.upgrades, st.bad_sessions,
             st.beta_refused);
    char auth[256], query[512];
    rt_fake_request_info(r.fake, auth, sizeof auth, query, sizeof query);
    IT_CHECK(!strcmp(auth, "Bearer " KEY), "Authorization: %s", auth);
    IT_CHECK(!strcmp(query, "model=gpt-realtime"), "query: %s", query);
    cJSON *sess = client_event(&r, "session.update", 0);
    const cJSON *s = cJSON_GetObjectItem(sess, "session");
    const cJSON *in = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "audio"), "input");
    IT_CHECK(!strcmp(it_str(cJSON_GetObjectItem(in, "turn_detection"), "type"), "server_vad"),
             "turn detection");
    IT_CHECK(strstr(it_str(s, "instructions"), "voice assistant") != NULL, "instructions: %s",
             it_str(s, "instructions"));
    IT_CHECK(cJSON_GetObjectItem(in, "transcription") != NULL, "no input transcription");
    cJSON_Delete(sess);

    IT_CHECK(it_phone_say(&p, goforward()) == 0, "cannot say the clip");
    it_phone_run(&p, 3000);
    rt_fake_reply reply = {.bytes = 12000, .text = answer}; /* 1.5 s */
    rt_fake_respond(r.fake, &reply);
    IT_CHECK(it_phone_quiet(&p, 500, WAIT_MS), "the answer was not heard");
    IT_CHECK(got.len == reply.bytes, "the caller got %zu bytes of %zu", got.len, reply.bytes);
    size_t bad = got.len;
    for (size_t i = 0; i < got.len && bad == got.len; i++)
        if ((uint8_t)got.data[i] != rt_fake_audio_byte(i)) bad = i;
    IT_CHECK(bad == got.len, "the model's audio differs at byte %zu", bad);
    IT_CHECK(p.marks_echoed >= 1, "no mark");

    cs_buf heard = CS_BUF_INIT(8u << 20);
    IT_CHECK(rt_fake_audio(r.fake, 0, &heard), "no caller audio");
    size_t n = heard.len < sent.len ? heard.len : sent.len;
    IT_CHECK(n >= 3 * 8000, "only %zu bytes of caller audio reached the model", n);
    IT_CHECK(n && !memcmp(heard.data, sent.data, n), "the caller's audio differs");
    cs_buf_free(&heard);

    char agent[1024];
    for (int i = 0; i < 50 && (lines(&r, sid, "agent", agent, sizeof agent), !agent[0]); i++)
        it_sleep_ms(100);
    IT_CHECK(!strcmp(agent, answer),
             "agent lines: %s", agent);
    /* The caller's line, as the model's transcription heard it. */
    rt_fake_speech_started(r.fake);
    rt_fake_input_transcript(r.fake, "go forward ten meters");
    char caller[1024];
    for (int i = 0; i < 50 && (lines(&r, sid, "caller", caller, sizeof caller), !caller[0]); i++)
        it_sleep_ms(100);
    IT_CHECK(!strcmp(caller, "go forward ten meters"), "caller lines: %s", caller);
    IT_CHECK(wait_event(&r, sid, "response"), "no usage event");
    cJSON *usage = NULL;
    agent_events(&r, sid, "response", &usage);
    IT_CHECK(it_num(usage, "callOutputTokens") == 50 && it_num(usage, "callInputTokens") == 100,
             "usage: %d/%d", it_num(usage, "callInputTokens"), it_num(usage, "callOutputTokens"));
    cJSON_Delete(usage);
    it_phone_hangup(&p);
    it_phone_free(&p);
    cs_buf_free(&got);
    cs_buf_free(&sent);
    rig_down(&r);
}

/* ---- interruption ---- */

/* The model hears the caller start over its answer: the call is cleared at once, the item
 * truncated to what the caller heard (by the playout: about what the phone played, never
 * past what was received) and the response, still streaming, cancelled. */
static void speech_started(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000002";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_prepared_total{outcome=\"missed\"}") == 1,
             "a stream with no webhook before it is not counted as missed");
    /* 20 s of audio, sent at 2× real time: still streaming when the caller cuts in. */
    rt_fake_reply reply = {.bytes = 160000, .delta = 320, .every_ms = 20, .text = long_answer};
    rt_fake_respond(r.fake, &reply);
    uint64_t two_s = 16000;
    IT_CHECK(it_phone_until(&p, playing, &two_s, WAIT_MS), "the answer did not start");
    long long first = it_now_ms();
    it_phone_run(&p, 1500);
    long long t = it_now_ms();
    rt_fake_speech_started(r.fake);
    IT_CHECK(it_phone_until(&p, cleared, NULL, WAIT_MS), "no clear");
    IT_CHECK(wait_fake(&r, &p, "conversation.item.truncate", 1), "no truncate");
    cJSON *tr = client_event(&r, "conversation.item.truncate", 0);
    long long end_ms = it_num(tr, "audio_end_ms");
    /* The phone played ~2 s before `first`'s mark (what was sent then had played up to
     * about there) and 1.5 s after; allow the pacing lead and the machine's noise. */
    long long played = (long long)(two_s / 8) + (t - first);
    IT_CHECK(end_ms > 0 && end_ms < 20000, "audio_end_ms %lld", end_ms);
    IT_CHECK(end_ms >= played - 1500 && end_ms <= played + 1500,
             "audio_end_ms %lld, the phone played about %lld", end_ms, played);
    IT_CHECK(!strncmp(it_str(tr, "item_id"), "item_", 5) && it_num(tr, "content_index") == 0,
             "truncate: %s %d", it_str(tr, "item_id"), it_num(tr, "content_index"));
    cJSON_Delete(tr);
    IT_CHECK(wait_fake(&r, &p, "response.cancel", 1), "the response was not cancelled");
    it_phone_run(&p, 500);
    rt_fake_stats st = stats(&r);
    IT_CHECK(st.bad_truncates == 0 && st.cancelled == 1, "bad truncates %u, cancelled %u",
             st.bad_truncates, st.cancelled);
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_truncates_total") == 1, "truncates metric");
    uint64_t after = p.media_bytes;
    it_phone_run(&p, 1000);
    IT_CHECK(p.media_bytes == after, "audio after the clear: %llu bytes",
             (unsigned long long)(p.media_bytes - after));
    IT_CHECK(p.media_bytes < 160000, "the whole answer was sent");
    /* The agent's line is what was heard of it. */
    char agent[1024];
    for (int i = 0; i < 50 && (lines(&r, sid, "agent", agent, sizeof agent), !agent[0]); i++)
        it_sleep_ms(100);
    IT_CHECK(agent[0] && strlen(agent) < strlen(long_answer) &&
                 !strncmp(agent, long_answer, strlen(agent)),
             "agent line: '%s'", agent);
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

/* The call's own voice activity detection barges in first (the caller speaks over the
 * answer): the same truncate and cancel follow. */
static void local_barge_in(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000003";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    it_phone_run(&p, 1500); /* the line's noise floor */
    rt_fake_reply reply = {.bytes = 160000, .delta = 320, .every_ms = 20, .text = answer};
    rt_fake_respond(r.fake, &reply);
    uint64_t one_s = 8000;
    IT_CHECK(it_phone_until(&p, playing, &one_s, WAIT_MS), "the answer did not start");
    IT_CHECK(it_phone_say(&p, goforward()) == 0, "cannot say the clip");
    IT_CHECK(it_phone_until(&p, cleared, NULL, WAIT_MS), "no barge-in");
    IT_CHECK(wait_fake(&r, &p, "conversation.item.truncate", 1), "no truncate");
    IT_CHECK(wait_fake(&r, &p, "response.cancel", 1), "no cancel");
    IT_CHECK(stats(&r).bad_truncates == 0, "a truncate the server refused");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

static bool cleared_n(const it_phone *p, void *data)
{
    return p->clears >= *(int *)data;
}

/* Answer after answer cut while still streaming: each cut item is let go once the model
 * is done with it, so the call goes on answering (the items in flight are bounded). */
static void many_cuts(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000014";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    for (int k = 1; k <= 20; k++) {
        rt_fake_reply reply = {.bytes = 16000, .delta = 160, .every_ms = 20, .text = answer};
        uint64_t goal = p.media_bytes + 160;
        rt_fake_respond(r.fake, &reply);
        if (!it_phone_until(&p, playing, &goal, WAIT_MS)) {
            IT_CHECK(false, "answer %d did not play", k);
            break;
        }
        rt_fake_speech_started(r.fake);
        IT_CHECK(it_phone_until(&p, cleared_n, &k, WAIT_MS), "answer %d was not cleared", k);
        IT_CHECK(wait_fake(&r, &p, "response.cancel", (unsigned)k), "answer %d not cancelled", k);
    }
    rt_fake_reply last = {.bytes = 4000, .text = "Done."};
    uint64_t goal = p.media_bytes + 4000;
    rt_fake_respond(r.fake, &last);
    IT_CHECK(it_phone_until(&p, playing, &goal, WAIT_MS), "the last answer did not play");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

/* ---- tools, errors, the connection ---- */

/* end_call: its output goes back to the model and the call ends after the goodbye. */
static void end_call(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000004";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    rt_fake_reply bye = {.bytes = 4000, .text = "Goodbye."};
    rt_fake_respond(r.fake, &bye);
    rt_fake_function_call(r.fake, "end_call", "call_bye", "{}");
    IT_CHECK(it_phone_wait_end(&p, WAIT_MS), "the call did not end");
    IT_CHECK(p.media_bytes >= 4000, "the goodbye was not played first: %llu bytes",
             (unsigned long long)p.media_bytes);
    cJSON *out = client_event(&r, "conversation.item.create", 0);
    const cJSON *item = cJSON_GetObjectItem(out, "item");
    IT_CHECK(!strcmp(it_str(item, "type"), "function_call_output") &&
                 !strcmp(it_str(item, "call_id"), "call_bye"),
             "function output: %s %s", it_str(item, "type"), it_str(item, "call_id"));
    cJSON_Delete(out);
    IT_CHECK(wait_event(&r, sid, "tool"), "no tool event");
    it_phone_free(&p);
    rig_down(&r);
}

/* The operator's tool, as the receiver saw it. */
typedef struct tool_seen {
    int calls, bad_signature;
    char body[4096];
} tool_seen;

static void tool_answer(void *data, const char *path, const char *body, bool signed_ok,
                        it_hook_answer *out)
{
    tool_seen *t = data;
    (void)path;
    t->calls++;
    if (!signed_ok) t->bad_signature++;
    snprintf(t->body, sizeof t->body, "%s", body);
    out->status = 200;
    snprintf(out->body, sizeof out->body, "{\"temp\":21}");
}

/* An operator tool (LLM_TOOLS_FILE, signed POST) in the session, called, its answer given
 * back as a function_call_output and the model asked to go on (response.create), whose
 * answer plays; an unknown tool is answered with an error. */
static void tools(void)
{
    tool_seen seen = {0};
    int port = 0;
    it_hook *hook = it_hook_start("tool-secret", tool_answer, &seen, &port);
    char path[] = "/tmp/callstream-rt-tools-XXXXXX";
    int fd = mkstemp(path);
    char file[512];
    int n = snprintf(file, sizeof file,
                     "[{\"name\":\"weather\",\"description\":\"The weather\",\"parameters\":"
                     "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}},"
                     "\"url\":\"http://127.0.0.1:%d/weather\"}]",
                     port);
    IT_CHECK(fd >= 0 && write(fd, file, (size_t)n) == n, "cannot write %s", path);
    close(fd);
    rt_fake_opts o = {.on_create = {.bytes = 8000, .text = "It is twenty one degrees."}};
    const char *args[] = {"--llm-tools-file", path, "--agent-webhook-secret", "tool-secret", NULL};
    rig r;
    if (!rig_up(&r, &o, args)) {
        it_hook_stop(hook);
        unlink(path);
        return;
    }
    const char *sid = "CA20000000000000000000000000000007";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    cJSON *sess = client_event(&r, "session.update", 0);
    const cJSON *list = cJSON_GetObjectItem(cJSON_GetObjectItem(sess, "session"), "tools");
    IT_CHECK(cJSON_GetArraySize(list) == 2 &&
                 !strcmp(it_str(cJSON_GetArrayItem(list, 0), "name"), "end_call") &&
                 !strcmp(it_str(cJSON_GetArrayItem(list, 1), "name"), "weather") &&
                 !strcmp(it_str(cJSON_GetArrayItem(list, 1), "type"), "function") &&
                 cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "parameters") &&
                 !cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "function") &&
                 !cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "url"),
             "the session's tools are not in the Realtime shape");
    cJSON_Delete(sess);
    rt_fake_function_call(r.fake, "weather", "call_w1", "{\"city\":\"Paris\"}");
    IT_CHECK(wait_fake(&r, &p, "response.create", 1), "the model was not asked to go on");
    IT_CHECK(seen.calls == 1 && seen.bad_signature == 0, "tool calls %d, bad signatures %d",
             seen.calls, seen.bad_signature);
    cJSON *body = cJSON_Parse(seen.body);
    IT_CHECK(!strcmp(it_str(body, "call_sid"), sid) && !strcmp(it_str(body, "tool"), "weather") &&
                 !strcmp(it_str(body, "call_id"), "call_w1") &&
                 !strcmp(it_str(cJSON_GetObjectItem(body, "arguments"), "city"), "Paris"),
             "the tool's body: %s", seen.body);
    cJSON_Delete(body);
    cJSON *out = client_event(&r, "conversation.item.create", 0);
    const cJSON *item = cJSON_GetObjectItem(out, "item");
    IT_CHECK(!strcmp(it_str(item, "type"), "function_call_output") &&
                 !strcmp(it_str(item, "call_id"), "call_w1") &&
                 !strcmp(it_str(item, "output"), "{\"temp\":21}"),
             "output: %s %s", it_str(item, "call_id"), it_str(item, "output"));
    cJSON_Delete(out);
    uint64_t all = 8000;
    IT_CHECK(it_phone_until(&p, playing, &all, WAIT_MS), "the answer after the tool did not play");

    rt_fake_function_call(r.fake, "nosuch", "call_x", "{}");
    IT_CHECK(wait_fake(&r, &p, "response.create", 2), "no answer after the unknown tool");
    out = client_event(&r, "conversation.item.create", 1);
    item = cJSON_GetObjectItem(out, "item");
    IT_CHECK(!strcmp(it_str(item, "call_id"), "call_x") &&
                 strstr(it_str(item, "output"), "there is no tool named nosuch"),
             "output: %s", it_str(item, "output"));
    cJSON_Delete(out);
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_tool_failures_total") == 1, "failures");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
    it_hook_stop(hook);
    unlink(path);
}

/* A server `error` becomes an agent event with its kind, code and message; the call goes
 * on. A malformed event is skipped and counted. */
static void error_event(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000005";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    rt_fake_error(r.fake, "invalid_value", "Something was wrong.");
    IT_CHECK(wait_event(&r, sid, "error"), "no error event");
    cJSON *e = NULL;
    agent_events(&r, sid, "error", &e);
    IT_CHECK(!strcmp(it_str(e, "code"), "invalid_value") &&
                 !strcmp(it_str(e, "kind"), "invalid_request_error") &&
                 !strcmp(it_str(e, "message"), "Something was wrong."),
             "error event: %s %s %s", it_str(e, "kind"), it_str(e, "code"), it_str(e, "message"));
    cJSON_Delete(e);
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_errors_total") == 1, "errors metric");
    rt_fake_reply reply = {.bytes = 4000, .text = "Still here."};
    rt_fake_respond(r.fake, &reply);
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "the call did not go on");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

/* Server events a client must skip: not JSON, a known type without its fields, audio that
 * is not base64 (each counted as malformed), an unknown type (skipped silently); the call
 * goes on. */
static void malformed(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000011";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    rt_fake_raw(r.fake, "not json");
    rt_fake_raw(r.fake, "{\"type\":\"response.output_audio.delta\",\"delta\":\"AAAA\"}");
    rt_fake_raw(r.fake, "{\"type\":\"response.output_audio.delta\",\"item_id\":\"i\","
                        "\"response_id\":\"r\",\"delta\":\"@@@@\"}");
    rt_fake_raw(r.fake, "{\"type\":\"conversation.created\",\"conversation\":{}}");
    rt_fake_reply reply = {.bytes = 4000, .text = "Fine."};
    rt_fake_respond(r.fake, &reply);
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "the call did not go on");
    IT_CHECK(p.media_bytes == 4000, "the caller got %llu bytes", (unsigned long long)p.media_bytes);
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_malformed_total") == 3, "malformed: %g",
             it_metric(r.s.port, "callstream_realtime_malformed_total"));
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

static bool bad_auth_came(void *data)
{
    return stats(data).bad_auth >= 1;
}

/* A wrong key: the server refuses the upgrade with 401 and its message; that is not tried
 * again (it would be refused again): the caller hears the message and the call ends. */
static void refused(void)
{
    const char *args[] = {"--openai-api-key", "sk-wrong", NULL};
    rig r;
    if (!rig_up(&r, NULL, args)) return;
    const char *sid = "CA20000000000000000000000000000012";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(it_until(bad_auth_came, &r, WAIT_MS), "no upgrade came");
    IT_CHECK(it_phone_wait_end(&p, WAIT_MS), "the call did not end");
    IT_CHECK(p.voiced_frames > 0, "the caller heard nothing");
    IT_CHECK(stats(&r).bad_auth == 1 && stats(&r).upgrades == 0, "tried %u times",
             stats(&r).bad_auth);
    cJSON *e = NULL;
    agent_events(&r, sid, "error", &e);
    IT_CHECK(!strcmp(it_str(e, "kind"), "refused") && strstr(it_str(e, "message"), "HTTP 401") &&
                 strstr(it_str(e, "message"), "Incorrect API key."),
             "event: %s %s", it_str(e, "kind"), it_str(e, "message"));
    cJSON_Delete(e);
    it_phone_free(&p);
    IT_CHECK(it_server_stop(&r.s, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&r.s, "sk-wrong") == 0, "the API key is in the log");
    it_server_cleanup(&r.s);
    rt_fake_free(r.fake);
}

static bool retried(void *data)
{
    return it_metric(((rig *)data)->s.port, "callstream_realtime_connect_failures_total") >= 3;
}

/* Nothing listens: connecting is tried again and again with the backoff, the caller is
 * told once, and the audio held past 3 s is dropped and counted. */
static void unreachable(void)
{
    const char *args[] = {"--openai-realtime-url", "ws://127.0.0.1:9/v1/realtime", NULL};
    rig r;
    if (!rig_up(&r, NULL, args)) return;
    const char *sid = "CA20000000000000000000000000000013";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(it_until(retried, &r, WAIT_MS), "connecting was not tried again");
    it_phone_run(&p, 4000);
    IT_CHECK(p.voiced_frames > 0 && !p.closed, "the caller was not told, or the call ended");
    IT_CHECK(agent_events(&r, sid, "error", NULL) == 1, "told %d times",
             agent_events(&r, sid, "error", NULL));
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_drops_total") == 1, "drops");
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_audio_dropped_bytes_total") > 0,
             "no audio counted as dropped");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

/* The socket drops mid-answer: the caller hears the local message rather than silence,
 * the connection is opened again and the session sent again, and the next answer plays. */
static void drop(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    const char *sid = "CA20000000000000000000000000000006";
    it_phone p;
    call(&r, &p, sid);
    IT_CHECK(wait_fake(&r, &p, NULL, 1), "no session");
    rt_fake_reply reply = {.bytes = 160000, .delta = 320, .every_ms = 20, .text = answer};
    rt_fake_respond(r.fake, &reply);
    uint64_t one_s = 8000;
    IT_CHECK(it_phone_until(&p, playing, &one_s, WAIT_MS), "the answer did not start");
    rt_fake_drop(r.fake);
    IT_CHECK(wait_fake(&r, &p, NULL, 2), "the session was not sent again");
    IT_CHECK(stats(&r).upgrades == 2, "upgrades: %u", stats(&r).upgrades);
    IT_CHECK(wait_event(&r, sid, "error"), "no event for the lost connection");
    cJSON *e = NULL;
    agent_events(&r, sid, "error", &e);
    IT_CHECK(!strcmp(it_str(e, "kind"), "connection"), "error kind: %s", it_str(e, "kind"));
    cJSON_Delete(e);
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "nothing more was heard");
    char agent[2048];
    for (int i = 0; i < 50 && (lines(&r, sid, "agent", agent, sizeof agent), !strstr(agent, "line dropped")); i++)
        it_sleep_ms(100);
    IT_CHECK(strstr(agent, "line dropped") != NULL, "no local message: %s", agent);
    IT_CHECK(it_metric(r.s.port, "callstream_realtime_drops_total") == 1, "drops metric");
    rt_fake_reply next = {.bytes = 4000, .text = "I am back."};
    uint64_t before = p.media_bytes;
    rt_fake_respond(r.fake, &next);
    uint64_t want_bytes = before + 4000;
    IT_CHECK(it_phone_until(&p, playing, &want_bytes, WAIT_MS), "no answer after the reconnection");
    it_phone_hangup(&p);
    it_phone_free(&p);
    rig_down(&r);
}

/* Calls end mid-answer (the caller hangs up while deltas still stream): the connection is
 * closed, nothing is left behind (under ASan: nothing leaks), the gateway goes on. */
static void ends_mid_answer(void)
{
    rig r;
    if (!rig_up(&r, NULL, NULL)) return;
    for (int k = 0; k < 3; k++) {
        char sid[40];
        snprintf(sid, sizeof sid, "CA2000000000000000000000000000001%d", k);
        it_phone p;
        call(&r, &p, sid);
        IT_CHECK(wait_fake(&r, &p, NULL, (unsigned)k + 1), "no session");
        rt_fake_reply reply = {.bytes = 160000, .delta = 320, .every_ms = 20, .text = answer};
        rt_fake_respond(r.fake, &reply);
        uint64_t some = 1600;
        IT_CHECK(it_phone_until(&p, playing, &some, WAIT_MS), "the answer did not start");
        if (k == 2) rt_fake_speech_started(r.fake); /* a clear crossing the end */
        it_phone_hangup(&p);
        it_phone_free(&p);
    }
    for (int i = 0; i < 100 && rt_fake_open(r.fake) > 0; i++) it_sleep_ms(100);
    IT_CHECK(rt_fake_open(r.fake) == 0, "%u connections left open", rt_fake_open(r.fake));
    rig_down(&r);
}

/* The voice webhook opens the connection (the session sent before any media), and the
 * stream that follows adopts it: one connection, the caller's audio on it. A webhook
 * whose stream never comes lets its connection go after REALTIME_PREPARE_MS. */
static bool webhook(rig *r, const char *sid)
{
    char form[256];
    snprintf(form, sizeof form, "CallSid=%s&From=%%2B15550001111&To=%%2B15550002222", sid);
    it_resp resp;
    int rc = it_http(r->s.port, "POST", "/twilio/voice",
                     "Content-Type: application/x-www-form-urlencoded\r\n", form, &resp);
    bool ok = rc == 0 && resp.status == 200;
    it_resp_free(&resp);
    return ok;
}

typedef struct sessions_want {
    rig *r;
    unsigned n;
} sessions_want;

static bool sessions_came(void *data)
{
    sessions_want *w = data;
    return stats(w->r).sessions >= w->n;
}

static double metric_of(rig *r, const char *series)
{
    return it_metric(r->s.port, series);
}

static bool prepared_let_go(void *data)
{
    return metric_of(data, "callstream_realtime_prepared_total{outcome=\"expired\"}") >= 1;
}

static void pre_connect(void)
{
    /* the stream adopts the connection only on the loop of its webhook: one loop shows it */
    const char *args[] = {"--realtime-prepare-ms", "2000", "--workers", "1", NULL};
    rig r;
    if (!rig_up(&r, NULL, args)) return;
    const char *sid = "CA20000000000000000000000000000008";
    IT_CHECK(webhook(&r, sid), "the voice webhook failed");
    sessions_want w = {&r, 1};
    IT_CHECK(it_until(sessions_came, &w, WAIT_MS), "no connection at the webhook");
    it_phone p;
    cs_buf sent = CS_BUF_INIT(4u << 20);
    call(&r, &p, sid);
    p.sent = &sent;
    it_phone_run(&p, 1000);
    rt_fake_reply reply = {.bytes = 4000, .text = "Hello."};
    rt_fake_respond(r.fake, &reply);
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "no answer on the adopted connection");
    rt_fake_stats st = stats(&r);
    IT_CHECK(st.upgrades == 1 && st.sessions == 1, "upgrades %u, sessions %u", st.upgrades,
             st.sessions);
    cs_buf heard = CS_BUF_INIT(8u << 20);
    IT_CHECK(rt_fake_audio(r.fake, 0, &heard) && heard.len >= 8000 && sent.len >= heard.len &&
                 !memcmp(heard.data, sent.data, heard.len),
             "the caller's audio on the adopted connection: %zu bytes", heard.len);
    cs_buf_free(&heard);
    IT_CHECK(metric_of(&r, "callstream_realtime_prepared_total{outcome=\"adopted\"}") == 1 &&
                 metric_of(&r, "callstream_realtime_prepared_total{outcome=\"missed\"}") == 0,
             "not counted as adopted");
    it_phone_hangup(&p);
    it_phone_free(&p);
    cs_buf_free(&sent);

    /* No stream comes: let go. */
    IT_CHECK(webhook(&r, "CA20000000000000000000000000000009"), "the second webhook failed");
    w.n = 2;
    IT_CHECK(it_until(sessions_came, &w, WAIT_MS), "no connection at the second webhook");
    IT_CHECK(it_until(prepared_let_go, &r, WAIT_MS), "the connection was not let go");
    for (int i = 0; i < 100 && rt_fake_open(r.fake) > 0; i++) it_sleep_ms(100);
    IT_CHECK(rt_fake_open(r.fake) == 0, "%u connections left open", rt_fake_open(r.fake));
    /* One left waiting at shutdown is let go too (the server exits cleanly). */
    IT_CHECK(webhook(&r, "CA20000000000000000000000000000010"), "the third webhook failed");
    w.n = 3;
    IT_CHECK(it_until(sessions_came, &w, WAIT_MS), "no connection at the third webhook");
    rig_down(&r);
}

/* The agent named by STREAM_PARAMS (Agent=…) is the one that prepares at the webhook,
 * whatever AGENT says. */
static void pre_connect_param(void)
{
    const char *args[] = {"--agent", "echo", "--stream-params", "Agent=openai-realtime", NULL};
    rig r;
    if (!rig_up(&r, NULL, args)) return;
    IT_CHECK(webhook(&r, "CA20000000000000000000000000000015"), "the voice webhook failed");
    sessions_want w = {&r, 1};
    IT_CHECK(it_until(sessions_came, &w, WAIT_MS), "no connection at the webhook");
    rig_down(&r);
}

static void bad_settings(void)
{
    const char *no_key[] = {"--agent", "openai-realtime", NULL};
    it_refused(no_key, "AGENT=openai-realtime needs OPENAI_API_KEY");
    const char *http[] = {"--agent", "openai-realtime", "--openai-api-key", "k",
                          "--openai-realtime-url", "http://x/v1/realtime", NULL};
    it_refused(http, "OPENAI_REALTIME_URL must be a ws:// or wss:// URL");
    const char *turns[] = {"--agent", "openai-realtime", "--openai-api-key", "k",
                           "--realtime-turn-detection", "push_to_talk", NULL};
    it_refused(turns, "REALTIME_TURN_DETECTION: 'push_to_talk' is not server_vad or semantic_vad");
    const char *thr[] = {"--agent", "openai-realtime", "--openai-api-key", "k",
                         "--realtime-vad-threshold", "2", NULL};
    it_refused(thr, "REALTIME_VAD_THRESHOLD: '2' is not a number from 0 to 1");
    const char *eager[] = {"--agent", "openai-realtime", "--openai-api-key", "k",
                           "--realtime-eagerness", "eager", NULL};
    it_refused(eager, "REALTIME_EAGERNESS: 'eager' is not low, medium, high or auto");
}

static const it_case tests[] = {
    {"bad_settings", bad_settings}, {"bridge", bridge},   {"speech_started", speech_started},
    {"local_barge_in", local_barge_in}, {"end_call", end_call}, {"error_event", error_event},
    {"drop", drop},                 {"ends_mid_answer", ends_mid_answer}, {"tools", tools},
    {"pre_connect", pre_connect}, {"pre_connect_param", pre_connect_param}, {"malformed", malformed}, {"refused", refused},
    {"unreachable", unreachable}, {"many_cuts", many_cuts},
};

int main(int argc, char **argv)
{
    return it_run("realtime", tests, sizeof tests / sizeof *tests, argc, argv);
}
