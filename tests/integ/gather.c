/* Calls without a stream talk in <Gather>/<Say> turns, end to end: the real binary, and
 * Twilio's side played by the test with form POSTs signed as Twilio signs them (the voice
 * webhook, then each <Gather action> with SpeechResult, Confidence or Digits). With
 * STREAM_MODE=gather an IVR menu is run by words and keys and hangs up; the conversation
 * is stored (a stream in mode "gather", both sides' lines, `gather` events). Bad requests
 * are refused (unsigned, not keys, too large) or bounded (long words), a turn for a call
 * with no conversation hangs up. A gateway streaming MAX_CALLS calls answers the next in
 * turns; a media stream's <Connect action> goes on in turns after a stream that failed or
 * never started, and hangs up after one that ended. AGENT=llm (a local OpenAI-compatible
 * server, tests/unit/llm_fake.h) holds a conversation and ends it with end_call. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "integ_util.h"
#include "llm_fake.h"

#define TOKEN   "gather-auth-token"
#define ACCOUNT "AC00000000000000000000000000000000"
#define MENU    "Say sales or press one, say support or press two."
#define PIN     "Key in your PIN, then the pound key."

static it_server srv;
static const char *token; /* what requests are signed with (NULL: unsigned) */

static bool server_up(const char *const *extra)
{
    const char *args[40] = {"--stt", "none"};
    size_t n = 2;
    if (token) {
        args[n++] = "--twilio-auth-token";
        args[n++] = token;
    }
    for (size_t i = 0; extra[i] && n + 1 < 40; i++) args[n++] = extra[i];
    return it_server_up(&srv, args);
}

static void server_down(void)
{
    IT_CHECK(it_server_stop(&srv, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
}

static const char *menu_file(void)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/ivr/relay.json", getenv("CS_TEST_DATA"));
    return path;
}

/* The voice webhook for `call`: its status, the TwiML in `twiml`. */
static int voice(const char *call, char *twiml, size_t cap)
{
    const char *names[] = {"AccountSid", "CallSid", "CallStatus", "From", "To"};
    const char *values[] = {ACCOUNT, call, "ringing", "+15550100", "+15550101"};
    return it_twilio_post(&srv, token, "/twilio/voice", names, values, 5, twiml, cap);
}

/* A <Gather action> (or `target`'s) for `call`: SpeechResult and Digits when not NULL. */
static int post_turn(const char *target, const char *call, const char *speech, const char *digits,
                     char *twiml, size_t cap)
{
    const char *names[7] = {"AccountSid", "CallSid", "CallStatus"};
    const char *values[7] = {ACCOUNT, call, "in-progress"};
    size_t n = 3;
    if (speech) {
        names[n] = "SpeechResult", values[n++] = speech;
        names[n] = "Confidence", values[n++] = "0.92";
    }
    /* As Twilio sends them: a final '#' is the key that ended them, not one of them. */
    static char keys[80];
    if (digits) {
        snprintf(keys, sizeof keys, "%s", digits);
        size_t k = strlen(keys);
        bool hash = k && keys[k - 1] == '#';
        if (hash) keys[k - 1] = '\0';
        names[n] = "Digits", values[n++] = keys;
        if (hash) names[n] = "FinishedOnKey", values[n++] = "#";
    }
    return it_twilio_post(&srv, token, target, names, values, n, twiml, cap);
}

static int turn(const char *call, const char *speech, const char *digits, char *twiml, size_t cap)
{
    return post_turn("/twilio/gather", call, speech, digits, twiml, cap);
}

/* The TwiML says `text` and listens for the next turn (a <Gather> posting to us, then a
 * <Redirect> to the same place when nothing is gathered). */
static bool says_and_listens(const char *twiml, const char *text)
{
    char gather[256], say[512], redirect[256];
    snprintf(gather, sizeof gather,
             "<Response><Gather input=\"speech dtmf\" action=\"%s/twilio/gather\" method=\"POST\" "
             "timeout=\"5\" speechTimeout=\"auto\" language=\"en-US\"",
             srv.url);
    snprintf(say, sizeof say, "<Say language=\"en-US\">%s</Say>", text);
    snprintf(redirect, sizeof redirect,
             "><Redirect method=\"POST\">%s/twilio/gather</Redirect></Response>", srv.url);
    return strstr(twiml, gather) && (!*text || strstr(twiml, say)) && strstr(twiml, redirect);
}

/* The TwiML says `text` (if any) and hangs up. */
static bool says_and_hangs_up(const char *twiml, const char *text)
{
    char want[512];
    if (*text)
        snprintf(want, sizeof want,
                 "<Response><Say language=\"en-US\">%s</Say><Hangup/></Response>", text);
    else
        snprintf(want, sizeof want, "<Response><Hangup/></Response>");
    return strstr(twiml, want) && !strstr(twiml, "<Gather");
}

static cJSON *ended(const char *sid)
{
    return it_call_ended(srv.port, sid, 10000);
}

static cJSON *with_events(const char *sid, const char *type, int n)
{
    return it_call_events_at_least(srv.port, sid, type, n, 10000);
}

/* The detail of the first event of `type` whose detail has `key`: `value`. */
static const cJSON *event_with(const cJSON *call, const char *type, const char *key,
                               const char *value)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (!strcmp(it_str(e, "type"), type) && !strcmp(it_str(d, key), value)) return d;
    }
    return NULL;
}

