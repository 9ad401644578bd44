/* The voice webhook against whatever Twilio (or someone else) may post: From and To of any
 * length, many parameters, XML's special characters, control characters and bytes that
 * are not UTF-8. The answer is well-formed TwiML (expat parses it) or a clear 4xx; what
 * does not fit a <Parameter> is left out of it, and kept whole in the call's row. Settings
 * that would make TwiML Twilio refuses stop the gateway at start. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "net/form.h"
#include "provider/twiml.h"
#include "xmlcheck.h"

#define CALL "CA80000000000000000000000000000"

static it_server srv;

/* POSTs the webhook for call number `k` with From, To and `extra` more pairs. */
static int post(int k, const char *from, size_t from_len, const char *to, size_t extra, it_resp *r)
{
    char sid[40], (*names)[24] = calloc(extra + 3, sizeof *names);
    const char **vals = calloc(extra + 3, sizeof *vals), **keys = calloc(extra + 3, sizeof *keys);
    snprintf(sid, sizeof sid, CALL "%03d", k);
    keys[0] = "CallSid", vals[0] = sid;
    keys[1] = "To", vals[1] = to;
    for (size_t i = 0; i < extra; i++) {
        snprintf(names[i], sizeof names[i], "X%zu", i);
        keys[2 + i] = names[i], vals[2 + i] = "1";
    }
    cs_buf body = CS_BUF_INIT(1u << 24);
    cs_form_write(&body, keys, vals, extra + 2);
    if (from) {
        cs_buf_puts(&body, "&From=");
        cs_form_encode(&body, from, from_len);
    }
    int rc = it_http(srv.port, "POST", "/twilio/voice",
                     "Content-Type: application/x-www-form-urlencoded\r\n", body.data, r);
    cs_buf_free(&body);
    free(names);
    free(vals);
    free(keys);
    return rc;
}

/* The answer is TwiML that parses; its From parameter goes to `from` ("" if none). */
static bool twiml_ok(const char *what, const it_resp *r, char *from, size_t cap)
{
    char why[256] = "";
    bool ok =
        r->status == 200 && xml_well_formed(r->body, r->body_len, why, sizeof why, NULL, NULL);
    IT_CHECK(ok, "%s: %d, %s: %.300s", what, r->status, why, r->body);
    IT_CHECK(r->body_len <= CS_TWIML_MAX_BYTES, "%s: %zu bytes of TwiML", what, r->body_len);
    if (!xml_twiml_param(r->body, r->body_len, "From", from, cap)) from[0] = '\0';
    return ok;
}

/* The call's row once the store has it (writes are queued). Caller frees. */
static cJSON *stored(const char *sid)
{
    cJSON *call = NULL;
    for (int i = 0; i < 250 && !(call = it_call(srv.port, sid)); i++) it_sleep_ms(20);
    return call;
}

static void long_from_and_to(void)
{
    static char got[1 << 16];
    it_resp r;
    /* At the limit: in, escaped. */
    char *quotes = it_repeat('"', CS_TWIML_MAX_PARAM - 4);
    IT_CHECK(post(1, quotes, strlen(quotes), "+15550001", 0, &r) == 0, "no answer");
    twiml_ok("a From at the limit", &r, got, sizeof got);
    IT_CHECK(strcmp(got, quotes) == 0, "From came back as %.40s…", got);
    it_resp_free(&r);
    free(quotes);

    /* Longer than a <Parameter> takes, up to what a body may hold: left out, counted. */
    static const size_t lengths[] = {CS_TWIML_MAX_PARAM - 3, 600, 5000, 60000};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        size_t to_len = lengths[i] / 2 < 1000 ? lengths[i] / 2 : 1000;
        char *from = it_repeat('x', lengths[i]), *to = it_repeat('&', to_len);
        memcpy(from, "sip:", 4);
        IT_CHECK(post(2 + (int)i, from, strlen(from), to, 0, &r) == 0, "no answer");
        char what[64];
        snprintf(what, sizeof what, "a %zu-byte From", lengths[i]);
        if (twiml_ok(what, &r, got, sizeof got)) {
            IT_CHECK(got[0] == '\0', "%s: still a <Parameter>", what);
            IT_CHECK(strstr(r.body, "name=\"CallSid\"") != NULL, "%s: CallSid is missing", what);
        }
        it_resp_free(&r);
        /* The call's row keeps it whole. */
        char sid[40];
        snprintf(sid, sizeof sid, CALL "%03d", 2 + (int)i);
        cJSON *call = stored(sid);
        const cJSON *f = cJSON_GetObjectItem(call, "from");
        IT_CHECK(cJSON_IsString(f) && strcmp(f->valuestring, from) == 0, "%s: stored as %.40s",
                 what, cJSON_IsString(f) ? f->valuestring : "nothing");
        cJSON_Delete(call);
        free(from);
        free(to);
    }
    IT_CHECK(it_metric(srv.port, "callstream_twiml_parameters_dropped_total") == 6,
             "%.0f parameters counted as left out",
             it_metric(srv.port, "callstream_twiml_parameters_dropped_total"));

    /* Past MAX_BODY_BYTES: a clear 413. */
    char *huge = it_repeat('y', 70000);
    IT_CHECK(post(9, huge, strlen(huge), "+1", 0, &r) == 0 && r.status == 413, "a 70 kB From: %d",
             r.status);
    it_resp_free(&r);
    free(huge);
}

