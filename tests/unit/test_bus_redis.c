/* The bus on Redis (bus/redis.c) against a private redis-server: nodes as buses on one
 * loop, topics across them, the directory, a node lost, the server killed and restarted,
 * hostile or refusing servers, bad payloads, the bound on commands in flight. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_conformance.h"
#include "bus/bus.h"
#include "core/buf.h"
#include "core/err.h"
#include "redis_server.h"

#define NODES 3

typedef struct node {
    cs_bus *bus;
    char id[16];                /* "" : node<A + i> */
    uint32_t loop_index, loops; /* of a node with several loops */
    int ups, downs;
    char why[256];
    int lost;
    char lost_id[64];
    size_t lost_calls;
    char lost_sid[CS_BUS_TOPIC_MAX + 1];
    int commands;
    char cmd_from[64], cmd_json[256];
} node;

typedef struct fixture {
    tu_env env;
    rs_server rs;
    node n[NODES];
} fixture;

/* What a subscriber received. */
typedef struct rx {
    cs_bus_sub sub;
    int texts, audio, finals;
    char last[256];
    unsigned track;
    uint32_t pos_ms;
    size_t nbytes;
} rx;

static void on_health(void *data, bool up, const char *why)
{
    node *n = data;
    if (up) {
        n->ups++;
    } else {
        n->downs++;
        snprintf(n->why, sizeof n->why, "%s", why ? why : "");
    }
}

static void on_lost(void *data, const cs_bus_node *lost, const cs_dir_call *calls, size_t k)
{
    node *n = data;
    n->lost++;
    snprintf(n->lost_id, sizeof n->lost_id, "%s", lost->id);
    n->lost_calls = k;
    if (k) snprintf(n->lost_sid, sizeof n->lost_sid, "%s", calls[0].sid);
    for (size_t i = 0; i < k; i++) assert_string_equal(calls[i].node, lost->id);
}

static void on_command(void *data, const char *from, const char *json, size_t len)
{
    node *n = data;
    n->commands++;
    snprintf(n->cmd_from, sizeof n->cmd_from, "%s", from);
    snprintf(n->cmd_json, sizeof n->cmd_json, "%.*s", (int)len, json);
}

static void load(void *data, cs_bus_node *self)
{
    (void)data;
    self->calls = 7;
    self->streams = 3;
    self->monitors = 1;
}

static void deliver(cs_bus_sub *s, const cs_bus_msg *m)
{
    rx *r = s->data;
    if (m->kind == CS_BUS_TEXT) {
        r->texts++;
        r->finals += m->final;
        snprintf(r->last, sizeof r->last, "%.*s", (int)m->len, m->text);
    } else {
        r->audio++;
        r->track = m->track;
        r->pos_ms = m->pos_ms;
        r->nbytes = m->n;
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    if (!f || tu_env_open(&f->env, "cs-test-bus-redis") < 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < NODES; i++)
        if (f->n[i].bus) cs_bus_close(f->n[i].bus);
    for (int i = 0; i < 3; i++) uv_run(&f->env.loop, UV_RUN_NOWAIT);
    rs_stop(&f->rs);
    int rc = tu_env_close(&f->env);
    free(f);
    return rc;
}

static void start_redis(fixture *f)
{
    if (rs_start(&f->rs) < 0) fail_msg("cannot start redis-server");
}

static int open_node_at(fixture *f, int i, const char *url, uint32_t beat_ms, uint32_t ttl_ms,
                        cs_buf *err)
{
    node *n = &f->n[i];
    if (!n->id[0]) snprintf(n->id, sizeof n->id, "node%c", 'A' + i);
    cs_bus_config cfg = {.loop = &f->env.loop,
                         .url = url,
                         .node = n->id,
                         .node_url = "http://127.0.0.1:1",
                         .run = "0123abcd",
                         .loop_index = n->loop_index,
                         .loops = n->loops ? n->loops : 1,
                         .heartbeat_ms = beat_ms,
                         .node_ttl_ms = ttl_ms,
                         .data = n,
                         .on_health = on_health,
                         .on_node_lost = on_lost,
                         .on_command = on_command,
                         .load = load};
    return cs_bus_open(&n->bus, &cfg, err);
}

static void open_node(fixture *f, int i, const char *url, uint32_t beat_ms, uint32_t ttl_ms)
{
    cs_buf err = CS_BUF_INIT(1024);
    int rc = open_node_at(f, i, url, beat_ms, ttl_ms, &err);
    if (rc < 0) fail_msg("cs_bus_open: %s", err.data);
    cs_buf_free(&err);
}

static bool all_up(void *data)
{
    fixture *f = data;
    for (int i = 0; i < NODES; i++)
        if (f->n[i].bus && !cs_bus_ready(f->n[i].bus)) return false;
    return true;
}

static bool all_down(void *data)
{
    fixture *f = data;
    for (int i = 0; i < NODES; i++)
        if (f->n[i].bus && (cs_bus_ready(f->n[i].bus) || !f->n[i].downs)) return false;
    return true;
}

static void open_nodes(fixture *f, int count, uint32_t beat_ms, uint32_t ttl_ms)
{
    for (int i = 0; i < count; i++) open_node(f, i, f->rs.url, beat_ms, ttl_ms);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
}

/* A server and two nodes on it (TTL 1 s), connected. */
static void two_nodes(fixture *f, uint32_t beat_ms, cs_bus **a, cs_bus **b)
{
    start_redis(f);
    open_nodes(f, 2, beat_ms, 1000);
    *a = f->n[0].bus;
    *b = f->n[1].bus;
}

static void run_ms(fixture *f, unsigned ms)
{
    uv_update_time(&f->env.loop);
    uint64_t until = uv_now(&f->env.loop) + ms;
    while (uv_now(&f->env.loop) < until) {
        uv_run(&f->env.loop, UV_RUN_NOWAIT);
        rs_sleep_ms(5);
        uv_update_time(&f->env.loop);
    }
}

static void publish_text(cs_bus *b, const char *topic, const char *text)
{
    cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = topic, .text = text, .len = strlen(text)};
    cs_bus_publish(b, &m);
}

