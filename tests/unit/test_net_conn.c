/* cs_conn on a real loop over loopback sockets: back-pressure stops reading while output
 * waits, input kept while paused is not an overflow, the net's output cap closes the
 * slowest readers (listen-in first) but never for a write that could not fit anyway, held
 * output counts under it, drains are told, and deadlines reach their owner. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "net/conn.h"

/* ---- a loopback pair: our end blocking-free, the server end for cs_conn_accept ---- */

static int listener = -1;
static struct sockaddr_in where;

static int pair(int *client, int rcvbuf)
{
    if (listener < 0) {
        listener = socket(AF_INET, SOCK_STREAM, 0);
        where = (struct sockaddr_in){.sin_family = AF_INET};
        where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof where;
        assert_int_equal(bind(listener, (struct sockaddr *)&where, sizeof where), 0);
        assert_int_equal(listen(listener, 16), 0);
        assert_int_equal(getsockname(listener, (struct sockaddr *)&where, &len), 0);
    }
    *client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (rcvbuf) setsockopt(*client, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int rc = connect(*client, (struct sockaddr *)&where, sizeof where);
    assert_true(rc == 0 || errno == EINPROGRESS);
    int fd = accept(listener, NULL, NULL);
    assert_true(fd >= 0);
    return fd;
}

/* What the owner of a connection saw. */
typedef struct seen {
    size_t bytes; /* input taken */
    int calls;    /* on_data calls */
    bool closed;
    int err;
    int deadlines;
    int drains;        /* on_drain calls */
    size_t answer;     /* > 0: write this much for every byte taken */
    bool pause_first;  /* pause after taking the first byte */
    size_t took_first; /* bytes taken before pausing */
} seen;

static ssize_t on_data(cs_conn *c, char *data, size_t len)
{
    seen *s = c->data;
    s->calls++;
    (void)data;
    if (s->answer) { /* one byte at a time, each with its answer */
        char *p = cs_conn_reserve(c, s->answer);
        assert_non_null(p);
        memset(p, 'a', s->answer);
        cs_conn_commit(c, s->answer);
        s->bytes++;
        return 1;
    }
    if (s->pause_first && s->bytes == 0) {
        s->bytes = s->took_first = 1;
        cs_conn_pause(c);
        return 1;
    }
    s->bytes += len;
    return (ssize_t)len;
}

static void on_close(cs_conn *c, int err)
{
    seen *s = c->data;
    s->closed = true;
    s->err = err;
}

static void on_deadline(cs_conn *c)
{
    seen *s = c->data;
    s->deadlines++;
    cs_conn_close(c, 0, false);
}

static void on_drain(cs_conn *c)
{
    seen *s = c->data;
    s->drains++;
}

static const cs_conn_ops ops = {.on_data = on_data, .on_close = on_close};
static const cs_conn_ops ops_drain = {
    .on_data = on_data, .on_close = on_close, .on_drain = on_drain};
static const cs_conn_ops ops_deadline = {
    .on_data = on_data, .on_close = on_close, .on_deadline = on_deadline};

typedef struct rig {
    uv_loop_t loop;
    cs_net *net;
} rig;

static void rig_up(rig *r)
{
    assert_int_equal(uv_loop_init(&r->loop), 0);
    assert_int_equal(cs_net_new(&r->net, &r->loop), 0);
}

static void rig_down(rig *r)
{
    cs_net_close_all(r->net, false);
    for (int i = 0; i < 10; i++) uv_run(&r->loop, UV_RUN_NOWAIT);
    cs_net_free(r->net);
    uv_run(&r->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

static cs_conn *accept_one(rig *r, int *client, int rcvbuf, const cs_conn_ops *o, seen *s)
{
    cs_conn *c = NULL;
    assert_int_equal(cs_conn_accept(r->net, pair(client, rcvbuf), false, o, s, &c), 0);
    return c;
}

/* A connection with max_input 1024 that the peer sends `n` bytes. */
static cs_conn *fed(rig *r, int *client, const cs_conn_ops *o, seen *s, size_t n)
{
    cs_conn *c = accept_one(r, client, 0, o, s);
    c->max_input = 1024;
    char *req = malloc(n);
    memset(req, 'p', n);
    assert_int_equal(send(*client, req, n, 0), (ssize_t)n);
    free(req);
    return c;
}

/* ---- back-pressure ---- */

typedef struct drain {
    int fd;
    bool reading;
    size_t got, want;
    seen *s;
    size_t calls_at_least;
} drain;

static bool drained(void *data)
{
    drain *d = data;
    char b[65536];
    ssize_t k;
    while (d->reading && (k = recv(d->fd, b, sizeof b, 0)) > 0) d->got += (size_t)k;
    return d->got >= d->want;
}

static bool stalled(void *data)
{
    drain *d = data;
    return (size_t)d->s->calls >= d->calls_at_least;
}

static void test_backpressure(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { ANSWER = 64 << 10, REQUESTS = 64 };
    seen s = {.answer = ANSWER};
    int client;
    cs_conn *c = accept_one(&r, &client, 4096, &ops, &s);
    cs_conn_set_send_buffer(c, 4096);
    cs_conn_set_output_high(c, 4 * ANSWER);
    char req[REQUESTS];
    memset(req, 'r', sizeof req);
    assert_int_equal(send(client, req, sizeof req, 0), (ssize_t)sizeof req);

    /* The peer reads nothing: a few answers are taken, then reading stops. */
    drain d = {.fd = client, .s = &s, .calls_at_least = REQUESTS};
    assert_false(tu_run_until(&r.loop, stalled, &d, 500));
    assert_true(s.calls > 4 && s.calls < 16);
    assert_true(cs_conn_pending(c) > 4 * ANSWER);
    assert_true(cs_net_stats_get(r.net)->output_paused >= 1);
    assert_false(s.closed);

    /* It reads: every request is answered, whole. */
    d.reading = true;
    d.want = (size_t)REQUESTS * ANSWER;
    assert_true(tu_run_until(&r.loop, drained, &d, 20000));
    assert_int_equal(s.bytes, REQUESTS);
    assert_int_equal(d.got, (size_t)REQUESTS * ANSWER);
    assert_false(s.closed);
    close(client);
    rig_down(&r);
}

/* ---- input kept while paused ---- */

enum { SENT = 40000 }; /* far more than max_input, less than one read */

static bool took(void *data)
{
    seen *s = data;
    return s->bytes > 0;
}

static bool took_all(void *data)
{
    seen *s = data;
    return s->bytes >= SENT || s->closed;
}

static void test_kept_while_paused(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    seen s = {.pause_first = true};
    int client;
    cs_conn *c = fed(&r, &client, &ops, &s, SENT);
    assert_true(tu_run_until(&r.loop, took, &s, 5000));
    for (int i = 0; i < 20; i++) uv_run(&r.loop, UV_RUN_NOWAIT);
    /* more than max_input arrived behind the paused byte: kept, not an overflow */
    assert_false(s.closed);
    assert_int_equal(cs_net_stats_get(r.net)->input_overflow, 0);
    cs_conn_resume(c);
    assert_true(tu_run_until(&r.loop, took_all, &s, 5000));
    assert_false(s.closed);
    assert_int_equal(s.bytes, SENT);
    close(client);
    rig_down(&r);
}

/* The owner asks for more than max_input without pausing: that is an overflow. */
static ssize_t never_enough(cs_conn *c, char *data, size_t len)
{
    (void)c, (void)data, (void)len;
    return 0;
}

static bool closed(void *data)
{
    return ((seen *)data)->closed;
}

static void test_overflow_still_closes(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    static const cs_conn_ops greedy = {.on_data = never_enough, .on_close = on_close};
    seen s = {0};
    int client;
    fed(&r, &client, &greedy, &s, 4096);
    assert_true(tu_run_until(&r.loop, closed, &s, 5000));
    assert_int_equal(s.err, CS_ELIMIT);
    assert_int_equal(cs_net_stats_get(r.net)->input_overflow, 1);
    close(client);
    rig_down(&r);
}

/* ---- the net's output cap ---- */

static void fill(rig *r, cs_conn *c, size_t n)
{
    char *p = cs_conn_reserve(c, n);
    assert_non_null(p);
    memset(p, 'o', n);
    cs_conn_commit(c, n);
    for (int i = 0; i < 5; i++) uv_run(&r->loop, UV_RUN_NOWAIT);
    usleep(20000); /* the next one's output waits from a later moment */
    uv_update_time(&r->loop);
}

static void test_output_cap(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { CHUNK = 200 << 10 };
    seen old = {0}, young = {0}, listener_ = {0};
    int fo, fy, fl;
    cs_conn *o = accept_one(&r, &fo, 4096, &ops, &old);
    cs_conn *y = accept_one(&r, &fy, 4096, &ops, &young);
    cs_conn *l = accept_one(&r, &fl, 4096, &ops, &listener_);
    l->cls = CS_CONN_CLASS_LISTENER;
    cs_conn_set_send_buffer(o, 4096);
    cs_conn_set_send_buffer(y, 4096);
    cs_conn_set_send_buffer(l, 4096);
    fill(&r, o, CHUNK);
    fill(&r, y, CHUNK);
    const cs_net_stats *st = cs_net_stats_get(r.net);
    assert_true(st->buffered > CHUNK && st->buffered <= 2 * CHUNK);
    size_t cap = st->buffered + CHUNK / 2;
    cs_net_set_output_cap(r.net, cap);

    /* Over the cap with no listen-in output: the reader stuck longest goes. */
    fill(&r, l, CHUNK);
    assert_true(tu_run_until(&r.loop, closed, &old, 2000));
    assert_int_equal(old.err, CS_ELIMIT);
    assert_false(young.closed || listener_.closed);
    assert_int_equal(st->cap_closed[CS_CONN_CLASS_DEFAULT], 1);

    /* Over again: the listen-in socket goes first, though its reader is the newest. */
    fill(&r, y, CHUNK);
    assert_true(tu_run_until(&r.loop, closed, &listener_, 2000));
    assert_false(young.closed);
    assert_int_equal(st->cap_closed[CS_CONN_CLASS_LISTENER], 1);
    assert_true(st->buffered <= cap);

    /* Nothing left to close but the writer itself: it goes, and its write fails. */
    cs_net_set_output_cap(r.net, 1);
    assert_null(cs_conn_reserve(y, 1));
    assert_true(tu_run_until(&r.loop, closed, &young, 2000));
    assert_int_equal(st->buffered, 0);
    close(fo);
    close(fy);
    close(fl);
    rig_down(&r);
}

/* A write larger than the whole cap fails at once: closing every reader could not make
 * room for it, so none is closed. */
static void test_output_cap_oversized(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { CHUNK = 200 << 10 };
    seen a = {0}, b = {0};
    int fa, fb;
    cs_conn *ca = accept_one(&r, &fa, 4096, &ops, &a);
    cs_conn *cb = accept_one(&r, &fb, 4096, &ops, &b);
    cs_conn_set_send_buffer(ca, 4096);
    cs_conn_set_send_buffer(cb, 4096);
    fill(&r, ca, CHUNK);
    fill(&r, cb, CHUNK);
    const cs_net_stats *st = cs_net_stats_get(r.net);
    size_t cap = 3 * CHUNK;
    cs_net_set_output_cap(r.net, cap);
    assert_null(cs_conn_reserve(cb, cap + 1));
    assert_int_equal(cs_conn_set_held(cb, cap + 1), -ENOBUFS);
    for (int i = 0; i < 5; i++) uv_run(&r.loop, UV_RUN_NOWAIT);
    assert_false(a.closed || b.closed);
    assert_int_equal(st->cap_closed[CS_CONN_CLASS_DEFAULT], 0);
    assert_int_equal(st->output_overflow, 2);
    /* one that fits once others go still closes the slowest */
    assert_int_equal(cs_conn_set_held(cb, 2 * CHUNK), 0);
    assert_true(tu_run_until(&r.loop, closed, &a, 2000));
    assert_false(b.closed);
    close(fa);
    close(fb);
    rig_down(&r);
}

static bool drained_once(void *data)
{
    seen *s = data;
    return s->drains > 0;
}

/* Held output counts in the net's total until it is written or the connection closes;
 * on_drain comes once the peer has taken the output down to the mark, never inside
 * cs_conn_want_drain. */
static void test_held_and_drain(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    enum { HELD = 1 << 20, CHUNK = 256 << 10 };
    seen s = {0};
    int client;
    cs_conn *c = accept_one(&r, &client, 4096, &ops_drain, &s);
    cs_conn_set_send_buffer(c, 4096);
    const cs_net_stats *st = cs_net_stats_get(r.net);

    /* nothing pending: drained already, told from the loop */
    cs_conn_want_drain(c, 0);
    assert_int_equal(s.drains, 0);
    assert_true(tu_run_until(&r.loop, drained_once, &s, 2000));
    assert_int_equal(s.drains, 1);

    assert_int_equal(cs_conn_set_held(c, HELD), 0);
    assert_int_equal(st->buffered, HELD);
    /* a piece moves from held to pending: the total stays */
    assert_int_equal(cs_conn_set_held(c, HELD - CHUNK), 0);
    fill(&r, c, CHUNK);
    assert_true(st->buffered <= HELD && st->buffered > HELD - CHUNK / 2); /* the kernel took some */

    /* the peer does not read: no drain */
    s.drains = 0;
    cs_conn_want_drain(c, CHUNK / 2);
    assert_false(tu_run_until(&r.loop, drained_once, &s, 300));
    /* it reads: one drain */
    drain d = {.fd = client, .reading = true, .want = CHUNK};
    assert_true(tu_run_until(&r.loop, drained, &d, 5000));
    assert_true(tu_run_until(&r.loop, drained_once, &s, 2000));
    assert_int_equal(s.drains, 1);
    assert_int_equal(st->buffered, HELD - CHUNK);

    /* closing drops what was held */
    cs_conn_close(c, 0, false);
    assert_true(tu_run_until(&r.loop, closed, &s, 2000));
    assert_int_equal(st->buffered, 0);
    assert_int_equal(s.drains, 1);
    close(client);
    rig_down(&r);
}

/* ---- deadlines ---- */

static bool deadline_seen(void *data)
{
    seen *s = data;
    return s->deadlines > 0 && s->closed;
}

static void test_deadline(void **state)
{
    (void)state;
    rig r;
    rig_up(&r);
    seen mine = {0}, plain = {0};
    int f1, f2;
    cs_conn *a = accept_one(&r, &f1, 0, &ops_deadline, &mine);
    cs_conn *b = accept_one(&r, &f2, 0, &ops, &plain);
    a->deadline_ms = uv_now(&r.loop) + 50;
    b->deadline_ms = uv_now(&r.loop) + 50;
    assert_true(tu_run_until(&r.loop, deadline_seen, &mine, 5000));
    assert_true(tu_run_until(&r.loop, closed, &plain, 5000));
    assert_int_equal(mine.deadlines, 1);
    assert_int_equal(plain.err, -ETIMEDOUT);
    close(f1);
    close(f2);
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_kept_while_paused),
        cmocka_unit_test(test_overflow_still_closes),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_output_cap_oversized),
        cmocka_unit_test(test_held_and_drain),
        cmocka_unit_test(test_deadline),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (listener >= 0) close(listener);
    return rc;
}