static void hostile_characters(void)
{
    static const struct {
        const char *from;
        const char *want; /* the <Parameter> value, as an XML parser reads it */
    } rows[] = {
        {"<Say>&amp;\"'</Say>", "<Say>&amp;\"'</Say>"},
        {"]]><!--x--><?pi?>", "]]><!--x--><?pi?>"},
        {"+1\x01\x02\x1b[0m\x7f\t\r\n", "+1[0m\x7f\t\r\n"},
        {"\xff\xfe+1\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd+1\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80\xef\xbf\xbe", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80"},
    };
    char got[256];
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        it_resp r;
        IT_CHECK(post(20 + (int)i, rows[i].from, strlen(rows[i].from), "<To>", 0, &r) == 0,
                 "no answer");
        char what[32];
        snprintf(what, sizeof what, "hostile From #%zu", i);
        if (twiml_ok(what, &r, got, sizeof got))
            IT_CHECK(strcmp(got, rows[i].want) == 0, "%s: From is \"%s\"", what, got);
        it_resp_free(&r);
    }
    /* A NUL cannot be carried anywhere: a clear 400. */
    it_resp r;
    IT_CHECK(post(29, "+1\0", 3, "+1", 0, &r) == 0 && r.status == 400, "a NUL in From: %d",
             r.status);
    it_resp_free(&r);
    /* The webhook's event, with every parameter, is JSON that parses. */
    char sid[40];
    snprintf(sid, sizeof sid, CALL "%03d", 23);
    cJSON *call = stored(sid);
    for (int i = 0; i < 250 && call && it_call_events(call, "webhook", NULL) == 0; i++) {
        cJSON_Delete(call);
        it_sleep_ms(20);
        call = it_call(srv.port, sid);
    }
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(call, "events"), 0);
    const cJSON *from = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "detail"), "From");
    IT_CHECK(cJSON_IsString(from) && strcmp(from->valuestring, rows[3].want) == 0,
             "the webhook event: %s", call ? "no From as expected" : "not JSON");
    cJSON_Delete(call);
}

static void many_parameters(void)
{
    it_resp r;
    char got[64];
    IT_CHECK(post(30, "+1555", 5, "+1666", CS_FORM_MAX_PAIRS - 3, &r) == 0, "no answer");
    twiml_ok("as many parameters as a form holds", &r, got, sizeof got);
    IT_CHECK(strcmp(got, "+1555") == 0, "From is %s", got);
    it_resp_free(&r);
    IT_CHECK(post(31, "+1555", 5, "+1666", CS_FORM_MAX_PAIRS, &r) == 0, "no answer");
    IT_CHECK(r.status == 400 && strstr(r.body, "form parameters"), "too many parameters: %d %s",
             r.status, r.body);
    it_resp_free(&r);
}

/* Settings that make every answer too large for Twilio, or a transcript webhook that is not
 * http(s): refused at start, saying which. */
