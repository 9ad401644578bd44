#include "net/server.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"

#define MAX_LISTENERS  4
#define LISTEN_BACKLOG 1024
#define ACCEPT_BATCH   64 /* connections taken per wake-up, so a flood cannot hog the loop */

enum hstate {
    H_HEAD, /* waiting for or reading a request head */
    H_BODY, /* reading its body */
    H_WAIT, /* a handler works on it; nothing is read */
    H_SEND, /* its answer, a large one, goes out in pieces */
};

/* One HTTP connection until it closes or is upgraded. */
typedef struct hconn {
    cs_server *server;
    cs_conn *conn;
    cs_quota_addr *ip; /* its address's counts */
    enum hstate state;
    cs_request *req;
    cs_http_chunked chunked;
    uint64_t body_left; /* Content-Length bytes still to read */
    uint64_t body_since_ms, body_bytes;
    bool head_started; /* a byte of the head arrived: its deadline runs */
    bool in_heads;     /* in the server's list of connections waiting for a head */
    char *rest;        /* H_SEND: the answer's body, [rest_off, rest_len) still to write */
    size_t rest_off;   /* H_SEND: what has been written of it */
    size_t rest_len;   /* H_SEND: its size */
    bool keep_alive;   /* H_SEND: what follows the answer */
    void (*wait_fn)(void *data); /* H_WAIT: cs_respond_wait's callback */
    void *wait_data;
    struct hconn *hprev, *hnext;
} hconn;

typedef struct listener {
    uv_poll_t poll;
    int fd;
    cs_server *server;
    bool tls;
} listener;

struct cs_server {
    cs_net *net;
    const cs_route *routes;
    size_t nroutes;
    cs_server_limits lim;
    void *app;
    listener *listeners[MAX_LISTENERS];
    size_t nlisteners;
    int port;
    bool draining;             /* no more keep-alive */
    cs_server_quota *quota;    /* lim.quota, or own_quota */
    cs_server_quota own_quota;
    size_t conns;              /* this server's */
    hconn *heads, *heads_tail; /* connections waiting for or reading a head, oldest first */
    uv_timer_t *accept_retry;  /* listeners rest after accept() fails */
    uint64_t accept_failures;  /* in the current burst */
    cs_server_stats stats;
};

static const cs_conn_ops http_ops;

/* ---- requests ---- */

static void request_free(cs_request *r)
{
    if (!r) return;
    cs_buf_free(&r->body);
    free(r->head_buf);
    free(r);
}

/* Copies the head so its views outlive the read buffer while the handler works. */
static cs_request *request_new(hconn *h, const char *head, size_t n)
{
    cs_request *r = calloc(1, sizeof *r);
    char *copy = malloc(n);
    if (!r || !copy) {
        free(r);
        free(copy);
        return NULL;
    }
    memcpy(copy, head, n);
    int status;
    cs_http_parse_request(copy, n, n, &r->head, &status);
    r->head_buf = copy;
    r->server = h->server;
    r->app = h->server->app;
    r->conn = h->conn;
    r->hconn = h;
    r->started_ns = cs_mono_ns();
    cs_buf_init(&r->body, h->server->lim.max_body);
    return r;
}

const cs_str *cs_request_header(const cs_request *r, const char *name)
{
    return cs_http_header_get(r->head.headers, r->head.nheaders, name);
}

/* ---- heads: connections waiting for or reading a request head ---- */

static uint64_t now_ms(const cs_server *s)
{
    return uv_now(cs_net_loop(s->net));
}

static void head_begin(hconn *h)
{
    cs_server *s = h->server;
    h->state = H_HEAD;
    h->head_started = false;
    h->in_heads = true;
    h->hnext = NULL;
    h->hprev = s->heads_tail;
    if (s->heads_tail)
        s->heads_tail->hnext = h;
    else
        s->heads = h;
    s->heads_tail = h;
    cs_quota_addr_heads(h->ip, +1);
}

static void head_end(hconn *h)
{
    if (!h->in_heads) return;
    cs_server *s = h->server;
    if (h->hprev)
        h->hprev->hnext = h->hnext;
    else
        s->heads = h->hnext;
    if (h->hnext)
        h->hnext->hprev = h->hprev;
    else
        s->heads_tail = h->hprev;
    h->in_heads = false;
    cs_quota_addr_heads(h->ip, -1);
    h->conn->deadline_ms = 0;
}

