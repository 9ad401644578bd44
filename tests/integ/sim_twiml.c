/* `callstream sim` following TwiML as Twilio does, against a local TwiML server: a chain
 * webhook → <Gather> (speech) → its action (SpeechResult) → <Gather> (keys) → its action
 * (Digits) → <Redirect method="GET"> → <Say> + <Hangup/>, every request signed; a redirect
 * loop stopped at the limit; a <Dial> with an action; an unknown verb skipped and a
 * missing document; bad XML; a <Connect action> asked when its stream fails; and the
 * gateway's own TwiML (Connect/Stream) streamed as before. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_server.h"
#include "integ_util.h"
#include "net/form.h"
#include "net/server.h"
#include "provider/twilio_sig.h"

#define TOKEN   "sim-twiml-token"
#define KEEP    64
#define MAXBODY 4096

typedef struct seen {
    char method[8], path[256], query[1024], body[MAXBODY];
    bool signed_ok;
} seen;

static fake_server srv;
static seen reqs[KEEP];
static size_t nreqs;

static void answer(cs_request *r, const char *xml)
{
    cs_respond(r, 200, "text/xml", xml, strlen(xml), NULL);
}

/* Twilio's signature over the URL as requested and, for a POST, its form parameters. */
static bool signature_ok(const cs_request *r, const char *url)
{
    const cs_str *sig = cs_request_header(r, "X-Twilio-Signature");
    if (!sig) return false;
    char sigz[64];
    snprintf(sigz, sizeof sigz, "%.*s", (int)sig->n, sig->p);
    cs_form form = {0};
    if (r->body.len && cs_form_parse(&form, r->body.data, r->body.len) < 0) return false;
    cs_kv params[32];
    size_t n = 0;
    for (size_t i = 0; i < form.n && n < 32; i++)
        params[n++] = (cs_kv){cs_str_of(form.pairs[i].name), cs_str_of(form.pairs[i].value)};
    bool ok = cs_twilio_sig_check_webhook(TOKEN, url, params, n, NULL, 0, sigz) == 0;
    cs_form_free(&form);
    return ok;
}

static void on_request(cs_request *r)
{
    const cs_http_req *h = &r->head;
    char path[256], url[1400];
    snprintf(path, sizeof path, "%.*s", (int)h->path.n, h->path.p);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%.*s", srv.port, (int)h->target.n, h->target.p);
    FAKE_LOCKED(&srv, {
        if (nreqs < KEEP) {
            seen *s = &reqs[nreqs++];
            snprintf(s->method, sizeof s->method, "%.*s", (int)h->method_name.n, h->method_name.p);
            snprintf(s->path, sizeof s->path, "%s", path);
            snprintf(s->query, sizeof s->query, "%.*s", (int)h->query.n, h->query.p);
            snprintf(s->body, sizeof s->body, "%.*s", (int)r->body.len,
                     r->body.data ? r->body.data : "");
            s->signed_ok = signature_ok(r, url);
        }
    });
    static const struct {
        const char *path, *xml;
    } docs[] = {
        {"/chain/twilio/voice",
         "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Welcome</Say>"
         "<Gather input=\"speech dtmf\" action=\"/chain/gather?step=1\" timeout=\"1\">"
         "<Say>Say something</Say></Gather><Say>Nothing heard</Say><Hangup/></Response>"},
        {"/chain/gather",
         "<Response><Gather action=\"keys\" numDigits=\"2\" timeout=\"1\"><Play>https://x/y.mp3"
         "</Play></Gather><Hangup/></Response>"},
        {"/chain/keys", "<Response><Redirect method=\"GET\">/chain/next?a=1</Redirect></Response>"},
        {"/chain/next", "<Response><Say>Goodbye</Say><Hangup/><Say>never</Say></Response>"},
        {"/loop/twilio/voice",
         "<Response><Pause length=\"0\"/><Redirect>voice</Redirect></Response>"},
        {"/dial/twilio/voice",
         "<Response><Dial action=\"/dial/after\" timeout=\"10\">+15550009999</Dial>"
         "<Say>not reached</Say></Response>"},
        {"/dial/after", "<Response><Hangup/></Response>"},
        {"/err/twilio/voice", "<Response><Sms>hello</Sms><Redirect>/missing</Redirect></Response>"},
        {"/bad/twilio/voice", "<Response><Say>unclosed</Response>"},
        {"/ftp/twilio/voice", "<Response><Redirect>ftp://127.0.0.1/x</Redirect></Response>"},
        {"/conn/after", "<Response><Say>Sorry</Say><Hangup/></Response>"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
        if (strcmp(path, docs[i].path) == 0) return answer(r, docs[i].xml);
    if (strcmp(path, "/conn/twilio/voice") == 0) {
        char xml[512];
        snprintf(
            xml, sizeof xml,
            "<Response><Connect action=\"/conn/after\"><Stream url=\"ws://127.0.0.1:%d/nows\"/>"
            "</Connect><Say>not reached</Say></Response>",
            srv.port);
        return answer(r, xml);
    }
    cs_respond_error(r, 404, "no document at %s", path);
}

static const cs_route routes[] = {{CS_HTTP_OTHER, "/{*}", on_request}};

/* Runs the simulator against the fake's `prefix`. */
static cJSON *run(const char *prefix, int *exit_status, const char *args)
{
    it_server fake = {0};
    snprintf(fake.url, sizeof fake.url, "http://127.0.0.1:%d%s", srv.port, prefix);
    FAKE_LOCKED(&srv, nreqs = 0);
    return it_sim(&fake, exit_status, "--auth-token %s %s", TOKEN, args);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return s ? s : "(none)";
}

static const cJSON *hop(const cJSON *sum, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "twiml"), i);
}