static void publish_audio(cs_bus *b, const char *topic, uint32_t pos_ms)
{
    uint8_t ulaw[160];
    memset(ulaw, 0xff, sizeof ulaw);
    cs_bus_msg m = {.kind = CS_BUS_AUDIO,
                    .topic = topic,
                    .track = 1,
                    .pos_ms = pos_ms,
                    .ulaw = ulaw,
                    .n = sizeof ulaw};
    cs_bus_publish(b, &m);
}

static void subscribe(cs_bus *b, rx *r, const char *topic)
{
    memset(r, 0, sizeof *r);
    r->sub.deliver = deliver;
    r->sub.data = r;
    assert_int_equal(cs_bus_subscribe(b, &r->sub, topic), 0);
}

/* Publishes from `from` until `r` has received a text (a subscription takes a round trip to
 * be seen elsewhere), at most TU_WAIT_MS. */
typedef struct until_rx {
    fixture *f;
    cs_bus *from;
    const char *topic, *text;
    rx *r;
} until_rx;

static bool received_one(void *data)
{
    until_rx *u = data;
    if (u->r->texts) return true;
    publish_text(u->from, u->topic, u->text);
    return false;
}

static void publish_until_received(fixture *f, cs_bus *from, const char *topic, const char *text,
                                   rx *r)
{
    until_rx u = {f, from, topic, text, r};
    assert_true(tu_run_until(&f->env.loop, received_one, &u, TU_WAIT_MS));
}

/* ---- directory requests ---- */

typedef struct ask {
    cs_dir_req q;
    bool done;
    int rc;
    bool partial;
    size_t ncalls, nevents, nnodes;
    char sid[CS_BUS_TOPIC_MAX + 1], node[CS_BUS_NODE_MAX + 1], summary[256];
    char first[64], last[64];
    cs_bus_node nodes[NODES];
} ask;

static void asked(cs_dir_req *q)
{
    ask *a = q->data;
    a->done = true;
    a->rc = q->rc;
    a->partial = q->partial;
    a->ncalls = q->ncalls;
    a->nevents = q->nevents;
    a->nnodes = q->nnodes;
    if (q->ncalls) {
        snprintf(a->sid, sizeof a->sid, "%s", q->calls[0].sid);
        snprintf(a->node, sizeof a->node, "%s", q->calls[0].node);
        snprintf(a->summary, sizeof a->summary, "%.*s", (int)q->calls[0].summary_len,
                 q->calls[0].summary);
    }
    if (q->nevents) {
        snprintf(a->first, sizeof a->first, "%.*s", (int)q->event_lens[0], q->events[0]);
        snprintf(a->last, sizeof a->last, "%.*s", (int)q->event_lens[q->nevents - 1],
                 q->events[q->nevents - 1]);
    }
    for (size_t i = 0; i < q->nnodes && i < NODES; i++) a->nodes[i] = q->nodes[i];
}

static bool ask_done(void *data)
{
    return ((ask *)data)->done;
}

static void ask_now(fixture *f, cs_bus *b, ask *a, enum cs_dir_what what, const char *sid)
{
    memset(a, 0, sizeof *a);
    a->q.what = what;
    if (sid) snprintf(a->q.sid, sizeof a->q.sid, "%s", sid);
    a->q.done = asked;
    a->q.data = a;
    assert_int_equal(cs_dir_ask(b, &a->q), 0);
    assert_false(a->done); /* never inside cs_dir_ask */
    assert_true(tu_run_until(&f->env.loop, ask_done, a, TU_WAIT_MS));
}

/* Asks until the answer is whole (not partial) with `ncalls` calls and `nevents` events:
 * another node's writes come on its own connection, a moment later. */
typedef struct until_ask {
    fixture *f;
    cs_bus *b;
    enum cs_dir_what what;
    const char *sid;
    size_t ncalls, nevents;
    ask a;
} until_ask;

static bool answered_so(void *data)
{
    until_ask *u = data;
    ask_now(u->f, u->b, &u->a, u->what, u->sid);
    return u->a.rc == 0 && !u->a.partial && u->a.ncalls == u->ncalls && u->a.nevents == u->nevents;
}

static void list_until(fixture *f, cs_bus *b, size_t ncalls, ask *out)
{
    until_ask u = {.f = f, .b = b, .what = CS_DIR_LIST, .ncalls = ncalls};
    assert_true(tu_run_until(&f->env.loop, answered_so, &u, TU_WAIT_MS));
    if (out) *out = u.a;
}

static void get_until(fixture *f, cs_bus *b, const char *sid, size_t nevents, ask *out)
{
    until_ask u = {.f = f, .b = b, .what = CS_DIR_GET, .sid = sid, .ncalls = 1, .nevents = nevents};
    assert_true(tu_run_until(&f->env.loop, answered_so, &u, TU_WAIT_MS));
    *out = u.a;
}

/* ---- tests ---- */

static void test_topics_across_nodes(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 200, &a, &b);
    rx ra, rb;
    subscribe(a, &ra, "CA1");
    subscribe(b, &rb, "CA1");
    /* A's subscriber hears B's message once, B's own hears it once (not again from Redis) */
    publish_until_received(f, b, "CA1", "{\"hello\":1}", &ra);
    assert_string_equal(ra.last, "{\"hello\":1}");
    run_ms(f, 300);
    ra.texts = rb.texts = 0;
    for (int i = 0; i < 5; i++) publish_text(b, "CA1", "{\"again\":1}");
    run_ms(f, 300);
    assert_int_equal(rb.texts, 5);
    assert_int_equal(ra.texts, 5);
    publish_audio(b, "CA1", 4200);
    run_ms(f, 300);
    assert_int_equal(ra.audio, 1);
    assert_int_equal(rb.audio, 1);
    assert_int_equal(ra.track, 1);
    assert_int_equal(ra.pos_ms, 4200);
    assert_int_equal(ra.nbytes, 160);
    assert_true(cs_bus_stats_get(b)->sent >= 2);
    assert_true(cs_bus_stats_get(a)->received >= 2);
    cs_bus_unsubscribe(a, &ra.sub);
    cs_bus_unsubscribe(b, &rb.sub);
}

