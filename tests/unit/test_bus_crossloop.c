/* The cross-loop bus: the loops of one process (tests/unit/bus_conformance.h: two loops'
 * buses, on one libuv loop here), and what only it does: a loop closing while another
 * sends to it from its own thread, a mailbox full of audio, commands to one loop. */
#include "bus_conformance.h"

#include <pthread.h>
#include <stdatomic.h>

static int bc_open_pair(bc_env *e, cs_bus_config *cfg)
{
    cs_bus_hub *hub;
    if (cs_bus_hub_new(&hub, 2) < 0) return -1;
    e->backend = hub;
    cfg->node = "node-a";
    cfg->hub = hub;
    cfg->loops = 2;
    cs_buf err = CS_BUF_INIT(512);
    int rc = cs_bus_open(&e->a, cfg, &err);
    cfg->loop_index = 1;
    if (rc == 0) rc = cs_bus_open(&e->b, cfg, &err);
    cs_buf_free(&err);
    return rc < 0 ? -1 : 0;
}

static void bc_close_pair(bc_env *e)
{
    cs_bus_close(e->a);
    cs_bus_close(e->b);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    cs_bus_hub_free(e->backend);
}

/* Loop 1 runs on its own thread: subscribes, hears some, then closes its bus while loop 0
 * goes on publishing to it. */
typedef struct peer {
    uv_loop_t loop;
    cs_bus_hub *hub;
    cs_bus *bus;
    cs_bus_sub sub;
    atomic_uint heard;
    atomic_bool subscribed, closed;
    bool failed;
} peer;

static void peer_deliver(cs_bus_sub *s, const cs_bus_msg *m)
{
    (void)m;
    peer *p = s->data;
    atomic_fetch_add(&p->heard, 1);
}

static bool peer_heard_some(void *data)
{
    return atomic_load(&((peer *)data)->heard) >= 10;
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    uv_loop_init(&p->loop);
    cs_bus_config cfg = {.loop = &p->loop, .node = "n", .hub = p->hub, .loop_index = 1,
                         .loops = 2, .heartbeat_ms = 10};
    cs_buf err = CS_BUF_INIT(256);
    /* no cmocka asserts off the test's thread: what fails shows as `failed` */
    p->failed = cs_bus_open(&p->bus, &cfg, &err) < 0;
    cs_buf_free(&err);
    p->sub = (cs_bus_sub){.deliver = peer_deliver, .data = p};
    if (p->failed || cs_bus_subscribe(p->bus, &p->sub, BC_CALL) < 0) {
        p->failed = true;
        atomic_store(&p->subscribed, true);
        atomic_store(&p->closed, true);
        return NULL;
    }
    atomic_store(&p->subscribed, true);
    tu_run_until(&p->loop, peer_heard_some, p, TU_WAIT_MS);
    cs_bus_unsubscribe(p->bus, &p->sub);
    cs_bus_subscribe(p->bus, &p->sub, BC_CALL); /* still listening as it closes */
    cs_bus_close(p->bus);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    p->failed = uv_loop_close(&p->loop) != 0;
    atomic_store(&p->closed, true);
    return NULL;
}