/* The mode of the call's only stream ("" if it has not exactly one). */
static const char *stream_mode(const cJSON *call)
{
    const cJSON *streams = cJSON_GetObjectItem(call, "streams");
    return cJSON_GetArraySize(streams) == 1 ? it_str(cJSON_GetArrayItem(streams, 0), "mode") : "";
}

static const char *transcript(const char *sid)
{
    static char out[8192];
    it_transcript(srv.port, sid, NULL, out, sizeof out);
    return out;
}

static double metric(const char *series)
{
    return it_metric(srv.port, series);
}

/* STREAM_MODE=gather, AGENT=ivr: the menu by words, the PIN by keys, the goodbye hangs up;
 * a second call chooses by key; then bad requests. */
static void ivr_turns(void)
{
    token = TOKEN;
    const char *extra[] = {"--stream-mode",     "gather",    "--agent", "ivr",
                           "--ivr-file",        menu_file(), "--tts",   "none",
                           "--gather-reply-ms", "2000",      NULL};
    if (!server_up(extra)) return;
    const char *call = "CA31111111111111111111111111111111";
    char twiml[8192];
    IT_CHECK(voice(call, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU),
             "the webhook does not give the menu in a <Gather>: %s", twiml);
    IT_CHECK(!strstr(twiml, "<Stream") && !strstr(twiml, "<Connect"), "a stream: %s", twiml);
    IT_CHECK(turn(call, "sales", NULL, twiml, sizeof twiml) == 200 && says_and_listens(twiml, PIN),
             "the spoken choice was not taken: %s", twiml);
    IT_CHECK(turn(call, NULL, "2468#", twiml, sizeof twiml) == 200 &&
                 says_and_hangs_up(twiml, "Goodbye."),
             "no goodbye and hang-up after the PIN: %s", twiml);

    cJSON *c = ended(call);
    IT_CHECK(c, "the call did not end");
    cJSON_Delete(c);
    c = with_events(call, "gather", 6);
    IT_CHECK(!strcmp(stream_mode(c), "gather"), "the stream's mode: '%s'", stream_mode(c));
    IT_CHECK(it_events(c, "gather", "begin") == 1 && it_events(c, "gather", "turn") == 2 &&
                 it_events(c, "gather", "answer") == 3,
             "gather events: begin %d, turn %d, answer %d", it_events(c, "gather", "begin"),
             it_events(c, "gather", "turn"), it_events(c, "gather", "answer"));
    const cJSON *t1 = event_with(c, "gather", "speech", "sales");
    IT_CHECK(t1 && cJSON_GetObjectItem(t1, "confidence"), "the spoken turn's event");
    IT_CHECK(event_with(c, "gather", "digits", "2468#"), "the keyed turn's event");
    IT_CHECK(it_events(c, "dtmf", NULL) == 5, "the keys are not dtmf events: %d",
             it_events(c, "dtmf", NULL));
    const cJSON *end = event_with(c, "relay", "type", "end");
    IT_CHECK(end && strstr(it_str(end, "handoffData"), "\"pin\":\"2468\"") &&
                 strstr(it_str(end, "handoffData"), "\"dept\":\"sales\""),
             "what the IVR collected: %s", end ? it_str(end, "handoffData") : "(none)");
    cJSON_Delete(c);
    const char *t = transcript(call);
    IT_CHECK(strstr(t, "agent:" MENU " | caller:sales | agent:" PIN " | agent:Goodbye."),
             "the stored transcript: %s", t);

    /* A key chooses too; a turn with nothing gathered waits for the agent, then listens
     * again (GATHER_REPLY_MS). The call ending ends the conversation. */
    const char *call2 = "CA32222222222222222222222222222222";
    IT_CHECK(voice(call2, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU),
             "the second call's menu: %s", twiml);
    IT_CHECK(turn(call2, NULL, "2", twiml, sizeof twiml) == 200 && says_and_listens(twiml, PIN),
             "the keyed choice was not taken: %s", twiml);
    IT_CHECK(turn(call2, NULL, NULL, twiml, sizeof twiml) == 200 && says_and_listens(twiml, "") &&
                 !strstr(twiml, "<Say"),
             "an empty turn: %s", twiml);
    IT_CHECK(metric("callstream_gather_late_total") == 1, "the late answer is not counted");
    const char *names[] = {"AccountSid", "CallSid", "CallStatus"};
    const char *values[] = {ACCOUNT, call2, "completed"};
    IT_CHECK(it_twilio_post(&srv, token, "/twilio/status", names, values, 3, NULL, 0) == 204,
             "the status callback");
    c = ended(call2);
    const cJSON *choice = c ? event_with(c, "agent", "state", "choice") : NULL;
    IT_CHECK(choice && !strcmp(it_str(choice, "by"), "key") &&
                 !strcmp(it_str(choice, "value"), "support"),
             "the key's choice");
    cJSON_Delete(c);
    IT_CHECK(turn(call2, NULL, "1", twiml, sizeof twiml) == 200 && says_and_hangs_up(twiml, ""),
             "a turn after the call ended: %s", twiml);

    /* Bad requests. */
    const char *call3 = "CA33333333333333333333333333333333";
    IT_CHECK(voice(call3, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU),
             "the third call's menu");
    token = NULL;
    IT_CHECK(turn(call3, "sales", NULL, twiml, sizeof twiml) == 403, "an unsigned turn was taken");
    token = TOKEN;
    IT_CHECK(turn("CAnot-a-call", "sales", NULL, twiml, sizeof twiml) == 400,
             "a bad CallSid was taken");
    IT_CHECK(turn(call3, NULL, "12x", twiml, sizeof twiml) == 400 && strstr(twiml, "Digits"),
             "keys that are not keys: %s", twiml);
    IT_CHECK(metric("callstream_gather_refused_total{reason=\"bad_input\"}") == 1,
             "bad keys are not counted");
    IT_CHECK(turn("CA39999999999999999999999999999999", "sales", NULL, twiml, sizeof twiml) ==
                     200 &&
                 says_and_hangs_up(twiml, ""),
             "a turn of an unknown call: %s", twiml);
    IT_CHECK(metric("callstream_gather_refused_total{reason=\"unknown_call\"}") == 2,
             "turns of calls with no conversation are not counted: %g",
             metric("callstream_gather_refused_total{reason=\"unknown_call\"}"));
    static char words[40000];
    memset(words, 'a', sizeof words - 1);
    IT_CHECK(turn(call3, words, NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, "Pardon?") && says_and_listens(twiml, MENU),
             "long words: %s", twiml);
    static char huge[80000]; /* over MAX_BODY_BYTES */
    memset(huge, 'b', sizeof huge - 1);
    IT_CHECK(turn(call3, huge, NULL, twiml, sizeof twiml) == 413, "a body over MAX_BODY_BYTES");
    IT_CHECK(turn(call3, "support", NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, PIN),
             "the call did not go on: %s", twiml);
    IT_CHECK(metric("callstream_gather_dropped_total") == 1, "the cut words are not counted");
    cJSON *c3 = it_call(srv.port, call3);
    const cJSON *cut = NULL, *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c3, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (!strcmp(it_str(d, "type"), "turn") && strlen(it_str(d, "speech")) > 100) cut = d;
    }
    IT_CHECK(cut && strlen(it_str(cut, "speech")) == 2048, "the long words were not cut to 2048");
    cJSON_Delete(c3);

    IT_CHECK(metric("callstream_gather_begun_total{reason=\"stream_mode\"}") == 3,
             "conversations begun");
    IT_CHECK(metric("callstream_gather_turns_total") == 6, "turns: %g",
             metric("callstream_gather_turns_total"));
    IT_CHECK(metric("callstream_gather_answers_total{next=\"hangup\"}") == 1 &&
                 metric("callstream_gather_answers_total{next=\"listen\"}") == 8,
             "answers that hang up: %g",
             metric("callstream_gather_answers_total{next=\"hangup\"}"));
    IT_CHECK(metric("callstream_gather_conversations") == 1, "conversations live");
    server_down();
}

