/* Call control through the real binary, against a fake of Twilio's REST API: an outbound
 * call placed with exactly Twilio's form fields, in the store at once as queued and moved
 * on by status callbacks, its agent and params reaching the stream's <Parameter>s; every
 * route's bad input refused with nothing sent; Twilio's refusals mapped (4xx → 422,
 * 5xx → 502, with its code and message), a timeout not retried; hang-up, transfer and
 * forked streams on a live call, each recorded as an event; say; an unreachable API and
 * call control switched off. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "net/form.h"
#include "twilio_rest_fake.h"

#define ACCOUNT "AC00000000000000000000000000000000"
#define KEY     "SK00000000000000000000000000000001"
#define SECRET  "api-secret"
#define TO      "+15551230000"
#define FROM    "+15559870000"
#define LIVE    "CA70000000000000000000000000000001"
#define LIVE2   "CA70000000000000000000000000000002"
#define GONE    "CA70000000000000000000000000000404"
#define JSON    "Content-Type: application/json\r\n"

static it_server srv;
static twilio_fake *fake;

static const twilio_fake_reply script[] = {
    {TWILIO_FAKE_ERROR, 400, 21211, "The 'To' number +15005550001 is not a valid phone number.",
     "To=%2B15005550001"},
    {TWILIO_FAKE_ERROR, 500, 20500, "Internal Server Error", "To=%2B15005550002"},
    {TWILIO_FAKE_ERROR, 429, 20429, "Too Many Requests", "To=%2B15005550003"},
    {TWILIO_FAKE_STALL, 0, 0, NULL, "To=%2B15005550004"},
    {TWILIO_FAKE_ERROR, 404, 20404, "The requested resource was not found", GONE},
    {TWILIO_FAKE_ERROR, 404, 20404, "The requested resource was not found", "Streams/missing"},
};

static unsigned fake_requests(void)
{
    twilio_fake_stats st;
    twilio_fake_stats_get(fake, &st);
    return st.requests;
}

/* The last request the fake took: its path and body. */
static void last_request(cs_buf *path, cs_buf *body)
{
    unsigned n = fake_requests();
    IT_CHECK(n > 0 && twilio_fake_request(fake, n - 1, path, body), "no request reached Twilio");
}

static int post(const char *target, const char *body, it_resp *r)
{
    return it_http(srv.port, "POST", target, JSON, body, r);
}

static void status_callback(const char *sid, const char *status)
{
    char body[256];
    snprintf(body, sizeof body, "CallSid=%s&AccountSid=%s&CallStatus=%s", sid, ACCOUNT, status);
    it_resp r;
    it_http(srv.port, "POST", "/twilio/status",
            "Content-Type: application/x-www-form-urlencoded\r\n", body, &r);
    IT_CHECK(r.status == 204, "status callback %s: %d", status, r.status);
    it_resp_free(&r);
}

/* The call's status once the store says `want` (writes are queued). */
static bool status_is(const char *sid, const char *want)
{
    for (int i = 0; i < 250; i++) {
        cJSON *c = it_call(srv.port, sid);
        bool ok = c && strcmp(it_str(c, "status"), want) == 0;
        cJSON_Delete(c);
        if (ok) return true;
        it_sleep_ms(20);
    }
    return false;
}

static int control_events(const char *sid, const char *action)
{
    for (int i = 0; i < 250; i++) {
        cJSON *c = it_call(srv.port, sid);
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
        {
            const cJSON *d = cJSON_GetObjectItem(e, "detail");
            n += strcmp(it_str(e, "type"), "control") == 0 &&
                 strcmp(it_str(d, "action"), action) == 0;
        }
        cJSON_Delete(c);
        if (n) return n;
        it_sleep_ms(20);
    }
    return 0;
}