/* The first byte of a head starts its clock; waiting for it is HTTP idle time. */
static void head_started(hconn *h)
{
    cs_server *s = h->server;
    h->head_started = true;
    if (s->lim.head_ms) h->conn->deadline_ms = now_ms(s) + s->lim.head_ms;
}

/* A body must stay ahead of body_min_rate from its start, after head_ms of grace: each
 * byte buys 1/rate seconds. */
static void body_progress(hconn *h, size_t bytes)
{
    const cs_server_limits *lim = &h->server->lim;
    h->body_bytes += bytes;
    if (lim->body_min_rate)
        h->conn->deadline_ms =
            h->body_since_ms + lim->head_ms + h->body_bytes * 1000 / lim->body_min_rate;
}

/* ---- answering ---- */

static void error_body(cs_buf *out, int status, const char *msg)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_key(&j, "error");
    cs_json_obj(&j);
    cs_json_kint(&j, "status", status);
    cs_json_kstr(&j, "message", msg);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    cs_buf_putc(out, '\n');
}

/* A large answer's body waits in a copy of its own, counted in the net's output. */
static int hold_body(hconn *h, const void *body, size_t len)
{
    int rc = cs_conn_set_held(h->conn, len);
    if (rc < 0) return rc;
    h->rest = malloc(len);
    if (!h->rest) {
        cs_conn_set_held(h->conn, 0);
        return -ENOMEM;
    }
    memcpy(h->rest, body, len);
    h->rest_off = 0;
    h->rest_len = len;
    return 0;
}

/* Queues one answer: whole, built in place in the connection's output; or, past
 * CS_SERVER_OUTPUT_HIGH, its head, the body held to go out in pieces (send_rest). */
static int queue_answer(hconn *h, int status, const char *content_type, const void *body,
                        size_t len, const char *extra, bool keep_alive, bool head_only)
{
    cs_buf head = CS_BUF_INIT(CS_HTTP_MAX_HEAD_DEFAULT);
    int rc = cs_http_write_head(&head, status, content_type, (int64_t)len, extra, keep_alive);
    size_t whole = head_only ? 0 : len;
    if (rc == 0 && whole > CS_SERVER_OUTPUT_HIGH) {
        rc = hold_body(h, body, whole);
        whole = 0;
    }
    char *p = rc == 0 ? cs_conn_reserve(h->conn, head.len + whole) : NULL;
    if (p) {
        memcpy(p, head.data, head.len);
        if (whole) memcpy(p + head.len, body, whole);
        cs_conn_commit(h->conn, head.len + whole);
    } else if (h->rest) {
        cs_conn_set_held(h->conn, 0);
        free(h->rest);
        h->rest = NULL;
    }
    cs_buf_free(&head);
    return p ? 0 : -ENOBUFS;
}

/* An answer is never skipped: the peer would pair the next ones with the wrong requests.
 * One that finds no room in the output (MAX_OUTPUT_BYTES) becomes a 500; if even that
 * cannot go, the connection closes. Returns the status sent, or 0. */
static int write_answer(hconn *h, int status, const char *content_type, const void *body,
                        size_t len, const char *extra, bool keep_alive, bool head_only)
{
    cs_conn *c = h->conn;
    if (queue_answer(h, status, content_type, body, len, extra, keep_alive, head_only) == 0)
        return status;
    if (cs_conn_closing(c)) return 0;
    h->server->stats.answers_too_large++;
    cs_buf err = CS_BUF_INIT(1024);
    error_body(&err, 500, "no room for the answer in the gateway's output");
    bool sent = queue_answer(h, 500, "application/json", err.data, err.len, NULL, keep_alive,
                             head_only) == 0;
    cs_buf_free(&err);
    cs_warn("http: no room in the output (MAX_OUTPUT_BYTES) for a %d answer of %zu bytes to %s; "
            "%s",
            status, len, c->peer_ip, sent ? "a 500 goes in its place" : "closing the connection");
    if (!sent) cs_conn_close(c, CS_ELIMIT, false);
    return sent ? 500 : 0;
}

static void count_answer(cs_server *s, int status)
{
    if (status) s->stats.responses[status / 100 % 6]++;
}