static bool live(const it_phone *p, void *data)
{
    (void)data;
    cJSON *s = it_live_stream(srv.port, p->stream, NULL, 0);
    cJSON_Delete(s);
    return s != NULL;
}

/* MAX_CALLS=1 with one call streaming: the next call talks in turns. */
static void full(void)
{
    token = NULL;
    const char *extra[] = {"--agent", "ivr", "--ivr-file", menu_file(), "--max-calls", "1", NULL};
    if (!server_up(extra)) return;
    const char *a = "CA41111111111111111111111111111111", *b = "CA42222222222222222222222222222222";
    char twiml[8192], want[256];
    IT_CHECK(voice(a, twiml, sizeof twiml) == 200, "the first call's webhook");
    snprintf(want, sizeof want, "<Connect action=\"%s/twilio/gather?fallback=stream\"><Stream",
             srv.url);
    IT_CHECK(strstr(twiml, want), "the stream does not come back to us when it ends: %s", twiml);
    it_phone p;
    IT_CHECK(it_phone_start(&p, srv.port, a, "MZ41111111111111111111111111111111", NULL) == 0,
             "the first call's stream");
    it_phone_until(&p, live, NULL, 10000);
    IT_CHECK(voice(b, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU),
             "the second call does not talk in turns: %s", twiml);
    IT_CHECK(turn(b, NULL, "1", twiml, sizeof twiml) == 200 && says_and_listens(twiml, PIN),
             "the second call's turn: %s", twiml);
    IT_CHECK(metric("callstream_gather_begun_total{reason=\"max_calls\"}") == 1,
             "the fallback is not counted");
    cJSON *c = it_call(srv.port, b);
    IT_CHECK(c && event_with(c, "gather", "reason", "max_calls"), "no event says why");
    cJSON_Delete(c);
    it_phone_hangup(&p);
    it_phone_free(&p);
    server_down();
}

