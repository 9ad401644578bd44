/* cs_fetch against a real HTTP server on the same loop: the project's own (cs_server),
 * plain and TLS, with routes that answer at once, stream a chunked answer piece by piece
 * (each piece only once the client has the one before: a client that waited for the end
 * would hang), stream Server-Sent Events, never answer, stall, stop mid-body, answer too
 * much or redirect. Then cancelling (from outside and from inside on_data), closing with
 * requests in flight, keep-alive seen from the server, refused connections, TLS trust,
 * proxies from the environment, and what cs_fetch_start refuses. */
#include "testutil.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "net/fetch.h"
#include "net/server.h"
#include "net/sse.h"

#define WAIT_MS  20000 /* generous: the machine is shared */
#define BIG      (2u << 20)
#define MAX_HELD 16

typedef struct rig rig;

/* A chunked answer written piece by piece from a timer. */
typedef struct feed {
    uv_timer_t timer;
    rig *g;
    cs_request *req;
    const char *const *pieces;
    size_t npieces, next;
    size_t sent;  /* payload bytes written */
    bool gated;   /* a piece waits until the client has every byte before it */
    bool endless; /* the pieces repeat until the client leaves */
    bool stall;   /* after the first piece nothing more, and no end */
} feed;

struct rig {
    uv_loop_t loop;
    cs_net *net;
    cs_server *server, *tls_server;
    int port, tls_port;
    char *dir; /* the certificate's */
    char cert[512], key[512];
    cs_fetch *f;
    cs_request *held[MAX_HELD]; /* never answered (until teardown) */
    size_t nheld;
    feed *feeds[MAX_HELD]; /* NULL once ended */
    size_t nfeeds;
    size_t rx;        /* body bytes the client's on_data took */
    bool client_left; /* a feed's client went away */
};

/* ---- a slow name: curl's resolver thread waits in getaddrinfo until released ---- */

static sem_t dns_entered, dns_release, dns_left;
static volatile bool dns_timed_out; /* nobody released it within 10 s */

/* Ours, in place of libc's (curl calls it from its resolver thread). */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    if (!node || strcmp(node, "slow.test")) return real(node, service, hints, res);
    sem_post(&dns_entered);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (sem_timedwait(&dns_release, &until) != 0) dns_timed_out = true;
    sem_post(&dns_left);
    return EAI_NONAME;
}

static bool sem_taken(void *data)
{
    return sem_trywait(data) == 0;
}

/* ---- the server ---- */

static void plain(cs_request *r)
{
    cs_respond(r, 200, "text/plain", "hello", 5, NULL);
}

/* "<method> <X-Test> <body>" */
static void echo(cs_request *r)
{
    const cs_str *x = cs_request_header(r, "X-Test");
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_buf_printf(&out, "%.*s %.*s %.*s", (int)r->head.method_name.n, r->head.method_name.p,
                  x ? (int)x->n : 0, x ? x->p : "", (int)r->body.len,
                  r->body.data ? r->body.data : "");
    cs_respond(r, 200, "text/plain", out.data, out.len, NULL);
    cs_buf_free(&out);
}

static void never(cs_request *r)
{
    rig *g = r->app;
    assert_true(g->nheld < MAX_HELD);
    g->held[g->nheld++] = r;
}

/* Promises 100 bytes, sends 10, ends: the server closes the connection. */
static void cut(cs_request *r)
{
    assert_int_equal(cs_respond_begin(r, 200, "text/plain", 100, NULL), 0);
    assert_int_equal(cs_respond_write(r, "0123456789", 10), 0);
    cs_respond_end(r);
}

static void big(cs_request *r)
{
    char *body = malloc(BIG);
    memset(body, 'b', BIG);
    cs_respond(r, 200, "text/plain", body, BIG, NULL);
    free(body);
}

static void redirect(cs_request *r)
{
    cs_respond(r, 302, "text/plain", "moved", 5, "Location: /plain\r\n");
}

static void redirect_loop(cs_request *r)
{
    cs_respond(r, 302, "text/plain", "again", 5, "Location: /loop\r\n");
}

static void redirect_ftp(cs_request *r)
{
    cs_respond(r, 302, "text/plain", "ftp", 3, "Location: ftp://127.0.0.1/x\r\n");
}

static void feed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void feed_end(feed *fd)
{
    rig *g = fd->g;
    for (size_t i = 0; i < g->nfeeds; i++)
        if (g->feeds[i] == fd) g->feeds[i] = NULL;
    cs_respond_end(fd->req);
    uv_close((uv_handle_t *)&fd->timer, feed_closed);
}