/* The answer of each mode, byte for byte up to the <Parameter>s (which vary by call). */
static void answer_shapes(void)
{
    struct {
        const char *const args[12];
        const char *want; /* %1$s: ws://127.0.0.1:PORT, %2$s: http://127.0.0.1:PORT */
    } cases[] = {
        {{NULL},
         "<Response><Connect><Stream url=\"%1$s/twilio/media\" "
         "statusCallback=\"%2$s/twilio/stream-status\" statusCallbackMethod=\"POST\">"},
        {{"--stream-mode", "start", "--stream-track", "both_tracks", "--max-call-s", "60",
          "--greeting", "Hi & <bye>", "--voice", "Polly.Joanna", NULL},
         "<Response><Say voice=\"Polly.Joanna\">Hi &amp; &lt;bye&gt;</Say><Start><Stream "
         "url=\"%1$s/twilio/media\" track=\"both_tracks\" "
         "statusCallback=\"%2$s/twilio/stream-status\" statusCallbackMethod=\"POST\">"},
        {{"--stream-mode", "start", "--dial", "+15550009999", NULL},
         "<Response><Start><Stream url=\"%1$s/twilio/media\" track=\"inbound_track\" "
         "statusCallback=\"%2$s/twilio/stream-status\" statusCallbackMethod=\"POST\">"},
    };
    static const char *const ends[] = {"</Stream></Connect></Response>",
                                       "</Stream></Start><Pause length=\"60\"/></Response>",
                                       "</Stream></Start><Dial>+15550009999</Dial></Response>"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        it_server s;
        if (!it_server_up(&s, cases[i].args)) {
            IT_CHECK(0, "case %zu did not start", i);
            continue;
        }
        it_resp r = {0};
        int rc = it_http(s.port, "POST", "/twilio/voice",
                         "Content-Type: application/x-www-form-urlencoded\r\n",
                         "CallSid=" CALL "040&From=%2B1555&To=%2B1666", &r);
        char ws[80], want[1024];
        snprintf(ws, sizeof ws, "ws://127.0.0.1:%d", s.port);
        snprintf(want, sizeof want, cases[i].want, ws, s.url);
        const char *body = rc == 0 ? r.body : "";
        const char *decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        IT_CHECK(r.status == 200 && strncmp(body, decl, strlen(decl)) == 0 &&
                     strncmp(body + strlen(decl), want, strlen(want)) == 0,
                 "case %zu: %d %s", i, r.status, body);
        size_t n = strlen(body), e = strlen(ends[i]);
        IT_CHECK(n >= e && strcmp(body + n - e, ends[i]) == 0, "case %zu ends: %s", i, body);
        it_resp_free(&r);
        it_server_stop(&s, SIGTERM, 5000);
        it_server_cleanup(&s);
    }
}

static void settings_checked_at_start(void)
{
    char *greeting = it_repeat('&', 20000); /* 100 kB escaped */
    char *param = it_repeat('v', 600);
    memcpy(param, "P=", 2);
    /* A stream takes 99 parameters: the gateway's own four and 95 of STREAM_PARAMS. */
    char many[96 * 8] = "", most[96 * 8] = "";
    for (int i = 0; i < 96; i++) {
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sp%d=1", i ? "&" : "", i);
        if (i == 94) memcpy(most, many, strlen(many) + 1);
    }
    struct {
        const char *const args[5];
        const char *says; /* NULL: it starts */
    } cases[] = {
        {{"--greeting", greeting, NULL}, "larger than 64 kB"},
        {{"--stream-params", param, NULL}, "longer than 499 characters"},
        {{"--stream-params", many, NULL}, "96 parameters; a stream takes 95"},
        {{"--stream-params", most, NULL}, NULL},
        {{"--stream-params", "a=1&b=2&a=3", NULL}, "'a' is given twice"},
        {{"--stream-params", "CallSid=CA1", NULL}, "'CallSid' is given twice"},
        {{"--stt", "pocketsphinx", "--transcript-webhook-url", "ftp://example.com/x", NULL},
         "TRANSCRIPT_WEBHOOK_URL: 'ftp://example.com/x' is not an http(s) URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        it_server s;
        if (!cases[i].says) {
            IT_CHECK(it_server_up(&s, cases[i].args), "case %zu did not start", i);
            it_resp r = {0};
            int rc = it_http(s.port, "POST", "/twilio/voice",
                             "Content-Type: application/x-www-form-urlencoded\r\n",
                             "CallSid=" CALL "032&From=%2B1555&To=%2B1666", &r);
            int params = 0;
            for (const char *p = rc == 0 ? r.body : NULL; p && (p = strstr(p, "<Parameter "));)
                params++, p++;
            IT_CHECK(r.status == 200 && params == 99 && strstr(r.body, "name=\"p94\""),
                     "case %zu: %d, %d parameters", i, r.status, params);
            it_resp_free(&r);
            it_server_stop(&s, SIGTERM, 5000);
            it_server_cleanup(&s);
            continue;
        }
        IT_CHECK(it_server_start(&s, cases[i].args) < 0, "started with case %zu", i);
        IT_CHECK(it_log_count(&s, cases[i].says) == 1, "case %zu: the log does not say \"%s\"", i,
                 cases[i].says);
        it_server_cleanup(&s);
    }
    free(greeting);
    free(param);
}

int main(void)
{
    if (it_server_start(&srv, NULL) < 0) {
        IT_CHECK(0, "the server did not start");
        return it_done("webhook");
    }
    long_from_and_to();
    hostile_characters();
    many_parameters();
    it_server_stop(&srv, SIGTERM, 5000);
    it_server_cleanup(&srv);
    answer_shapes();
    settings_checked_at_start();
    return it_done("webhook");
}
