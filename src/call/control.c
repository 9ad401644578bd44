/* Call control over the provider's REST half: one request at a time per op, sent by the
 * loop's HTTP client, retried only when the connection was refused (nothing reached the
 * provider), the result handed back by callback. */
#include "call/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/json.h"
#include "core/err.h"
#include "core/log.h"
#include "provider/twiml.h"

#define DEFAULT_TIMEOUT_MS 10000
#define URL_MAX            4096
#define BODY_MAX           65536
#define AUTH_MAX           2048
#define EVENT_MAX          8192

struct cs_control {
    uv_loop_t *loop;
    cs_control_opts o;
    cs_control_op *ops; /* in flight, or waiting to retry */
    size_t nops;
    cs_control_stats st;
};

struct cs_control_op {
    cs_control *c;
    enum cs_rest_op op;
    char call_sid[CS_SID_MAX + 1];
    cs_rest_http http;
    cs_fetch_req *req;
    uv_timer_t timer; /* the wait before a retry */
    unsigned attempt;
    cs_control_cb cb;
    void *data;
    cs_control_op *prev, *next;
};

static void op_release(cs_control_op *op)
{
    cs_buf_free(&op->http.url);
    cs_buf_free(&op->http.body);
    cs_buf_free(&op->http.auth);
    free(op);
}

static void op_closed(uv_handle_t *h)
{
    op_release(h->data);
}

/* Unlinks `op` and frees it once its timer has closed. */
static void op_free(cs_control_op *op)
{
    cs_control *c = op->c;
    if (op->prev)
        op->prev->next = op->next;
    else
        c->ops = op->next;
    if (op->next) op->next->prev = op->prev;
    c->nops--;
    cs_fetch_cancel(op->req);
    op->req = NULL;
    uv_close((uv_handle_t *)&op->timer, op_closed);
}

/* Our side of a call that has been hung up: its streams' sockets close. */
static void close_live(cs_control *c, const char *call_sid)
{
    if (!c->o.calls) return;
    cs_call *call = cs_calls_call(c->o.calls, cs_str_of(call_sid));
    if (!call) return;
    /* Copied first: the last stream to end frees the call. */
    cs_stream_sink sinks[CS_CALL_MAX_STREAMS];
    size_t n = call->nstreams;
    for (size_t i = 0; i < n; i++) sinks[i] = call->streams[i]->sink;
    for (size_t i = 0; i < n; i++)
        if (sinks[i].close) sinks[i].close(sinks[i].data);
}

static int start(cs_control_op *op);

static void on_retry(uv_timer_t *t)
{
    cs_control_op *op = t->data;
    int rc = start(op);
    if (rc < 0) {
        cs_rest_result res = {0};
        snprintf(res.message, sizeof res.message, "cannot retry: %s", cs_strerror(rc));
        op->c->st.failed++;
        op->cb(op->data, rc, &res);
        op_free(op);
    }
}

static void on_done(void *data, const cs_fetch_result *fr)
{
    cs_control_op *op = data;
    cs_control *c = op->c;
    op->req = NULL;
    /* Refused: the request never left, so a second try cannot do anything twice. */
    if (fr->status == 0 && fr->err == -ECONNREFUSED && op->attempt < CS_CONTROL_RETRIES) {
        op->attempt++;
        c->st.retries++;
        uint32_t ms = cs_backoff_ms(op->attempt, c->o.retry_min_ms, c->o.retry_max_ms);
        cs_info("control: %s refused by %s; again in %u ms", cs_rest_op_label(op->op),
                c->o.creds.base_url, ms);
        uv_timer_start(&op->timer, on_retry, ms, 0);
        return;
    }
    cs_rest_result res = {0};
    int err;
    if (fr->err < 0) {
        err = fr->err;
        snprintf(res.message, sizeof res.message, "%s unreachable: %s", c->o.creds.base_url,
                 fr->reason && *fr->reason ? fr->reason : cs_strerror(fr->err));
    } else {
        err = c->o.rest->parse(op->op, fr->status, fr->body, fr->len, &res);
    }
    if (err < 0) {
        c->st.failed++;
        cs_warn("control: %s %s failed: HTTP %d, code %ld: %s", cs_rest_op_label(op->op),
                op->call_sid[0] ? op->call_sid : "", res.http_status, res.code, res.message);
    } else if (op->op == CS_REST_HANGUP) {
        close_live(c, op->call_sid);
    }
    op->cb(op->data, err, &res);
    op_free(op);
}

static int start(cs_control_op *op)
{
    cs_control *c = op->c;
    const char *headers[] = {op->http.auth.data, "Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json"};
    cs_fetch_opts fo = {
        .method = "POST",
        .url = op->http.url.data,
        .headers = headers,
        .nheaders = 3,
        .body = op->http.body.data ? op->http.body.data : "",
        .len = op->http.body.len,
        .timeout_ms = c->o.timeout_ms,
        .max_body = CS_CONTROL_MAX_ANSWER,
        .on_done = on_done,
        .data = op,
    };
    return cs_fetch_start(c->o.fetch, &fo, &op->req);
}