/* The request could not be read: answer and close. */
static void refuse(hconn *h, int status, const char *msg)
{
    cs_buf body = CS_BUF_INIT(1024);
    error_body(&body, status, msg);
    count_answer(h->server, write_answer(h, status, "application/json", body.data, body.len, NULL,
                                         false, false));
    cs_buf_free(&body);
    cs_conn_close(h->conn, 0, true);
}

static bool keeps_alive(const cs_request *r)
{
    return r->head.keep_alive && !((hconn *)r->hconn)->server->draining;
}

static void log_answer(const cs_request *r, int status)
{
    cs_debug("http: %.*s %.*s %d %.2fms %s", (int)r->head.method_name.n, r->head.method_name.p,
             (int)r->head.target.n, r->head.target.p, status,
             (double)(cs_mono_ns() - r->started_ns) / 1e6, r->conn->peer_ip);
}

/* The answer is out: the connection reads the next request or closes. */
static void next_request(hconn *h, bool keep_alive)
{
    if (keep_alive) {
        head_begin(h);
        cs_conn_resume(h->conn);
    } else {
        h->state = H_HEAD;
        cs_conn_close(h->conn, 0, true);
    }
}

/* A piece of a large answer each time the peer has taken most of the last one: the
 * connection's output stays small whatever the answer's size. */
static void send_rest(hconn *h)
{
    cs_conn *c = h->conn;
    size_t left = h->rest_len - h->rest_off;
    size_t n = left < CS_SERVER_STREAM_CHUNK ? left : CS_SERVER_STREAM_CHUNK;
    cs_conn_set_held(c, left - n); /* the piece moves from held to pending */
    if (cs_conn_write(c, h->rest + h->rest_off, n) < 0) {
        cs_conn_close(c, CS_ELIMIT, false);
        return;
    }
    h->rest_off += n;
    if (h->rest_off < h->rest_len) {
        cs_conn_want_drain(c, CS_SERVER_STREAM_CHUNK / 2);
        return;
    }
    free(h->rest);
    h->rest = NULL;
    next_request(h, h->keep_alive);
}

/* Ends the request; once its answer is out, the connection reads the next one or closes. */
static void finish(cs_request *r)
{
    hconn *h = r->hconn;
    if (!r->conn || !h) { /* the peer left while we worked */
        request_free(r);
        return;
    }
    /* An answer cut short (its file failed) leaves the peer waiting for the rest: the
     * connection ends after what was sent, so the peer sees it short. */
    bool keep_alive = keeps_alive(r) && r->body_owed <= 0;
    request_free(r);
    h->req = NULL;
    h->wait_fn = NULL;
    if (h->rest) {
        h->state = H_SEND;
        h->keep_alive = keep_alive;
        cs_conn_want_drain(h->conn, CS_SERVER_STREAM_CHUNK / 2);
        return;
    }
    next_request(h, keep_alive);
}

void cs_respond(cs_request *r, int status, const char *content_type, const void *body, size_t len,
                const char *extra)
{
    if (r->conn && r->hconn) {
        int sent = write_answer(r->hconn, status, content_type, body, len, extra, keeps_alive(r),
                                r->head.method == CS_HTTP_HEAD);
        count_answer(r->server, sent);
        log_answer(r, sent);
    }
    finish(r);
}

int cs_respond_begin(cs_request *r, int status, const char *content_type, int64_t len,
                     const char *extra)
{
    if (!r->conn || !r->hconn) return CS_ECLOSED;
    cs_buf out = CS_BUF_INIT(8192);
    int rc = cs_http_write_head(&out, status, content_type, len, extra, keeps_alive(r));
    if (rc == 0) rc = cs_conn_write(r->conn, out.data, out.len);
    if (rc == 0 && len > 0 && r->head.method != CS_HTTP_HEAD) r->body_owed = len;
    cs_buf_free(&out);
    count_answer(r->server, status);
    log_answer(r, status);
    return rc;
}

int cs_respond_write(cs_request *r, const void *data, size_t len)
{
    if (!r->conn || !r->hconn) return CS_ECLOSED;
    if (r->head.method == CS_HTTP_HEAD) return 0;
    int rc = cs_conn_write(r->conn, data, len);
    if (rc == 0) r->body_owed -= (int64_t)len;
    return rc;
}

size_t cs_respond_pending(const cs_request *r)
{
    return r->conn ? cs_conn_pending(r->conn) : 0;
}