static void closing_while_sent_to(void **state)
{
    (void)state;
    peer p = {0};
    assert_int_equal(cs_bus_hub_new(&p.hub, 2), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_bus_config cfg = {.loop = &loop, .node = "n", .hub = p.hub, .loops = 2};
    cs_buf err = CS_BUF_INIT(256);
    cs_bus *a;
    assert_int_equal(cs_bus_open(&a, &cfg, &err), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, peer_main, &p), 0);
    while (!atomic_load(&p.subscribed)) uv_sleep(1);
    uint8_t frame[160] = {0};
    unsigned sent = 0;
    while (!atomic_load(&p.closed)) {
        cs_bus_msg m = {.kind = (sent & 1) ? CS_BUS_AUDIO : CS_BUS_TEXT, .topic = BC_CALL,
                        .text = "{}", .len = 2, .ulaw = frame, .n = sizeof frame};
        cs_bus_publish(a, &m);
        assert_true(sent < 100u * 1000 * 1000);
        if (++sent % 64 == 0) uv_sleep(1);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    pthread_join(t, NULL);
    assert_false(p.failed);
    assert_true(atomic_load(&p.heard) >= 10);
    /* gone: nobody listens, commands to it are refused */
    assert_false(cs_bus_has(a, BC_CALL, strlen(BC_CALL)));
    assert_int_equal(cs_bus_command(a, "n/1", "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_command(a, "n/2", "{}", 2), CS_ENOTFOUND);
    assert_int_equal(cs_bus_command(a, "n/x", "{}", 2), -EINVAL);
    assert_int_equal(cs_bus_command(a, "nn", "{}", 2), CS_ENOTFOUND);
    /* its slot is free again; a second bus on a taken slot is refused */
    cfg.loop_index = 1;
    cs_bus *b, *b2 = NULL;
    assert_int_equal(cs_bus_open(&b, &cfg, &err), 0);
    assert_int_equal(cs_bus_open(&b2, &cfg, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "has a bus already"));
    assert_null(b2);
    cfg.loop_index = 2;
    assert_int_equal(cs_bus_open(&b2, &cfg, &err), CS_ECONFIG);
    cs_bus_close(b);
    cs_bus_close(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    cs_bus_hub_free(p.hub);
    cs_buf_free(&err);
    uint32_t zero = 0;
    cs_bus_hub *h;
    assert_int_equal(cs_bus_hub_new(&h, zero), -EINVAL);
    assert_int_equal(cs_bus_hub_new(&h, CS_BUS_LOOPS_MAX + 1), -EINVAL);
}

/* A loop that does not keep up: its audio is dropped past the bound and counted, its text
 * still arrives, all of it, in order. */
static void full_mailbox(void **state)
{
    bc_env *e = *state;
    cs_bus_sub s = {.deliver = bc_deliver, .data = e};
    assert_int_equal(cs_bus_subscribe(e->b, &s, BC_CALL), 0);
    static uint8_t frame[16000];
    memset(frame, 0xff, sizeof frame);
    cs_bus_msg audio = {.kind = CS_BUS_AUDIO, .topic = BC_CALL, .ulaw = frame, .n = sizeof frame};
    unsigned frames = 200; /* 3.2 MB: past the audio bound, below the text one */
    for (unsigned i = 0; i < frames; i++) cs_bus_publish(e->a, &audio);
    uint64_t dropped = cs_bus_stats_get(e->a)->dropped;
    assert_true(dropped > 0 && dropped < frames);
    bc_publish(e->a, BC_CALL, "{\"last\":1}", true);
    assert_int_equal(cs_bus_stats_get(e->a)->dropped, dropped);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    size_t want = frames - dropped + 1;
    assert_int_equal(cs_bus_stats_get(e->b)->received, want);
    assert_int_equal(e->ngot, want < 64 ? want : 64);
    /* the mailbox is empty again: audio goes through */
    cs_bus_publish(e->a, &audio);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(cs_bus_stats_get(e->a)->dropped, dropped);
    assert_int_equal(cs_bus_stats_get(e->b)->received, want + 1);
    cs_bus_unsubscribe(e->b, &s);
}

/* A command reaches the loop named "node/i"; the directory tells each call's loop; the node
 * counts every loop's load. */
static void loop_load(void *data, cs_bus_node *self)
{
    (void)data;
    self->calls = 3;
    self->started_ms = 1000;
}

typedef struct node_view {
    cs_dir_req q;
    bool done;
    size_t n;
    cs_bus_node node;
} node_view;

static void node_viewed(cs_dir_req *q)
{
    node_view *v = q->data;
    v->done = true;
    v->n = q->nnodes;
    if (q->nnodes) v->node = q->nodes[0];
}

static bool node_answered(void *data)
{
    return ((node_view *)data)->done;
}

static void loops_of_one_node(void **state)
{
    bc_env *e = *state;
    e->a->cfg.load = e->b->cfg.load = loop_load; /* before either beats */
    assert_int_equal(cs_bus_command(e->a, "node-a/1", "{\"to\":1}", 8), 0);
    assert_true(tu_run_until(&e->loop, bc_commanded, e, TU_WAIT_MS));
    assert_string_equal(e->command, "{\"to\":1}");
    assert_int_equal(cs_bus_stats_get(e->b)->commands_in, 1);
    assert_int_equal(cs_bus_stats_get(e->a)->commands_in, 0);
    cs_dir_put(e->b, BC_CALL, "{}", 2);
    assert_int_equal(bc_ask(e, e->a, CS_DIR_GET, BC_CALL)->ncalls, 1);
    assert_int_equal(bc_ask(e, e->a, CS_DIR_LIST, NULL)->ncalls, 1);
    /* a's writes about a call b owns do not touch the hub's entry */
    cs_dir_put(e->a, BC_CALL, "{\"a\":1}", 7);
    cs_dir_event(e->a, BC_CALL, "{}", 2);
    cs_dir_end(e->a, BC_CALL);
    bc_view *v = bc_ask(e, e->a, CS_DIR_GET, BC_CALL);
    assert_int_equal(v->ncalls, 1);
    assert_string_equal(v->summary, "{}");
    cs_dir_end(e->b, BC_CALL);
    assert_int_equal(bc_ask(e, e->a, CS_DIR_LIST, NULL)->ncalls, 0);
    /* one node: its load is both loops' */
    node_view nv = {.q = {.what = CS_DIR_NODES, .done = node_viewed}};
    nv.q.data = &nv;
    assert_int_equal(cs_dir_ask(e->a, &nv.q), 0);
    assert_true(tu_run_until(&e->loop, node_answered, &nv, TU_WAIT_MS));
    assert_int_equal(nv.n, 1);
    assert_int_equal(nv.node.calls, 6);
    assert_int_equal(nv.node.loops, 2);
    assert_string_equal(nv.node.id, "node-a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BUS_CONFORMANCE_TESTS,
        cmocka_unit_test(closing_while_sent_to),
        cmocka_unit_test_setup_teardown(full_mailbox, bc_setup, bc_teardown),
        cmocka_unit_test_setup_teardown(loops_of_one_node, bc_setup, bc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
