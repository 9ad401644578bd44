/* The call-control API: POST /api/v1/calls places a call; /api/v1/calls/{sid}/hangup,
 * /transfer, /say, /streams and /streams/{name}/stop act on a live one. Input is checked
 * here (nothing is sent for a bad request); the provider is asked through call control
 * (call/control.h) and its refusal comes back as 422 (its 4xx) or 502 (its 5xx, or not
 * reachable), with its code and message. Every action records a `control` event. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "call/talk.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/auth.h"
#include "http/gateway.h"
#include "provider/twilio.h"
#include "provider/twiml.h"

#define MAX_TIMEOUT_S 600  /* Twilio rings for at most 600 s */
#define MAX_SAY       4000 /* characters said at once */
#define DETAIL_MAX    8192
#define VOICE_URL_MAX CS_URL_CAP

/* One request waiting for the provider. */
typedef struct api_op {
    cs_request *r;
    enum cs_rest_op op;
    char sid[CS_SID_MAX + 1];
    char user[64];
    char to[64], from[64];           /* create, transfer */
    char name[CS_REST_NAME_MAX + 1]; /* streams */
} api_op;

/* ---- input ---- */

static bool is_json(const cs_request *r)
{
    const cs_str *ct = cs_request_header(r, "Content-Type");
    if (!ct) return false;
    cs_str t = *ct;
    for (size_t i = 0; i < t.n; i++)
        if (t.p[i] == ';' || t.p[i] == ' ') t.n = i;
    return cs_str_ieq(t, "application/json");
}

cJSON *cs_api_json_body(cs_request *r, bool empty_ok)
{
    /* Always JSON: a page elsewhere cannot send it with the user's cookie unasked (CORS). */
    if (!is_json(r)) {
        cs_respond_error(r, 415, "expected application/json");
        return NULL;
    }
    if (empty_ok && r->body.len == 0) return cJSON_CreateObject();
    cJSON *o = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        cs_respond_error(r, 400, "the body is not a JSON object");
        return NULL;
    }
    return o;
}

const char *cs_api_jstr(const cJSON *o, const char *key, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) {
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

/* Call control is there, and the path's call SID is one: else answered. */
static bool ready(cs_request *r, char sid[CS_SID_MAX + 1])
{
    cs_gateway *gw = r->app;
    if (!gw->control) {
        cs_respond_error(r, 503, "call control needs " CS_CONTROL_SETTINGS);
        return false;
    }
    if (!sid) return true;
    if (r->nparams < 1 || !cs_twilio_sid_valid(r->params[0], "CA")) {
        cs_respond_error(r, 404, "no such call");
        return false;
    }
    cs_str_copy(sid, CS_SID_MAX + 1, r->params[0]);
    return true;
}

/* A stream name we accept: what the provider takes in a path. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CS_REST_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", s[i]))
            return false;
    return true;
}

/* ---- answers and events ---- */

static void event(cs_gateway *gw, const api_op *a, int err, const cs_rest_result *res)
{
    cs_control_event(&gw->calls, a->sid, a->op, a->user, a->to, a->name, NULL, err, res);
}

/* The provider's refusal, or why it could not be asked. */
static void respond_failure(cs_request *r, int err, const cs_rest_result *res)
{
    int status;
    const char *what;
    if (err == CS_EBACKEND && res->http_status >= 400 && res->http_status < 500) {
        status = 422;
        what = "the provider refused";
    } else if (err == CS_ECLOSED) {
        status = 503;
        what = "not sent";
    } else if (err == -ETIMEDOUT) {
        status = 502;
        what = "the provider did not answer in time (not retried: it may have acted)";
    } else {
        status = 502;
        what = err == CS_EBACKEND ? "the provider failed" : "the provider is unreachable";
    }
    cs_buf out = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_key(&j, "error");
    cs_json_obj(&j);
    cs_json_kint(&j, "status", status);
    char msg[CS_REST_MESSAGE_MAX + 128];
    snprintf(msg, sizeof msg, "%s: %s", what, res->message);
    cs_json_kstr(&j, "message", msg);
    cs_json_key(&j, "provider");
    cs_json_obj(&j);
    cs_json_key(&j, "status");
    if (res->http_status)
        cs_json_int(&j, res->http_status);
    else
        cs_json_null(&j);
    cs_json_key(&j, "code");
    if (res->code)
        cs_json_int(&j, res->code);
    else
        cs_json_null(&j);
    cs_json_kstr(&j, "message", res->message);
    cs_json_kstr(&j, "more_info", res->more_info[0] ? res->more_info : NULL);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0)
        cs_respond_json(r, status, &out);
    else
        cs_respond_error(r, status, "%s", what);
    cs_buf_free(&out);
}

