/* Agents acting on their call through call control, with the real binary against a fake
 * of Twilio's REST API: an IVR transfer node puts the call through with <Dial> once its
 * text has played, and when Twilio refuses, the node's apology and its fallback follow
 * (whose hang-up reaches Twilio too); a menu that transfers is refused at start-up
 * without call control. A chat model's transfer tool (a local OpenAI-compatible server)
 * reaches the configured number by its name, an unknown name is an error for the model
 * with nothing sent, a refusal is told to the model, and end_call hangs up at Twilio
 * after the goodbye; the same tool for a speech-to-speech model (a local Realtime server). Loose
 * ends: an outbound call's agent must be set up here; the voice webhook's TwiML bound holds with
 * call parameters. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integ_util.h"
#include "llm_fake.h"
#include "realtime_fake.h"
#include "twilio_rest_fake.h"

#define ACCOUNT "AC00000000000000000000000000000000"
#define KEY     "SK00000000000000000000000000000001"
#define SECRET  "api-secret"
#define JSON    "Content-Type: application/json\r\n"
#define FORM    "Content-Type: application/x-www-form-urlencoded\r\n"
#define SALES   "+15551230001"
#define SUPPORT "+15551230002"
#define BROKEN  "+15551230009"
#define FROM    "+15559870000"
#define DIAL(n) "%3CDial%3E%2B" n "%3C%2FDial%3E"

static twilio_fake *fake;

/* Twilio refuses to redirect to these numbers (matched in the Twiml of the form). */
static const twilio_fake_reply script[] = {
    {TWILIO_FAKE_ERROR, 400, 21220, "Call is not in-progress. Cannot redirect.", "2B15551230009"},
    {TWILIO_FAKE_ERROR, 400, 21220, "Call is not in-progress. Cannot redirect.", "2B15551230002"},
};

static unsigned fake_requests(void)
{
    twilio_fake_stats st;
    twilio_fake_stats_get(fake, &st);
    return st.requests;
}

static bool fake_has(const it_phone *p, void *data)
{
    (void)p;
    return fake_requests() >= *(const unsigned *)data;
}

/* Request k's path and body, checked to hold `path` and `body`. */
static bool request_is(unsigned k, const char *path, const char *body)
{
    cs_buf p = CS_BUF_INIT(4096), b = CS_BUF_INIT(65536);
    bool got = twilio_fake_request(fake, k, &p, &b);
    bool ok = got && strstr(p.data, path) && strstr(b.data, body);
    if (!ok) fprintf(stderr, "request %u: %s %s\n", k, got ? p.data : "-", got ? b.data : "-");
    cs_buf_free(&p);
    cs_buf_free(&b);
    return ok;
}

/* A `type` event of call `sid` whose detail has `key` = `value` and `state`: its detail
 * printed, or NULL (polled: events are written through a queue). */
static char *event_with(int port, const char *sid, const char *type, const char *key,
                        const char *value, const char *state)
{
    for (int i = 0; i < 250; i++) {
        cJSON *c = it_call(port, sid);
        char *found = NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
        {
            const cJSON *d = cJSON_GetObjectItem(e, "detail");
            if (!found && strcmp(it_str(e, "type"), type) == 0 &&
                strcmp(it_str(d, key), value) == 0 && strcmp(it_str(d, "state"), state) == 0)
                found = cJSON_PrintUnformatted(d);
        }
        cJSON_Delete(c);
        if (found) return found;
        it_sleep_ms(20);
    }
    return NULL;
}

static bool check_event(int port, const char *sid, const char *type, const char *key,
                        const char *value, const char *state, const char *holds)
{
    char *d = event_with(port, sid, type, key, value, state);
    bool ok = d && (!holds || strstr(d, holds));
    if (!ok) fprintf(stderr, "%s %s event of %s: %s\n", type, value, sid, d ? d : "none");
    free(d);
    return ok;
}

static void control_args(const char **args, size_t *n)
{
    const char *c[] = {"--twilio-account-sid", ACCOUNT, "--twilio-api-key", KEY,
                       "--twilio-api-secret",  SECRET,  "--twilio-api-url", twilio_fake_url(fake)};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) args[(*n)++] = c[i];
    args[*n] = NULL;
}