static size_t requests(void)
{
    size_t n;
    FAKE_LOCKED(&srv, n = nreqs);
    return n;
}

/* Request k: `method` to `path`, signed, its body (or query) holding `has`. */
static void check_request(size_t k, const char *method, const char *path, const char *has)
{
    seen s;
    FAKE_LOCKED(&srv, s = reqs[k]);
    IT_CHECK(strcmp(s.method, method) == 0 && strcmp(s.path, path) == 0, "request %zu: %s %s", k,
             s.method, s.path);
    IT_CHECK(s.signed_ok, "request %zu (%s) not signed right", k, s.path);
    const char *params = strcmp(method, "GET") == 0 ? s.query : s.body;
    IT_CHECK(strstr(params, has) && strstr(params, "CallSid=CA"), "request %zu: %s lacks %s", k,
             params, has);
}

static void chain(void)
{
    int st;
    cJSON *sum = run("/chain", &st, "--gather-speech 'I need help' --gather-digits ',42#'");
    IT_CHECK(sum && st == 0 && num(sum, "completed") == 1, "the chain did not complete (%d)", st);
    IT_CHECK(strcmp(str(sum, "hangup_by"), "twiml_hangup") == 0, "hung up by %s",
             str(sum, "hangup_by"));
    IT_CHECK(requests() == 4, "%zu requests, 4 expected", requests());
    check_request(0, "POST", "/chain/twilio/voice", "CallStatus=ringing");
    check_request(1, "POST", "/chain/gather", "SpeechResult=I+need+help");
    check_request(1, "POST", "/chain/gather", "Confidence=0.9");
    check_request(2, "POST", "/chain/keys", "&Digits=42");
    check_request(3, "GET", "/chain/next", "a=1&AccountSid=AC");
    const char *outcomes[] = {"gather", "gather", "redirect", "hangup"};
    for (int i = 0; i < 4; i++)
        IT_CHECK(strcmp(str(hop(sum, i), "outcome"), outcomes[i]) == 0, "hop %d: %s", i,
                 str(hop(sum, i), "outcome"));
    const cJSON *counts = cJSON_GetObjectItem(sum, "twiml_counts");
    IT_CHECK(num(counts, "gathers") == 2 && num(counts, "redirects") == 1 &&
                 num(counts, "says") == 3 && num(counts, "hangups") == 1,
             "counts: %s", cJSON_PrintUnformatted(counts));
    cJSON_Delete(sum);

    /* no answer: each gather times out and the next verb follows */
    sum = run("/chain", &st, "");
    IT_CHECK(sum && st == 0 && requests() == 1, "no input: exit %d, %zu requests", st, requests());
    IT_CHECK(num(cJSON_GetObjectItem(sum, "twiml_counts"), "gathers_no_input") == 1, "no timeout");
    cJSON_Delete(sum);
}

