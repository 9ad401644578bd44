/* What every backend of the bus must do, as cmocka cases over two buses `a` and `b` on one
 * loop: the same node twice for a backend that has one (in-process), or two nodes of one
 * cluster (Redis). A test file defines how its pair opens and closes, then lists
 * BUS_CONFORMANCE_TESTS(setup, teardown) among its cases. */
#ifndef CS_TEST_BUS_CONFORMANCE_H
#define CS_TEST_BUS_CONFORMANCE_H

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/buf.h"
#include "core/err.h"

#define BC_CALL "CA0123456789abcdef0123456789abcdef"

typedef struct bc_env {
    uv_loop_t loop;
    cs_bus *a, *b; /* b == a: one node */
    void *backend; /* the test file's */
    /* what subscribers saw */
    char got[64][256];
    size_t ngot;
    unsigned answers, commands;
    char command[256];
    char command_from[CS_BUS_NODE_MAX + 16];
} bc_env;

/* The test file's: opens e->a and e->b on e->loop with `cfg` as the base (0 or -1). */
static int bc_open_pair(bc_env *e, cs_bus_config *cfg);
static void bc_close_pair(bc_env *e);

static void bc_on_command(void *data, const char *from, const char *json, size_t n)
{
    bc_env *e = data;
    e->commands++;
    snprintf(e->command, sizeof e->command, "%.*s", (int)n, json);
    snprintf(e->command_from, sizeof e->command_from, "%s", from);
}

static int bc_setup(void **state)
{
    bc_env *e = calloc(1, sizeof *e);
    *state = e;
    if (!e || uv_loop_init(&e->loop) < 0) return -1;
    cs_bus_config cfg = {.loop = &e->loop,
                         .run = "0011223344556677",
                         .heartbeat_ms = 200,
                         .node_ttl_ms = 1000,
                         .data = e,
                         .on_command = bc_on_command};
    return bc_open_pair(e, &cfg);
}

static int bc_teardown(void **state)
{
    bc_env *e = *state;
    bc_close_pair(e);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&e->loop);
    free(e);
    return rc == 0 ? 0 : -1;
}

static void bc_deliver(cs_bus_sub *s, const cs_bus_msg *m)
{
    bc_env *e = s->data;
    if (e->ngot == 64) return;
    if (m->kind == CS_BUS_TEXT)
        snprintf(e->got[e->ngot++], 256, "%s%s:%.*s", m->final ? "final " : "", m->topic,
                 (int)m->len, m->text);
    else
        snprintf(e->got[e->ngot++], 256, "audio %s:%u@%u:%zu", m->topic, m->track, m->pos_ms,
                 m->n);
}

static bool bc_got(void *data)
{
    bc_env *e = data;
    return e->ngot >= 2;
}

static void bc_publish(cs_bus *b, const char *topic, const char *text, bool final)
{
    cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = topic, .text = text, .len = strlen(text),
                    .final = final};
    cs_bus_publish(b, &m);
}

/* Whether each bus's backend knows the other's subscriber (not only its own). */
static bool bc_heard_across(void *data)
{
    bc_env *e = data;
    cs_bus *buses[2] = {e->a, e->b};
    for (int i = 0; i < 2; i++)
        if (buses[i]->ops->elsewhere && !buses[i]->ops->elsewhere(buses[i], BC_CALL, strlen(BC_CALL)))
            return false;
    return true;
}