static void done(void *data, int err, const cs_rest_result *res)
{
    api_op *a = data;
    cs_request *r = a->r;
    cs_gateway *gw = r->app;
    if (a->op == CS_REST_CREATE && err == 0) {
        snprintf(a->sid, sizeof a->sid, "%s", res->sid);
        /* In the store and on the pages now; status callbacks move it on. */
        if (cs_twilio_sid_valid(cs_str_of(a->sid), "CA")) {
            cs_call_row row = {
                .sid = a->sid,
                .account_sid = gw->cfg->twilio_account_sid,
                .from = a->from,
                .to = a->to,
                .direction = "outbound-api",
                .status = res->status[0] ? res->status : "queued",
                .created_at = cs_wall_ms(),
            };
            cs_journal_call(gw, &row);
        }
    }
    event(gw, a, err, res);
    /* Hung up: call control closed our side of its streams if it lives here; where it
     * lives elsewhere, that node does, as for its final status. */
    if (a->op == CS_REST_HANGUP && err == 0 && !cs_calls_call(&gw->calls, cs_str_of(a->sid)))
        cs_cluster_status(gw, a->sid, "completed");
    if (err < 0) {
        respond_failure(r, err, res);
        free(a);
        return;
    }
    cs_buf out = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "call_sid", a->sid);
    if (a->op == CS_REST_STREAM_START || a->op == CS_REST_STREAM_STOP) {
        cs_json_kstr(&j, "stream_sid", res->sid);
        cs_json_kstr(&j, "name", a->name[0] ? a->name : NULL);
    }
    if (a->op == CS_REST_TWIML) cs_json_kstr(&j, "to", a->to);
    cs_json_kstr(&j, "status", res->status[0] ? res->status : NULL);
    cs_json_obj_end(&j);
    int status = a->op == CS_REST_CREATE || a->op == CS_REST_STREAM_START ? 201 : 200;
    if (cs_json_end(&j) == 0)
        cs_respond_json(r, status, &out);
    else
        cs_respond_error(r, 500, "answer too large");
    cs_buf_free(&out);
    free(a);
}

static api_op *op_new(cs_request *r, enum cs_rest_op op, const char *sid)
{
    api_op *a = calloc(1, sizeof *a);
    if (!a) {
        cs_respond_error(r, 503, "out of memory");
        return NULL;
    }
    a->r = r;
    a->op = op;
    if (sid) snprintf(a->sid, sizeof a->sid, "%s", sid);
    snprintf(a->user, sizeof a->user, "%s", r->user);
    return a;
}

/* Sends; on a refusal before sending, answers and frees. */
static void send_op(api_op *a, const cs_rest_req *req,
                    int (*via)(cs_control *, const cs_rest_req *, api_op *, char *))
{
    cs_request *r = a->r;
    cs_gateway *gw = r->app;
    char why[CS_REST_MESSAGE_MAX + 1] = "";
    int rc =
        via ? via(gw->control, req, a, why) : cs_control_send(gw->control, req, done, a, NULL, why);
    if (rc == 0) return;
    if (rc == -EINVAL)
        cs_respond_error(r, 400, "%s", why);
    else if (rc == CS_EFULL)
        cs_respond_error(r, 503, "too many call-control requests in flight (%d)",
                         CS_CONTROL_MAX_PENDING);
    else
        cs_respond_error(r, 503, "cannot send: %s", cs_strerror(rc));
    free(a);
}