static void test_unheard_audio_stays_home(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 200, &a, &b);
    rx local;
    subscribe(b, &local, "CAquiet"); /* heard here only */
    long long before = rs_calls(&f->rs, "publish");
    for (uint32_t i = 0; i < 50; i++) {
        publish_audio(b, "CAquiet", i * 20);
        run_ms(f, 10);
    }
    assert_int_equal(local.audio, 50);
    /* B's own subscription announced (one PUBLISH), and no frame */
    assert_true(rs_calls(&f->rs, "publish") - before <= 1);
    /* a listener elsewhere: heard at once (announced), without waiting for a refresh */
    rx far;
    subscribe(a, &far, "CAquiet");
    for (uint32_t i = 0; i < 500 && !far.audio; i++) {
        publish_audio(b, "CAquiet", 1000 + i * 20);
        run_ms(f, 10);
    }
    assert_true(far.audio > 0);
    /* gone again: announced, so the frames stop going out at once */
    cs_bus_unsubscribe(a, &far.sub);
    run_ms(f, 300);
    before = rs_calls(&f->rs, "publish");
    for (uint32_t i = 0; i < 30; i++) {
        publish_audio(b, "CAquiet", 5000 + i * 20);
        run_ms(f, 10);
    }
    assert_true(rs_calls(&f->rs, "publish") - before <= 2);
    cs_bus_unsubscribe(b, &local.sub);
}

static void test_directory_two_nodes(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 200, &a, &b);
    const char *summary = "{\"sid\":\"CA1\",\"status\":\"in-progress\"}";
    cs_dir_put(a, "CA1", summary, strlen(summary));
    for (int i = 0; i < CS_BUS_HISTORY_MAX + 10; i++) {
        char ev[32];
        int n = snprintf(ev, sizeof ev, "{\"n\":%d}", i);
        cs_dir_event(a, "CA1", ev, (size_t)n);
    }
    ask l;
    list_until(f, b, 1, &l);
    assert_string_equal(l.sid, "CA1");
    assert_string_equal(l.node, "nodeA");
    assert_string_equal(l.summary, summary);
    ask g;
    get_until(f, b, "CA1", CS_BUS_HISTORY_MAX, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.ncalls, 1);
    assert_string_equal(g.first, "{\"n\":10}");
    assert_string_equal(g.last, "{\"n\":509}");
    ask_now(f, b, &g, CS_DIR_GET, "CAnone");
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.ncalls, 0);
    ask nd;
    ask_now(f, b, &nd, CS_DIR_NODES, NULL);
    assert_int_equal(nd.rc, 0);
    assert_int_equal(nd.nnodes, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(nd.nodes[i].url, "http://127.0.0.1:1");
        assert_string_equal(nd.nodes[i].run, "0123abcd");
        assert_int_equal(nd.nodes[i].calls, 7);
        assert_int_equal(nd.nodes[i].streams, 3);
        assert_int_equal(nd.nodes[i].self, !strcmp(nd.nodes[i].id, "nodeB"));
    }
    cs_dir_end(a, "CA1");
    list_until(f, b, 0, NULL);
    assert_int_equal(rs_int(&f->rs, "EXISTS cs:ev:CA1"), 0);
}

static bool one_lost(void *data)
{
    fixture *f = data;
    return f->n[1].lost + f->n[2].lost >= 1;
}

static void test_node_lost_once(void **state)
{
    fixture *f = *state;
    start_redis(f);
    open_nodes(f, 3, 100, 500);
    cs_bus *a = f->n[0].bus, *b = f->n[1].bus;
    cs_dir_put(a, "CA1", "{}", 2);
    cs_dir_put(a, "CA2", "{}", 2);
    cs_dir_put(b, "CB1", "{}", 2);
    list_until(f, b, 3, NULL);
    /* A dies: nothing of it is cleaned (as after kill -9) */
    cs_bus_close(a);
    f->n[0].bus = NULL;
    assert_true(tu_run_until(&f->env.loop, one_lost, f, TU_WAIT_MS));
    run_ms(f, 1500); /* three TTLs more: nobody else is told */
    assert_int_equal(f->n[1].lost + f->n[2].lost, 1);
    node *w = f->n[1].lost ? &f->n[1] : &f->n[2];
    assert_string_equal(w->lost_id, "nodeA");
    assert_int_equal(w->lost_calls, 2);
    assert_true(cs_bus_stats_get(w->bus)->nodes_lost == 1);
    ask l;
    list_until(f, b, 1, &l);
    assert_string_equal(l.sid, "CB1");
    ask nd;
    ask_now(f, b, &nd, CS_DIR_NODES, NULL);
    assert_int_equal(nd.nnodes, 2);
    assert_int_equal(rs_int(&f->rs, "SISMEMBER cs:nodes nodeA"), 0);
}

static bool b_lost(void *data)
{
    return ((fixture *)data)->n[1].lost == 1;
}