/* Subscribers on either bus get what either publishes, in order, the local one at once. */
static void bc_publish_reaches(void **state)
{
    bc_env *e = *state;
    cs_bus_sub s1 = {.deliver = bc_deliver, .data = e}, s2 = {.deliver = bc_deliver, .data = e};
    assert_int_equal(cs_bus_subscribe(e->a, &s1, BC_CALL), 0);
    if (e->b != e->a) assert_int_equal(cs_bus_subscribe(e->b, &s2, BC_CALL), 0);
    /* a remote subscription takes effect at its server, and publishers elsewhere learn of it:
     * let them */
    if (e->b != e->a) assert_true(tu_run_until(&e->loop, bc_heard_across, e, TU_WAIT_MS));
    assert_true(cs_bus_has(e->a, BC_CALL, strlen(BC_CALL)));
    assert_false(cs_bus_has(e->a, "CAnobody", 8));
    bc_publish(e->a, BC_CALL, "{\"n\":1}", false);
    assert_int_equal(e->ngot, 1); /* this loop's subscriber: synchronously */
    assert_string_equal(e->got[0], BC_CALL ":{\"n\":1}");
    if (e->b != e->a) {
        assert_true(tu_run_until(&e->loop, bc_got, e, TU_WAIT_MS));
        assert_string_equal(e->got[1], BC_CALL ":{\"n\":1}");
        /* from b: a's subscriber gets it, once */
        uint8_t frame[160];
        memset(frame, 0xff, sizeof frame);
        cs_bus_msg m = {.kind = CS_BUS_AUDIO, .topic = BC_CALL, .track = 1, .pos_ms = 70000,
                        .ulaw = frame, .n = sizeof frame};
        e->ngot = 0;
        cs_bus_publish(e->b, &m);
        assert_true(tu_run_until(&e->loop, bc_got, e, TU_WAIT_MS));
        assert_string_equal(e->got[0], "audio " BC_CALL ":1@70000:160");
        assert_string_equal(e->got[1], "audio " BC_CALL ":1@70000:160");
        uv_sleep(50);
        uv_run(&e->loop, UV_RUN_NOWAIT);
        assert_int_equal(e->ngot, 2);
    }
    cs_bus_unsubscribe(e->a, &s1);
    cs_bus_unsubscribe(e->b, &s2);
    assert_false(cs_bus_has(e->a, BC_CALL, strlen(BC_CALL)) && e->a == e->b);
}

/* A subscriber leaving (itself or another) while a message is delivered. */
typedef struct bc_leaver {
    cs_bus_sub sub;
    cs_bus *bus;
    cs_bus_sub *other;
    unsigned got;
} bc_leaver;

static void bc_leave(cs_bus_sub *s, const cs_bus_msg *m)
{
    (void)m;
    bc_leaver *l = s->data;
    l->got++;
    cs_bus_unsubscribe(l->bus, &l->sub);
    if (l->other) cs_bus_unsubscribe(l->bus, l->other);
}

static void bc_unsubscribe_in_delivery(void **state)
{
    bc_env *e = *state;
    bc_leaver x = {.bus = e->a}, y = {.bus = e->a};
    x.sub = (cs_bus_sub){.deliver = bc_leave, .data = &x};
    y.sub = (cs_bus_sub){.deliver = bc_leave, .data = &y};
    assert_int_equal(cs_bus_subscribe(e->a, &x.sub, "t"), 0);
    assert_int_equal(cs_bus_subscribe(e->a, &y.sub, "t"), 0);
    y.other = &x.sub; /* y is visited first (newest first), and takes x with it */
    bc_publish(e->a, "t", "{}", false);
    assert_int_equal(y.got + x.got, 1);
    bc_publish(e->a, "t", "{}", false);
    assert_int_equal(y.got + x.got, 1);
    char long_topic[CS_BUS_TOPIC_MAX + 2];
    memset(long_topic, 'x', sizeof long_topic - 1);
    long_topic[sizeof long_topic - 1] = '\0';
    assert_int_equal(cs_bus_subscribe(e->a, &x.sub, long_topic), -EINVAL);
    assert_int_equal(cs_bus_subscribe(e->a, &x.sub, ""), -EINVAL);
}

static void bc_answered(cs_dir_req *q)
{
    bc_env *e = q->data;
    e->answers++;
}

static bool bc_answers_2(void *data)
{
    return ((bc_env *)data)->answers >= 2;
}

static bool bc_answers_1(void *data)
{
    return ((bc_env *)data)->answers >= 1;
}

typedef struct bc_view {
    bc_env *e;
    cs_dir_req q;
    size_t ncalls, nevents;
    char summary[256], node[CS_BUS_NODE_MAX + 1], first[128], last[128];
    bool partial;
    int rc;
} bc_view;

