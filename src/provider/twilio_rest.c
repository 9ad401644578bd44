/* Twilio's REST API (2010-04-01) for call control, as docs/api.md lists it: Calls create
 * (POST /Accounts/{AC}/Calls.json), Calls update (POST /Accounts/{AC}/Calls/{CA}.json with
 * Status=completed, Twiml or Url), Streams create (POST …/Calls/{CA}/Streams.json) and
 * stop (POST …/Calls/{CA}/Streams/{MZ or name}.json with Status=stopped). Bodies are
 * form-encoded, auth is HTTP Basic, answers are JSON; errors are JSON too:
 * {"code": 21211, "message": "…", "more_info": "https://www.twilio.com/docs/errors/21211",
 * "status": 400}. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "net/form.h"
#include "provider/rest.h"
#include "provider/twilio.h"

#define API_VERSION "2010-04-01"
#define MAX_PAIRS   16

/* Call progress we want to hear of; Twilio sends "completed" whatever is asked. */
static const char *const status_events[] = {"initiated", "ringing", "answered", "completed"};
/* <Stream track> values for Streams create. */
static const char *const stream_tracks[] = {"inbound_track", "outbound_track", "both_tracks"};

typedef struct form {
    const char *names[MAX_PAIRS], *values[MAX_PAIRS];
    size_t n;
} form;

static void add(form *f, const char *name, const char *value)
{
    if (!value || f->n == MAX_PAIRS) return;
    f->names[f->n] = name;
    f->values[f->n++] = value;
}

static int invalid(cs_rest_result *res, const char *why)
{
    snprintf(res->message, sizeof res->message, "%s", why);
    return -EINVAL;
}

/* A path segment we put in a URL as it is: a stream's name or id. */
static bool segment_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CS_REST_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0) return true;
    return false;
}

static int basic_auth(cs_buf *out, const char *user, const char *pass)
{
    size_t ul = strlen(user), pl = strlen(pass), n = ul + 1 + pl;
    char plain[1024], enc[1400];
    if (n >= sizeof plain) return -EINVAL;
    memcpy(plain, user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, pass, pl);
    size_t len = cs_base64_encode(enc, (const uint8_t *)plain, n);
    enc[len] = '\0';
    return cs_buf_printf(out, "Authorization: Basic %s", enc);
}