static int feed_write(feed *fd, const char *p, size_t n)
{
    char head[32];
    int k = snprintf(head, sizeof head, "%zx\r\n", n);
    int rc = cs_respond_write(fd->req, head, (size_t)k);
    if (rc == 0 && n) rc = cs_respond_write(fd->req, p, n);
    if (rc == 0) rc = cs_respond_write(fd->req, "\r\n", 2);
    return rc;
}

static void on_feed(uv_timer_t *t)
{
    feed *fd = t->data;
    rig *g = fd->g;
    if (fd->next == fd->npieces && !fd->endless) {
        cs_respond_write(fd->req, "0\r\n\r\n", 5);
        feed_end(fd);
        return;
    }
    if ((fd->stall && fd->next == 1) || (fd->gated && g->rx < fd->sent)) return;
    const char *p = fd->pieces[fd->next % fd->npieces];
    if (feed_write(fd, p, strlen(p)) < 0) {
        g->client_left = true;
        feed_end(fd);
        return;
    }
    fd->next++;
    fd->sent += strlen(p);
}

static void start_feed(cs_request *r, const char *const *pieces, size_t n, bool gated, bool endless,
                       bool stall)
{
    rig *g = r->app;
    feed *fd = calloc(1, sizeof *fd);
    *fd = (feed){.g = g,
                 .req = r,
                 .pieces = pieces,
                 .npieces = n,
                 .gated = gated,
                 .endless = endless,
                 .stall = stall};
    assert_true(g->nfeeds < MAX_HELD);
    g->feeds[g->nfeeds++] = fd;
    assert_int_equal(
        cs_respond_begin(r, 200, "text/event-stream", -1, "Transfer-Encoding: chunked\r\n"), 0);
    uv_timer_init(&g->loop, &fd->timer);
    fd->timer.data = fd;
    uv_timer_start(&fd->timer, on_feed, 5, 5);
}

static const char *const words[] = {"one ", "two ", "three ", "four ", "five"};

static void stream(cs_request *r)
{
    start_feed(r, words, 5, true, false, false);
}

static void endless(cs_request *r)
{
    start_feed(r, words, 5, false, true, false);
}

static void stall(cs_request *r)
{
    start_feed(r, words, 5, false, false, true);
}

/* 2 MB in 64 kB chunks, without a Content-Length. */
static const char *chunk64k(void)
{
    static char s[65537];
    memset(s, 'c', 65536);
    return s;
}

static void bigchunked(cs_request *r)
{
    static const char *pieces[32];
    for (size_t i = 0; i < 32; i++) pieces[i] = chunk64k();
    start_feed(r, pieces, 32, false, false, false);
}

/* An OpenAI-style stream, cut at awkward places: inside a line, between CR and LF. */
static const char *const sse_pieces[] = {
    ": keep-alive\r\n\r\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
    "lo\"}}]}\r",
    "\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\n",
    "event: ping\nid: 7\ndata: a\ndata: b\n\n",
    "data: [DONE]\n\n",
};

static void sse(cs_request *r)
{
    start_feed(r, sse_pieces, sizeof sse_pieces / sizeof *sse_pieces, true, false, false);
}

static const cs_route routes[] = {
    {CS_HTTP_GET, "/plain", plain},
    {CS_HTTP_OTHER, "/echo", echo},
    {CS_HTTP_GET, "/never", never},
    {CS_HTTP_GET, "/cut", cut},
    {CS_HTTP_GET, "/big", big},
    {CS_HTTP_GET, "/bigchunked", bigchunked},
    {CS_HTTP_GET, "/redirect", redirect},
    {CS_HTTP_GET, "/stream", stream},
    {CS_HTTP_GET, "/endless", endless},
    {CS_HTTP_GET, "/stall", stall},
    {CS_HTTP_GET, "/sse", sse},
    {CS_HTTP_GET, "/loop", redirect_loop},
    {CS_HTTP_GET, "/toftp", redirect_ftp},
};

static void rig_up(rig *g, bool tls)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(uv_loop_init(&g->loop), 0);
    assert_int_equal(cs_net_new(&g->net, &g->loop), 0);
    cs_server_limits lim = {.max_connections = 64,
                            .max_per_ip = 64,
                            .max_head = 8192,
                            .max_body = 1 << 20,
                            .idle_ms = 30000};
    size_t nroutes = sizeof routes / sizeof *routes;
    assert_int_equal(cs_server_new(&g->server, g->net, routes, nroutes, &lim, g), 0);
    assert_int_equal(cs_server_listen(g->server, "127.0.0.1", 0, false), 0);
    g->port = cs_server_port(g->server);
    if (tls) {
        g->dir = tu_mkdtemp("cs-fetch");
        assert_non_null(g->dir);
        snprintf(g->cert, sizeof g->cert, "%s/cert.pem", g->dir);
        snprintf(g->key, sizeof g->key, "%s/key.pem", g->dir);
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                 "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s -out %s "
                 "2>/dev/null",
                 g->key, g->cert);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(cs_net_tls_server(g->net, g->cert, g->key), 0);
        assert_int_equal(cs_server_new(&g->tls_server, g->net, routes, nroutes, &lim, g), 0);
        assert_int_equal(cs_server_listen(g->tls_server, "127.0.0.1", 0, true), 0);
        g->tls_port = cs_server_port(g->tls_server);
    }
    assert_int_equal(cs_fetch_open(&g->f, &g->loop), 0);
}