/* ---- the IVR ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    IT_CHECK(f && fputs(text, f) >= 0, "cannot write %s", path);
    if (f) fclose(f);
}

static void ivr(void)
{
    char dir[] = "/tmp/callstream-xfer-XXXXXX", path[600];
    IT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/sales.json", dir);
    write_file(path, "{\"start\": \"go\", \"defaults\": {\"goodbye\": \"Bye now.\"}, \"nodes\": {"
                     "\"go\": {\"say\": \"Putting you through.\", \"transfer\": {\"to\": \"" SALES
                     "\"}}}}");
    snprintf(path, sizeof path, "%s/broken.json", dir);
    write_file(path, "{\"start\": \"go\", \"nodes\": {"
                     "\"go\": {\"say\": \"Putting you through.\", \"transfer\": {\"to\": \"" BROKEN
                     "\"}, \"error\": \"Sorry, I could not transfer you.\", \"fallback\": "
                     "\"sorry\"}, \"sorry\": {\"say\": \"Please call again.\", \"hangup\": "
                     "true}}}");
    const char *args[32] = {"--agent", "ivr", "--ivr-dir", dir, "--stt", "none"};
    size_t n = 6;
    /* Without call control a menu that transfers cannot work: refused at start-up. */
    it_refused(args, "/nodes/go/transfer: transferring needs call control: TWILIO_ACCOUNT_SID");
    control_args(args, &n);
    it_server s;
    bool up = it_server_up(&s, args);
    if (!up) goto out;

    /* Put through: <Dial> as the call's TwiML once the prompt has played. */
    const char *sid = "CA71000000000000000000000000000001";
    unsigned before = fake_requests(), want = before + 1;
    it_phone p;
    IT_CHECK(
        it_phone_start(&p, s.port, sid, "MZ71000000000000000000000000000001", "IvrMenu=sales") == 0,
        "phone");
    IT_CHECK(it_phone_until(&p, fake_has, &want, 20000), "no transfer reached Twilio");
    IT_CHECK(p.voiced_frames > 0 && !it_phone_talking(&p),
             "the transfer went before the prompt had played (%llu voiced frames)",
             (unsigned long long)p.voiced_frames);
    IT_CHECK(request_is(before, "/Calls/CA71000000000000000000000000000001.json", "Twiml=") &&
                 request_is(before, "", DIAL("15551230001")),
             "the transfer request");
    IT_CHECK(check_event(s.port, sid, "control", "action", "redirect_twiml", "done",
                         "\"by\":\"agent:ivr\",\"to\":\"" SALES "\",\"reason\":\"ivr node go\""),
             "control event");
    IT_CHECK(check_event(s.port, sid, "agent", "node", "go", "transferred", SALES),
             "transferred event");
    it_phone_hangup(&p);
    it_phone_free(&p);

    /* Refused: the node's apology, then its fallback, whose hang-up goes to Twilio. */
    sid = "CA71000000000000000000000000000002";
    before = fake_requests();
    want = before + 2;
    IT_CHECK(it_phone_start(&p, s.port, sid, "MZ71000000000000000000000000000002",
                            "IvrMenu=broken") == 0,
             "phone 2");
    IT_CHECK(it_phone_until(&p, fake_has, &want, 30000), "no hang-up after the refusal");
    IT_CHECK(
        request_is(before, "/Calls/CA71000000000000000000000000000002.json", DIAL("15551230009")) &&
            request_is(before + 1, "/Calls/CA71000000000000000000000000000002.json",
                       "Status=completed"),
        "transfer, then hang-up");
    IT_CHECK(it_phone_wait_end(&p, 10000), "the stream did not end with the hang-up");
    it_phone_free(&p);
    IT_CHECK(
        check_event(s.port, sid, "control", "action", "redirect_twiml", "failed", "\"code\":21220"),
        "failed transfer event");
    IT_CHECK(
        check_event(s.port, sid, "agent", "node", "go", "transfer_failed", "\"goto\":\"sorry\""),
        "transfer_failed event");
    IT_CHECK(
        check_event(s.port, sid, "control", "action", "hangup", "done", "\"by\":\"agent:ivr\""),
        "hang-up event");
    char said[4096];
    it_transcript(s.port, sid, "agent", said, sizeof said);
    IT_CHECK(strstr(said, "could not transfer") && strstr(said, "call again"),
             "the apology and the fallback were not said: %s", said);
    IT_CHECK(it_metric(s.port, "callstream_ivr_transfers_total") == 1 &&
                 it_metric(s.port, "callstream_ivr_transfer_failures_total") == 1,
             "IVR transfer metrics");

    /* An outbound call's agent must be set up on this gateway, not merely exist. */
    it_resp r;
    before = fake_requests();
    it_http(s.port, "POST", "/api/v1/calls", JSON,
            "{\"to\":\"" SALES "\",\"from\":\"" FROM "\",\"agent\":\"llm\"}", &r);
    IT_CHECK(r.status == 400 &&
                 strstr(r.body, "agent 'llm' is not set up on this gateway: it needs LLM_URL"),
             "unready agent: %d %s", r.status, r.body);
    it_resp_free(&r);
    it_http(s.port, "POST", "/api/v1/calls", JSON,
            "{\"to\":\"" SALES "\",\"from\":\"" FROM "\",\"agent\":\"openai-realtime\"}", &r);
    IT_CHECK(r.status == 400 && strstr(r.body, "it needs OPENAI_API_KEY"), "unready agent: %d %s",
             r.status, r.body);
    it_resp_free(&r);
    IT_CHECK(fake_requests() == before, "a refused call reached Twilio");
    it_http(s.port, "POST", "/api/v1/calls", JSON,
            "{\"to\":\"" SALES "\",\"from\":\"" FROM "\",\"agent\":\"ivr\"}", &r);
    IT_CHECK(r.status == 201, "a ready agent: %d %s", r.status, r.body);
    it_resp_free(&r);
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "exit status after SIGTERM");
out:
    it_server_cleanup(&s);
    snprintf(path, sizeof path, "%s/sales.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/broken.json", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- the chat model's tools ---- */

static const char *goforward(void)
{
    return it_corpus("ulaw8k/pocketsphinx_goforward.wav");
}

/* Says the clip and runs until the model has been asked `want` times in all. */
typedef struct asked {
    llm_fake *f;
    unsigned want;
} asked;

static bool llm_asked(const it_phone *p, void *data)
{
    (void)p;
    const asked *a = data;
    llm_fake_stats st;
    llm_fake_stats_get(a->f, &st);
    return st.requests >= a->want;
}

static bool speak_until_asked(it_phone *p, llm_fake *f, unsigned want)
{
    it_phone_say(p, goforward());
    asked a = {f, want};
    return it_phone_until(p, llm_asked, &a, 30000);
}

static bool request_holds(llm_fake *f, size_t k, const char *text)
{
    cs_buf b = CS_BUF_INIT(1 << 20);
    bool ok = llm_fake_request(f, k, &b) && strstr(b.data, text);
    if (!ok) fprintf(stderr, "model request %zu: %s\n", k, b.data ? b.data : "-");
    cs_buf_free(&b);
    return ok;
}

static void llm(void)
{
    static const llm_fake_reply replies[] = {
        /* call 1 */
        {.kind = LLM_FAKE_TOOL,
         .text = "Putting you through to sales.",
         .tool = "transfer",
         .args = "{\"to\":\"sales\"}"},
        /* call 2: a name that is no target, then goodbye */
        {.kind = LLM_FAKE_TOOL, .tool = "transfer", .args = "{\"to\":\"" SALES "\"}"},
        {.kind = LLM_FAKE_TEXT, .text = "I cannot put you through there."},
        {.kind = LLM_FAKE_TOOL, .text = "Goodbye.", .tool = "end_call", .args = "{}"},
        /* call 3: Twilio refuses */
        {.kind = LLM_FAKE_TOOL,
         .text = "One moment.",
         .tool = "transfer",
         .args = "{\"to\":\"support\"}"},
        {.kind = LLM_FAKE_TEXT, .text = "Sorry, I could not transfer you."},
    };
    llm_fake_opts o = {.script = replies, .nscript = sizeof replies / sizeof *replies};
    llm_fake *f;
    if (llm_fake_start(&f, &o) < 0) {
        IT_CHECK(false, "no fake LLM");
        return;
    }
    const char *args[40] = {"--agent",
                            "llm",
                            "--llm-url",
                            llm_fake_url(f),
                            "--llm-model",
                            "m",
                            "--stt",
                            "pocketsphinx",
                            "--stt-max-sessions",
                            "2",
                            "--agent-transfer-targets",
                            "sales=" SALES ",support=" SUPPORT};
    size_t n = 12;
    it_refused(args, "AGENT_TRANSFER_TARGETS: transferring needs call control");
    control_args(args, &n);
    it_server s;
    if (!it_server_up(&s, args)) {
        llm_fake_free(f);
        it_server_cleanup(&s);
        return;
    }

    /* Transfer to sales: the number configured for the name, after the words played. */
    const char *sid = "CA72000000000000000000000000000001";
    unsigned before = fake_requests(), want = before + 1;
    it_phone p;
    IT_CHECK(it_phone_start(&p, s.port, sid, "MZ72000000000000000000000000000001", NULL) == 0,
             "phone");
    it_phone_run(&p, 500);
    IT_CHECK(speak_until_asked(&p, f, 1), "the model was not asked");
    IT_CHECK(request_holds(f, 0, "\"name\":\"transfer\"") &&
                 request_holds(f, 0, "\"enum\":[\"sales\",\"support\"]"),
             "the transfer tool was not offered with its names");
    cs_buf body = CS_BUF_INIT(1 << 20);
    IT_CHECK(llm_fake_request(f, 0, &body) && !strstr(body.data, "+1555"),
             "the model was shown a number");
    cs_buf_free(&body);
    IT_CHECK(it_phone_until(&p, fake_has, &want, 30000), "no transfer reached Twilio");
    IT_CHECK(p.heard && !it_phone_talking(&p), "the transfer went before its words had played");
    IT_CHECK(
        request_is(before, "/Calls/CA72000000000000000000000000000001.json", DIAL("15551230001")),
        "the transfer request");
    IT_CHECK(check_event(s.port, sid, "control", "action", "redirect_twiml", "done",
                         "\"by\":\"agent:llm\",\"to\":\"" SALES "\""),
             "control event");
    IT_CHECK(check_event(s.port, sid, "agent", "tool", "transfer", "tool", "\"ok\":true"),
             "tool event");
    it_phone_hangup(&p);
    it_phone_free(&p);

    /* A number instead of a name: an error for the model, nothing sent; then end_call
     * hangs up at Twilio once the goodbye has played. */
    sid = "CA72000000000000000000000000000002";
    before = fake_requests();
    IT_CHECK(it_phone_start(&p, s.port, sid, "MZ72000000000000000000000000000002", NULL) == 0,
             "phone 2");
    it_phone_run(&p, 500);
    IT_CHECK(speak_until_asked(&p, f, 3), "the model was not asked again after the tool error");
    IT_CHECK(request_holds(f, 2,
                           "no transfer target is named '" SALES "' (the targets: sales, support)"),
             "the tool error");
    it_phone_quiet(&p, 300, 20000);
    IT_CHECK(fake_requests() == before, "a transfer to an unknown name reached Twilio");
    want = before + 1;
    IT_CHECK(speak_until_asked(&p, f, 4), "no third turn");
    IT_CHECK(it_phone_until(&p, fake_has, &want, 30000), "no hang-up reached Twilio");
    IT_CHECK(p.heard && !it_phone_talking(&p), "hung up before the goodbye had played");
    IT_CHECK(
        request_is(before, "/Calls/CA72000000000000000000000000000002.json", "Status=completed"),
        "the hang-up request");
    IT_CHECK(it_phone_wait_end(&p, 10000), "the stream did not end");
    it_phone_free(&p);
    IT_CHECK(check_event(s.port, sid, "control", "action", "hangup", "done",
                         "\"by\":\"agent:llm\",\"reason\":\"end_call\""),
             "hang-up event");

    /* Refused by Twilio: the model is told, and says so. */
    sid = "CA72000000000000000000000000000003";
    before = fake_requests();
    want = before + 1;
    IT_CHECK(it_phone_start(&p, s.port, sid, "MZ72000000000000000000000000000003", NULL) == 0,
             "phone 3");
    it_phone_run(&p, 500);
    IT_CHECK(speak_until_asked(&p, f, 5), "not asked");
    IT_CHECK(it_phone_until(&p, fake_has, &want, 30000), "no transfer reached Twilio");
    asked a = {f, 6};
    IT_CHECK(it_phone_until(&p, llm_asked, &a, 20000), "the model was not told of the refusal");
    IT_CHECK(request_holds(f, 5, "the transfer failed:") && request_holds(f, 5, "Cannot redirect."),
             "the refusal given to the model");
    IT_CHECK(check_event(s.port, sid, "control", "action", "redirect_twiml", "failed",
                         "\"to\":\"" SUPPORT "\""),
             "failed control event");
    it_phone_quiet(&p, 300, 20000);
    char said[4096];
    it_transcript(s.port, sid, "agent", said, sizeof said);
    IT_CHECK(strstr(said, "could not transfer you"), "the apology was not said: %s", said);
    it_phone_hangup(&p);
    it_phone_free(&p);
    IT_CHECK(it_metric(s.port, "callstream_llm_transfers_total") == 1 &&
                 it_metric(s.port, "callstream_llm_transfer_failures_total") == 2,
             "LLM transfer metrics");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "exit status after SIGTERM");
    it_server_cleanup(&s);
    llm_fake_free(f);
}

