#include "twilio_rest_fake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "net/form.h"
#include "fake_server.h"
#include "net/server.h"

#define KEEP 256 /* requests kept for twilio_fake_request */
#define FAKE_HELD 64  /* stalled requests held */

struct twilio_fake {
    fake_server srv; /* its lock guards `st` and what follows */
    twilio_fake_opts o;
    char auth[512]; /* "Basic …" expected */
    char url[64];
    int port;
    cs_request *held[FAKE_HELD]; /* loop thread */
    size_t nheld;
    unsigned next_sid;    /* loop thread */
    twilio_fake_stats st;
    char *paths[KEEP], *bodies[KEEP];
    size_t nkept;
};

#define LOCKED(f, stmt) FAKE_LOCKED(&(f)->srv, stmt)

/* {"code":…,"message":…,"more_info":…,"status":…}, Twilio's error body. */
static void error_json(cs_request *r, int status, long code, const char *msg)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kint(&j, "code", code);
    cs_json_kstr(&j, "message", msg);
    char more[96];
    snprintf(more, sizeof more, "https://www.twilio.com/docs/errors/%ld", code);
    cs_json_kstr(&j, "more_info", more);
    cs_json_kint(&j, "status", status);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    cs_respond_json(r, status, &b);
    cs_buf_free(&b);
}

static void new_sid(twilio_fake *f, const char *prefix, char out[35])
{
    snprintf(out, 35, "%s%032x", prefix, ++f->next_sid);
}

static bool is_form(const cs_request *r)
{
    const cs_str *ct = cs_request_header(r, "Content-Type");
    return ct && ct->n >= 33 && strncasecmp(ct->p, "application/x-www-form-urlencoded", 33) == 0;
}

/* Strips ".json" off the last path segment `p` into `out`; false without it. */
static bool json_segment(cs_str p, char *out, size_t cap)
{
    if (p.n < 6 || p.n - 5 >= cap || memcmp(p.p + p.n - 5, ".json", 5) != 0) return false;
    memcpy(out, p.p, p.n - 5);
    out[p.n - 5] = '\0';
    return true;
}

/* What every route checks first: kept, counted, authorised, form-encoded, the account's,
 * and the script's turn. Returns the reply to give, or NULL once answered. */
static const twilio_fake_reply *prologue(cs_request *r, cs_form *form)
{
    twilio_fake *f = r->app;
    memset(form, 0, sizeof *form);
    char *path = strndup(r->head.path.p, r->head.path.n);
    char *body = strndup(r->body.data ? r->body.data : "", r->body.len);
    size_t k;
    pthread_mutex_lock(&f->srv.lock);
    k = f->st.requests++;
    if (f->nkept < KEEP) {
        f->paths[f->nkept] = path;
        f->bodies[f->nkept++] = body;
    } else {
        free(path);
        free(body);
    }
    pthread_mutex_unlock(&f->srv.lock);
    const cs_str *auth = cs_request_header(r, "Authorization");
    if (!auth || auth->n != strlen(f->auth) || memcmp(auth->p, f->auth, auth->n) != 0) {
        LOCKED(f, f->st.bad_auth++);
        error_json(r, 401, 20003, "Authenticate");
        return NULL;
    }
    if (!cs_str_eqz(r->params[0], f->o.account_sid)) {
        error_json(r, 404, 20404, "The requested resource was not found");
        return NULL;
    }
    if (!is_form(r) || cs_form_parse(form, r->body.data ? r->body.data : "", r->body.len) < 0) {
        LOCKED(f, f->st.bad_form++);
        error_json(r, 400, 20001, "Bad request: expected a form");
        return NULL;
    }
    static const twilio_fake_reply ok = {.kind = TWILIO_FAKE_OK};
    const twilio_fake_reply *rp = k < f->o.nscript && !f->o.script[k].match ? &f->o.script[k] : &ok;
    for (size_t i = 0; i < f->o.nscript; i++) {
        const char *m = f->o.script[i].match;
        if (m && (memmem(r->head.path.p, r->head.path.n, m, strlen(m)) ||
                  (r->body.data && memmem(r->body.data, r->body.len, m, strlen(m)))))
            rp = &f->o.script[i];
    }
    if (rp->kind == TWILIO_FAKE_ERROR) {
        error_json(r, rp->status, rp->code, rp->message ? rp->message : "fake error");
    } else if (rp->kind == TWILIO_FAKE_STALL) {
        if (f->nheld < FAKE_HELD)
            f->held[f->nheld++] = r;
        else
            error_json(r, 500, 20500, "Internal Server Error");
    } else {
        return rp;
    }
    cs_form_free(form);
    return NULL;
}