int cs_api_params(cs_request *r, const cJSON *body, const char **names, const char **values,
                  size_t *n)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "params");
    if (!params || cJSON_IsNull(params)) return 0;
    if (!cJSON_IsObject(params)) {
        cs_respond_error(r, 400, "params must be an object of strings");
        return CS_EPARSE;
    }
    size_t max = *n + CS_API_MAX_PARAMS;
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        if (!cJSON_IsString(p)) {
            cs_respond_error(r, 400, "params must be an object of strings");
            return CS_EPARSE;
        }
        if (*n == max) {
            cs_respond_error(r, 400, "params: more than %d", CS_API_MAX_PARAMS);
            return CS_ELIMIT;
        }
        if (!p->string[0] || cs_twilio_param_taken(p->string) ||
            !cs_twiml_param_fits(cs_str_of(p->string), cs_str_of(p->valuestring))) {
            cs_respond_error(r, 400,
                             "params: '%.40s' is empty, one of the gateway's own, or "
                             "longer than %d characters with its value",
                             p->string, CS_TWIML_MAX_PARAM);
            return CS_ELIMIT;
        }
        names[*n] = p->string;
        values[(*n)++] = p->valuestring;
    }
    return 0;
}

/* ---- POST /api/v1/calls ---- */

/* The voice webhook's URL for an outbound call: its <Parameter>s (the agent and `params`)
 * in the query string, which the webhook turns into the stream's parameters. */
static int voice_url(cs_request *r, const cJSON *body, const char *agent, char *out, size_t cap)
{
    cs_gateway *gw = r->app;
    const char *names[CS_API_MAX_PARAMS + 1], *values[CS_API_MAX_PARAMS + 1];
    size_t n = 0;
    if (agent) {
        names[n] = "Agent";
        values[n++] = agent;
    }
    int rc = cs_api_params(r, body, names, values, &n);
    if (rc < 0) return rc;
    cs_buf url = CS_BUF_INIT(cap - 1);
    rc = cs_buf_printf(&url, "%s/twilio/voice", gw->public_url);
    if (rc == 0 && n) rc = cs_buf_putc(&url, '?');
    if (rc == 0 && n) rc = cs_form_write(&url, names, values, n);
    if (rc == 0) snprintf(out, cap, "%s", url.data);
    cs_buf_free(&url);
    if (rc < 0) cs_respond_error(r, 400, "params: the webhook URL would be over %zu bytes", cap);
    return rc;
}

void cs_api_call_create(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_call_create)) return;
    cs_gateway *gw = r->app;
    if (!ready(r, NULL)) return;
    cJSON *body = cs_api_json_body(r, false);
    if (!body) return;
    bool bad = false;
    const char *to = cs_api_jstr(body, "to", &bad), *from = cs_api_jstr(body, "from", &bad);
    const char *agent = cs_api_jstr(body, "agent", &bad);
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(body, "timeout_s");
    const cJSON *amd = cJSON_GetObjectItemCaseSensitive(body, "machine_detection");
    const cs_agent_ops *ops = NULL;
    const char *needs = NULL;
    char url[VOICE_URL_MAX];
    if (bad) {
        cs_respond_error(r, 400, "to, from and agent are strings");
    } else if (!to || !cs_e164_valid(to)) {
        cs_respond_error(r, 400, "to must be an E.164 number (+ and up to 15 digits)");
    } else if (!from || !*from || strlen(from) >= sizeof((api_op *)0)->from) {
        cs_respond_error(r, 400, "from must be one of the account's numbers (E.164) or a client");
    } else if (agent && cs_agent_find(agent, &ops) < 0) {
        cs_respond_error(r, 400, "agent '%.40s' is not one of %s", agent, cs_agent_names());
    } else if (agent && (needs = cs_agent_unready(&gw->agent_env, ops))) {
        cs_respond_error(r, 400, "agent '%s' is not set up on this gateway: it needs %s", agent,
                         needs);
    } else if (timeout && !(cJSON_IsNumber(timeout) && timeout->valuedouble >= 1 &&
                            timeout->valuedouble <= MAX_TIMEOUT_S &&
                            timeout->valuedouble == (int)timeout->valuedouble)) {
        cs_respond_error(r, 400, "timeout_s must be an integer from 1 to %d", MAX_TIMEOUT_S);
    } else if (amd && !cJSON_IsBool(amd)) {
        cs_respond_error(r, 400, "machine_detection must be true or false");
    } else if (voice_url(r, body, agent, url, sizeof url) == 0) {
        api_op *a = op_new(r, CS_REST_CREATE, NULL);
        if (a) {
            snprintf(a->to, sizeof a->to, "%s", to);
            snprintf(a->from, sizeof a->from, "%s", from);
            cs_rest_req req = {
                .op = CS_REST_CREATE,
                .to = to,
                .from = from,
                .url = url,
                .status_callback = gw->call_status_url,
                .timeout_s = timeout ? (unsigned)timeout->valuedouble : 0,
                .machine_detection = cJSON_IsTrue(amd),
            };
            send_op(a, &req, NULL);
        }
    }
    cJSON_Delete(body);
}