static void test_node_back_after_lost(void **state)
{
    fixture *f = *state;
    start_redis(f);
    open_node(f, 0, f->rs.url, 1500, 5000); /* A beats slowly: B sees it lost first */
    open_node(f, 1, f->rs.url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    cs_bus *a = f->n[0].bus, *b = f->n[1].bus;
    cs_dir_put(a, "CA1", "{}", 2);
    cs_dir_event(a, "CA1", "{\"e\":1}", 7);
    list_until(f, b, 1, NULL);
    /* A looks dead (its heartbeat key gone): B reaps it and its calls */
    assert_int_equal(rs_int(&f->rs, "DEL cs:alive:nodeA"), 1);
    assert_true(tu_run_until(&f->env.loop, b_lost, f, TU_WAIT_MS));
    assert_string_equal(f->n[1].lost_sid, "CA1");
    /* A's next heartbeat finds itself gone and writes its entries again */
    ask l;
    list_until(f, b, 1, &l);
    assert_string_equal(l.node, "nodeA");
    ask g;
    get_until(f, b, "CA1", 1, &g);
    assert_int_equal(f->n[1].lost, 1);
}

/* A node started again within its TTL (not lost yet): the calls its earlier run listed are
 * gone from the directory, listed or asked for, and the calls it holds now stay. */
static void test_restart_forgets_earlier_run(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 100, &a, &b);
    cs_dir_put(a, "CAold", "{}", 2);
    cs_dir_event(a, "CAold", "{\"e\":1}", 7);
    list_until(f, b, 1, NULL);
    /* A is killed (nothing cleaned) and comes back at once under the same id */
    cs_bus_close(a);
    f->n[0].bus = NULL;
    open_node(f, 0, f->rs.url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    a = f->n[0].bus;
    cs_dir_put(a, "CAnew", "{}", 2);
    ask l;
    list_until(f, b, 1, &l);
    assert_string_equal(l.sid, "CAnew");
    ask g;
    ask_now(f, b, &g, CS_DIR_GET, "CAold");
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.ncalls, 0);
    assert_int_equal(rs_int(&f->rs, "EXISTS cs:ev:CAold"), 0);
    assert_int_equal(f->n[1].lost, 0);
}

static bool ups_twice(void *data)
{
    fixture *f = data;
    for (int i = 0; i < 2; i++)
        if (f->n[i].ups < 1 || !cs_bus_ready(f->n[i].bus)) return false;
    return true;
}

/* A node with two loops, a bus each: they hear each other through Redis, each keeps its own
 * calls (rewriting one loop's leaves the other's), and the node is lost whole. */
static bool sent_to_loop1(void *data)
{
    fixture *f = data;
    return cs_bus_command(f->n[2].bus, "nodeA/1", "{\"to\":1}", 8) == 0;
}

static bool loop1_commanded(void *data)
{
    return ((fixture *)data)->n[1].commands > 0;
}

static void test_loops_of_one_node(void **state)
{
    fixture *f = *state;
    start_redis(f);
    for (int i = 0; i < 2; i++) {
        snprintf(f->n[i].id, sizeof f->n[i].id, "nodeA");
        f->n[i].loop_index = (uint32_t)i;
        f->n[i].loops = 2;
    }
    open_nodes(f, 3, 100, 500);
    cs_bus *l0 = f->n[0].bus, *l1 = f->n[1].bus, *c = f->n[2].bus;
    rx r;
    subscribe(l1, &r, "CA0");
    publish_until_received(f, l0, "CA0", "{\"from\":0}", &r);
    cs_bus_unsubscribe(l1, &r.sub);
    cs_dir_put(l0, "CA0", "{}", 2);
    cs_dir_put(l1, "CA1", "{}", 2);
    list_until(f, c, 2, NULL);
    /* a command reaches the loop it names, and only it */
    assert_true(tu_run_until(&f->env.loop, sent_to_loop1, f, TU_WAIT_MS));
    assert_true(tu_run_until(&f->env.loop, loop1_commanded, f, TU_WAIT_MS));
    run_ms(f, 300);
    assert_int_equal(f->n[0].commands, 0);
    assert_int_equal(f->n[1].commands, 1);
    assert_string_equal(f->n[1].cmd_from, "nodeC/0");
    /* the server forgets everything: both loops write theirs again, neither wipes the other */
    redisReply *rep = rs_cmd(&f->rs, "FLUSHALL");
    assert_non_null(rep);
    freeReplyObject(rep);
    list_until(f, c, 2, NULL);
    assert_int_equal(rs_int(&f->rs, "SCARD cs:nc:nodeA/0"), 1);
    assert_int_equal(rs_int(&f->rs, "SCARD cs:nc:nodeA/1"), 1);
    /* the node dies: C is told once, with the calls of both loops */
    for (int i = 0; i < 2; i++) {
        cs_bus_close(f->n[i].bus);
        f->n[i].bus = NULL;
    }
    assert_true(tu_run_until(&f->env.loop, one_lost, f, TU_WAIT_MS));
    run_ms(f, 1000);
    assert_int_equal(f->n[2].lost, 1);
    assert_string_equal(f->n[2].lost_id, "nodeA");
    assert_int_equal(f->n[2].lost_calls, 2);
    list_until(f, c, 0, NULL);
}

static void test_redis_restart(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 100, &a, &b);
    rx far;
    subscribe(a, &far, "CB1");
    cs_dir_put(b, "CB1", "{\"sid\":\"CB1\"}", 13);
    cs_dir_event(b, "CB1", "{\"e\":1}", 7);
    publish_until_received(f, b, "CB1", "{\"before\":1}", &far);
    list_until(f, a, 1, NULL);

    rs_kill(&f->rs);
    assert_true(tu_run_until(&f->env.loop, all_down, f, TU_WAIT_MS));
    assert_true(strlen(f->n[0].why) > 0);
    assert_true(cs_bus_stats_get(a)->outages >= 1);
    /* away: publishes elsewhere dropped and counted, the local fan-out goes on */
    uint64_t dropped = cs_bus_stats_get(b)->dropped;
    rx near;
    subscribe(b, &near, "CB1");
    publish_text(b, "CB1", "{\"away\":1}");
    assert_int_equal(near.texts, 1);
    assert_true(cs_bus_stats_get(b)->dropped > dropped);
    cs_dir_event(b, "CB1", "{\"e\":2}", 7); /* while away: kept here, written on return */
    /* the directory answers from this node's own entries, saying so */
    ask l;
    ask_now(f, b, &l, CS_DIR_LIST, NULL);
    assert_true(l.partial);
    assert_int_equal(l.ncalls, 1);
    assert_string_equal(l.sid, "CB1");
    ask_now(f, a, &l, CS_DIR_LIST, NULL);
    assert_true(l.partial);
    assert_int_equal(l.ncalls, 0);

    /* back, empty: every node re-subscribes and rewrites its entries */
    assert_int_equal(rs_start(&f->rs), 0);
    assert_true(tu_run_until(&f->env.loop, ups_twice, f, TU_WAIT_MS));
    assert_int_equal(cs_bus_stats_get(a)->reconnects, 1);
    list_until(f, a, 1, &l);
    assert_string_equal(l.node, "nodeB");
    ask g;
    get_until(f, a, "CB1", 2, &g);
    assert_string_equal(g.last, "{\"e\":2}");
    far.texts = 0;
    publish_until_received(f, b, "CB1", "{\"after\":1}", &far);
    assert_string_equal(far.last, "{\"after\":1}");
    cs_bus_unsubscribe(a, &far.sub);
    cs_bus_unsubscribe(b, &near.sub);
}