static void outbound_call(void)
{
    it_resp r;
    post("/api/v1/calls",
         "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"agent\":\"echo\",\"params\":{\"Campaign\":"
         "\"spring sale\"},\"timeout_s\":30,\"machine_detection\":true}",
         &r);
    IT_CHECK(r.status == 201, "create: %d %s", r.status, r.body);
    char sid[64] = "";
    snprintf(sid, sizeof sid, "%s", it_str(r.json, "call_sid"));
    IT_CHECK(strncmp(sid, "CA", 2) == 0 && strlen(sid) == 34, "call_sid '%s'", sid);
    IT_CHECK(strcmp(it_str(r.json, "status"), "queued") == 0, "status %s", r.body);
    it_resp_free(&r);

    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536), want = CS_BUF_INIT(65536);
    last_request(&path, &body);
    IT_CHECK(strcmp(path.data ? path.data : "", "/2010-04-01/Accounts/" ACCOUNT "/Calls.json") == 0,
             "path %s", path.data);
    /* Exactly Twilio's fields: our webhook with the agent and params, our status callback. */
    char voice[256], status[256];
    snprintf(voice, sizeof voice, "%s/twilio/voice?Agent=echo&Campaign=spring+sale", srv.url);
    snprintf(status, sizeof status, "%s/twilio/status", srv.url);
    const char *names[] = {"To",
                           "From",
                           "Url",
                           "Method",
                           "StatusCallback",
                           "StatusCallbackMethod",
                           "StatusCallbackEvent",
                           "StatusCallbackEvent",
                           "StatusCallbackEvent",
                           "StatusCallbackEvent",
                           "Timeout",
                           "MachineDetection"};
    const char *values[] = {TO,          FROM,      voice,      "POST",      status, "POST",
                            "initiated", "ringing", "answered", "completed", "30",   "Enable"};
    cs_form_write(&want, names, values, 12);
    IT_CHECK(body.data && strcmp(body.data, want.data) == 0, "form\n  %s\nwanted\n  %s", body.data,
             want.data);

    /* In the store and the list at once, queued; Twilio's callbacks move it on. */
    IT_CHECK(status_is(sid, "queued"), "not stored as queued");
    cJSON *row = it_call(srv.port, sid);
    IT_CHECK(strcmp(it_str(row, "direction"), "outbound-api") == 0 &&
                 strcmp(it_str(row, "to"), TO) == 0 && strcmp(it_str(row, "from"), FROM) == 0,
             "row %s", it_str(row, "sid"));
    cJSON_Delete(row);
    IT_CHECK(control_events(sid, "create") == 1, "no control event for the call");
    status_callback(sid, "ringing");
    IT_CHECK(status_is(sid, "ringing"), "not ringing");
    status_callback(sid, "in-progress");
    IT_CHECK(status_is(sid, "in-progress"), "not in progress");

    /* Twilio fetches the webhook URL we gave: the agent and params become parameters. */
    char target[256], form[256];
    snprintf(target, sizeof target, "/twilio/voice?Agent=echo&Campaign=spring+sale");
    snprintf(form, sizeof form,
             "CallSid=%s&From=%%2B15559870000&To=%%2B15551230000&Direction="
             "outbound-api&CallStatus=in-progress",
             sid);
    it_http(srv.port, "POST", target, "Content-Type: application/x-www-form-urlencoded\r\n", form,
            &r);
    IT_CHECK(r.status == 200 && strstr(r.body, "<Parameter name=\"Agent\" value=\"echo\"/>") &&
                 strstr(r.body, "<Parameter name=\"Campaign\" value=\"spring sale\"/>"),
             "TwiML %d %s", r.status, r.body);
    it_resp_free(&r);
    /* A query that is not a form: refused, not half read. */
    it_http(srv.port, "POST", "/twilio/voice?Agent=%zz",
            "Content-Type: application/x-www-form-urlencoded\r\n", form, &r);
    IT_CHECK(r.status == 400 && strstr(r.body, "query"), "bad query: %d %s", r.status, r.body);
    it_resp_free(&r);
    /* The gateway's own parameters are not taken from the query. */
    it_http(srv.port, "POST", "/twilio/voice?From=%2B1999&X=1",
            "Content-Type: application/x-www-form-urlencoded\r\n", form, &r);
    IT_CHECK(r.status == 200 &&
                 strstr(r.body, "<Parameter name=\"From\" value=\"+15559870000\"/>") &&
                 !strstr(r.body, "+1999") && strstr(r.body, "<Parameter name=\"X\" value=\"1\"/>"),
             "own parameters: %d %s", r.status, r.body);
    it_resp_free(&r);
    status_callback(sid, "completed");
    IT_CHECK(status_is(sid, "completed"), "not completed");
    cs_buf_free(&path);
    cs_buf_free(&body);
    cs_buf_free(&want);
}