static void end_wait(hconn *h)
{
    void (*fn)(void *) = h->wait_fn;
    h->wait_fn = NULL;
    if (fn) fn(h->wait_data);
}

int cs_respond_wait(cs_request *r, size_t mark, void (*fn)(void *data), void *data)
{
    hconn *h = r->hconn;
    if (!r->conn || !h) return CS_ECLOSED;
    h->wait_fn = fn;
    h->wait_data = data;
    cs_conn_want_drain(r->conn, mark);
    return 0;
}

void cs_respond_end(cs_request *r)
{
    finish(r);
}

void cs_respond_json(cs_request *r, int status, const cs_buf *json)
{
    cs_respond(r, status, "application/json", json->data, json->len, NULL);
}

void cs_respond_error(cs_request *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_buf body = CS_BUF_INIT(2048);
    error_body(&body, status, msg);
    cs_respond(r, status, "application/json", body.data, body.len,
               status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
    cs_buf_free(&body);
}

int cs_request_upgrade(cs_request *r, cs_wsconn *ws, size_t max_message, const cs_wsconn_ops *ops,
                       void *data)
{
    cs_str key;
    int status = cs_ws_check_upgrade(&r->head, &key);
    if (status) {
        cs_respond_error(r, status, "not a valid WebSocket upgrade");
        return CS_EPARSE;
    }
    hconn *h = r->hconn;
    if (!r->conn || !h) {
        request_free(r);
        return CS_ECLOSED;
    }
    cs_conn *c = r->conn;
    cs_buf out = CS_BUF_INIT(1024);
    int rc = cs_ws_write_accept(&out, key, NULL);
    if (rc == 0) rc = cs_conn_write(c, out.data, out.len);
    cs_buf_free(&out);
    request_free(r);
    if (rc < 0) {
        h->req = NULL;
        cs_conn_close(c, rc, false);
        return rc;
    }
    h->server->stats.upgrades++;
    count_answer(h->server, 101);
    c->idle_timeout_ms = 0;
    cs_conn_set_output_high(c, 0); /* WebSocket owners watch their own output */
    /* The WebSocket owns the connection from here; the HTTP state goes. */
    cs_wsconn_attach(ws, c, max_message, ops, data);
    free(h);
    cs_conn_resume(c);
    return 0;
}

/* ---- routing ---- */

/* Matches `path` against `pattern`; fills the {} captures. */
static bool route_match(const char *pattern, cs_str path, cs_str *params, size_t *nparams)
{
    size_t np = 0, i = 0;
    const char *p = pattern;
    while (*p) {
        if (strcmp(p, "{*}") == 0) { /* the rest, slashes and all (but never "..") */
            cs_str rest = {path.p + i, path.n - i};
            if (rest.n == 0 || np == CS_ROUTE_MAX_PARAMS || memmem(rest.p, rest.n, "..", 2))
                return false;
            params[np++] = rest;
            *nparams = np;
            return true;
        }
        if (p[0] == '{' && p[1] == '}') {
            size_t start = i;
            while (i < path.n && path.p[i] != '/') i++;
            if (i == start || np == CS_ROUTE_MAX_PARAMS) return false;
            params[np++] = (cs_str){path.p + start, i - start};
            p += 2;
        } else {
            if (i >= path.n || path.p[i] != *p) return false;
            i++;
            p++;
        }
    }
    if (i != path.n) return false;
    *nparams = np;
    return true;
}

static const char *method_name(enum cs_http_method m)
{
    static const char *const names[] = {"", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                        "PATCH"};
    return names[m];
}

static void dispatch(hconn *h)
{
    cs_server *s = h->server;
    cs_request *r = h->req;
    h->state = H_WAIT;
    h->conn->deadline_ms = 0;
    cs_conn_pause(h->conn);
    s->stats.requests++;

    char allow[128] = "";
    for (size_t i = 0; i < s->nroutes; i++) {
        const cs_route *rt = &s->routes[i];
        cs_str params[CS_ROUTE_MAX_PARAMS];
        size_t np;
        if (!route_match(rt->pattern, r->head.path, params, &np)) continue;
        enum cs_http_method m = r->head.method == CS_HTTP_HEAD ? CS_HTTP_GET : r->head.method;
        if (rt->method != CS_HTTP_OTHER && rt->method != m) {
            size_t n = strlen(allow);
            snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "", method_name(rt->method));
            continue;
        }
        memcpy(r->params, params, sizeof params);
        r->nparams = np;
        rt->fn(r);
        return;
    }
    if (allow[0]) {
        char extra[160];
        snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
        cs_buf body = CS_BUF_INIT(1024);
        error_body(&body, 405, "method not allowed");
        cs_respond(r, 405, "application/json", body.data, body.len, extra);
        cs_buf_free(&body);
        return;
    }
    cs_respond_error(r, 404, "no such resource: %.*s", (int)r->head.path.n, r->head.path.p);
}