static bool got_final(void *data)
{
    return ((rx *)data)->finals > 0;
}

static bool ended_heard(void *data)
{
    rx *r = data;
    return r[0].finals >= 1 && r[1].texts >= 1;
}

/* A call that ends while the server is away: when it is back, the followers on other nodes
 * get its end (the final message, and the list's), its entry is gone from the directory;
 * a node subscribing a moment later gets the end too (it came back after the owner). */
static void test_end_told_after_outage(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 100, &a, &b);
    static const char ended[] = "{\"type\":\"call_ended\",\"call\":{\"sid\":\"CE1\"}}";
    rx far[2]; /* a's follower of the call, a's list */
    subscribe(a, &far[0], "CE1");
    subscribe(a, &far[1], CS_BUS_ALL);
    cs_dir_put(b, "CE1", "{\"sid\":\"CE1\"}", 13);
    publish_until_received(f, b, "CE1", "{\"before\":1}", &far[0]);
    publish_until_received(f, b, CS_BUS_ALL, "{\"before\":1}", &far[1]);
    list_until(f, a, 1, NULL);
    far[0].texts = far[1].texts = 0;

    rs_kill(&f->rs);
    assert_true(tu_run_until(&f->env.loop, all_down, f, TU_WAIT_MS));
    cs_bus_msg m = {.kind = CS_BUS_TEXT,
                    .topic = CS_BUS_ALL,
                    .text = ended,
                    .len = strlen(ended),
                    .hold = true};
    cs_bus_publish(b, &m);
    m.topic = "CE1";
    m.final = true;
    cs_bus_publish(b, &m);
    publish_text(b, "CE1", "{\"not held\":1}");
    cs_dir_end(b, "CE1");
    assert_int_equal(cs_bus_stats_get(b)->held, 2);

    assert_int_equal(rs_start(&f->rs), 0);
    assert_true(tu_run_until(&f->env.loop, ended_heard, far, TU_WAIT_MS));
    assert_string_equal(far[0].last, ended);
    assert_string_equal(far[1].last, ended);
    list_until(f, a, 0, NULL);
    ask g;
    ask_now(f, a, &g, CS_DIR_GET, "CE1");
    assert_int_equal(g.ncalls, 0);
    run_ms(f, 300);
    /* what was not held is not sent late (a node back after b may get the end twice) */
    assert_int_equal(far[0].texts, far[0].finals);

    /* a node that subscribes now (back later than b): the end again, for it */
    open_node(f, 2, f->rs.url, 100, 1000);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    rx late;
    subscribe(f->n[2].bus, &late, "CE1");
    assert_true(tu_run_until(&f->env.loop, got_final, &late, TU_WAIT_MS));
    assert_string_equal(late.last, ended);
    for (int i = 0; i < 2; i++) cs_bus_unsubscribe(a, &far[i].sub);
    cs_bus_unsubscribe(f->n[2].bus, &late.sub);
}

static bool thousand(void *data)
{
    return ((rx *)data)->texts >= CS_BUS_HOLD_MAX;
}

/* What is held while the server is away is bounded: past CS_BUS_HOLD_MAX messages, or
 * CS_BUS_HOLD_BYTES, the oldest go (counted); the rest go out when it is back. */
static void test_held_bounds(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 100, &a, &b);
    rx far;
    subscribe(a, &far, "CH1");
    publish_until_received(f, b, "CH1", "{}", &far);
    far.texts = 0;
    rs_kill(&f->rs);
    assert_true(tu_run_until(&f->env.loop, all_down, f, TU_WAIT_MS));
    char text[32];
    cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = "CH1", .text = text, .hold = true};
    for (int i = 0; i < CS_BUS_HOLD_MAX + 5; i++) {
        m.len = (size_t)snprintf(text, sizeof text, "{\"i\":%d}", i);
        cs_bus_publish(b, &m);
    }
    assert_int_equal(cs_bus_stats_get(b)->held, CS_BUS_HOLD_MAX + 5);
    assert_int_equal(cs_bus_stats_get(b)->held_dropped, 5);
    assert_int_equal(rs_start(&f->rs), 0);
    assert_true(tu_run_until(&f->env.loop, thousand, &far, TU_WAIT_MS));
    run_ms(f, 300);
    /* each at least once; again, those sent before far's node subscribed anew (held ends
     * are resent to a subscriber for a while: the nodes come back in either order) */
    assert_in_range(far.texts, CS_BUS_HOLD_MAX, 2 * CS_BUS_HOLD_MAX);
    assert_string_equal(far.last, "{\"i\":1004}");

    /* 20 messages of 1 MiB: 15 fit in 16 MiB (the 1,000 sent before, kept for nodes that
     * subscribe late, make room first, uncounted) */
    rs_kill(&f->rs);
    assert_true(tu_run_until(&f->env.loop, all_down, f, TU_WAIT_MS));
    char *big = malloc(CS_BUS_MSG_MAX);
    memset(big, ' ', CS_BUS_MSG_MAX);
    big[0] = '{';
    big[CS_BUS_MSG_MAX - 1] = '}';
    m = (cs_bus_msg){
        .kind = CS_BUS_TEXT, .topic = "CH1", .text = big, .len = CS_BUS_MSG_MAX, .hold = true};
    uint64_t dropped = cs_bus_stats_get(b)->held_dropped;
    for (int i = 0; i < 20; i++) cs_bus_publish(b, &m);
    free(big);
    assert_int_equal(cs_bus_stats_get(b)->held_dropped - dropped, 5);
    cs_bus_unsubscribe(a, &far.sub);
}

