/* STREAM_MODE=relay end to end: the real binary, Twilio's side of ConversationRelay played
 * by the test (a signed WebSocket speaking the documented messages: setup, prompt, dtmf,
 * interrupt; it takes text, end), and a local OpenAI-compatible chat server
 * (tests/unit/llm_fake.h). The voice webhook answers <Connect action><ConversationRelay>
 * with the agent's greeting; AGENT=llm holds a conversation (the caller's words as its
 * user messages, its answer streamed as tokens ending with last=true, the greeting and
 * what was heard in its history; an interrupt cuts the history and the stored transcript
 * to what was heard; end_call ends the session with hand-off data); AGENT=ivr runs a menu
 * by spoken words and keys and hangs up with what it collected; a bad signature is
 * refused; malformed messages are counted and skipped while the call goes on; both
 * sides' transcripts are stored, and the call shows as a relay without a recording. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "integ_util.h"
#include "llm_fake.h"

#define TOKEN    "relay-auth-token"
#define MODEL    "fake-model"
#define KEY      "sk-relay-test"
#define GREETING "Hello, you are through to the gateway."
#define ACCOUNT  "AC00000000000000000000000000000000"

static it_server srv;
static llm_fake *fake;

/* POSTs a signed form to `path` with `names`/`values`; the body answered into `out`. */
static int post(const char *path, const char *const *names, const char *const *values, size_t n,
                char *out, size_t cap)
{
    return it_twilio_post(&srv, TOKEN, path, names, values, n, out, cap);
}

/* The voice webhook for `call`: the TwiML. */
static int answer(const char *call, char *twiml, size_t cap)
{
    const char *names[] = {"AccountSid", "CallSid", "CallStatus", "From", "To"};
    const char *values[] = {ACCOUNT, call, "ringing", "+15550100", "+15550101"};
    return post("/twilio/voice", names, values, 5, twiml, cap);
}

static bool server_up(const char *const *extra)
{
    const char *args[40] = {"--stream-mode",       "relay", "--tts", "none", "--stt", "none",
                            "--twilio-auth-token", TOKEN};
    size_t n = 8;
    for (size_t i = 0; extra[i] && n + 1 < 40; i++) args[n++] = extra[i];
    return it_server_up(&srv, args);
}

static void server_down(void)
{
    IT_CHECK(it_server_stop(&srv, SIGTERM, 20000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_log_count(&srv, KEY) == 0, "the API key is in the log");
    it_server_cleanup(&srv);
}

/* The k-th request the fake took, parsed; caller frees. */
typedef struct wanted {
    unsigned n;
} wanted;

static bool requests_came(void *data)
{
    llm_fake_stats st;
    llm_fake_stats_get(fake, &st);
    return st.requests >= ((wanted *)data)->n;
}

static cJSON *request(size_t k)
{
    wanted w = {(unsigned)k + 1};
    if (!it_until(requests_came, &w, 30000)) return NULL;
    cs_buf body = CS_BUF_INIT(16u << 20);
    cJSON *j = llm_fake_request(fake, k, &body) ? cJSON_Parse(body.data) : NULL;
    cs_buf_free(&body);
    return j;
}

/* "role:content" of every message of a request, joined by " | ". */
static const char *history(const cJSON *req)
{
    static char out[8192];
    size_t n = 0;
    out[0] = '\0';
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(req, "messages"))
    {
        const cJSON *c = cJSON_GetObjectItem(m, "content");
        int w = snprintf(out + n, sizeof out - n, "%s%s:%s", n ? " | " : "", it_str(m, "role"),
                         cJSON_IsString(c) ? c->valuestring : "null");
        if (w > 0 && (size_t)w < sizeof out - n) n += (size_t)w;
    }
    return out;
}

/* The texts the gateway sent with last=false in messages [from, to). */
static int tokens_between(const it_relay *r, size_t from, size_t to)
{
    int n = 0;
    for (size_t i = from; i < to && i < r->ngot; i++)
        n += !strcmp(it_str(r->got[i], "type"), "text") &&
             cJSON_IsFalse(cJSON_GetObjectItem(r->got[i], "last"));
    return n;
}

/* The call once its stream ended (ended_at set), with its events; caller frees. */
static cJSON *ended(const char *sid)
{
    return it_call_ended(srv.port, sid, 10000);
}