static size_t server_conns(const rig *g)
{
    return cs_server_connections(g->server) +
           (g->tls_server ? cs_server_connections(g->tls_server) : 0);
}

static bool no_server_conns(void *data)
{
    return server_conns(data) == 0;
}

static bool net_empty(void *data)
{
    return cs_net_count(((rig *)data)->net) == 0;
}

static void rig_down(rig *g)
{
    cs_fetch_close(g->f);
    g->f = NULL;
    /* The client's connections are gone: the server sees them close (a connection whose
     * answer is still owed reads nothing until it is given). */
    for (size_t i = 0; i < g->nheld; i++) cs_respond(g->held[i], 200, NULL, "", 0, NULL);
    for (size_t i = 0; i < g->nfeeds; i++)
        if (g->feeds[i]) feed_end(g->feeds[i]);
    assert_true(tu_run_until(&g->loop, no_server_conns, g, WAIT_MS));
    cs_server_stop_listening(g->server);
    if (g->tls_server) cs_server_stop_listening(g->tls_server);
    cs_net_close_all(g->net, false);
    assert_true(tu_run_until(&g->loop, net_empty, g, WAIT_MS));
    cs_server_free(g->server);
    cs_server_free(g->tls_server);
    cs_net_free(g->net);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&g->loop), 0); /* every handle of the client closed */
    if (g->dir) {
        tu_rmtree(g->dir);
        free(g->dir);
    }
}

/* ---- the client's side ---- */

typedef struct call {
    rig *g;
    cs_fetch_req *req;
    int done; /* on_done calls */
    int status, err;
    char reason[256];
    cs_buf body; /* buffered answer, or what on_data got */
    int pieces;  /* on_data calls */
    int pieces_at_done;
    int stop_with;          /* on_data returns it on the first piece */
    bool cancel_in_data;    /* on_data cancels the request on the first piece */
    bool close_in_data;     /* on_data closes the client on the first piece */
    int start_in_data;      /* what cs_fetch_start said when on_data started another */
    struct call *next_call; /* started from on_data */
    cs_sse *sse;
    char events[8][128];
    int nevents;
    int pause_at;       /* on_data pauses (takes nothing) at this call, then waits */
    bool paused;        /* it did */
    int stop_on_resume; /* on_data returns it once resumed */
    cs_buf head;        /* on_header's lines, each ending with '|' */
} call;

static void call_init(call *c, rig *g)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    cs_buf_init(&c->body, 4u << 20);
}

static void on_done(void *data, const cs_fetch_result *res)
{
    call *c = data;
    c->done++;
    c->status = res->status;
    c->err = res->err;
    c->pieces_at_done = c->pieces;
    snprintf(c->reason, sizeof c->reason, "%s", res->reason);
    if (res->body) cs_buf_append(&c->body, res->body, res->len);
    c->req = NULL;
}

static int on_event(void *data, const cs_sse_event *ev)
{
    call *c = data;
    if (c->nevents < 8)
        snprintf(c->events[c->nevents++], sizeof c->events[0], "%.*s|%.*s|%.*s", (int)ev->type_len,
                 ev->type, (int)ev->id_len, ev->id, (int)ev->data_len, ev->data);
    return 0;
}

static cs_fetch_opts opts(call *c, const char *url);

static int on_data(void *data, int status, const char *p, size_t n)
{
    call *c = data;
    c->pieces++;
    c->status = status;
    if (c->pause_at && c->pieces == c->pause_at && !c->paused) {
        c->paused = true;
        return CS_FETCH_PAUSE;
    }
    if (c->paused && c->stop_on_resume) return c->stop_on_resume;
    c->g->rx += n;
    cs_buf_append(&c->body, p, n);
    if (c->sse && cs_sse_feed(c->sse, p, n, on_event, c) < 0) return CS_EPARSE;
    if (c->pieces > 1) return 0;
    if (c->next_call) {
        char url[96];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/plain", c->g->port);
        cs_fetch_opts o = opts(c->next_call, url);
        c->start_in_data = cs_fetch_start(c->g->f, &o, &c->next_call->req);
    }
    if (c->cancel_in_data) cs_fetch_cancel(c->req);
    if (c->close_in_data) {
        cs_fetch_close(c->g->f);
        char url[96];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/plain", c->g->port);
        cs_fetch_opts o = opts(c, url);
        c->start_in_data = cs_fetch_start(c->g->f, &o, NULL); /* refused: closing */
        c->g->f = NULL;
    }
    return c->stop_with;
}