/* The gateway full, and the next caller played by the simulator as Twilio would: it
 * follows the <Gather> turns (a word, then keys) to the goodbye and <Hangup/>. */
static void simulated_caller(void)
{
    token = NULL;
    const char *extra[] = {"--agent", "ivr", "--ivr-file", menu_file(), "--max-calls", "1", NULL};
    if (!server_up(extra)) return;
    it_phone p;
    IT_CHECK(it_phone_start(&p, srv.port, "CA43333333333333333333333333333333",
                            "MZ43333333333333333333333333333333", NULL) == 0,
             "the first call's stream");
    it_phone_until(&p, live, NULL, 10000);
    int st = -1;
    cJSON *rep = it_sim(&srv, &st, "--calls 1 --gather-speech sales --gather-digits ,2468#");
    IT_CHECK(rep && st == 0 && it_num(rep, "completed") == 1, "the simulated call: exit %d", st);
    IT_CHECK(!strcmp(it_str(rep, "hangup_by"), "twiml_hangup"), "hung up by '%s'",
             it_str(rep, "hangup_by"));
    const cJSON *hops = cJSON_GetObjectItem(rep, "twiml");
    IT_CHECK(cJSON_GetArraySize(hops) == 3, "documents fetched: %d", cJSON_GetArraySize(hops));
    cJSON_Delete(rep);
    IT_CHECK(it_sql(it_db(&srv), "SELECT COUNT(*) FROM transcripts WHERE speaker = 'caller'"
                                 " AND text = 'sales'") == 1,
             "the simulated caller's word is not stored");
    IT_CHECK(it_sql(it_db(&srv), "SELECT COUNT(*) FROM streams WHERE mode = 'gather'") == 1,
             "no conversation in turns is stored");
    IT_CHECK(metric("callstream_gather_begun_total{reason=\"max_calls\"}") == 1,
             "the fallback is not counted");
    it_phone_hangup(&p);
    it_phone_free(&p);
    server_down();
}