/* ---- reading ---- */

static const char *status_message(int status)
{
    switch (status) {
    case 413: return "request body too large";
    case 414: return "request target too long";
    case 431: return "request header fields too large";
    case 501: return "unsupported transfer coding";
    case 505: return "HTTP version not supported";
    default: return "malformed request";
    }
}

static ssize_t read_head(hconn *h, char *data, size_t len)
{
    cs_server *s = h->server;
    cs_http_req head;
    int status = 400;
    int n = cs_http_parse_request(data, len, s->lim.max_head, &head, &status);
    if (n == 0) return 0;
    if (n < 0) {
        s->stats.bad_requests++;
        refuse(h, status, status_message(status));
        return (ssize_t)len;
    }
    head_end(h);
    if (head.has_content_length && head.content_length > s->lim.max_body) {
        refuse(h, 413, status_message(413));
        return (ssize_t)len;
    }
    h->req = request_new(h, data, (size_t)n);
    if (!h->req) {
        refuse(h, 503, "out of memory");
        return (ssize_t)len;
    }
    bool has_body = head.chunked || head.content_length > 0;
    if (has_body && head.upgrade) {
        s->stats.bad_requests++;
        refuse(h, 400, "an upgrade request has no body");
        return (ssize_t)len;
    }
    if (!has_body) {
        dispatch(h);
        return n;
    }
    if (head.expect_continue) cs_conn_write(h->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    h->state = H_BODY;
    h->body_left = head.content_length;
    h->body_since_ms = now_ms(s);
    h->body_bytes = 0;
    body_progress(h, 0);
    cs_http_chunked_init(&h->chunked);
    return n;
}

static ssize_t read_body(hconn *h, char *data, size_t len)
{
    cs_request *r = h->req;
    size_t used;
    if (r->head.chunked) {
        int k = cs_http_chunked_feed(&h->chunked, data, len, &r->body);
        if (k < 0) {
            h->server->stats.bad_requests++;
            refuse(h, k == -EMSGSIZE ? 413 : 400, status_message(k == -EMSGSIZE ? 413 : 400));
            return (ssize_t)len;
        }
        used = (size_t)k;
        body_progress(h, used);
        if (h->chunked.done) dispatch(h);
    } else {
        used = len < h->body_left ? len : (size_t)h->body_left;
        cs_buf_append(&r->body, data, used); /* fits: checked against max_body */
        h->body_left -= used;
        body_progress(h, used);
        if (h->body_left == 0) dispatch(h);
    }
    return (ssize_t)used;
}

static ssize_t on_data(cs_conn *c, char *data, size_t len)
{
    hconn *h = c->data;
    switch (h->state) {
    case H_HEAD:
        if (!h->head_started) head_started(h);
        return read_head(h, data, len);
    case H_BODY: return read_body(h, data, len);
    case H_WAIT:
    case H_SEND:
        break;
    }
    return 0;
}

/* Slow heads and bodies get a 408 and the connection closes. */
static void on_deadline(cs_conn *c)
{
    hconn *h = c->data;
    cs_server *s = h->server;
    if (h->state == H_HEAD) {
        s->stats.head_timeouts++;
        refuse(h, 408, "the request head did not arrive in time");
    } else if (h->state == H_BODY) {
        s->stats.body_timeouts++;
        refuse(h, 408, "the request body arrives too slowly");
    }
}

static void on_drain(cs_conn *c)
{
    hconn *h = c->data;
    if (h->state == H_SEND)
        send_rest(h);
    else
        end_wait(h);
}

static void on_close(cs_conn *c, int err)
{
    (void)err;
    hconn *h = c->data;
    head_end(h);
    free(h->rest);
    if (h->req && h->state == H_WAIT) { /* a handler is still working: its answer is dropped */
        h->req->conn = NULL;
        h->req->hconn = NULL;
        end_wait(h); /* a streamed answer learns that its peer left */
    } else {
        request_free(h->req); /* refused before it reached a handler */
    }
    free(h);
}

static const cs_conn_ops http_ops = {
    .on_data = on_data,
    .on_close = on_close,
    .on_deadline = on_deadline,
    .on_drain = on_drain,
};

/* ---- connections ---- */

static void untrack(cs_conn *c)
{
    cs_server *s = c->tracker;
    s->conns--;
    cs_quota_give(&s->quota->connections);
    cs_quota_addr_give(&s->quota->addrs, c->peer_ip);
}

/* Every slot is taken: the connection that has waited longest for a head makes room,
 * so a real request gets in while slow or idle clients hold the rest. */
static void evict_oldest_head(cs_server *s)
{
    hconn *v = s->heads;
    cs_conn *c = v->conn;
    head_end(v);
    s->stats.heads_evicted++;
    cs_conn_close(c, CS_ELIMIT, false);
    c->untrack(c); /* the slot is free now, not when the close callback runs */
    c->untrack = NULL;
}

/* Reserves the connection's slots in the process's counts (shared with the other loops'
 * servers, so two cannot both take the last one). Every slot taken: this server's oldest
 * unfinished head makes room, or the connection is refused. */
static bool admit(cs_server *s, hconn *h)
{
    cs_conn *c = h->conn;
    cs_quota_addr *e = NULL;
    switch (cs_quota_addr_take(&s->quota->addrs, c->peer_ip, &e)) {
    case CS_QUOTA_TAKEN: break;
    case CS_QUOTA_PER_ADDR: s->stats.rejected_per_ip++; return false;
    case CS_QUOTA_HEADS: s->stats.rejected_heads_per_ip++; return false;
    case CS_QUOTA_NO_MEMORY: return false;
    }
    bool full = !cs_quota_take(&s->quota->connections);
    if (full && !s->heads) {
        s->stats.rejected_total++;
        cs_quota_addr_give(&s->quota->addrs, c->peer_ip);
        return false;
    }
    if (full) cs_quota_add(&s->quota->connections); /* the victim's, given back below */
    s->conns++;
    h->ip = e;
    c->tracker = s;
    c->untrack = untrack;
    /* Room is made only now that this connection holds its address's entry: the victim
     * may be that address's only other connection, and its untrack must not free it. */
    if (full) evict_oldest_head(s);
    return true;
}

/* ---- listeners ----
 * We accept ourselves rather than through uv_listen: when descriptors run out, libuv
 * either accepts and drops connections without telling us or, once its spare descriptor
 * is gone, calls back in a loop that never ends. Here the listeners rest instead, the
 * log says so once per burst, and the backlog is served when descriptors come back. */

static void listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    close(l->fd);
    free(l);
}

