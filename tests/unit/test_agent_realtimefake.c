/* The Realtime stand-in (tests/unit/realtime_fake.h) refuses what the GA server refuses,
 * so a client speaking the beta shape cannot pass the tests: the beta header, beta
 * fields in session.update, a wrong key, a truncate past the audio sent. Driven by our
 * own WebSocket client on a loop of the test's. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "net/wsconn.h"
#include "realtime_fake.h"

typedef struct client {
    cs_wsconn ws;
    unsigned open, closed;
    int status;
    char codes[512]; /* the error codes received, space-separated */
    unsigned updated, created, truncated;
} client;

static void on_open(cs_wsconn *ws)
{
    ((client *)ws->data)->open = 1;
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    (void)op;
    client *c = ws->data;
    cJSON *j = cJSON_ParseWithLength(data, len);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
    if (type && !strcmp(type, "error")) {
        const char *code =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code"));
        size_t n = strlen(c->codes);
        snprintf(c->codes + n, sizeof c->codes - n, "%s ", code ? code : "?");
    }
    c->updated += type && !strcmp(type, "session.updated");
    c->created += type && !strcmp(type, "session.created");
    c->truncated += type && !strcmp(type, "conversation.item.truncated");
    cJSON_Delete(j);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)code;
    (void)err;
    client *c = ws->data;
    c->closed = 1;
    c->status = ws->http_status;
}

static const cs_wsconn_ops ops = {.on_open = on_open, .on_message = on_message,
                                  .on_close = on_close};

typedef struct rig {
    uv_loop_t loop;
    cs_net *net;
    rt_fake *fake;
} rig;

/* Runs the loop until `*count` reaches `n` (or 5 s). */
static void run_until(rig *r, const unsigned *count, unsigned n)
{
    for (int i = 0; i < 500 && *count < n; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
}

/* Runs the loop for about `ms`. */
static void run_for(rig *r, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
}

static void connect_to(rig *r, client *c, const char *key, const char *extra)
{
    memset(c, 0, sizeof *c);
    char url[256], head[512];
    snprintf(url, sizeof url, "%s?model=gpt-realtime", rt_fake_url(r->fake));
    snprintf(head, sizeof head, "Authorization: Bearer %s\r\n%s", key, extra ? extra : "");
    assert_int_equal(cs_wsconn_connect(&c->ws, r->net, url, head, 1 << 20, &ops, c), 0);
    for (int i = 0; i < 500 && !c->open && !c->closed; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
    assert_true(c->open || c->closed);
}

static void send_text(client *c, const char *text)
{
    assert_int_equal(cs_wsconn_send(&c->ws, CS_WS_OP_TEXT, text, strlen(text)), 0);
}

static void wait_close(rig *r, client *c)
{
    if (!c->closed) cs_wsconn_close(&c->ws, CS_WS_CLOSE_NORMAL, NULL);
    run_until(r, &c->closed, 1);
    assert_true(c->closed);
}

static const char ga_session[] =
    "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"audio\":{\"input\":"
    "{\"format\":{\"type\":\"audio/pcmu\"},\"turn_detection\":{\"type\":\"server_vad\"}},"
    "\"output\":{\"format\":{\"type\":\"audio/pcmu\"},\"voice\":\"alloy\"}}}}";
static const char beta_session[] =
    "{\"type\":\"session.update\",\"session\":{\"modalities\":[\"audio\",\"text\"],"
    "\"input_audio_format\":\"g711_ulaw\",\"output_audio_format\":\"g711_ulaw\","
    "\"voice\":\"alloy\",\"turn_detection\":{\"type\":\"server_vad\"}}}";

static void refuses_beta(void **state)
{
    (void)state;
    rig r;
    uv_loop_init(&r.loop);
    assert_int_equal(cs_net_new(&r.net, &r.loop), 0);
    rt_fake_opts o = {.api_key = "k", .model = "gpt-realtime"};
    assert_int_equal(rt_fake_start(&r.fake, &o), 0);
    client c;

    /* A wrong key: 401. */
    connect_to(&r, &c, "wrong", NULL);
    assert_true(c.closed);
    assert_int_equal(c.status, 401);

    /* The beta header: an error event, then the close. */
    connect_to(&r, &c, "k", "OpenAI-Beta: realtime=v1\r\n");
    run_until(&r, &c.closed, 1);
    assert_non_null(strstr(c.codes, "beta_api_shape_disabled"));

    /* Beta fields in the session: refused, counted; the GA shape: updated. */
    connect_to(&r, &c, "k", NULL);
    run_until(&r, &c.created, 1);
    assert_int_equal(c.created, 1);
    send_text(&c, beta_session);
    send_text(&c, ga_session);
    run_until(&r, &c.updated, 1);
    assert_int_equal(c.updated, 1);
    assert_non_null(strstr(c.codes, "unknown_parameter"));
    rt_fake_stats st;
    rt_fake_stats_get(r.fake, &st);
    assert_int_equal(st.bad_sessions, 1);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.beta_refused, 1);
    assert_int_equal(st.bad_auth, 1);

    /* A truncate within the audio sent of the item is taken; one past it is refused, as
     * is one of an unknown item. */
    rt_fake_reply reply = {.bytes = 800, .text = "Hi."};
    rt_fake_respond(r.fake, &reply);
    run_for(&r, 300);
    char item[32], text[256];
    rt_fake_last_item(r.fake, item, sizeof item);
    static const char truncate[] = "{\"type\":\"conversation.item.truncate\",\"item_id\":\"%s\","
                                   "\"content_index\":0,\"audio_end_ms\":%d}";
    snprintf(text, sizeof text, truncate, item, 100); /* 100 ms of the 100 ms sent */
    send_text(&c, text);
    run_until(&r, &c.truncated, 1);
    assert_int_equal(c.truncated, 1);
    snprintf(text, sizeof text, truncate, item, 101);
    send_text(&c, text);
    snprintf(text, sizeof text, truncate, "item_none", 1);
    send_text(&c, text);
    run_for(&r, 300);
    rt_fake_stats_get(r.fake, &st);
    assert_int_equal(st.bad_truncates, 2);
    assert_int_equal(c.truncated, 1);
    assert_non_null(strstr(c.codes, "invalid_value"));
    wait_close(&r, &c);

    rt_fake_free(r.fake);
    cs_net_close_all(r.net, false);
    while (cs_net_count(r.net)) uv_run(&r.loop, UV_RUN_ONCE);
    cs_net_free(r.net);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_beta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