static bool stream_ended(const it_phone *p, void *data)
{
    (void)data;
    cJSON *c = it_call(srv.port, p->call);
    bool done = c && cJSON_IsString(cJSON_GetObjectItem(c, "ended_at"));
    cJSON_Delete(c);
    return done;
}

/* <Connect action> after the stream: failed or never started → turns; ended → hang up. */
static void stream_ends(void)
{
    token = NULL;
    const char *extra[] = {"--agent", "ivr", "--ivr-file", menu_file(), NULL};
    if (!server_up(extra)) return;
    const char *action = "/twilio/gather?fallback=stream&Team=blue";
    char twiml[8192];

    const char *never = "CA51111111111111111111111111111111";
    IT_CHECK(voice(never, twiml, sizeof twiml) == 200, "the webhook");
    IT_CHECK(post_turn(action, never, NULL, NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, MENU),
             "a stream that never started does not go on in turns: %s", twiml);
    IT_CHECK(turn(never, "support", NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, PIN),
             "its turn: %s", twiml);

    const char *failed = "CA52222222222222222222222222222222";
    it_phone p;
    IT_CHECK(voice(failed, twiml, sizeof twiml) == 200 &&
                 it_phone_start(&p, srv.port, failed, "MZ52222222222222222222222222222222", NULL) ==
                     0,
             "the failing call's stream");
    it_phone_until(&p, live, NULL, 10000);
    it_phone_free(&p); /* the socket drops without stop */
    for (int i = 0; i < 200 && !stream_ended(&p, NULL); i++) it_sleep_ms(50);
    IT_CHECK(post_turn(action, failed, NULL, NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, MENU),
             "a failed stream does not go on in turns: %s", twiml);
    cJSON *c = it_call(srv.port, failed);
    IT_CHECK(c && event_with(c, "gather", "reason", "stream_failed"), "no event says why");
    cJSON_Delete(c);

    /* Twilio ended a stream we still have live (its socket not closed yet): failed. */
    const char *lost = "CA54444444444444444444444444444444";
    it_phone q;
    IT_CHECK(voice(lost, twiml, sizeof twiml) == 200 &&
                 it_phone_start(&q, srv.port, lost, "MZ54444444444444444444444444444444", NULL) ==
                     0,
             "the lost call's stream");
    it_phone_until(&q, live, NULL, 10000);
    IT_CHECK(post_turn(action, lost, NULL, NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, MENU),
             "a stream still live here does not go on in turns: %s", twiml);
    it_phone_free(&q);

    const char *done = "CA53333333333333333333333333333333";
    IT_CHECK(voice(done, twiml, sizeof twiml) == 200 &&
                 it_phone_start(&p, srv.port, done, "MZ53333333333333333333333333333333", NULL) ==
                     0,
             "the third call's stream");
    it_phone_until(&p, live, NULL, 10000);
    it_phone_hangup(&p);
    it_phone_free(&p);
    IT_CHECK(post_turn(action, done, NULL, NULL, twiml, sizeof twiml) == 200 &&
                 says_and_hangs_up(twiml, ""),
             "a stream that ended does not hang up: %s", twiml);
    IT_CHECK(metric("callstream_gather_stream_actions_total") == 4, "actions: %g",
             metric("callstream_gather_stream_actions_total"));
    IT_CHECK(metric("callstream_gather_begun_total{reason=\"stream_failed\"}") == 2 &&
                 metric("callstream_gather_begun_total{reason=\"stream_never_started\"}") == 1,
             "fallbacks by reason");
    server_down();
}

/* The fake LLM answering with `script`, and the server in gather mode with AGENT=llm
 * asking it, with `more` settings (NULL-ended); false (both stopped) if either failed. */