static void bc_viewed(cs_dir_req *q)
{
    bc_view *v = q->data;
    v->e->answers++;
    v->rc = q->rc;
    v->partial = q->partial;
    v->ncalls = q->ncalls;
    v->nevents = q->nevents;
    if (q->ncalls) {
        snprintf(v->summary, sizeof v->summary, "%.*s", (int)q->calls[0].summary_len,
                 q->calls[0].summary);
        snprintf(v->node, sizeof v->node, "%s", q->calls[0].node);
    }
    if (q->nevents) {
        snprintf(v->first, sizeof v->first, "%.*s", (int)q->event_lens[0], q->events[0]);
        snprintf(v->last, sizeof v->last, "%.*s", (int)q->event_lens[q->nevents - 1],
                 q->events[q->nevents - 1]);
    }
    if (q->what == CS_DIR_NODES) v->ncalls = q->nnodes;
}

/* Asks `what` on `bus` and runs the loop until it is answered. */
static bc_view *bc_ask(bc_env *e, cs_bus *bus, enum cs_dir_what what, const char *sid)
{
    static bc_view v;
    memset(&v, 0, sizeof v);
    v.e = e;
    v.q.what = what;
    v.q.done = bc_viewed;
    v.q.data = &v;
    if (sid) snprintf(v.q.sid, sizeof v.q.sid, "%s", sid);
    e->answers = 0;
    assert_int_equal(cs_dir_ask(bus, &v.q), 0);
    assert_int_equal(e->answers, 0); /* never inside the ask */
    assert_true(tu_run_until(&e->loop, bc_answers_1, e, TU_WAIT_MS));
    return &v;
}

/* Asks until the answer has `ncalls` calls and `nevents` events (or the wait is over): on
 * another node the owner's writes arrive a moment later. */
static bc_view *bc_ask_until(bc_env *e, cs_bus *bus, enum cs_dir_what what, const char *sid,
                             size_t ncalls, size_t nevents)
{
    uv_update_time(&e->loop);
    uint64_t deadline = uv_now(&e->loop) + TU_WAIT_MS;
    bc_view *v;
    while ((v = bc_ask(e, bus, what, sid))->ncalls != ncalls || v->nevents != nevents) {
        uv_update_time(&e->loop);
        if (uv_now(&e->loop) >= deadline) break;
    }
    return v;
}

/* The directory: what the owner puts, anyone reads, the last events bounded. */
static void bc_directory(void **state)
{
    bc_env *e = *state;
    cs_dir_put(e->a, BC_CALL, "{\"sid\":\"" BC_CALL "\"}", strlen("{\"sid\":\"" BC_CALL "\"}"));
    char ev[64];
    for (int i = 0; i < CS_BUS_HISTORY_MAX + 20; i++) {
        int n = snprintf(ev, sizeof ev, "{\"i\":%d}", i);
        cs_dir_event(e->a, BC_CALL, ev, (size_t)n);
    }
    cs_dir_event(e->a, "CAnotlive", "{}", 2); /* not a call of a's: ignored */
    bc_view *v = bc_ask_until(e, e->b, CS_DIR_GET, BC_CALL, 1, CS_BUS_HISTORY_MAX);
    assert_int_equal(v->rc, 0);
    assert_int_equal(v->ncalls, 1);
    assert_string_equal(v->summary, "{\"sid\":\"" BC_CALL "\"}");
    assert_string_equal(v->node, e->a->node);
    assert_int_equal(v->nevents, CS_BUS_HISTORY_MAX);
    assert_string_equal(v->first, "{\"i\":20}");
    assert_string_equal(v->last, "{\"i\":519}");
    v = bc_ask(e, e->b, CS_DIR_LIST, NULL);
    assert_int_equal(v->ncalls, 1);
    v = bc_ask(e, e->b, CS_DIR_GET, "CAnotlive");
    assert_int_equal(v->rc, 0);
    assert_int_equal(v->ncalls, 0);
    cs_dir_end(e->a, BC_CALL);
    v = bc_ask_until(e, e->b, CS_DIR_LIST, NULL, 0, 0);
    assert_int_equal(v->ncalls, 0);
    v = bc_ask(e, e->b, CS_DIR_NODES, NULL);
    assert_int_equal(v->ncalls, strcmp(e->a->node, e->b->node) == 0 ? 1 : 2); /* one node's loops: 1 */
}