/* ---- the speech-to-speech model's tools ---- */

typedef struct rt_seen {
    rt_fake *f;
    const char *type;
    unsigned n;
} rt_seen;

static bool rt_has(const it_phone *p, void *data)
{
    (void)p;
    const rt_seen *w = data;
    if (!w->type) {
        rt_fake_stats st;
        rt_fake_stats_get(w->f, &st);
        return st.sessions >= w->n;
    }
    return rt_fake_count(w->f, w->type) >= w->n;
}

/* The k-th client event of `type` holds `text`. */
static bool rt_event_holds(rt_fake *f, const char *type, size_t k, const char *text)
{
    cs_buf b = CS_BUF_INIT(8u << 20);
    bool ok = rt_fake_event(f, type, k, &b) && strstr(b.data, text);
    if (!ok) fprintf(stderr, "%s %zu: %.2000s\n", type, k, b.data ? b.data : "-");
    cs_buf_free(&b);
    return ok;
}

static void realtime(void)
{
    rt_fake *f;
    rt_fake_opts o = {.api_key = "k", .model = "gpt-realtime"};
    if (rt_fake_start(&f, &o) != 0) {
        IT_CHECK(false, "no fake Realtime server");
        return;
    }
    const char *args[32] = {"--agent",
                            "openai-realtime",
                            "--openai-api-key",
                            "k",
                            "--openai-realtime-url",
                            rt_fake_url(f),
                            "--stt",
                            "none",
                            "--agent-transfer-targets",
                            "sales=" SALES};
    size_t n = 10;
    control_args(args, &n);
    it_server s;
    if (!it_server_up(&s, args)) {
        rt_fake_free(f);
        it_server_cleanup(&s);
        return;
    }
    const char *sid = "CA74000000000000000000000000000001";
    it_phone p;
    IT_CHECK(it_phone_start(&p, s.port, sid, "MZ74000000000000000000000000000001", NULL) == 0,
             "phone");
    rt_seen w = {f, NULL, 1};
    IT_CHECK(it_phone_until(&p, rt_has, &w, 30000), "no session");
    IT_CHECK(rt_event_holds(f, "session.update", 0, "\"name\":\"transfer\""),
             "the transfer tool is not in the session");
    /* A name that is no target: an error output, nothing sent. */
    unsigned before = fake_requests();
    rt_fake_function_call(f, "transfer", "call_x", "{\"to\":\"billing\"}");
    w = (rt_seen){f, "conversation.item.create", 1};
    IT_CHECK(it_phone_until(&p, rt_has, &w, 30000), "no function output");
    IT_CHECK(rt_event_holds(f, "conversation.item.create", 0, "no transfer target is named"),
             "the error output");
    /* Sales: once the words have played, <Dial> the configured number. */
    rt_fake_reply words = {.bytes = 4000, .text = "Putting you through."};
    rt_fake_respond(f, &words);
    rt_fake_function_call(f, "transfer", "call_t", "{\"to\":\"sales\"}");
    unsigned want = before + 1;
    IT_CHECK(it_phone_until(&p, fake_has, &want, 30000), "no transfer reached Twilio");
    IT_CHECK(p.media_bytes >= 4000 && !it_phone_talking(&p),
             "the transfer went before the words had played: %llu bytes",
             (unsigned long long)p.media_bytes);
    IT_CHECK(fake_requests() == before + 1 &&
                 request_is(before, "/Calls/CA74000000000000000000000000000001.json",
                            DIAL("15551230001")),
             "the transfer request");
    w = (rt_seen){f, "conversation.item.create", 2};
    IT_CHECK(it_phone_until(&p, rt_has, &w, 30000), "no function output for the transfer");
    IT_CHECK(rt_event_holds(f, "conversation.item.create", 1, "the call is transferred"),
             "the transfer's output");
    IT_CHECK(check_event(s.port, sid, "control", "action", "redirect_twiml", "done",
                         "\"by\":\"agent:openai-realtime\""),
             "control event");
    it_phone_hangup(&p);
    it_phone_free(&p);
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "exit status after SIGTERM");
    it_server_cleanup(&s);
    rt_fake_free(f);
}