static cs_fetch_opts opts(call *c, const char *url)
{
    return (cs_fetch_opts){.url = url, .on_done = on_done, .data = c};
}

static bool is_done(void *data)
{
    return ((call *)data)->done > 0;
}

static char *url_of(const rig *g, const char *path)
{
    static char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g->port, path);
    return url;
}

/* Starts the request and runs until on_done. */
static void run_with(rig *g, call *c, const cs_fetch_opts *o)
{
    assert_int_equal(cs_fetch_start(g->f, o, &c->req), 0);
    assert_true(tu_run_until(&g->loop, is_done, c, WAIT_MS));
}

/* A buffered GET (or streamed with on_data) of `path`, to its end. */
static void run(rig *g, call *c, const char *path, bool streamed)
{
    cs_fetch_opts o = opts(c, url_of(g, path));
    if (streamed) o.on_data = on_data;
    run_with(g, c, &o);
}

static void on_head_line(void *data, const char *line, size_t n)
{
    call *c = data;
    cs_buf_printf(&c->head, "%.*s|", (int)n, line);
}

static bool no_time(void *data)
{
    (void)data;
    return false;
}

/* Paused by on_data: nothing more arrives, the idle timeout waits too; resumed, the bytes
 * it did not take come again, then the rest. The head's lines reach on_header. */
static void test_pause_resume(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    cs_buf_init(&c.head, 1 << 16);
    c.pause_at = 2;
    cs_fetch_opts o = opts(&c, url_of(&g, "/big"));
    o.on_data = on_data;
    o.on_header = on_head_line;
    o.idle_timeout_ms = 100;
    assert_int_equal(cs_fetch_start(g.f, &o, &c.req), 0);
    assert_false(tu_run_until(&g.loop, is_done, &c, 600)); /* idle 6 times over */
    assert_true(c.paused);
    assert_int_equal(c.pieces, 2);
    size_t held = c.body.len;
    assert_true(held > 0 && held < BIG);
    assert_non_null(strstr(c.head.data, "HTTP/1.1 200 OK|"));
    assert_ptr_equal(strstr(c.head.data, "HTTP/1.1 200 OK|"), c.head.data);
    char len[64];
    snprintf(len, sizeof len, "|Content-Length: %u|", BIG);
    assert_non_null(strstr(c.head.data, len));
    assert_int_equal(c.head.data[c.head.len - 2], '|'); /* the blank line */
    cs_fetch_resume(c.req);
    assert_true(tu_run_until(&g.loop, is_done, &c, WAIT_MS));
    assert_int_equal(c.err, 0);
    assert_int_equal(c.body.len, BIG);
    cs_fetch_resume(NULL); /* no-op */
    cs_buf_free(&c.body);
    cs_buf_free(&c.head);

    /* on_data stops it as it resumes: it ends with that error, after the resume */
    call d;
    call_init(&d, &g);
    d.pause_at = 1;
    d.stop_on_resume = CS_ELIMIT;
    o = opts(&d, url_of(&g, "/big"));
    o.on_data = on_data;
    assert_int_equal(cs_fetch_start(g.f, &o, &d.req), 0);
    assert_false(tu_run_until(&g.loop, no_time, NULL, 200));
    assert_true(d.paused);
    cs_fetch_resume(d.req);
    assert_int_equal(d.done, 0);
    assert_true(tu_run_until(&g.loop, is_done, &d, WAIT_MS));
    assert_int_equal(d.err, CS_ELIMIT);
    cs_buf_free(&d.body);
    rig_down(&g);
}

static void test_plain_answer(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    run(&g, &c, "/plain", false);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.status, 200);
    assert_int_equal(c.err, 0);
    assert_string_equal(c.reason, "");
    assert_string_equal(c.body.data, "hello");
    const cs_fetch_stats *st = cs_fetch_stats_get(g.f);
    assert_int_equal(st->requests, 1);
    assert_int_equal(st->answered, 1);
    assert_int_equal(st->failed, 0);
    assert_int_equal(cs_fetch_count(g.f), 0);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* Method, headers and body arrive as given. */