static bool required(cs_request *r, cs_form *form, const char *name, long code)
{
    const char *v = cs_form_get(form, name);
    if (v && *v) return true;
    twilio_fake *f = r->app;
    LOCKED(f, f->st.bad_form++);
    char msg[128];
    snprintf(msg, sizeof msg, "Required parameter \"%s\" missing.", name);
    error_json(r, 400, code, msg);
    cs_form_free(form);
    return false;
}

static void call_json(cs_request *r, int status, const char *sid, const char *call_status,
                      const cs_form *form)
{
    twilio_fake *f = r->app;
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "sid", sid);
    cs_json_kstr(&j, "account_sid", f->o.account_sid);
    cs_json_kstr(&j, "to", cs_form_get(form, "To"));
    cs_json_kstr(&j, "from", cs_form_get(form, "From"));
    cs_json_kstr(&j, "status", call_status);
    cs_json_kstr(&j, "direction", "outbound-api");
    cs_json_kstr(&j, "api_version", "2010-04-01");
    cs_json_kstr(&j, "date_created", "Sat, 05 Dec 2026 06:00:00 +0000");
    char uri[160];
    snprintf(uri, sizeof uri, "/2010-04-01/Accounts/%s/Calls/%s.json", f->o.account_sid, sid);
    cs_json_kstr(&j, "uri", uri);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    cs_respond_json(r, status, &b);
    cs_buf_free(&b);
}

static void stream_json(cs_request *r, int status, const char *call_sid, const char *sid,
                        const char *name, const char *stream_status)
{
    twilio_fake *f = r->app;
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_kstr(&j, "sid", sid);
    cs_json_kstr(&j, "account_sid", f->o.account_sid);
    cs_json_kstr(&j, "call_sid", call_sid);
    cs_json_kstr(&j, "name", name);
    cs_json_kstr(&j, "status", stream_status);
    cs_json_kstr(&j, "date_updated", "Sat, 05 Dec 2026 06:00:00 +0000");
    char uri[200];
    snprintf(uri, sizeof uri, "/2010-04-01/Accounts/%s/Calls/%s/Streams/%s.json", f->o.account_sid,
             call_sid, sid);
    cs_json_kstr(&j, "uri", uri);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    cs_respond_json(r, status, &b);
    cs_buf_free(&b);
}

/* POST /2010-04-01/Accounts/{AC}/Calls.json */
static void calls_create(cs_request *r)
{
    twilio_fake *f = r->app;
    cs_form form;
    if (!prologue(r, &form)) return;
    if (!required(r, &form, "To", 21201) || !required(r, &form, "From", 21603) ||
        !required(r, &form, "Url", 21205))
        return;
    char sid[35];
    new_sid(f, "CA", sid);
    LOCKED(f, f->st.calls_created++);
    call_json(r, 201, sid, "queued", &form);
    cs_form_free(&form);
}

/* POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json */
static void calls_update(cs_request *r)
{
    twilio_fake *f = r->app;
    cs_form form;
    if (!prologue(r, &form)) return;
    char sid[64];
    if (!json_segment(r->params[1], sid, sizeof sid)) {
        cs_form_free(&form);
        error_json(r, 404, 20404, "The requested resource was not found");
        return;
    }
    const char *status = cs_form_get(&form, "Status");
    if (!status && !cs_form_get(&form, "Twiml") && !cs_form_get(&form, "Url")) {
        LOCKED(f, f->st.bad_form++);
        cs_form_free(&form);
        error_json(r, 400, 20001, "Nothing to update: Status, Twiml or Url");
        return;
    }
    LOCKED(f, f->st.calls_updated++);
    call_json(r, 200, sid, status ? status : "in-progress", &form);
    cs_form_free(&form);
}