static bool llm_up(llm_fake **fake, const llm_fake_reply *script, size_t n, const char *const *more)
{
    llm_fake_opts fo = {.script = script, .nscript = n};
    if (llm_fake_start(fake, &fo) < 0) {
        IT_CHECK(0, "the fake LLM did not start");
        return false;
    }
    const char *args[32] = {"--stream-mode", "gather",    "--agent",   "llm",
                            "--tts",         "none",      "--llm-url", llm_fake_url(*fake),
                            "--llm-model",   "fake-model"};
    size_t k = 10;
    for (size_t i = 0; more[i] && k + 1 < 32; i++) args[k++] = more[i];
    if (server_up(args)) return true;
    llm_fake_free(*fake);
    return false;
}

/* STREAM_MODE=gather, AGENT=llm: its greeting, a reply, end_call. */
static void llm_turns(void)
{
    static const llm_fake_reply script[] = {
        {LLM_FAKE_TEXT, "It is noon. Anything else?"},
        {LLM_FAKE_TOOL, "Goodbye!", "end_call", "{\"reason\":\"done\"}"},
    };
    token = TOKEN;
    llm_fake *fake;
    const char *more[] = {"--llm-greeting", "Hello, how can I help?", NULL};
    if (!llm_up(&fake, script, 2, more)) return;
    const char *call = "CA61111111111111111111111111111111";
    char twiml[8192];
    IT_CHECK(voice(call, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, "Hello, how can I help?"),
             "the greeting: %s", twiml);
    IT_CHECK(turn(call, "What time is it?", NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, "It is noon. Anything else?"),
             "the reply: %s", twiml);
    IT_CHECK(turn(call, "No, thanks.", NULL, twiml, sizeof twiml) == 200 &&
                 says_and_hangs_up(twiml, "Goodbye!"),
             "end_call: %s", twiml);
    cs_buf body = CS_BUF_INIT(1u << 20);
    IT_CHECK(llm_fake_request(fake, 1, &body) && strstr(body.data, "It is noon. Anything else?") &&
                 strstr(body.data, "No, thanks."),
             "the model's history: %s", body.data ? body.data : "");
    cs_buf_free(&body);
    cJSON *c = ended(call);
    IT_CHECK(c && !strcmp(stream_mode(c), "gather"), "the call did not end in gather mode");
    cJSON_Delete(c);
    const char *t = transcript(call);
    IT_CHECK(strstr(t, "agent:Hello, how can I help? | caller:What time is it? | agent:It is "
                       "noon. Anything else? | caller:No, thanks. | agent:Goodbye!"),
             "the stored transcript: %s", t);
    server_down();
    llm_fake_free(fake);
}

static bool expired(void *data)
{
    (void)data;
    return metric("callstream_gather_expired_total") == 1;
}

/* GATHER_MAX_CALLS conversations: the next call hangs up until one ends; one with no
 * request for GATHER_IDLE_S ends. */
static void limits(void)
{
    token = NULL;
    const char *extra[] = {"--stream-mode",
                           "gather",
                           "--agent",
                           "ivr",
                           "--ivr-file",
                           menu_file(),
                           "--tts",
                           "none",
                           "--gather-max-calls",
                           "1",
                           "--gather-idle-s",
                           "10",
                           NULL};
    if (!server_up(extra)) return;
    const char *a = "CA71111111111111111111111111111111", *b = "CA72222222222222222222222222222222";
    char twiml[8192];
    IT_CHECK(voice(a, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU), "%s", twiml);
    IT_CHECK(voice(b, twiml, sizeof twiml) == 200 && says_and_hangs_up(twiml, ""),
             "a call past GATHER_MAX_CALLS: %s", twiml);
    IT_CHECK(metric("callstream_gather_refused_total{reason=\"gather_max_calls\"}") == 1,
             "the refusal is not counted");
    cJSON *c = with_events(b, "gather", 1);
    IT_CHECK(c && event_with(c, "gather", "reason", "gather_max_calls"), "no event says why");
    cJSON_Delete(c);
    IT_CHECK(it_until(expired, NULL, 30000), "the idle conversation did not end");
    /* (The IVR gave up on its own first: no input twice, then its goodbye and hang-up,
     * which waited for a request that never came.) */
    c = it_call_ended(srv.port, a, 10000);
    IT_CHECK(c, "the idle conversation's call did not end");
    cJSON_Delete(c);
    IT_CHECK(turn(a, NULL, "1", twiml, sizeof twiml) == 200 && says_and_hangs_up(twiml, ""),
             "a turn after it ended: %s", twiml);
    const char *b2 = "CA73333333333333333333333333333333";
    IT_CHECK(voice(b2, twiml, sizeof twiml) == 200 && says_and_listens(twiml, MENU),
             "a call once there is room: %s", twiml);
    server_down();
}