/* ---- actions on a live call ---- */

void cs_api_hangup(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_hangup)) return;
    char sid[CS_SID_MAX + 1];
    if (!ready(r, sid)) return;
    cJSON *body = cs_api_json_body(r, true);
    if (!body) return;
    cJSON_Delete(body);
    api_op *a = op_new(r, CS_REST_HANGUP, sid);
    if (!a) return;
    cs_rest_req req = {.op = CS_REST_HANGUP, .call_sid = sid};
    send_op(a, &req, NULL);
}

static int via_transfer(cs_control *c, const cs_rest_req *req, api_op *a, char *why)
{
    return cs_control_transfer(c, req->call_sid, a->to, done, a, NULL, why);
}

void cs_api_transfer(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_transfer)) return;
    char sid[CS_SID_MAX + 1];
    if (!ready(r, sid)) return;
    cJSON *body = cs_api_json_body(r, false);
    if (!body) return;
    bool bad = false;
    const char *to = cs_api_jstr(body, "to", &bad);
    if (bad || !to || !cs_e164_valid(to)) {
        cs_respond_error(r, 400, "to must be an E.164 number (+ and up to 15 digits)");
    } else {
        api_op *a = op_new(r, CS_REST_TWIML, sid);
        if (a) {
            snprintf(a->to, sizeof a->to, "%s", to);
            cs_rest_req req = {.op = CS_REST_TWIML, .call_sid = sid};
            send_op(a, &req, via_transfer);
        }
    }
    cJSON_Delete(body);
}

void cs_api_stream_start(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_stream_start)) return;
    char sid[CS_SID_MAX + 1];
    if (!ready(r, sid)) return;
    cJSON *body = cs_api_json_body(r, false);
    if (!body) return;
    bool bad = false;
    const char *url = cs_api_jstr(body, "url", &bad), *name = cs_api_jstr(body, "name", &bad);
    const char *track = cs_api_jstr(body, "track", &bad);
    if (bad || !url || (strncmp(url, "wss://", 6) != 0 && strncmp(url, "ws://", 5) != 0) ||
        strlen(url) >= CS_URL_CAP) {
        cs_respond_error(r, 400, "url must be a ws:// or wss:// URL");
    } else if (name && !name_ok(name)) {
        cs_respond_error(r, 400, "name is 1 to %d of A-Z a-z 0-9 - _ .", CS_REST_NAME_MAX);
    } else {
        api_op *a = op_new(r, CS_REST_STREAM_START, sid);
        if (a) {
            if (name) snprintf(a->name, sizeof a->name, "%s", name);
            cs_rest_req req = {.op = CS_REST_STREAM_START,
                               .call_sid = sid,
                               .stream_url = url,
                               .stream_name = name,
                               .track = track};
            send_op(a, &req, NULL);
        }
    }
    cJSON_Delete(body);
}

void cs_api_stream_stop(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_stream_stop)) return;
    char sid[CS_SID_MAX + 1];
    if (!ready(r, sid)) return;
    char name[CS_REST_NAME_MAX + 1];
    if (r->nparams < 2 || r->params[1].n > CS_REST_NAME_MAX) {
        cs_respond_error(r, 404, "no such stream");
        return;
    }
    cs_str_copy(name, sizeof name, r->params[1]);
    if (!name_ok(name)) {
        cs_respond_error(r, 404, "no such stream");
        return;
    }
    cJSON *body = cs_api_json_body(r, true);
    if (!body) return;
    cJSON_Delete(body);
    api_op *a = op_new(r, CS_REST_STREAM_STOP, sid);
    if (!a) return;
    snprintf(a->name, sizeof a->name, "%s", name);
    cs_rest_req req = {.op = CS_REST_STREAM_STOP, .call_sid = sid, .stream_name = name};
    send_op(a, &req, NULL);
}

/* ---- POST /api/v1/calls/{sid}/say: the call's agent speaks ---- */