/* ---- the voice webhook's TwiML with call parameters ---- */

static void webhook_params(void)
{
    it_server s;
    const char *args[] = {"--stt", "none", NULL};
    if (!it_server_up(&s, args)) return;
    /* 17 parameters in as long a query as a request target holds, of the character that
     * escapes longest: answered, and under 64 kB. */
    cs_buf target = CS_BUF_INIT(1 << 20);
    cs_buf_puts(&target, "/twilio/voice?");
    for (int i = 0; i < 17; i++) {
        cs_buf_printf(&target, "%sP%c=", i ? "&" : "", 'a' + i);
        for (int k = 0; k < 497 && target.len + 3 + (16 - i) * 4 <= 4096; k++)
            cs_buf_puts(&target, "%22");
    }
    it_resp r;
    const char *form = "CallSid=CA73000000000000000000000000000001&From=%2B1555&To=%2B1666";
    it_http(s.port, "POST", target.data, FORM, form, &r);
    IT_CHECK(r.status == 200 && r.body && strstr(r.body, "name=\"Pq\"") &&
                 strstr(r.body, "&quot;&quot;") && strlen(r.body) < 65536,
             "17 long parameters: %d, %zu bytes", r.status, r.body ? strlen(r.body) : 0);
    it_resp_free(&r);
    /* One more: refused with the limit, and counted. */
    cs_buf_reset(&target);
    cs_buf_puts(&target, "/twilio/voice?");
    for (int i = 0; i < 18; i++) cs_buf_printf(&target, "%sP%c=1", i ? "&" : "", 'a' + i);
    it_http(s.port, "POST", target.data, FORM, form, &r);
    IT_CHECK(r.status == 400 && strstr(r.body, "18 call parameters; a call takes at most 17"),
             "18 parameters: %d %s", r.status, r.body);
    it_resp_free(&r);
    IT_CHECK(it_metric(s.port, "callstream_webhook_params_refused_total") == 1,
             "the refusal was not counted");
    cs_buf_free(&target);
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "exit status after SIGTERM");
    it_server_cleanup(&s);
    /* A greeting that fits with a long From and To, but not with call parameters too:
     * refused at start-up. */
    char *greeting = it_repeat('&', 11000); /* 55 kB escaped */
    const char *big[] = {"--stt", "none", "--greeting", greeting, NULL};
    it_refused(big, "larger than 64 kB with a long From, To and call parameters");
    free(greeting);
}

int main(void)
{
    twilio_fake_opts fo = {.account_sid = ACCOUNT,
                           .user = KEY,
                           .pass = SECRET,
                           .script = script,
                           .nscript = sizeof script / sizeof *script};
    if (twilio_fake_start(&fake, &fo) < 0) {
        fprintf(stderr, "cannot start the fake Twilio\n");
        return 1;
    }
    ivr();
    llm();
    realtime();
    webhook_params();
    twilio_fake_free(fake);
    return it_done("agent_control");
}