/* Refused here, with nothing sent to Twilio. */
static void refused(const char *target, const char *body, int status, const char *why)
{
    unsigned before = fake_requests();
    it_resp r;
    post(target, body, &r);
    IT_CHECK(r.status == status && strstr(r.body ? r.body : "", why),
             "%s %s: %d %s (wanted %d, %s)", target, body ? body : "", r.status, r.body, status,
             why);
    it_resp_free(&r);
    IT_CHECK(fake_requests() == before, "%s %s reached Twilio", target, body ? body : "");
}

static void bad_input(void)
{
    refused("/api/v1/calls", "{\"from\":\"" FROM "\"}", 400, "E.164");
    refused("/api/v1/calls", "{\"to\":\"5551230000\",\"from\":\"" FROM "\"}", 400, "E.164");
    refused("/api/v1/calls", "{\"to\":\"+1555123000011111\",\"from\":\"" FROM "\"}", 400, "E.164");
    refused("/api/v1/calls", "{\"to\":\"" TO "\"}", 400, "from");
    refused("/api/v1/calls", "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"agent\":\"nobody\"}", 400,
            "not one of");
    refused("/api/v1/calls", "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"timeout_s\":0}", 400,
            "timeout_s");
    refused("/api/v1/calls", "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"machine_detection\":1}",
            400, "machine_detection");
    refused("/api/v1/calls", "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"params\":{\"a\":1}}", 400,
            "params");
    refused("/api/v1/calls",
            "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"params\":{\"From\":\"x\"}}", 400, "params");
    char big[2048] = "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"params\":{";
    for (int i = 0; i < 17; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"p%d\":\"v\"", i ? "," : "", i);
    strcat(big, "}}");
    refused("/api/v1/calls", big, 400, "more than 16");
    char *longv = malloc(1200);
    snprintf(longv, 1200, "{\"to\":\"" TO "\",\"from\":\"" FROM "\",\"params\":{\"p\":\"%0600d\"}}",
             0);
    refused("/api/v1/calls", longv, 400, "longer than");
    free(longv);
    refused("/api/v1/calls", "[1]", 400, "not a JSON object");
    refused("/api/v1/calls", "{", 400, "not a JSON object");
    it_resp r;
    it_http(srv.port, "POST", "/api/v1/calls", "Content-Type: text/plain\r\n", "to=x", &r);
    IT_CHECK(r.status == 415, "text/plain: %d", r.status);
    it_resp_free(&r);
    /* A form a page elsewhere could send with the user's cookie: refused, not sent. */
    unsigned before = fake_requests();
    it_http(srv.port, "POST", "/api/v1/calls/" LIVE "/hangup",
            "Content-Type: application/x-www-form-urlencoded\r\n", "", &r);
    IT_CHECK(r.status == 415 && fake_requests() == before, "form hang-up: %d", r.status);
    it_resp_free(&r);
    refused("/api/v1/calls/CA123/hangup", NULL, 404, "no such call");
    refused("/api/v1/calls/" LIVE "/transfer", "{\"to\":\"reception\"}", 400, "E.164");
    refused("/api/v1/calls/" LIVE "/transfer", "{}", 400, "E.164");
    refused("/api/v1/calls/" LIVE "/streams", "{\"url\":\"http://x\"}", 400, "ws://");
    refused("/api/v1/calls/" LIVE "/streams", "{\"url\":\"wss://x\",\"name\":\"a b\"}", 400,
            "name");
    refused("/api/v1/calls/" LIVE "/streams", "{\"url\":\"wss://x\",\"track\":\"left\"}", 400,
            "track");
    refused("/api/v1/calls/" LIVE "/streams/a%20b/stop", NULL, 404, "no such stream");
    refused("/api/v1/calls/" LIVE "/say", "{\"text\":\"\"}", 400, "text");
    refused("/api/v1/calls/" LIVE "/say", "{\"text\":\"hello\"}", 409, "not live");
    /* Signed-in users only. */
    it_http_browser(srv.port, "POST", "/api/v1/calls", JSON,
                    "{\"to\":\"" TO "\",\"from\":\"" FROM "\"}", &r);
    IT_CHECK(r.status == 401, "without a credential: %d", r.status);
    it_resp_free(&r);
}