/* An answer holds CS_GATHER_TEXT_MAX bytes of what the agent said: the rest is dropped,
 * counted, and the TwiML stays whole. */
static void long_reply(void)
{
    static char text[6001];
    for (size_t i = 0; i + 6 < sizeof text; i += 6) memcpy(text + i, "Words ", 6);
    static const llm_fake_reply script[] = {{LLM_FAKE_TEXT, text}};
    token = NULL;
    llm_fake *fake;
    const char *more[] = {"--llm-max-tokens", "0", NULL};
    if (!llm_up(&fake, script, 1, more)) return;
    const char *call = "CA91111111111111111111111111111111";
    static char twiml[65536];
    IT_CHECK(voice(call, twiml, sizeof twiml) == 200 && says_and_listens(twiml, ""),
             "no greeting: an empty <Gather>: %s", twiml);
    IT_CHECK(turn(call, "Talk to me.", NULL, twiml, sizeof twiml) == 200 &&
                 says_and_listens(twiml, "") &&
                 strstr(twiml, "<Say language=\"en-US\">Words Words"),
             "the long reply: %.300s", twiml);
    size_t words = 0;
    for (const char *p = twiml; (p = strstr(p, "Words")); p++) words++;
    IT_CHECK(words > 100 && words * 6 <= 4096 + 6, "%zu words said", words);
    IT_CHECK(metric("callstream_gather_dropped_total") >= 1, "the rest is not counted");
    server_down();
    llm_fake_free(fake);
}

typedef struct pending {
    const char *call;
    int status;
    char twiml[8192];
} pending;

static void *post_in_background(void *data)
{
    pending *t = data;
    t->status = turn(t->call, "What time is it?", NULL, t->twiml, sizeof t->twiml);
    return NULL;
}

static llm_fake *stalled;

static bool model_asked(void *data)
{
    (void)data;
    llm_fake_stats st;
    llm_fake_stats_get(stalled, &st);
    return st.requests >= 1;
}

/* A turn waiting for the agent when the gateway stops is answered <Hangup/>. */
static void shutdown_answers(void)
{
    static const llm_fake_reply script[] = {{LLM_FAKE_STALL}};
    token = TOKEN;
    const char *more[] = {
        "--llm-greeting", "Hi.", "--gather-reply-ms", "14000", "--shutdown-grace-s", "1", NULL};
    if (!llm_up(&stalled, script, 1, more)) return;
    pending t = {"CA81111111111111111111111111111111", -1, ""};
    IT_CHECK(voice(t.call, t.twiml, sizeof t.twiml) == 200 && says_and_listens(t.twiml, "Hi."),
             "the greeting: %s", t.twiml);
    pthread_t th;
    pthread_create(&th, NULL, post_in_background, &t);
    IT_CHECK(it_until(model_asked, NULL, 20000), "the model was not asked");
    IT_CHECK(it_server_stop(&srv, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    pthread_join(th, NULL);
    IT_CHECK(t.status == 200 && says_and_hangs_up(t.twiml, ""),
             "the waiting turn at shutdown: %d %s", t.status, t.twiml);
    it_server_cleanup(&srv);
    llm_fake_free(stalled);
}

/* No agent to talk in turns: refused at start. */
static void needs_agent(void)
{
    const char *args[] = {"--stream-mode", "gather", NULL};
    it_refused(args, "STREAM_MODE=gather: an AGENT talks in the turns");
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"ivr_turns", ivr_turns},     {"full", full},
    {"simulated_caller", simulated_caller},
        {"stream_ends", stream_ends}, {"llm_turns", llm_turns},
        {"limits", limits},           {"shutdown_answers", shutdown_answers},
        {"long_reply", long_reply},   {"needs_agent", needs_agent},
    };
    return it_run("gather", cases, sizeof cases / sizeof *cases, argc, argv);
}
