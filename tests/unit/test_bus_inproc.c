/* The in-process bus: one loop, one node (tests/unit/bus_conformance.h), and what only it
 * does: refusing other backends' URLs and bad node ids. */
#include "bus_conformance.h"

static int bc_open_pair(bc_env *e, cs_bus_config *cfg)
{
    cfg->node = "node-a";
    cs_buf err = CS_BUF_INIT(512);
    int rc = cs_bus_open(&e->a, cfg, &err);
    cs_buf_free(&err);
    e->b = e->a;
    return rc < 0 ? -1 : 0;
}

static void bc_close_pair(bc_env *e)
{
    cs_bus_close(e->a);
}

static void refuses(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct {
        const char *url, *node, *says;
    } cases[] = {
        {"memcached://x", "n", "REDIS_URL takes redis://"},
        {"", "bad node!", "NODE_ID is at most"},
        {"", "a-node-id-that-is-far-too-long-to-be-a-name-of-anything-at-all-really", "NODE_ID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_buf err = CS_BUF_INIT(512);
        cs_bus *b = NULL;
        cs_bus_config cfg = {.loop = &loop, .url = cases[i].url, .node = cases[i].node};
        assert_int_equal(cs_bus_open(&b, &cfg, &err), CS_ECONFIG);
        assert_non_null(strstr(err.data, cases[i].says));
        assert_null(b);
        cs_buf_free(&err);
    }
    /* no node id: "local" */
    cs_buf err = CS_BUF_INIT(512);
    cs_bus *b = NULL;
    cs_bus_config cfg = {.loop = &loop};
    assert_int_equal(cs_bus_open(&b, &cfg, &err), 0);
    assert_string_equal(b->node, "local");
    assert_true(cs_bus_ready(b));
    cs_bus_close(b);
    cs_buf_free(&err);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BUS_CONFORMANCE_TESTS,
        cmocka_unit_test(refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