static void test_post_headers_body(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    static const char *const methods[] = {"POST", "PUT", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        call c;
        call_init(&c, &g);
        const char *headers[] = {"Content-Type: text/plain", "X-Test: yes"};
        cs_fetch_opts o = opts(&c, url_of(&g, "/echo"));
        o.method = methods[i];
        o.headers = headers;
        o.nheaders = 2;
        char body[4000]; /* more than 1024 bytes: no Expect: 100-continue wait */
        memset(body, 'x', sizeof body);
        o.body = body;
        o.len = sizeof body;
        run_with(&g, &c, &o);
        assert_int_equal(c.status, 200);
        char want[4100];
        snprintf(want, sizeof want, "%s yes %.*s", methods[i], (int)sizeof body, body);
        assert_string_equal(c.body.data, want);
        cs_buf_free(&c.body);
    }
    rig_down(&g);
}

/* Each piece reaches on_data before the server sends the next (it waits for it). */
static void test_streams_pieces_as_they_arrive(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    run(&g, &c, "/stream", true);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "one two three four five");
    assert_true(c.pieces >= 5);
    assert_int_equal(c.pieces_at_done, c.pieces);
    cs_buf_free(&c.body);
    rig_down(&g);
}

static void test_sse_through_the_parser(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    cs_sse p;
    cs_sse_init(&p, 4096);
    c.sse = &p;
    run(&g, &c, "/sse", true);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.nevents, 4);
    assert_string_equal(c.events[0],
                        "message||{\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}");
    assert_string_equal(c.events[1],
                        "message||{\"choices\":[{\"delta\":{\"content\":\" world\"}}]}");
    assert_string_equal(c.events[2], "ping|7|a\nb");
    assert_string_equal(c.events[3], "message|7|[DONE]");
    assert_false(cs_sse_partial(&p));
    cs_sse_free(&p);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* A server that accepts and never answers: the whole-request timeout. */
static void test_timeout(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, url_of(&g, "/never"));
    o.timeout_ms = 300;
    run_with(&g, &c, &o);
    assert_int_equal(c.err, -ETIMEDOUT);
    assert_int_equal(c.status, 0);
    assert_true(c.reason[0] != '\0');
    const cs_fetch_stats *st = cs_fetch_stats_get(g.f);
    assert_int_equal(st->failed, 1);
    assert_int_equal(st->timeouts, 1);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* A stream that stops sending (without ending): the idle timeout, with no total one. */
static void test_idle_timeout(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, url_of(&g, "/stall"));
    o.on_data = on_data;
    o.idle_timeout_ms = 300;
    run_with(&g, &c, &o);
    assert_int_equal(c.err, -ETIMEDOUT);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "one ");
    assert_non_null(strstr(c.reason, "no byte received for 300 ms"));
    assert_int_equal(cs_fetch_stats_get(g.f)->timeouts, 1);
    /* And before any byte: the same. */
    call d;
    call_init(&d, &g);
    o = opts(&d, url_of(&g, "/never"));
    o.idle_timeout_ms = 200;
    run_with(&g, &d, &o);
    assert_int_equal(d.err, -ETIMEDOUT);
    assert_int_equal(d.status, 0);
    cs_buf_free(&c.body);
    cs_buf_free(&d.body);
    rig_down(&g);
}

/* The server closes 90 bytes short of its Content-Length. */
static void test_cut_mid_body(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    run(&g, &c, "/cut", false);
    assert_int_equal(c.err, CS_ECLOSED);
    assert_int_equal(c.status, 200);
    assert_int_equal(c.body.len, 0); /* a failed request hands over no body */
    assert_true(c.reason[0] != '\0');
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* Over max_body: refused from its Content-Length, or once past it (chunked). */
static void test_over_max_body(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    static const char *const paths[] = {"/big", "/bigchunked"};
    for (size_t i = 0; i < 2; i++) {
        call c;
        call_init(&c, &g);
        cs_fetch_opts o = opts(&c, url_of(&g, paths[i]));
        o.max_body = 100000;
        run_with(&g, &c, &o);
        assert_int_equal(c.err, -EMSGSIZE);
        assert_int_equal(c.status, 200);
        assert_int_equal(c.body.len, 0);
        cs_buf_free(&c.body);
    }
    assert_int_equal(cs_fetch_stats_get(g.f)->too_large, 2);
    /* The default maximum holds 1 MB; the 2 MB answer is refused by it too. */
    call c;
    call_init(&c, &g);
    run(&g, &c, "/bigchunked", false);
    assert_int_equal(c.err, -EMSGSIZE);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* on_data's error ends the request with it. */
static void test_on_data_stops(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    c.stop_with = -EPROTO;
    run(&g, &c, "/endless", true);
    assert_int_equal(c.err, -EPROTO);
    assert_int_equal(c.pieces, 1);
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.reason, "stopped"));
    cs_buf_free(&c.body);
    rig_down(&g);
}

static bool got_piece(void *data)
{
    return ((call *)data)->pieces > 0;
}

static bool client_left(void *data)
{
    return ((rig *)data)->client_left;
}