/* A cancelled request is never answered; one asked from `done` is answered later. */
static void bc_reask(cs_dir_req *q)
{
    bc_env *e = q->data;
    if (++e->answers == 1) assert_int_equal(cs_dir_ask(e->a, q), 0);
}

static void bc_cancel(void **state)
{
    bc_env *e = *state;
    cs_dir_req q1 = {.what = CS_DIR_LIST, .done = bc_answered, .data = e};
    cs_dir_req q2 = {.what = CS_DIR_NODES, .done = bc_reask, .data = e};
    assert_int_equal(cs_dir_ask(e->a, &q1), 0);
    assert_int_equal(cs_dir_ask(e->a, &q1), -EINVAL); /* already asked */
    assert_int_equal(cs_dir_ask(e->a, &q2), 0);
    cs_dir_cancel(&q1);
    cs_dir_cancel(&q1);
    assert_true(tu_run_until(&e->loop, bc_answers_2, e, TU_WAIT_MS));
    assert_int_equal(e->answers, 2); /* q2 twice, q1 never */
    cs_dir_req bad = {.what = 99, .done = bc_answered};
    assert_int_equal(cs_dir_ask(e->a, &bad), -EINVAL);
}

static bool bc_commanded(void *data)
{
    return ((bc_env *)data)->commands > 0;
}