/* The stored transcript as "speaker[cut]:text" lines joined by " | ". */
static const char *transcript(const char *sid)
{
    static char out[8192];
    it_transcript(srv.port, sid, NULL, out, sizeof out);
    return out;
}

static void llm_conversation(void)
{
    static const llm_fake_reply script[] = {
        {LLM_FAKE_TEXT, "It is noon. Anything else?", .piece = 4, .every_ms = 10},
        {LLM_FAKE_TEXT, "We open at nine and close at five, every weekday.", .piece = 6},
        {LLM_FAKE_TOOL, "Goodbye!", .tool = "end_call", .args = "{\"reason\":\"done\"}"},
    };
    llm_fake_opts o = {.script = script, .nscript = 3, .api_key = KEY};
    IT_CHECK(llm_fake_start(&fake, &o) == 0, "no fake LLM");
    const char *extra[] = {
        "--agent",       "llm", "--llm-url",      llm_fake_url(fake), "--llm-model", MODEL,
        "--llm-api-key", KEY,   "--llm-greeting", GREETING,           NULL};
    if (!fake || !server_up(extra)) return;
    const char *call = "CA11111111111111111111111111111111";

    /* The answer: the relay with the agent's greeting, and how to reach us. */
    char twiml[8192], want[512];
    IT_CHECK(answer(call, twiml, sizeof twiml) == 200, "the webhook was refused");
    snprintf(want, sizeof want,
             "<Connect action=\"%s/twilio/relay-action\"><ConversationRelay "
             "url=\"ws://127.0.0.1:%d/twilio/relay\" welcomeGreeting=\"" GREETING "\" "
             "welcomeGreetingInterruptible=\"any\" language=\"en-US\" interruptible=\"any\" "
             "dtmfDetection=\"true\">",
             srv.url, srv.port);
    IT_CHECK(strstr(twiml, want), "not the relay TwiML: %s", twiml);
    IT_CHECK(strstr(twiml, "<Parameter name=\"StreamMode\" value=\"relay\"/>") &&
                 strstr(twiml, "<Parameter name=\"Greeting\" value=\"" GREETING "\"/>"),
             "the relay's parameters are missing: %s", twiml);

    it_relay r;
    IT_CHECK(it_relay_open(&r, srv.port, TOKEN) == 0, "the signed relay upgrade was refused");
    char params[512];
    snprintf(params, sizeof params,
             "{\"From\":\"+15550100\",\"To\":\"+15550101\",\"CallSid\":\"%s\","
             "\"StreamMode\":\"relay\",\"Greeting\":\"" GREETING "\"}",
             call);
    IT_CHECK(it_relay_setup(&r, "VX11111111111111111111111111111111", call, params) == 0,
             "setup not sent");

    /* A turn: interim words wait; the final is asked; the answer comes as tokens. */
    it_relay_prompt(&r, "What time", false);
    it_relay_prompt(&r, "What time is it?", true);
    size_t at = 0;
    char said[1024];
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 30000), "no answer came");
    IT_CHECK(!strcmp(said, "It is noon. Anything else?"), "the answer was '%s'", said);
    IT_CHECK(tokens_between(&r, 0, at) >= 3, "the answer was not streamed: %d tokens",
             tokens_between(&r, 0, at));
    cJSON *req = request(0);
    IT_CHECK(req && strstr(history(req), "assistant:" GREETING " | user:What time is it?"),
             "the greeting and the caller's words are not the history: %s", history(req));
    IT_CHECK(req && !strstr(history(req), "user:What time |"), "an interim was asked");
    cJSON_Delete(req);
    /* The API shows a relay stream (the call page offers text, not listening). */
    cJSON *live = it_call(srv.port, call);
    const cJSON *stream = cJSON_GetArrayItem(cJSON_GetObjectItem(live, "streams"), 0);
    IT_CHECK(!strcmp(it_str(stream, "mode"), "relay") && !strcmp(it_str(live, "from"), "+15550100"),
             "the call is not shown as a relay");
    cJSON_Delete(live);

    /* The next answer is cut: the caller heard only its first words. */
    it_relay_prompt(&r, "When are you open?", true);
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 30000), "no second answer");
    it_relay_interrupt(&r, "We open at nine", 1400);
    it_relay_prompt(&r, "Thanks, that is all.", true);
    req = request(2);
    const char *h = req ? history(req) : "";
    IT_CHECK(strstr(h, "assistant:It is noon. Anything else? | user:When are you open? | "
                       "assistant:We open at nine | user:Thanks, that is all."),
             "the history is not cut to what was heard: %s", h);
    cJSON_Delete(req);

    /* end_call: the goodbye, then end with the hand-off; the gateway closes. */
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 30000) && !strcmp(said, "Goodbye!"),
             "no goodbye: '%s'", said);
    int end = it_relay_wait(&r, at, "end", 20000);
    IT_CHECK(end >= 0, "no end message");
    char handoff[1024]; /* kept past it_relay_free */
    snprintf(handoff, sizeof handoff, "%s", end >= 0 ? it_str(r.got[end], "handoffData") : "");
    cJSON *hd = cJSON_Parse(handoff);
    IT_CHECK(hd && !strcmp(it_str(hd, "by"), "end_call") &&
                 strstr(it_str(hd, "arguments"), "\"reason\":\"done\""),
             "the hand-off data: %s", handoff);
    cJSON_Delete(hd);
    it_relay_read(&r, 5000);
    IT_CHECK(r.closed, "the gateway did not close the session");
    it_relay_free(&r);

    /* Twilio posts to the action URL: an event, and the call hangs up. */
    const char *names[] = {"AccountSid", "CallSid", "HandoffData", "SessionStatus"};
    const char *values[] = {ACCOUNT, call, handoff[0] ? handoff : "{}", "completed"};
    char body[1024];
    IT_CHECK(post("/twilio/relay-action", names, values, 4, body, sizeof body) == 200 &&
                 strstr(body, "<Hangup/>"),
             "the action was not answered with a hang-up: %s", body);

    cJSON *c = ended(call);
    IT_CHECK(c, "the call did not end");
    cJSON_Delete(c);
    c = it_call_events_at_least(srv.port, call, "relay", 3, 10000); /* the action's: any loop */
    IT_CHECK(it_events(c, "relay", "interrupt") == 1 && it_events(c, "relay", "end") == 1,
             "interrupt and end are not events");
    IT_CHECK(it_events(c, "relay", NULL) >= 3, "the action is not an event");
    IT_CHECK(
        !cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "recording"), "duration_ms")),
        "a relay call has a recording");
    cJSON_Delete(c);
    const char *t = transcript(call);
    IT_CHECK(strstr(t, "agent:" GREETING " | caller:What time is it? | agent:It is noon. Anything "
                       "else? | caller:When are you open? | agent[cut]:We open at nine | "
                       "caller:Thanks, that is all. | agent:Goodbye!"),
             "the stored transcript: %s", t);
    IT_CHECK(it_metric(srv.port, "callstream_relay_messages_total{kind=\"interrupt\"}") == 1,
             "the interrupt is not counted");
    server_down();
    llm_fake_free(fake);
    fake = NULL;
}