static int build(const cs_rest_creds *c, const cs_rest_req *q, cs_rest_http *h, cs_rest_result *res)
{
    if (!cs_twilio_sid_valid(cs_str_of(c->account_sid ? c->account_sid : ""), "AC"))
        return invalid(res, "TWILIO_ACCOUNT_SID is not an account SID (AC…)");
    if (!c->user || !*c->user || !c->pass || !*c->pass)
        return invalid(res, "no credentials: TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and "
                            "TWILIO_API_SECRET");
    if (q->op != CS_REST_CREATE &&
        !cs_twilio_sid_valid(cs_str_of(q->call_sid ? q->call_sid : ""), "CA"))
        return invalid(res, "not a call SID");
    form f = {0};
    char timeout[16];
    const char *resource = NULL; /* after …/Calls */
    switch (q->op) {
    case CS_REST_CREATE:
        if (!q->to || !*q->to || !q->from || !*q->from || !q->url || !*q->url)
            return invalid(res, "a call needs To, From and Url");
        add(&f, "To", q->to);
        add(&f, "From", q->from);
        add(&f, "Url", q->url);
        add(&f, "Method", "POST");
        if (q->status_callback) {
            add(&f, "StatusCallback", q->status_callback);
            add(&f, "StatusCallbackMethod", "POST");
            for (size_t i = 0; i < sizeof status_events / sizeof *status_events; i++)
                add(&f, "StatusCallbackEvent", status_events[i]);
        }
        if (q->timeout_s) {
            snprintf(timeout, sizeof timeout, "%u", q->timeout_s);
            add(&f, "Timeout", timeout);
        }
        if (q->machine_detection) add(&f, "MachineDetection", "Enable");
        break;
    case CS_REST_HANGUP:
        add(&f, "Status", "completed");
        break;
    case CS_REST_TWIML:
        if (!q->twiml || !*q->twiml) return invalid(res, "no TwiML");
        if (strlen(q->twiml) > CS_REST_TWIML_MAX)
            return invalid(res, "TwiML longer than Twilio takes (4,000 characters)");
        add(&f, "Twiml", q->twiml);
        break;
    case CS_REST_URL:
        if (!q->url || !*q->url) return invalid(res, "no URL");
        add(&f, "Url", q->url);
        add(&f, "Method", "POST");
        break;
    case CS_REST_STREAM_START:
        if (!q->stream_url || !*q->stream_url) return invalid(res, "no stream URL");
        if (q->stream_name && !segment_ok(q->stream_name))
            return invalid(res, "a stream name is 1 to 64 of A-Z a-z 0-9 - _ .");
        if (q->track && !one_of(q->track, stream_tracks, 3))
            return invalid(res, "track is inbound_track, outbound_track or both_tracks");
        resource = "/Streams";
        add(&f, "Url", q->stream_url);
        add(&f, "Name", q->stream_name);
        add(&f, "Track", q->track);
        break;
    case CS_REST_STREAM_STOP:
        if (!q->stream_name || !segment_ok(q->stream_name))
            return invalid(res, "a stream name is 1 to 64 of A-Z a-z 0-9 - _ .");
        resource = "/Streams/";
        add(&f, "Status", "stopped");
        break;
    default:
        return invalid(res, "unknown operation");
    }
    int rc =
        cs_buf_printf(&h->url, "%s/" API_VERSION "/Accounts/%s/Calls", c->base_url, c->account_sid);
    if (rc == 0 && q->op != CS_REST_CREATE) rc = cs_buf_printf(&h->url, "/%s", q->call_sid);
    if (rc == 0 && resource) rc = cs_buf_puts(&h->url, resource);
    if (rc == 0 && q->op == CS_REST_STREAM_STOP) rc = cs_buf_puts(&h->url, q->stream_name);
    if (rc == 0) rc = cs_buf_puts(&h->url, ".json");
    if (rc == 0) rc = cs_form_write(&h->body, f.names, f.values, f.n);
    if (rc == 0) rc = basic_auth(&h->auth, c->user, c->pass);
    if (rc < 0) return rc == -EINVAL ? invalid(res, "credentials too long") : rc;
    return 0;
}

static void copy_str(char *out, size_t cap, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v)) snprintf(out, cap, "%s", v->valuestring);
}

static int parse(enum cs_rest_op op, int http_status, const char *body, size_t len,
                 cs_rest_result *res)
{
    (void)op;
    res->http_status = http_status;
    cJSON *o = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    bool ok = http_status >= 200 && http_status < 300;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(res->message, sizeof res->message,
                 ok ? "Twilio's answer is not a JSON object" : "HTTP %d without Twilio's error",
                 http_status);
        return CS_EBACKEND;
    }
    if (ok) {
        copy_str(res->sid, sizeof res->sid, o, "sid");
        copy_str(res->status, sizeof res->status, o, "status");
        cJSON_Delete(o);
        if (res->sid[0]) return 0;
        snprintf(res->message, sizeof res->message, "Twilio's answer has no sid");
        return CS_EBACKEND;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
    if (cJSON_IsNumber(code)) res->code = (long)code->valuedouble;
    copy_str(res->message, sizeof res->message, o, "message");
    copy_str(res->more_info, sizeof res->more_info, o, "more_info");
    if (!res->message[0]) snprintf(res->message, sizeof res->message, "HTTP %d", http_status);
    cJSON_Delete(o);
    return CS_EBACKEND;
}

const cs_rest_ops cs_rest_twilio = {
    .name = "twilio",
    .build = build,
    .parse = parse,
};