static void loop_and_errors(void)
{
    int st;
    cJSON *sum = run("/loop", &st, "--max-documents 5");
    IT_CHECK(sum && st == 1 && num(cJSON_GetObjectItem(sum, "failures"), "twiml_limit") == 1,
             "a loop was not stopped (exit %d)", st);
    IT_CHECK(requests() == 5, "%zu requests in a loop limited to 5", requests());
    IT_CHECK(strcmp(str(hop(sum, 4), "outcome"), "limit") == 0, "the last hop: %s",
             str(hop(sum, 4), "outcome"));
    cJSON_Delete(sum);

    sum = run("/dial", &st, "--dial-status busy");
    IT_CHECK(sum && st == 0 && requests() == 2, "dial: exit %d, %zu requests", st, requests());
    check_request(1, "POST", "/dial/after", "DialCallStatus=busy");
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(hop(sum, 0), "verbs"), 0);
    IT_CHECK(strcmp(str(d, "number"), "+15550009999") == 0, "dialled %s", str(d, "number"));
    cJSON_Delete(sum);

    sum = run("/err", &st, "");
    IT_CHECK(sum && st == 1 && num(cJSON_GetObjectItem(sum, "failures"), "twiml_fetch") == 1,
             "a missing document: exit %d", st);
    IT_CHECK(num(cJSON_GetObjectItem(sum, "twiml_counts"), "unknown_verbs") == 1,
             "<Sms> not skipped");
    IT_CHECK(num(hop(sum, 1), "status") == 404, "hop 1 status %.0f", num(hop(sum, 1), "status"));
    cJSON_Delete(sum);

    sum = run("/bad", &st, "");
    IT_CHECK(sum && st == 1 && num(cJSON_GetObjectItem(sum, "failures"), "twiml") == 1,
             "bad XML: exit %d", st);
    IT_CHECK(strstr(str(hop(sum, 0), "error"), "bad TwiML"), "said %s", str(hop(sum, 0), "error"));
    cJSON_Delete(sum);

    sum = run("/ftp", &st, "");
    IT_CHECK(sum && st == 1 && num(cJSON_GetObjectItem(sum, "failures"), "twiml_fetch") == 1,
             "a redirect to ftp: exit %d", st);
    IT_CHECK(strstr(str(hop(sum, 1), "error"), "ftp://127.0.0.1/x"), "said %s",
             str(hop(sum, 1), "error"));
    cJSON_Delete(sum);

    /* the stream cannot open: Twilio asks the <Connect action>, and so does the sim */
    sum = run("/conn", &st, "");
    IT_CHECK(sum && st == 0 && requests() == 3, "connect action: exit %d, %zu requests", st,
             requests());
    if (requests() == 3) check_request(2, "POST", "/conn/after", "CallStatus=in-progress");
    IT_CHECK(strcmp(str(hop(sum, 0), "outcome"), "connect_action") == 0, "hop 0: %s",
             str(hop(sum, 0), "outcome"));
    cJSON_Delete(sum);

    char err[512];
    it_server fake = {.url = "http://127.0.0.1:1"};
    IT_CHECK(it_sim_err(&fake, err, sizeof err, "--dial-status maybe") == 2 &&
                 strstr(err, "--dial-status"),
             "a bad --dial-status: %s", err);
    IT_CHECK(it_sim_err(&fake, err, sizeof err, "--gather-digits 12x") == 2 &&
                 strstr(err, "--gather-digits"),
             "bad --gather-digits: %s", err);
    IT_CHECK(it_sim_err(&fake, err, sizeof err, "--max-documents 0") == 2, "--max-documents 0");
    char many[200] = "--gather-speech a";
    for (int i = 0; i < 64; i++) strcat(many, ",");
    IT_CHECK(it_sim_err(&fake, err, sizeof err, "%s", many) == 2 && strstr(err, "more than 64"),
             "65 answers: %s", err);
}

/* The gateway's own TwiML: the stream as before, the caller hanging up. */
static void gateway(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", NULL};
    if (!it_server_up(&s, args)) return;
    int st;
    cJSON *sum = it_sim(&s, &st, "--duration 1");
    IT_CHECK(sum && st == 0 && num(sum, "completed") == 1 && num(sum, "missing") == 0,
             "the gateway's call failed (%d)", st);
    IT_CHECK(strcmp(str(sum, "hangup_by"), "caller") == 0, "hung up by %s", str(sum, "hangup_by"));
    const cJSON *verbs = cJSON_GetObjectItem(hop(sum, 0), "verbs");
    const cJSON *c = cJSON_GetArrayItem(verbs, cJSON_GetArraySize(verbs) - 1);
    IT_CHECK(strcmp(str(c, "verb"), "Connect") == 0 && strcmp(str(c, "ended_by"), "caller") == 0,
             "the stream: %s", cJSON_PrintUnformatted(verbs));
    cJSON_Delete(sum);
    it_server_stop(&s, SIGTERM, 10000);
    it_server_cleanup(&s);
}

int main(void)
{
    if (fake_server_start(&srv, routes, 1, NULL, NULL, 0) == 0) {
        chain();
        loop_and_errors();
        fake_server_stop(&srv);
    } else {
        IT_CHECK(false, "the TwiML server did not start");
    }
    gateway();
    return it_done("sim_twiml");
}