int cs_api_say_here(cs_gateway *gw, const char *sid, const char *text, const char *by, char *msg,
                    size_t cap)
{
    cs_call *call = cs_calls_call(&gw->calls, cs_str_of(sid));
    if (!call) {
        snprintf(msg, cap, "the call is not live");
        return 409;
    }
    int rc = CS_ESTATE;
    for (size_t i = 0; i < call->nstreams && rc == CS_ESTATE; i++)
        rc = cs_stream_agent_say(call->streams[i], text, strlen(text));
    if (rc == CS_ESTATE) {
        snprintf(msg, cap, "the call has no agent that speaks");
        return 409;
    }
    if (rc < 0) {
        snprintf(msg, cap, "cannot say it: %s", cs_strerror(rc));
        return 503;
    }
    cs_buf out = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "action", "say");
    cs_json_kstr(&j, "by", by);
    cs_json_kstr(&j, "text", text);
    cs_json_kstr(&j, "state", "done");
    cs_json_obj_end(&j);
    cs_calls_event(&gw->calls, sid, CS_EVENT_CONTROL, cs_json_end(&j) == 0 ? out.data : NULL);
    cs_buf_free(&out);
    return 202;
}

void cs_api_say_respond(cs_request *r, const char *sid, int code, const char *msg)
{
    if (code != 202) {
        cs_respond_error(r, code, "%s", msg);
        return;
    }
    cs_buf reply = CS_BUF_INIT(256);
    cs_buf_printf(&reply, "{\"call_sid\":\"%s\",\"queued\":true}", sid);
    cs_respond_json(r, 202, &reply);
    cs_buf_free(&reply);
}

void cs_api_say(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_say)) return;
    if (r->nparams < 1 || !cs_twilio_sid_valid(r->params[0], "CA")) {
        cs_respond_error(r, 404, "no such call");
        return;
    }
    char sid[CS_SID_MAX + 1];
    cs_str_copy(sid, sizeof sid, r->params[0]);
    cJSON *body = cs_api_json_body(r, false);
    if (!body) return;
    bool bad = false;
    const char *text = cs_api_jstr(body, "text", &bad);
    if (bad || !text || !*text || strlen(text) > MAX_SAY)
        cs_respond_error(r, 400, "text must be a string of 1 to %d bytes", MAX_SAY);
    else /* here, or where the call lives */
        cs_cluster_say(r, sid, text);
    cJSON_Delete(body);
}

/* ---- start-up ---- */

int cs_control_setup(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    snprintf(gw->call_status_url, sizeof gw->call_status_url, "%.2000s/twilio/status",
             gw->public_url);
    snprintf(gw->api_url, sizeof gw->api_url, "%s", cfg->twilio_api_url);
    size_t n = strlen(gw->api_url);
    while (n && gw->api_url[n - 1] == '/') gw->api_url[--n] = '\0';
    if (!cs_fetch_url_ok(gw->api_url)) {
        cs_buf_printf(err, "TWILIO_API_URL: '%s' is not an http(s) URL", cfg->twilio_api_url);
        return CS_ECONFIG;
    }
    if (!cfg->twilio_api_key[0] != !cfg->twilio_api_secret[0]) {
        cs_buf_printf(err, "TWILIO_API_KEY and TWILIO_API_SECRET go together");
        return CS_ECONFIG;
    }
    bool key = cfg->twilio_api_key[0];
    if (!cfg->twilio_account_sid[0] || (!key && !cfg->twilio_auth_token[0])) {
        cs_info("call control: off (it needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or an "
                "API key pair)");
        return 0;
    }
    cs_control_opts o = {
        .fetch = gw->fetch,
        .rest = cs_rest_find(gw->provider->name),
        .creds = {.base_url = gw->api_url,
                  .account_sid = cfg->twilio_account_sid,
                  .user = key ? cfg->twilio_api_key : cfg->twilio_account_sid,
                  .pass = key ? cfg->twilio_api_secret : cfg->twilio_auth_token},
        .timeout_ms = (uint32_t)cfg->twilio_api_timeout_ms,
        .calls = &gw->calls,
    };
    int rc = cs_control_new(&gw->control, gw->loop, &o);
    if (rc < 0) {
        cs_buf_printf(err, "cannot start call control: %s", cs_strerror(rc));
        return rc;
    }
    cs_info("call control: %s as %s", gw->api_url, key ? "an API key" : "the account");
    return 0;
}