/* A server that speaks something else: it greets every connection with an SSH banner. */
typedef struct banner {
    uv_tcp_t server;
    uv_tcp_t client;
    uv_write_t w;
    bool accepted, silent;
    int port;
    const char *hello; /* what it greets with (NULL: an SSH banner) … */
    size_t flood;      /* … then this many bytes of filler */
} banner;

static void banner_conn(uv_stream_t *s, int status)
{
    banner *bn = s->data;
    if (status < 0 || bn->accepted) return;
    uv_tcp_init(s->loop, &bn->client);
    if (uv_accept(s, (uv_stream_t *)&bn->client) < 0) return;
    bn->accepted = true;
    if (bn->silent) return;
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof chunk);
    const char *hello = bn->hello ? bn->hello : "SSH-2.0-OpenSSH_9.2p1\r\n";
    uv_buf_t bufs[128] = {uv_buf_init((char *)hello, (unsigned)strlen(hello))};
    unsigned n = 1;
    for (size_t left = bn->flood; left && n < 128; n++) {
        size_t k = left < sizeof chunk ? left : sizeof chunk;
        bufs[n] = uv_buf_init(chunk, (unsigned)k);
        left -= k;
    }
    uv_write(&bn->w, (uv_stream_t *)&bn->client, bufs, n, NULL);
}

static void banner_start(fixture *f, banner *bn, bool silent)
{
    memset(bn, 0, sizeof *bn);
    bn->silent = silent;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&f->env.loop, &bn->server);
    bn->server.data = bn;
    assert_int_equal(uv_tcp_bind(&bn->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&bn->server, 8, banner_conn), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&bn->server, (struct sockaddr *)&addr, &len);
    bn->port = ntohs(addr.sin_port);
}

static void banner_stop(fixture *f, banner *bn)
{
    if (bn->accepted) uv_close((uv_handle_t *)&bn->client, NULL);
    uv_close((uv_handle_t *)&bn->server, NULL);
    uv_run(&f->env.loop, UV_RUN_NOWAIT);
}

static bool a_down(void *data)
{
    return ((fixture *)data)->n[0].downs > 0;
}

/* Node A pointed at a banner server, until it says the server is away (a connection attempt
 * lasts up to 5 s). */
static void node_on_banner(fixture *f, banner *bn, bool silent)
{
    banner_start(f, bn, silent);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", bn->port);
    open_node(f, 0, url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, a_down, f, TU_WAIT_MS + 5000));
}

static void banner_done(fixture *f, banner *bn)
{
    cs_bus_close(f->n[0].bus);
    f->n[0].bus = NULL;
    banner_stop(f, bn);
}

static void test_hostile_server(void **state)
{
    fixture *f = *state;
    banner bn;
    node_on_banner(f, &bn, false);
    assert_false(cs_bus_ready(f->n[0].bus));
    assert_non_null(strstr(f->n[0].why, "Protocol error"));
    /* the local fan-out works regardless */
    rx r;
    subscribe(f->n[0].bus, &r, "CA1");
    publish_text(f->n[0].bus, "CA1", "{}");
    assert_int_equal(r.texts, 1);
    cs_bus_unsubscribe(f->n[0].bus, &r.sub);
    banner_done(f, &bn);
}

/* A server that answers more than any reply of ours: an array of 2^21 elements (refused
 * before hiredis allocates it), or a string of a gigabyte (refused once 64 MiB are in). */
static void test_reply_bounds(void **state)
{
    fixture *f = *state;
    signal(SIGPIPE, SIG_IGN); /* the flood's writes after the node hangs up */
    static const struct {
        const char *hello, *why;
        size_t flood;
    } cases[] = {
        {"*2097152\r\n", "a reply of 2097152 elements: refused (at most 1048576)", 0},
        {"*2\r\n*1048577\r\n", "a reply of 1048577 elements: refused", 0},
        {"$1000000000\r\n", "a reply of more than 67108864 bytes: refused", 66u << 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        banner bn;
        banner_start(f, &bn, false);
        bn.hello = cases[i].hello;
        bn.flood = cases[i].flood;
        char url[64];
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", bn.port);
        open_node(f, 0, url, 100, 500);
        assert_true(tu_run_until(&f->env.loop, a_down, f, TU_WAIT_MS + 5000));
        if (!strstr(f->n[0].why, cases[i].why)) fail_msg("%s: %s", cases[i].hello, f->n[0].why);
        banner_done(f, &bn);
        f->n[0] = (node){0};
    }
}

static void test_silent_server(void **state)
{
    fixture *f = *state;
    banner bn;
    node_on_banner(f, &bn, true);
    assert_string_equal(f->n[0].why, "timed out connecting");
    banner_done(f, &bn);
}

static void test_password(void **state)
{
    fixture *f = *state;
    snprintf(f->rs.password, sizeof f->rs.password, "s3cret");
    start_redis(f);
    char url[128];
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", f->rs.port);
    open_node(f, 0, url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, a_down, f, TU_WAIT_MS));
    assert_non_null(strstr(f->n[0].why, "AUTH"));
    assert_non_null(strstr(f->n[0].why, "WRONGPASS"));
    cs_bus_close(f->n[0].bus);
    f->n[0] = (node){0};
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->rs.port);
    open_node(f, 0, url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, a_down, f, TU_WAIT_MS));
    assert_non_null(strstr(f->n[0].why, "NOAUTH"));
    cs_bus_close(f->n[0].bus);
    f->n[0] = (node){0};
    open_node(f, 0, f->rs.url, 100, 500); /* redis://:s3cret@… */
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    assert_int_equal(f->n[0].downs, 0);
}