static void twilio_refuses(const char *to, int status, int code, const char *message)
{
    char body[256];
    snprintf(body, sizeof body, "{\"to\":\"%s\",\"from\":\"" FROM "\"}", to);
    unsigned before = fake_requests();
    it_resp r;
    post("/api/v1/calls", body, &r);
    const cJSON *err = cJSON_GetObjectItem(r.json, "error");
    const cJSON *prov = cJSON_GetObjectItem(err, "provider");
    IT_CHECK(
        r.status == status && strstr(it_str(err, "message"), message) &&
            (code ? it_num(prov, "code") == code : cJSON_IsNull(cJSON_GetObjectItem(prov, "code"))),
        "%s: %d %s", to, r.status, r.body);
    it_resp_free(&r);
    IT_CHECK(fake_requests() == before + 1, "%s: %u requests, wanted 1 (never a second call)", to,
             fake_requests() - before);
}

static void twilio_errors(void)
{
    twilio_refuses("+15005550001", 422, 21211, "is not a valid phone number");
    twilio_refuses("+15005550002", 502, 20500, "Internal Server Error");
    twilio_refuses("+15005550003", 422, 20429, "Too Many Requests");
    twilio_refuses("+15005550004", 502, 0, "did not answer in time");
    it_resp r;
    post("/api/v1/calls/" GONE "/hangup", NULL, &r);
    IT_CHECK(r.status == 422 && strstr(r.body, "20404"),
             "hangup of a call Twilio does not know: %d %s", r.status, r.body);
    it_resp_free(&r);
    double failed = it_metric(srv.port, "callstream_control_failed_total");
    IT_CHECK(failed >= 5, "callstream_control_failed_total %g", failed);
}

static bool ended(const it_phone *p, void *data)
{
    (void)data;
    return p->closed;
}