static void take(cs_server *s, int fd, bool tls)
{
    hconn *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return;
    }
    h->server = s;
    cs_conn *c;
    if (cs_conn_accept(s->net, fd, tls, &http_ops, h, &c) < 0) {
        free(h);
        return;
    }
    h->conn = c;
    if (!admit(s, h)) {
        cs_conn_close(c, CS_ELIMIT, false);
        return;
    }
    c->idle_timeout_ms = s->lim.idle_ms;
    c->max_input = s->lim.max_head + 4096;
    cs_conn_set_output_high(c, CS_SERVER_OUTPUT_HIGH);
    head_begin(h);
    /* A TLS handshake brings no plaintext byte, and every raw one counts as activity:
     * the first head's clock starts at accept, so handshake and head share its deadline. */
    if (tls) head_started(h);
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void listen_all(cs_server *s, bool on)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (on)
            uv_poll_start(&s->listeners[i]->poll, UV_READABLE, on_acceptable);
        else
            uv_poll_stop(&s->listeners[i]->poll);
    }
}

static void on_accept_retry(uv_timer_t *t)
{
    cs_server *s = t->data;
    s->stats.accept_paused = 0;
    listen_all(s, true);
}

/* Out of descriptors (or memory): the listeners rest instead of waking the loop again
 * and again for the same failure; the log says so once per burst. */