/* A password with characters a URL cannot hold as they are: written percent-encoded, sent
 * decoded (as the user "default" too, Redis 6's ACL). */
static void test_password_escaped(void **state)
{
    fixture *f = *state;
    snprintf(f->rs.password, sizeof f->rs.password, "p@ss:w%%rd/#");
    start_redis(f);
    static const char *const forms[] = {"redis://:p%%40ss%%3aw%%25rd%%2F%%23@127.0.0.1:%d",
                                        "redis://default:p%%40ss:w%%25rd%%2F%%23@127.0.0.1:%d/0"};
    for (size_t i = 0; i < 2; i++) {
        char url[128];
        snprintf(url, sizeof url, forms[i], f->rs.port);
        open_node(f, 0, url, 100, 500);
        assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
        run_ms(f, 200);
        assert_int_equal(f->n[0].downs, 0);
        cs_bus_close(f->n[0].bus);
        f->n[0] = (node){0};
    }
}

static bool bad_counted(void *data)
{
    return cs_bus_stats_get(((fixture *)data)->n[0].bus)->bad >= 2;
}

static void test_bad_payloads(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 200, &a, &b);
    rx r;
    subscribe(a, &r, "CA1");
    publish_until_received(f, b, "CA1", "{\"ok\":1}", &r);
    run_ms(f, 300);
    int got = r.texts;
    assert_true(rs_int(&f->rs, "PUBLISH cs:t:CA1 %s", "garbage") >= 1);
    assert_true(rs_int(&f->rs, "PUBLISH cs:cmd:nodeA/0 %s", "nospace") >= 1);
    assert_true(tu_run_until(&f->env.loop, bad_counted, f, TU_WAIT_MS));
    assert_int_equal(r.texts, got);
    r.texts = 0;
    publish_until_received(f, b, "CA1", "{\"ok\":2}", &r);
    assert_string_equal(r.last, "{\"ok\":2}");
    assert_int_equal(f->n[0].commands, 0);
    cs_bus_unsubscribe(a, &r.sub);
}

static bool command_sent(void *data)
{
    fixture *f = data;
    return cs_bus_command(f->n[0].bus, "nodeB", "{\"hangup\":\"CB1\"}", 16) == 0;
}

static bool b_commanded(void *data)
{
    return ((fixture *)data)->n[1].commands > 0;
}

static fixture *probed;

/* Once node A is connected: a command to node B (`*data`: its result). */
static bool command_when_up(void *data)
{
    if (!cs_bus_ready(probed->n[0].bus)) return false;
    *(int *)data = cs_bus_command(probed->n[0].bus, "nodeB", "{}", 2);
    return true;
}