static void live_call(void)
{
    it_phone p;
    IT_CHECK(it_phone_start(&p, srv.port, LIVE, "MZ70000000000000000000000000000001", NULL) == 0,
             "phone");
    it_phone_run(&p, 300);
    it_resp r;
    /* A forked stream, then stopped by its name. */
    post("/api/v1/calls/" LIVE "/streams", "{\"url\":\"wss://fork.example/a\",\"name\":\"fork1\"}",
         &r);
    IT_CHECK(r.status == 201 && strncmp(it_str(r.json, "stream_sid"), "MZ", 2) == 0,
             "streams: %d %s", r.status, r.body);
    it_resp_free(&r);
    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536);
    last_request(&path, &body);
    IT_CHECK(strstr(path.data, "/Calls/" LIVE "/Streams.json") &&
                 strcmp(body.data, "Url=wss%3A%2F%2Ffork.example%2Fa&Name=fork1") == 0,
             "streams request %s %s", path.data, body.data);
    post("/api/v1/calls/" LIVE "/streams/fork1/stop", NULL, &r);
    IT_CHECK(r.status == 200 && strcmp(it_str(r.json, "status"), "stopped") == 0, "stop: %d %s",
             r.status, r.body);
    it_resp_free(&r);
    last_request(&path, &body);
    IT_CHECK(strstr(path.data, "/Calls/" LIVE "/Streams/fork1.json") &&
                 strcmp(body.data, "Status=stopped") == 0,
             "stop request %s %s", path.data, body.data);
    /* A stream Twilio does not know: refused, and recorded as a failed action. */
    post("/api/v1/calls/" LIVE "/streams/missing/stop", NULL, &r);
    IT_CHECK(r.status == 422 && strstr(r.body, "20404"), "stop of an unknown stream: %d %s",
             r.status, r.body);
    it_resp_free(&r);
    /* The call has no agent: nothing to say it with. */
    post("/api/v1/calls/" LIVE "/say", "{\"text\":\"hello\"}", &r);
    IT_CHECK(r.status == 409, "say without an agent: %d %s", r.status, r.body);
    it_resp_free(&r);
    /* Hang up: Twilio is told, and our side of the stream closes. */
    post("/api/v1/calls/" LIVE "/hangup", NULL, &r);
    IT_CHECK(r.status == 200, "hangup: %d %s", r.status, r.body);
    it_resp_free(&r);
    last_request(&path, &body);
    IT_CHECK(strstr(path.data, "/Calls/" LIVE ".json") &&
                 strcmp(body.data, "Status=completed") == 0,
             "hangup request %s %s", path.data, body.data);
    IT_CHECK(it_phone_until(&p, ended, NULL, 10000), "the stream did not end");
    it_phone_free(&p);
    IT_CHECK(control_events(LIVE, "hangup") == 1, "hang-up event");
    IT_CHECK(control_events(LIVE, "stream_start") == 1, "stream_start event");
    IT_CHECK(control_events(LIVE, "stream_stop") == 2, "stream_stop events (one failed)");

    /* Transfer: <Dial> as the call's new TwiML. */
    IT_CHECK(it_phone_start(&p, srv.port, LIVE2, "MZ70000000000000000000000000000002", NULL) == 0,
             "phone 2");
    it_phone_run(&p, 200);
    post("/api/v1/calls/" LIVE2 "/transfer", "{\"to\":\"+15550001111\"}", &r);
    IT_CHECK(r.status == 200 && strcmp(it_str(r.json, "to"), "+15550001111") == 0,
             "transfer: %d %s", r.status, r.body);
    it_resp_free(&r);
    last_request(&path, &body);
    IT_CHECK(strstr(path.data, "/Calls/" LIVE2 ".json") && strstr(body.data, "Twiml=") &&
                 strstr(body.data, "%3CDial%3E%2B15550001111%3C%2FDial%3E"),
             "transfer request %s %s", path.data, body.data);
    IT_CHECK(control_events(LIVE2, "redirect_twiml") == 1, "transfer event");
    it_phone_hangup(&p);
    it_phone_free(&p);
    cs_buf_free(&path);
    cs_buf_free(&body);
}

/* TWILIO_API_URL where nothing listens: refused, retried, then 502. */
static void unreachable(void)
{
    it_server s2;
    const char *args[] = {"--stt",
                          "none",
                          "--twilio-account-sid",
                          ACCOUNT,
                          "--twilio-api-key",
                          KEY,
                          "--twilio-api-secret",
                          SECRET,
                          "--twilio-api-url",
                          "http://127.0.0.1:1",
                          NULL};
    if (!it_server_up(&s2, args)) return;
    it_resp r;
    it_http(s2.port, "POST", "/api/v1/calls", JSON, "{\"to\":\"" TO "\",\"from\":\"" FROM "\"}",
            &r);
    IT_CHECK(r.status == 502 && strstr(r.body, "unreachable"), "unreachable: %d %s", r.status,
             r.body);
    it_resp_free(&r);
    IT_CHECK(it_metric(s2.port, "callstream_control_retries_total") >= 1, "no retries counted");
    /* Stopped while a request waits to be retried, its client gone: ended, nothing left. */
    const char *body = "{\"to\":\"" TO "\",\"from\":\"" FROM "\"}";
    char raw[1024];
    int n = snprintf(raw, sizeof raw,
                     "POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n%s",
                     strlen(body), it_auth, body);
    double pending = 0;
    IT_CHECK(it_http_leave(s2.port, raw, (size_t)n) == 0, "cannot send");
    for (int i = 0; i < 100 && pending < 1; i++, it_sleep_ms(20))
        pending = it_metric(s2.port, "callstream_control_pending");
    IT_CHECK(pending == 1, "callstream_control_pending %g", pending);
    IT_CHECK(it_server_stop(&s2, SIGTERM, 20000) == 0, "s2: exit status after SIGTERM");
    IT_CHECK(it_log_count(&s2, "request(s) ended unanswered") == 1, "the retry was not ended");
    it_server_cleanup(&s2);
}

