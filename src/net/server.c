#include "net/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"

#define MAX_LISTENERS 4
#define LISTEN_BACKLOG 1024

enum hstate { H_HEAD, H_BODY, H_WAIT };

/* One HTTP connection until it closes or is upgraded. */
typedef struct hconn {
    cs_server *server;
    cs_conn *conn;
    enum hstate state;
    cs_request *req;
    cs_http_chunked chunked;
    uint64_t body_left; /* Content-Length bytes still to read */
} hconn;

/* Connections from one address. */
typedef struct ip_count {
    char ip[46];
    size_t n;
} ip_count;

typedef struct listener {
    uv_tcp_t tcp;
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
    bool draining; /* no more keep-alive */
    cs_map per_ip;
    size_t conns;
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

/* ---- answering ---- */

static void write_answer(cs_conn *c, int status, const char *content_type, const void *body,
                         size_t len, const char *extra, bool keep_alive, bool head_only)
{
    cs_buf out = CS_BUF_INIT(CS_CONN_MAX_OUTPUT);
    if (cs_http_write_head(&out, status, content_type, (int64_t)len, extra, keep_alive) == 0 &&
        (head_only || cs_buf_append(&out, body, len) == 0))
        cs_conn_write(c, out.data, out.len);
    cs_buf_free(&out);
}

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

/* The request could not be read: answer and close. */
static void refuse(hconn *h, int status, const char *msg)
{
    cs_buf body = CS_BUF_INIT(1024);
    error_body(&body, status, msg);
    write_answer(h->conn, status, "application/json", body.data, body.len, NULL, false, false);
    cs_buf_free(&body);
    h->server->stats.responses[status / 100 % 6]++;
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

/* Ends the request; the connection reads the next one or closes. */
static void finish(cs_request *r)
{
    hconn *h = r->hconn;
    if (!r->conn || !h) { /* the peer left while we worked */
        request_free(r);
        return;
    }
    cs_conn *c = r->conn;
    bool keep_alive = keeps_alive(r);
    request_free(r);
    h->req = NULL;
    h->state = H_HEAD;
    if (keep_alive)
        cs_conn_resume(c);
    else
        cs_conn_close(c, 0, true);
}

void cs_respond(cs_request *r, int status, const char *content_type, const void *body, size_t len,
                const char *extra)
{
    if (r->conn && r->hconn) {
        write_answer(r->conn, status, content_type, body, len, extra, keeps_alive(r),
                     r->head.method == CS_HTTP_HEAD);
        ((hconn *)r->hconn)->server->stats.responses[status / 100 % 6]++;
        log_answer(r, status);
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
    cs_buf_free(&out);
    ((hconn *)r->hconn)->server->stats.responses[status / 100 % 6]++;
    log_answer(r, status);
    return rc;
}

int cs_respond_write(cs_request *r, const void *data, size_t len)
{
    if (!r->conn || !r->hconn) return CS_ECLOSED;
    if (r->head.method == CS_HTTP_HEAD) return 0;
    return cs_conn_write(r->conn, data, len);
}

size_t cs_respond_pending(const cs_request *r)
{
    return r->conn ? cs_conn_pending(r->conn) : 0;
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
    h->server->stats.responses[1]++;
    c->idle_timeout_ms = 0;
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
        if (h->chunked.done) dispatch(h);
    } else {
        used = len < h->body_left ? len : (size_t)h->body_left;
        cs_buf_append(&r->body, data, used); /* fits: checked against max_body */
        h->body_left -= used;
        if (h->body_left == 0) dispatch(h);
    }
    return (ssize_t)used;
}

static ssize_t on_data(cs_conn *c, char *data, size_t len)
{
    hconn *h = c->data;
    switch (h->state) {
    case H_HEAD: return read_head(h, data, len);
    case H_BODY: return read_body(h, data, len);
    case H_WAIT: break;
    }
    return 0;
}

static void on_close(cs_conn *c, int err)
{
    (void)err;
    hconn *h = c->data;
    if (h->req && h->state == H_WAIT) { /* a handler is still working: its answer is dropped */
        h->req->conn = NULL;
        h->req->hconn = NULL;
    } else {
        request_free(h->req); /* refused before it reached a handler */
    }
    free(h);
}

static const cs_conn_ops http_ops = {
    .on_data = on_data,
    .on_close = on_close,
};

/* ---- connections ---- */

static void untrack(cs_conn *c)
{
    cs_server *s = c->tracker;
    s->conns--;
    ip_count *e = cs_map_get(&s->per_ip, cs_str_of(c->peer_ip));
    if (e && --e->n == 0) {
        cs_map_del(&s->per_ip, cs_str_of(e->ip));
        free(e);
    }
}

static bool admit(cs_server *s, cs_conn *c)
{
    if (s->conns >= s->lim.max_connections) {
        s->stats.rejected_total++;
        return false;
    }
    ip_count *e = cs_map_get(&s->per_ip, cs_str_of(c->peer_ip));
    if (e && e->n >= s->lim.max_per_ip) {
        s->stats.rejected_per_ip++;
        return false;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) return false;
        snprintf(e->ip, sizeof e->ip, "%s", c->peer_ip);
        if (cs_map_put(&s->per_ip, cs_str_of(e->ip), e) < 0) {
            free(e);
            return false;
        }
    }
    e->n++;
    s->conns++;
    c->tracker = s;
    c->untrack = untrack;
    return true;
}

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_connection(uv_stream_t *stream, int status)
{
    listener *l = stream->data;
    cs_server *s = l->server;
    if (status < 0) {
        cs_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    hconn *h = calloc(1, sizeof *h);
    if (!h) return;
    h->server = s;
    cs_conn *c;
    if (cs_conn_accept(s->net, stream, l->tls, &http_ops, h, &c) < 0) {
        free(h);
        return;
    }
    h->conn = c;
    if (!admit(s, c)) {
        cs_conn_close(c, CS_ELIMIT, false);
        return;
    }
    c->idle_timeout_ms = s->lim.idle_ms;
    c->max_input = s->lim.max_head + 4096;
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
    l->server = s;
    l->tls = tls;
    l->tcp.data = l;
    uv_tcp_init(cs_net_loop(s->net), &l->tcp);
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        return rc;
    }
    if (s->nlisteners == 0) {
        struct sockaddr_storage bound;
        int len = sizeof bound;
        uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
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
        uv_close((uv_handle_t *)&s->listeners[i]->tcp, (uv_close_cb)free);
    s->nlisteners = 0;
}

void cs_server_free(cs_server *s)
{
    if (!s) return;
    cs_map_free(&s->per_ip); /* entries are freed as their connections go */
    free(s);
}

const cs_server_stats *cs_server_stats_get(const cs_server *s)
{
    return &s->stats;
}

size_t cs_server_connections(const cs_server *s)
{
    return s->conns;
}