static void bc_commands(void **state)
{
    bc_env *e = *state;
    /* to b's own address; the sender's is where a reply goes */
    assert_int_equal(cs_bus_command(e->a, e->b->origin, "{\"op\":\"x\"}", 10), 0);
    assert_int_equal(e->commands, 0); /* later */
    assert_true(tu_run_until(&e->loop, bc_commanded, e, TU_WAIT_MS));
    assert_string_equal(e->command, "{\"op\":\"x\"}");
    assert_string_equal(e->command_from, e->a->origin);
    assert_int_equal(cs_bus_stats_get(e->b)->commands_in, 1);
    /* a node or a loop that does not exist: refused at once and counted, never sent to
     * nobody */
    char absent[CS_BUS_NODE_MAX + 16];
    snprintf(absent, sizeof absent, "%s/%u", e->b->node, CS_BUS_LOOPS_MAX);
    assert_int_equal(cs_bus_command(e->a, "no-such-node", "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_command(e->a, "no-such-node/0", "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_command(e->a, absent, "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_stats_get(e->a)->commands_unknown, 3);
    assert_int_equal(cs_bus_stats_get(e->a)->commands_out, 1);
    static const char *const bad[] = {"", "/0", "n/", "n/x", "n/1x", "n/99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cs_bus_command(e->a, bad[i], "{}", 2), -EINVAL);
}

/* The wire form: what goes out comes back the same; anything else is refused. */
static void bc_wire(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(CS_BUS_MSG_MAX + 512);
    uint8_t frame[3] = {1, 2, 3};
    cs_bus_msg in[] = {
        {.kind = CS_BUS_TEXT, .topic = "t", .text = "{\"a\":1}", .len = 7, .final = true},
        {.kind = CS_BUS_AUDIO, .topic = "t", .track = 1, .pos_ms = 0xfedcba98u,
         .at_ms = 1764936000123, .ulaw = frame, .n = 3},
        {.kind = CS_BUS_AUDIO, .topic = "t", .track = 0, .pos_ms = 1, .ulaw = frame, .n = 0},
    };
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        assert_int_equal(cs_bus_msg_encode(&out, &in[i], "node-1/0"), 0);
        cs_bus_msg m = {.topic = "t"};
        const char *origin;
        size_t olen;
        assert_int_equal(
            cs_bus_msg_decode(&m, &origin, &olen, (const uint8_t *)out.data, out.len), 0);
        assert_int_equal(olen, 8);
        assert_memory_equal(origin, "node-1/0", 8);
        assert_int_equal(m.kind, in[i].kind);
        assert_int_equal(m.final, in[i].final);
        if (m.kind == CS_BUS_TEXT) {
            assert_int_equal(m.len, in[i].len);
            assert_memory_equal(m.text, in[i].text, m.len);
        } else {
            assert_int_equal(m.track, in[i].track);
            assert_int_equal(m.pos_ms, in[i].pos_ms);
            assert_int_equal(m.at_ms, in[i].at_ms);
            assert_int_equal(m.n, in[i].n);
            if (m.n) assert_memory_equal(m.ulaw, frame, m.n);
        }
        /* a prefix shorter than the head (and for text, one byte of it) is refused; the
         * rest are shorter messages — never read past */
        size_t head = out.len - (m.kind == CS_BUS_TEXT ? m.len - 1 : m.n);
        for (size_t n = 0; n < out.len; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, out.data, n);
            cs_bus_msg c = {.topic = "t"};
            int rc = cs_bus_msg_decode(&c, &origin, &olen, copy, n);
            assert_int_equal(rc, n < head ? -EPROTO : 0);
            free(copy);
        }
    }
    static const char *const bad[] = {"X\0\0", "T\2\0{}", "T\0\5ab",
                                      "A\0\0\2\0\0\0\0\0\0\0\0\0\0\0\0"};
    static const size_t lens[] = {3, 5, 5, 16};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_bus_msg c = {.topic = "t"};
        const char *origin;
        size_t olen;
        assert_int_equal(cs_bus_msg_decode(&c, &origin, &olen, (const uint8_t *)bad[i], lens[i]),
                         -EPROTO);
    }
    char *big = malloc(CS_BUS_MSG_MAX + 1);
    memset(big, 'x', CS_BUS_MSG_MAX + 1);
    cs_bus_msg huge = {.kind = CS_BUS_TEXT, .topic = "t", .text = big, .len = CS_BUS_MSG_MAX + 1};
    assert_int_equal(cs_bus_msg_encode(&out, &huge, "n/0"), -EINVAL);
    free(big);
    cs_buf_free(&out);
}

/* Bytes from elsewhere: this loop's own come back and are skipped, others delivered, what
 * is not a message counted and skipped. */
static void bc_arrivals(void **state)
{
    bc_env *e = *state;
    cs_bus_sub s = {.deliver = bc_deliver, .data = e};
    assert_int_equal(cs_bus_subscribe(e->a, &s, "t"), 0);
    cs_buf out = CS_BUF_INIT(1024);
    cs_bus_msg m = {.kind = CS_BUS_TEXT, .topic = "t", .text = "{}", .len = 2};
    assert_int_equal(cs_bus_msg_encode(&out, &m, e->a->origin), 0);
    cs_bus__arrived(e->a, "t", (const uint8_t *)out.data, out.len);
    assert_int_equal(e->ngot, 0);
    assert_int_equal(cs_bus_msg_encode(&out, &m, "elsewhere/3"), 0);
    cs_bus__arrived(e->a, "t", (const uint8_t *)out.data, out.len);
    assert_int_equal(e->ngot, 1);
    uint64_t bad = cs_bus_stats_get(e->a)->bad;
    cs_bus__arrived(e->a, "t", (const uint8_t *)"garbage", 7);
    assert_int_equal(cs_bus_stats_get(e->a)->bad, bad + 1);
    assert_int_equal(e->ngot, 1);
    cs_bus_unsubscribe(e->a, &s);
    cs_buf_free(&out);
}

#define BUS_CONFORMANCE_TESTS                                                                      \
    cmocka_unit_test_setup_teardown(bc_publish_reaches, bc_setup, bc_teardown),                    \
        cmocka_unit_test_setup_teardown(bc_unsubscribe_in_delivery, bc_setup, bc_teardown),        \
        cmocka_unit_test_setup_teardown(bc_directory, bc_setup, bc_teardown),                      \
        cmocka_unit_test_setup_teardown(bc_cancel, bc_setup, bc_teardown),                         \
        cmocka_unit_test_setup_teardown(bc_commands, bc_setup, bc_teardown),                       \
        cmocka_unit_test(bc_wire),                                                                 \
        cmocka_unit_test_setup_teardown(bc_arrivals, bc_setup, bc_teardown)

#endif