int cs_control_new(cs_control **out, uv_loop_t *loop, const cs_control_opts *o)
{
    if (!o->fetch || !o->rest) return -EINVAL;
    cs_control *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->loop = loop;
    c->o = *o;
    if (!c->o.timeout_ms) c->o.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!c->o.retry_min_ms) c->o.retry_min_ms = CS_CONTROL_RETRY_MIN_MS;
    if (!c->o.retry_max_ms) c->o.retry_max_ms = CS_CONTROL_RETRY_MAX_MS;
    *out = c;
    return 0;
}

void cs_control_free(cs_control *c)
{
    if (!c) return;
    if (c->nops) cs_info("control: %zu request(s) ended unanswered: stopping", c->nops);
    while (c->ops) {
        cs_control_op *op = c->ops;
        cs_rest_result res = {0};
        snprintf(res.message, sizeof res.message, "the gateway is stopping");
        op->cb(op->data, CS_ECLOSED, &res);
        op_free(op);
    }
    free(c);
}

const cs_control_stats *cs_control_stats_get(const cs_control *c)
{
    return &c->st;
}

size_t cs_control_pending(const cs_control *c)
{
    return c->nops;
}

int cs_control_send(cs_control *c, const cs_rest_req *req, cs_control_cb cb, void *data,
                    cs_control_op **out, char *why)
{
    if (c->nops >= CS_CONTROL_MAX_PENDING) {
        c->st.full++;
        return CS_EFULL;
    }
    cs_control_op *op = calloc(1, sizeof *op);
    if (!op) return -ENOMEM;
    op->c = c;
    op->op = req->op;
    op->cb = cb;
    op->data = data;
    if (req->call_sid) snprintf(op->call_sid, sizeof op->call_sid, "%s", req->call_sid);
    cs_buf_init(&op->http.url, URL_MAX);
    cs_buf_init(&op->http.body, BODY_MAX);
    cs_buf_init(&op->http.auth, AUTH_MAX);
    cs_rest_result res = {0};
    int rc = c->o.rest->build(&c->o.creds, req, &op->http, &res);
    if (rc < 0) {
        if (why) snprintf(why, CS_REST_MESSAGE_MAX + 1, "%s", res.message);
        op_release(op);
        return rc;
    }
    uv_timer_init(c->loop, &op->timer);
    op->timer.data = op;
    op->next = c->ops;
    if (c->ops) c->ops->prev = op;
    c->ops = op;
    c->nops++;
    c->st.requests[req->op]++;
    rc = start(op);
    if (rc < 0) {
        if (why) snprintf(why, CS_REST_MESSAGE_MAX + 1, "%s", cs_strerror(rc));
        op_free(op);
        return rc;
    }
    if (out) *out = op;
    return 0;
}

int cs_control_transfer(cs_control *c, const char *call_sid, const char *number, cs_control_cb cb,
                        void *data, cs_control_op **out, char *why)
{
    cs_buf twiml = CS_BUF_INIT(CS_REST_TWIML_MAX + 1);
    const cs_twiml_verb dial = {CS_TWIML_DIAL, .text = number};
    int rc = cs_twiml_verbs_write(&twiml, &dial, 1);
    if (rc == 0) {
        cs_rest_req req = {.op = CS_REST_TWIML, .call_sid = call_sid, .twiml = twiml.data};
        rc = cs_control_send(c, &req, cb, data, out, why);
    } else if (why) {
        snprintf(why, CS_REST_MESSAGE_MAX + 1, "cannot write <Dial>: %s", cs_strerror(rc));
    }
    cs_buf_free(&twiml);
    return rc;
}

void cs_control_cancel(cs_control_op *op)
{
    if (op) op_free(op);
}

void cs_control_event(cs_calls *calls, const char *call_sid, enum cs_rest_op op, const char *by,
                      const char *to, const char *name, const char *reason, int err,
                      const cs_rest_result *res)
{
    if (!call_sid || !call_sid[0]) return;
    cs_buf out = CS_BUF_INIT(EVENT_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "action", cs_rest_op_label(op));
    cs_json_kstr(&j, "by", by);
    if (to && to[0]) cs_json_kstr(&j, "to", to);
    if (name && name[0]) cs_json_kstr(&j, "name", name);
    if (reason && reason[0]) cs_json_kstr(&j, "reason", reason);
    cs_json_kstr(&j, "state", err == 0 ? "done" : "failed");
    if (err < 0) {
        if (res->http_status) cs_json_kint(&j, "http_status", res->http_status);
        if (res->code) cs_json_kint(&j, "code", res->code);
        cs_json_kstr(&j, "message", res->message);
    }
    cs_json_obj_end(&j);
    cs_calls_event(calls, call_sid, CS_EVENT_CONTROL, cs_json_end(&j) == 0 ? out.data : NULL);
    cs_buf_free(&out);
}