static void test_commands(void **state)
{
    fixture *f = *state;
    start_redis(f);
    /* connected, its first heartbeat not answered yet: the nodes are not known (not
     * refused as absent) */
    open_node(f, 0, f->rs.url, 100, 1000);
    probed = f;
    int early = 0;
    assert_true(tu_run_until(&f->env.loop, command_when_up, &early, TU_WAIT_MS));
    assert_int_equal(early, CS_EBACKEND);
    open_node(f, 1, f->rs.url, 100, 1000);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    assert_int_equal(cs_bus_command(f->n[0].bus, "nodeZ", "{}", 2), CS_ENOTFOUND);
    assert_true(tu_run_until(&f->env.loop, command_sent, f, TU_WAIT_MS));
    assert_true(tu_run_until(&f->env.loop, b_commanded, f, TU_WAIT_MS));
    /* node B known, with one loop: its second is not */
    assert_int_equal(cs_bus_command(f->n[0].bus, "nodeB/1", "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_command(f->n[0].bus, "nodeA/1", "{}", 2), CS_ENOTFOUND); /* its own */
    assert_string_equal(f->n[1].cmd_from, "nodeA/0");
    assert_string_equal(f->n[1].cmd_json, "{\"hangup\":\"CB1\"}");
    assert_int_equal(f->n[0].commands, 0);
    assert_int_equal(cs_bus_stats_get(f->n[0].bus)->commands_out, 1);
    assert_int_equal(cs_bus_stats_get(f->n[1].bus)->commands_in, 1);
}

static void test_bad_urls(void **state)
{
    fixture *f = *state;
    const char *bad[] = {
        "rediss://127.0.0.1", "redis://",     "redis://h:99999",   "redis://h:x",
        "redis://h:1/db",     "redis://[::1", "redis://nocolon@h", "redis://h/0?timeout=1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_buf err = CS_BUF_INIT(1024);
        assert_int_equal(open_node_at(f, 0, bad[i], 100, 500, &err), CS_ECONFIG);
        assert_non_null(strstr(err.data, "REDIS_URL"));
        assert_null(f->n[0].bus);
        cs_buf_free(&err);
    }
    /* credentials: percent-encoded; a malformed escape is named, the password never shown */
    static const char *const escapes[] = {"redis://:s3cr%4@h", "redis://:s3cr%zz@h",
                                          "redis://u%:s3cr@h", "redis://:s3cr%00@h"};
    for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++) {
        cs_buf err = CS_BUF_INIT(1024);
        assert_int_equal(open_node_at(f, 0, escapes[i], 100, 500, &err), CS_ECONFIG);
        assert_non_null(strstr(err.data, "malformed percent-escape"));
        assert_null(strstr(err.data, "s3cr"));
        cs_buf_free(&err);
    }
    char longpass[400] = "redis://:";
    memset(longpass + 9, 'p', 300);
    strcpy(longpass + 309, "@h");
    cs_buf err = CS_BUF_INIT(1024);
    assert_int_equal(open_node_at(f, 0, longpass, 100, 500, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "longer than 255 bytes"));
    cs_buf_reset(&err);
    assert_int_equal(open_node_at(f, 0, "redis://127.0.0.1:1", 500, 999, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "NODE_TTL_MS (999) must be at least twice"));
    cs_buf_free(&err);
    cs_bus *b = NULL;
    cs_bus_config cfg = {.loop = &f->env.loop,
                         .url = "redis://127.0.0.1:1",
                         .node = "a b",
                         .heartbeat_ms = 100,
                         .node_ttl_ms = 500};
    err = (cs_buf)CS_BUF_INIT(1024);
    assert_int_equal(cs_bus_open(&b, &cfg, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "NODE_ID"));
    assert_null(b);
    cs_buf_free(&err);
}

static void test_host_name(void **state)
{
    fixture *f = *state;
    start_redis(f);
    char url[64];
    snprintf(url, sizeof url, "redis://localhost:%d/0", f->rs.port);
    open_node(f, 0, url, 100, 500);
    assert_true(tu_run_until(&f->env.loop, all_up, f, TU_WAIT_MS));
    cs_bus_close(f->n[0].bus);
    f->n[0] = (node){0};
    /* a name that does not resolve: an outage with its reason, retried */
    open_node(f, 0, "redis://no-such-host.invalid:6379", 100, 500);
    assert_true(tu_run_until(&f->env.loop, a_down, f, TU_WAIT_MS));
    assert_non_null(strstr(f->n[0].why, "cannot resolve no-such-host.invalid"));
}

static void test_inflight_bound(void **state)
{
    fixture *f = *state;
    cs_bus *a, *b;
    two_nodes(f, 200, &a, &b);
    rx r;
    subscribe(a, &r, "CA1");
    publish_until_received(f, b, "CA1", "{}", &r);
    run_ms(f, 300); /* A's subscription announced: B counts it */
    /* the server stops answering for a while: what is sent waits in hiredis's buffers */
    redisReply *rep = rs_cmd(&f->rs, "CLIENT PAUSE 1500 ALL");
    assert_non_null(rep);
    freeReplyObject(rep);
    uint64_t dropped = cs_bus_stats_get(b)->dropped;
    for (int i = 0; i < 15000; i++) publish_audio(b, "CA1", (uint32_t)i * 20);
    assert_true(cs_bus_stats_get(b)->dropped - dropped >= 5000);
    /* and once it answers, the rest arrives */
    r.audio = 0;
    run_ms(f, 3000);
    assert_true(r.audio > 0 && r.audio <= 10000);
    r.texts = 0;
    publish_until_received(f, b, "CA1", "{\"later\":1}", &r);
    cs_bus_unsubscribe(a, &r.sub);
}

/* Redis stalls longer than the TTL (every heartbeat waits, every alive key expires): when
 * it answers again, nobody is declared lost for its silence. */
static void test_server_stall_loses_nobody(void **state)
{
    fixture *f = *state;
    start_redis(f);
    open_nodes(f, 3, 100, 500);
    cs_dir_put(f->n[0].bus, "CA1", "{}", 2);
    list_until(f, f->n[1].bus, 1, NULL);
    redisReply *rep = rs_cmd(&f->rs, "CLIENT PAUSE 1500 ALL");
    assert_non_null(rep);
    freeReplyObject(rep);
    run_ms(f, 3000);
    for (int i = 0; i < NODES; i++) assert_int_equal(f->n[i].lost, 0);
    list_until(f, f->n[2].bus, 1, NULL);
}

/* The harness never takes another server for its own: one asked to start on a port already
 * held fails instead of answering with the other's PING. */
static void test_harness_port_taken(void **state)
{
    fixture *f = *state;
    start_redis(f);
    rs_server other = {.port = f->rs.port};
    assert_int_equal(rs_start(&other), -1);
    assert_int_equal(other.pid, 0);
    rs_stop(&other);
    assert_true(rs_is_ours(&f->rs));
}

/* ---- the conformance cases (tests/unit/bus_conformance.h): two nodes on one server ---- */

static rs_server conf_rs; /* started by the first pair, stopped after the group */

static int bc_open_pair(bc_env *e, cs_bus_config *cfg)
{
    if (!conf_rs.pid && rs_start(&conf_rs) < 0) return -1;
    redisReply *rep = rs_cmd(&conf_rs, "FLUSHALL");
    if (!rep) return -1;
    freeReplyObject(rep);
    cfg->url = conf_rs.url;
    cs_buf err = CS_BUF_INIT(512);
    cfg->node = "node-a";
    int rc = cs_bus_open(&e->a, cfg, &err);
    cfg->node = "node-b";
    if (rc == 0) rc = cs_bus_open(&e->b, cfg, &err);
    if (rc < 0) fprintf(stderr, "cs_bus_open: %s\n", err.data);
    cs_buf_free(&err);
    /* both connected, each seen by the other's heartbeat */
    for (int i = 0; i < 500 && rc == 0; i++) {
        if (cs_bus_ready(e->a) && cs_bus_ready(e->b) &&
            rs_int(&conf_rs, "EXISTS cs:alive:node-a cs:alive:node-b") == 2 && i > 50)
            break;
        uv_run(&e->loop, UV_RUN_NOWAIT);
        rs_sleep_ms(10);
    }
    return rc < 0 ? -1 : 0;
}

static void bc_close_pair(bc_env *e)
{
    cs_bus_close(e->a);
    cs_bus_close(e->b);
}

static int stop_conf(void **state)
{
    (void)state;
    rs_stop(&conf_rs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BUS_CONFORMANCE_TESTS,
        cmocka_unit_test_setup_teardown(test_topics_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unheard_audio_stays_home, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_lost_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_back_after_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_forgets_earlier_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops_of_one_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_told_after_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stall_loses_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_harness_port_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, stop_conf);
}