static void ivr_by_words_and_keys(void)
{
    char menu[512];
    snprintf(menu, sizeof menu, "%s/ivr/relay.json", getenv("CS_TEST_DATA"));
    const char *extra[] = {"--agent", "ivr", "--ivr-file", menu, NULL};
    if (!server_up(extra)) return;
    const char *call = "CA22222222222222222222222222222222";
    char twiml[8192];
    IT_CHECK(answer(call, twiml, sizeof twiml) == 200 && !strstr(twiml, "welcomeGreeting"),
             "the IVR has no greeting to give: %s", twiml);

    /* Refusals first: unsigned, and signed with another token. */
    it_relay bad;
    IT_CHECK(it_relay_open(&bad, srv.port, NULL) == 403, "an unsigned relay upgrade was taken");
    it_relay_free(&bad);
    IT_CHECK(it_relay_open(&bad, srv.port, "wrong") == 403, "a relay signed wrongly was taken");
    it_relay_free(&bad);
    IT_CHECK(it_metric(srv.port, "callstream_signature_refused_total{route=\"upgrade\"}") == 2,
             "relay refusals not counted");

    it_relay r;
    IT_CHECK(it_relay_open(&r, srv.port, TOKEN) == 0, "the signed relay upgrade was refused");
    it_relay_prompt(&r, "before setup", true); /* out of order: counted, skipped */
    it_relay_setup(&r, "VX22222222222222222222222222222222", call,
                   "{\"CallSid\":\"CA22222222222222222222222222222222\",\"StreamMode\":\"relay\"}");
    size_t at = 0;
    char said[1024];
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 20000) &&
                 !strcmp(said, "Say sales or press one, say support or press two."),
             "the menu's prompt: '%s'", said);

    /* Malformed messages: each counted and skipped; the call goes on. */
    it_ws_send_text(&r.ws, "not json");
    it_ws_send_text(&r.ws, "{\"type\":\"bogus\"}");
    it_ws_send_text(&r.ws, "{\"type\":\"prompt\",\"last\":true}");
    it_ws_send_text(&r.ws, "{\"type\":\"dtmf\",\"digit\":\"12\"}");
    it_ws_send_text(&r.ws, "{\"type\":\"interrupt\",\"durationUntilInterruptMs\":\"soon\"}");
    it_ws_send(&r.ws, CS_WS_OP_BINARY, "\x01\x02", 2);
    static char big[70000]; /* over MAX_MESSAGE_BYTES (64 KiB): skipped unread */
    memset(big, 'a', sizeof big - 1);
    it_ws_send_text(&r.ws, big);
    it_ws_send_text(&r.ws, "{\"type\":\"error\",\"description\":\"Invalid message\"}");

    /* A spoken choice: the provider's words. */
    it_relay_prompt(&r, "sales", true);
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 20000) &&
                 !strcmp(said, "Key in your PIN, then the pound key."),
             "the spoken choice was not taken: '%s'", said);
    const char *keys = "2468#";
    for (const char *k = keys; *k; k++) it_relay_dtmf(&r, *k);
    IT_CHECK(it_relay_turn(&r, &at, said, sizeof said, 20000) && !strcmp(said, "Goodbye."),
             "no goodbye after the PIN: '%s'", said);
    int end = it_relay_wait(&r, at, "end", 20000);
    IT_CHECK(end >= 0, "the IVR's hang-up sent no end");
    cJSON *hd = end >= 0 ? cJSON_Parse(it_str(r.got[end], "handoffData")) : NULL;
    const cJSON *vals = cJSON_GetObjectItem(hd, "values");
    IT_CHECK(!strcmp(it_str(hd, "by"), "ivr") && !strcmp(it_str(vals, "dept"), "sales") &&
                 !strcmp(it_str(vals, "pin"), "2468"),
             "the IVR's hand-off: %s", end >= 0 ? it_str(r.got[end], "handoffData") : "");
    cJSON_Delete(hd);
    it_relay_read(&r, 5000);
    IT_CHECK(r.closed, "the gateway did not close the session");
    it_relay_free(&r);

    static const char *const kinds[] = {"json", "unknown_event", "bad_field", "binary",
                                        "out_of_order", "oversize"};
    static const int counts[] = {1, 1, 3, 1, 1, 1};
    for (int i = 0; i < 6; i++) {
        char series[96];
        snprintf(series, sizeof series, "callstream_bad_frames_total{kind=\"%s\"}", kinds[i]);
        IT_CHECK(it_metric(srv.port, series) == counts[i], "%s: %g, not %d", series,
                 it_metric(srv.port, series), counts[i]);
    }
    cJSON *c = ended(call);
    IT_CHECK(c && it_events(c, "relay", "error") == 1, "the provider's error is not an event");
    IT_CHECK(c && it_events(c, "error", NULL) >= 4, "refused messages are not error events");
    cJSON_Delete(c);
    const char *t = transcript(call);
    IT_CHECK(strstr(t, "agent:Say sales or press one, say support or press two. | caller:sales | "
                       "agent:Key in your PIN, then the pound key. | agent:Goodbye."),
             "the stored transcript: %s", t);
    server_down();
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"llm_conversation", llm_conversation},
        {"ivr_by_words_and_keys", ivr_by_words_and_keys},
    };
    return it_run("relay", cases, sizeof cases / sizeof *cases, argc, argv);
}