/* Cancelled mid-stream, from inside on_data and from outside: no callback after, the
 * server sees the connection go. */
static void test_cancel_mid_stream(void **state)
{
    (void)state;
    for (int inside = 0; inside < 2; inside++) {
        rig g;
        rig_up(&g, false);
        call c;
        call_init(&c, &g);
        c.cancel_in_data = inside;
        cs_fetch_opts o = opts(&c, url_of(&g, "/endless"));
        o.on_data = on_data;
        assert_int_equal(cs_fetch_start(g.f, &o, &c.req), 0);
        assert_true(tu_run_until(&g.loop, got_piece, &c, WAIT_MS));
        if (!inside) cs_fetch_cancel(c.req);
        int pieces = c.pieces;
        assert_true(tu_run_until(&g.loop, client_left, &g, WAIT_MS));
        assert_true(tu_run_until(&g.loop, no_server_conns, &g, WAIT_MS));
        assert_int_equal(c.done, 0);
        assert_int_equal(c.pieces, pieces);
        assert_int_equal(cs_fetch_count(g.f), 0);
        assert_int_equal(cs_fetch_stats_get(g.f)->cancelled, 1);
        cs_fetch_cancel(NULL); /* harmless */
        cs_buf_free(&c.body);
        rig_down(&g);
    }
}

/* Closing the client with requests in flight — waiting, streaming, just started — calls
 * nobody back and leaves nothing open (rig_down checks every handle closed). */
static void test_close_in_flight(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call never_c, stream_c, fresh_c;
    call_init(&never_c, &g);
    call_init(&stream_c, &g);
    call_init(&fresh_c, &g);
    cs_fetch_opts o = opts(&never_c, url_of(&g, "/never"));
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    o = opts(&stream_c, url_of(&g, "/endless"));
    o.on_data = on_data;
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    assert_true(tu_run_until(&g.loop, got_piece, &stream_c, WAIT_MS));
    o = opts(&fresh_c, url_of(&g, "/plain"));
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    assert_int_equal(cs_fetch_count(g.f), 3);
    cs_fetch_close(g.f);
    g.f = NULL;
    assert_true(tu_run_until(&g.loop, client_left, &g, WAIT_MS));
    assert_int_equal(never_c.done + stream_c.done + fresh_c.done, 0);
    cs_buf_free(&never_c.body);
    cs_buf_free(&stream_c.body);
    cs_buf_free(&fresh_c.body);
    rig_down(&g);
}

/* Closed from inside on_data while another request waits: no callback for either, and a
 * start after it is refused. */
static void test_close_from_on_data(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call waiting, c;
    call_init(&waiting, &g);
    call_init(&c, &g);
    cs_fetch_opts o = opts(&waiting, url_of(&g, "/never"));
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    c.close_in_data = true;
    o = opts(&c, url_of(&g, "/endless"));
    o.on_data = on_data;
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    assert_true(tu_run_until(&g.loop, got_piece, &c, WAIT_MS));
    assert_null(g.f);
    assert_int_equal(c.start_in_data, CS_ECLOSED);
    assert_true(tu_run_until(&g.loop, client_left, &g, WAIT_MS));
    assert_int_equal(c.done + waiting.done, 0);
    assert_int_equal(c.pieces, 1);
    cs_buf_free(&c.body);
    cs_buf_free(&waiting.body);
    rig_down(&g);
}

/* A request started from inside on_data (where curl takes no new handle) still runs. */
static void test_start_from_on_data(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c, next;
    call_init(&c, &g);
    call_init(&next, &g);
    c.next_call = &next;
    run(&g, &c, "/stream", true);
    assert_int_equal(c.start_in_data, 0);
    assert_true(tu_run_until(&g.loop, is_done, &next, WAIT_MS));
    assert_int_equal(next.status, 200);
    assert_string_equal(next.body.data, "hello");
    cs_buf_free(&c.body);
    cs_buf_free(&next.body);
    rig_down(&g);
}

/* Two requests one after the other: one connection, as the server counts them. */
static void test_keep_alive(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    for (int i = 0; i < 3; i++) {
        call c;
        call_init(&c, &g);
        run(&g, &c, i == 1 ? "/stream" : "/plain", i == 1);
        assert_int_equal(c.err, 0);
        cs_buf_free(&c.body);
    }
    assert_int_equal(cs_net_stats_get(g.net)->accepted, 1);
    assert_int_equal(cs_fetch_stats_get(g.f)->connections, 1);
    rig_down(&g);
}

/* A port nobody listens on. */
static void test_connection_refused(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    call c;
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, url);
    run_with(&g, &c, &o);
    assert_int_equal(c.err, -ECONNREFUSED);
    assert_int_equal(c.status, 0);
    assert_true(c.reason[0] != '\0');
    assert_int_equal(cs_fetch_stats_get(g.f)->failed, 1);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* https to a local server: trusted through its CA file, refused without it, taken with
 * verification off; a name (localhost) resolved off the loop. */