static bool heard(const it_phone *p, void *data)
{
    (void)data;
    return p->heard;
}

/* The agent's transcript holds `text` (as it says it). */
static bool agent_said(int port, const char *sid, const char *text)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    for (int i = 0; i < 250; i++) {
        cJSON *j = it_get_json(port, target);
        bool found = false;
        const cJSON *seg;
        cJSON_ArrayForEach(seg, cJSON_GetObjectItem(j, "segments")) found |=
            strcmp(it_str(seg, "speaker"), "agent") == 0 && strstr(it_str(seg, "text"), text);
        cJSON_Delete(j);
        if (found) return true;
        it_sleep_ms(20);
    }
    return false;
}

/* Say: the live call's agent speaks the text in its voice, after what it is saying. */
static void say(void)
{
    char menu[600];
    snprintf(menu, sizeof menu, "%s/ivr/quick.json", getenv("CS_TEST_DATA"));
    it_server s4;
    /* With a speech engine: an agent's lines go to the transcript with it. */
    const char *args[] = {"--stt",
                          "pocketsphinx",
                          "--stt-max-sessions",
                          "1",
                          "--agent",
                          "ivr",
                          "--ivr-file",
                          menu,
                          "--twilio-account-sid",
                          ACCOUNT,
                          "--twilio-api-key",
                          KEY,
                          "--twilio-api-secret",
                          SECRET,
                          "--twilio-api-url",
                          twilio_fake_url(fake),
                          NULL};
    if (!it_server_up(&s4, args)) return;
    it_phone p;
    IT_CHECK(it_phone_start(&p, s4.port, LIVE, "MZ70000000000000000000000000000003", NULL) == 0,
             "phone");
    IT_CHECK(it_phone_until(&p, heard, NULL, 20000), "no prompt");
    p.heard = false;
    it_resp r;
    it_http(s4.port, "POST", "/api/v1/calls/" LIVE "/say", JSON,
            "{\"text\":\"Your order has shipped.\"}", &r);
    IT_CHECK(r.status == 202, "say: %d %s", r.status, r.body);
    it_resp_free(&r);
    IT_CHECK(it_phone_quiet(&p, 300, 20000), "the text was not heard to its end");
    it_phone_hangup(&p);
    it_phone_free(&p);
    IT_CHECK(agent_said(s4.port, LIVE, "Your order has shipped."), "not in the agent's transcript");
    IT_CHECK(it_server_stop(&s4, SIGTERM, 20000) == 0, "s4: exit status after SIGTERM");
    it_server_cleanup(&s4);
}

static void switched_off(void)
{
    it_server s3;
    const char *args[] = {"--stt", "none", NULL};
    if (!it_server_up(&s3, args)) return;
    it_resp r;
    it_http(s3.port, "POST", "/api/v1/calls/" LIVE "/hangup", JSON, NULL, &r);
    IT_CHECK(r.status == 503 && strstr(r.body, "TWILIO_ACCOUNT_SID"), "off: %d %s", r.status,
             r.body);
    it_resp_free(&r);
    IT_CHECK(it_server_stop(&s3, SIGTERM, 20000) == 0, "s3: exit status after SIGTERM");
    it_server_cleanup(&s3);
    it_refused((const char *[]){"--twilio-api-key", KEY, NULL}, "TWILIO_API_SECRET");
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
    const char *args[] = {"--stt",
                          "none",
                          "--twilio-account-sid",
                          ACCOUNT,
                          "--twilio-api-key",
                          KEY,
                          "--twilio-api-secret",
                          SECRET,
                          "--twilio-api-url",
                          twilio_fake_url(fake),
                          "--twilio-api-timeout-ms",
                          "1000",
                          NULL};
    if (it_server_up(&srv, args)) {
        outbound_call();
        bad_input();
        twilio_errors();
        live_call();
        int rc = it_server_stop(&srv, SIGTERM, 20000);
        IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    }
    it_server_cleanup(&srv);
    unreachable();
    say();
    switched_off();
    twilio_fake_free(fake);
    return it_done("control");
}