/* POST /2010-04-01/Accounts/{AC}/Calls/{CA}/Streams.json */
static void streams_create(cs_request *r)
{
    twilio_fake *f = r->app;
    cs_form form;
    if (!prologue(r, &form)) return;
    if (!required(r, &form, "Url", 21205)) return;
    char call_sid[64], sid[35];
    cs_str_copy(call_sid, sizeof call_sid, r->params[1]);
    new_sid(f, "MZ", sid);
    LOCKED(f, f->st.streams_created++);
    stream_json(r, 201, call_sid, sid, cs_form_get(&form, "Name"), "in-progress");
    cs_form_free(&form);
}

/* POST /2010-04-01/Accounts/{AC}/Calls/{CA}/Streams/{MZ or name}.json */
static void streams_update(cs_request *r)
{
    twilio_fake *f = r->app;
    cs_form form;
    if (!prologue(r, &form)) return;
    char call_sid[64], name[128];
    cs_str_copy(call_sid, sizeof call_sid, r->params[1]);
    const char *status = cs_form_get(&form, "Status");
    if (!json_segment(r->params[2], name, sizeof name) || !status || strcmp(status, "stopped")) {
        LOCKED(f, f->st.bad_form++);
        cs_form_free(&form);
        error_json(r, 400, 20001, "Status must be stopped");
        return;
    }
    char sid[35];
    if (strncmp(name, "MZ", 2) == 0)
        snprintf(sid, sizeof sid, "%.34s", name);
    else
        new_sid(f, "MZ", sid);
    LOCKED(f, f->st.streams_stopped++);
    stream_json(r, 200, call_sid, sid, strncmp(name, "MZ", 2) ? name : NULL, "stopped");
    cs_form_free(&form);
}

static const cs_route routes[] = {
    {CS_HTTP_POST, "/2010-04-01/Accounts/{}/Calls.json", calls_create},
    {CS_HTTP_POST, "/2010-04-01/Accounts/{}/Calls/{}", calls_update},
    {CS_HTTP_POST, "/2010-04-01/Accounts/{}/Calls/{}/Streams.json", streams_create},
    {CS_HTTP_POST, "/2010-04-01/Accounts/{}/Calls/{}/Streams/{}", streams_update},
};

/* ---- the thread ---- */

static void on_stop(void *app)
{
    twilio_fake *f = app;
    for (size_t i = 0; i < f->nheld; i++) error_json(f->held[i], 503, 20503, "going away");
    f->nheld = 0;
}

int twilio_fake_start(twilio_fake **out, const twilio_fake_opts *o)
{
    twilio_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->o = *o;
    char plain[256], enc[400];
    int n = snprintf(plain, sizeof plain, "%s:%s", o->user, o->pass);
    enc[cs_base64_encode(enc, (const uint8_t *)plain, (size_t)n)] = '\0';
    snprintf(f->auth, sizeof f->auth, "Basic %s", enc);
    int rc = fake_server_start(&f->srv, routes, sizeof routes / sizeof *routes, f, on_stop,
                               o->port);
    if (rc < 0) return rc;
    f->port = f->srv.port;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
    *out = f;
    return 0;
}

const char *twilio_fake_url(const twilio_fake *f)
{
    return f->url;
}

int twilio_fake_port(const twilio_fake *f)
{
    return f->port;
}

void twilio_fake_stats_get(twilio_fake *f, twilio_fake_stats *out)
{
    LOCKED(f, *out = f->st);
}

bool twilio_fake_request(twilio_fake *f, size_t k, cs_buf *path, cs_buf *body)
{
    bool ok;
    cs_buf_reset(path);
    cs_buf_reset(body);
    LOCKED(f, ok = k < f->nkept && cs_buf_puts(path, f->paths[k]) == 0 &&
                   cs_buf_puts(body, f->bodies[k]) == 0);
    return ok;
}

void twilio_fake_free(twilio_fake *f)
{
    fake_server_stop(&f->srv);
    for (size_t i = 0; i < f->nkept; i++) {
        free(f->paths[i]);
        free(f->bodies[i]);
    }
    free(f);
}