static void test_tls(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, true);
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/plain", g.tls_port);
    call c;
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, url);
    assert_int_equal(cs_fetch_start(g.f, &o, &c.req), 0); /* the system store: refused */
    assert_true(tu_run_until(&g.loop, is_done, &c, WAIT_MS));
    assert_int_equal(c.err, CS_ETLS);
    assert_int_equal(c.status, 0);

    assert_int_equal(cs_fetch_tls(g.f, g.cert, true), 0);
    snprintf(url, sizeof url, "https://localhost:%d/plain", g.tls_port);
    call_init(&c, &g);
    o = opts(&c, url);
    run_with(&g, &c, &o);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "hello");
    cs_buf_free(&c.body);

    assert_int_equal(cs_fetch_tls(g.f, NULL, false), 0);
    call_init(&c, &g);
    o = opts(&c, url);
    run_with(&g, &c, &o);
    assert_int_equal(c.err, 0);
    assert_string_equal(c.body.data, "hello");
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* Redirects are answers unless asked for. */
static void test_redirects(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    run(&g, &c, "/redirect", false);
    assert_int_equal(c.status, 302);
    assert_string_equal(c.body.data, "moved");
    cs_buf_free(&c.body);
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, url_of(&g, "/redirect"));
    o.max_redirects = 1;
    run_with(&g, &c, &o);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "hello");
    cs_buf_free(&c.body);
    /* Followed in a circle, past the maximum; or toward another protocol. */
    static const struct {
        const char *path;
        int err;
    } bad[] = {{"/loop", CS_ELIMIT}, {"/toftp", -EPROTO}};
    for (size_t i = 0; i < 2; i++) {
        call_init(&c, &g);
        o = opts(&c, url_of(&g, bad[i].path));
        o.max_redirects = 3;
        run_with(&g, &c, &o);
        assert_int_equal(c.err, bad[i].err);
        cs_buf_free(&c.body);
    }
    rig_down(&g);
}

/* A server that is not HTTP: each connection gets `reply` and is closed. */
typedef struct raw {
    uv_tcp_t listener;
    const char *reply;
    int port;
} raw;

static void raw_closed(uv_handle_t *h)
{
    free(h);
}

static void raw_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, raw_closed);
    free(w);
}

static void raw_accept(uv_stream_t *l, int status)
{
    raw *srv = l->data;
    uv_tcp_t *c = malloc(sizeof *c);
    assert_int_equal(status, 0);
    uv_tcp_init(l->loop, c);
    assert_int_equal(uv_accept(l, (uv_stream_t *)c), 0);
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init((char *)srv->reply, (unsigned)strlen(srv->reply));
    uv_write(w, (uv_stream_t *)c, &b, 1, raw_written);
}

static void raw_start(raw *srv, uv_loop_t *loop, const char *reply)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    srv->reply = reply;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 8, raw_accept), 0);
    int len = sizeof a;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&a, &len);
    srv->port = ntohs(a.sin_port);
}

/* Not an answer at all, or nothing before the close; each closed without reading the
 * request (a reset after the reply, which must not hide it). */
static void test_not_http(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        int err;
    } rows[] = {{"SSH-2.0-OpenSSH_9.2\r\n\r\n", -EPROTO}, {"", CS_ECLOSED}};
    for (size_t i = 0; i < 2; i++) {
        rig g;
        rig_up(&g, false);
        raw srv;
        raw_start(&srv, &g.loop, rows[i].reply);
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", srv.port);
        call c;
        call_init(&c, &g);
        cs_fetch_opts o = opts(&c, url);
        run_with(&g, &c, &o);
        assert_int_equal(c.err, rows[i].err);
        assert_int_equal(c.status, 0);
        uv_close((uv_handle_t *)&srv.listener, NULL);
        cs_buf_free(&c.body);
        rig_down(&g);
    }
}

/* http_proxy from the environment, as curl reads it: a name that resolves nowhere
 * reaches our server, acting as the proxy. */
static void test_proxy_from_environment(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", g.port);
    setenv("http_proxy", proxy, 1);
    call c;
    call_init(&c, &g);
    cs_fetch_opts o = opts(&c, "http://proxied.invalid/plain");
    run_with(&g, &c, &o);
    unsetenv("http_proxy");
    assert_int_equal(c.err, 0);
    assert_true(c.status >= 400); /* our server does not proxy: it refuses the target */
    const cs_server_stats *st = cs_server_stats_get(g.server);
    assert_true(st->requests + st->bad_requests >= 1);
    cs_buf_free(&c.body);
    /* Without it, the name does not resolve. */
    call_init(&c, &g);
    o = opts(&c, "http://proxied.invalid/plain");
    run_with(&g, &c, &o);
    assert_int_equal(c.err, UV_EAI_NONAME);
    cs_buf_free(&c.body);
    rig_down(&g);
}