static void accept_failed(cs_server *s, int err)
{
    s->stats.accept_errors++;
    if (s->accept_failures++ == 0)
        cs_warn("http: cannot accept connections: %s; trying again every %d ms", cs_strerror(err),
                CS_SERVER_ACCEPT_RETRY_MS);
    s->stats.accept_paused = 1;
    listen_all(s, false);
    uv_timer_start(s->accept_retry, on_accept_retry, CS_SERVER_ACCEPT_RETRY_MS, 0);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    (void)events;
    listener *l = p->data;
    cs_server *s = l->server;
    if (status < 0) {
        accept_failed(s, status);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take(s, fd, l->tls);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            accept_failed(s, -errno);
        } else if (s->accept_failures) { /* the burst ends once the backlog is caught up */
            cs_info("http: accepting connections again after %llu failed attempt(s)",
                    (unsigned long long)s->accept_failures);
            s->accept_failures = 0;
        }
        return;
    }
}

/* A listening socket as libuv would make it: address reuse, and "::" takes IPv4 too. */
static int listen_socket(const struct sockaddr_storage *ss, bool reuse_port)
{
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* before bind: libuv 1.44 has no UV_TCP_REUSEPORT */
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int cs_server_new(cs_server **out, cs_net *net, const cs_route *routes, size_t nroutes,
                  const cs_server_limits *limits, void *app)
{
    cs_server *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->net = net;
    s->routes = routes;
    s->nroutes = nroutes;
    s->lim = *limits;
    s->app = app;
    s->quota = limits->quota;
    if (!s->quota) {
        cs_server_quota_init(&s->own_quota, limits);
        s->quota = &s->own_quota;
    }
    *out = s;
    return 0;
}

int cs_server_listen(cs_server *s, const char *host, int port, bool tls)
{
    if (s->nlisteners == MAX_LISTENERS) return CS_ELIMIT;
    struct sockaddr_storage ss;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc < 0) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (rc < 0) return rc;
    listener *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->fd = listen_socket(&ss, s->lim.reuse_port);
    if (l->fd < 0) {
        rc = l->fd;
        free(l);
        return rc;
    }
    l->server = s;
    l->tls = tls;
    l->poll.data = l;
    if (!s->accept_retry && (s->accept_retry = malloc(sizeof *s->accept_retry)) != NULL) {
        uv_timer_init(cs_net_loop(s->net), s->accept_retry);
        s->accept_retry->data = s;
    }
    rc = s->accept_retry ? uv_poll_init_socket(cs_net_loop(s->net), &l->poll, l->fd) : -ENOMEM;
    if (rc < 0) {
        close(l->fd);
        free(l);
        return rc;
    }
    if (!s->stats.accept_paused) rc = uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->poll, listener_closed);
        return rc;
    }
    if (s->nlisteners == 0) {
        struct sockaddr_storage bound;
        socklen_t len = sizeof bound;
        getsockname(l->fd, (struct sockaddr *)&bound, &len);
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    }
    s->listeners[s->nlisteners++] = l;
    return 0;
}

int cs_server_port(const cs_server *s)
{
    return s->port;
}

void cs_server_stop_listening(cs_server *s)
{
    s->draining = true;
    for (size_t i = 0; i < s->nlisteners; i++)
        uv_close((uv_handle_t *)&s->listeners[i]->poll, listener_closed);
    s->nlisteners = 0;
    if (s->accept_retry) uv_close((uv_handle_t *)s->accept_retry, (uv_close_cb)free);
    s->accept_retry = NULL;
}

void cs_server_free(cs_server *s)
{
    if (!s) return;
    if (s->accept_retry) /* a listen that failed; the loop frees it later */
        uv_close((uv_handle_t *)s->accept_retry, (uv_close_cb)free);
    if (s->quota == &s->own_quota) cs_server_quota_free(&s->own_quota);
    free(s);
}

void cs_server_quota_init(cs_server_quota *q, const cs_server_limits *lim)
{
    cs_quota_init(&q->connections, lim->max_connections);
    cs_quota_addrs_init(&q->addrs, lim->max_per_ip, lim->max_heads_per_ip);
}

void cs_server_quota_free(cs_server_quota *q)
{
    cs_quota_addrs_free(&q->addrs);
}

const cs_server_stats *cs_server_stats_get(const cs_server *s)
{
    return &s->stats;
}

size_t cs_server_connections(const cs_server *s)
{
    return s->conns;
}