/* Cancelled, or the client closed, while the name is being resolved: the loop goes on at
 * once (the lookup is left to finish on its thread), so the lookup is released only after
 * the call returned. A cancel that waited for the lookup would hang here until the lookup's
 * own 10 s watchdog. */
static void test_cancel_while_resolving(void **state)
{
    (void)state;
    for (int closing = 0; closing < 2; closing++) {
        rig g;
        rig_up(&g, false);
        call c;
        call_init(&c, &g);
        cs_fetch_opts o = opts(&c, "http://slow.test/x");
        assert_int_equal(cs_fetch_start(g.f, &o, &c.req), 0);
        assert_true(tu_run_until(&g.loop, sem_taken, &dns_entered, WAIT_MS));
        if (closing) {
            cs_fetch_close(g.f);
            g.f = NULL;
        } else {
            cs_fetch_cancel(c.req);
        }
        sem_post(&dns_release);
        assert_true(tu_run_until(&g.loop, sem_taken, &dns_left, WAIT_MS));
        assert_false(dns_timed_out);
        assert_int_equal(c.done, 0);
        cs_buf_free(&c.body);
        rig_down(&g);
    }
}

/* What cs_fetch_start refuses at once, with no callback. */
static void test_refused_at_start(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, false);
    call c;
    call_init(&c, &g);
    static const char *const bad_urls[] = {"ftp://127.0.0.1/x",  "/plain", "not a url", "",
                                           "file:///etc/passwd", "http://"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
        cs_fetch_opts o = opts(&c, bad_urls[i]);
        assert_int_equal(cs_fetch_start(g.f, &o, &c.req), CS_EPARSE);
        assert_false(cs_fetch_url_ok(bad_urls[i]));
    }
    cs_fetch_opts o = opts(&c, NULL);
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), CS_EPARSE);
    assert_true(cs_fetch_url_ok("HTTPS://example.com/v1?x=1"));
    static const char *const bad_headers[] = {"X-A: 1\r\nX-B: 2", "X-A: 1\n", "no colon",
                                              ": empty name"};
    for (size_t i = 0; i < sizeof bad_headers / sizeof *bad_headers; i++) {
        const char *h[] = {"X-Ok: 1", bad_headers[i]};
        o = opts(&c, url_of(&g, "/plain"));
        o.headers = h;
        o.nheaders = 2;
        assert_int_equal(cs_fetch_start(g.f, &o, NULL), CS_EPARSE);
    }
    /* CS_FETCH_MAX_REQUESTS in flight (to a closed port; never run): one more is refused. */
    for (int i = 0; i < CS_FETCH_MAX_REQUESTS; i++) {
        o = opts(&c, "http://127.0.0.1:9/");
        assert_int_equal(cs_fetch_start(g.f, &o, NULL), 0);
    }
    o = opts(&c, "http://127.0.0.1:9/");
    assert_int_equal(cs_fetch_start(g.f, &o, NULL), CS_EFULL);
    const cs_fetch_stats *st = cs_fetch_stats_get(g.f);
    assert_int_equal(st->refused, 1);
    assert_int_equal(st->requests, CS_FETCH_MAX_REQUESTS);
    cs_fetch_close(g.f); /* all of them cancelled, none called back */
    g.f = NULL;
    uv_run(&g.loop, UV_RUN_NOWAIT);
    assert_int_equal(c.done, 0);
    cs_buf_free(&c.body);
    rig_down(&g);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sem_init(&dns_entered, 0, 0);
    sem_init(&dns_release, 0, 0);
    sem_init(&dns_left, 0, 0);
    unsetenv("http_proxy"); /* the tests talk to loopback directly */
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_answer),
        cmocka_unit_test(test_post_headers_body),
        cmocka_unit_test(test_streams_pieces_as_they_arrive),
        cmocka_unit_test(test_sse_through_the_parser),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_cut_mid_body),
        cmocka_unit_test(test_over_max_body),
        cmocka_unit_test(test_on_data_stops),
        cmocka_unit_test(test_cancel_mid_stream),
        cmocka_unit_test(test_close_in_flight),
        cmocka_unit_test(test_close_from_on_data),
        cmocka_unit_test(test_start_from_on_data),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_not_http),
        cmocka_unit_test(test_proxy_from_environment),
        cmocka_unit_test(test_cancel_while_resolving),
        cmocka_unit_test(test_refused_at_start),
        cmocka_unit_test(test_pause_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
