/* Call control against a fake of Twilio's REST API (tests/unit/twilio_rest_fake.h): a call
 * placed with exactly the form fields Twilio takes, updates and streams, Twilio's errors
 * handed back with their code and message, wrong credentials, a request that times out
 * (not retried: a second call must never be placed), a refused connection retried until
 * the server is there, and requests in flight when the control is freed. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call/control.h"
#include "core/err.h"
#include "twilio_rest_fake.h"

#define AC      "AC0123456789abcdef0123456789abcdef"
#define CA      "CA0123456789abcdef0123456789abcdef"
#define TOKEN   "secret-token"
#define WAIT_MS 20000

typedef struct rig {
    uv_loop_t loop;
    cs_fetch *fetch;
    cs_control *ctl;
    twilio_fake *fake;
    char url[64];
    /* the last result */
    int calls, err;
    cs_rest_result res;
} rig;

static void on_result(void *data, int err, const cs_rest_result *res)
{
    rig *g = data;
    g->calls++;
    g->err = err;
    g->res = *res;
}

static bool answered(void *data)
{
    return ((rig *)data)->calls > 0;
}

static void open_control(rig *g, const char *url, const char *pass, uint32_t timeout_ms)
{
    snprintf(g->url, sizeof g->url, "%s", url);
    cs_control_opts o = {
        .fetch = g->fetch,
        .rest = cs_rest_find("twilio"),
        .creds = {.base_url = g->url, .account_sid = AC, .user = AC, .pass = pass},
        .timeout_ms = timeout_ms,
        .retry_min_ms = 50,
        .retry_max_ms = 200,
    };
    assert_int_equal(cs_control_new(&g->ctl, &g->loop, &o), 0);
}

static rig *rig_new(const twilio_fake_reply *script, size_t n, const char *pass)
{
    rig *g = calloc(1, sizeof *g);
    uv_loop_init(&g->loop);
    assert_int_equal(cs_fetch_open(&g->fetch, &g->loop), 0);
    twilio_fake_opts fo = {
        .account_sid = AC, .user = AC, .pass = TOKEN, .script = script, .nscript = n};
    assert_int_equal(twilio_fake_start(&g->fake, &fo), 0);
    open_control(g, twilio_fake_url(g->fake), pass ? pass : TOKEN, 0);
    return g;
}

static void rig_free(rig *g)
{
    cs_control_free(g->ctl);
    cs_fetch_close(g->fetch);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g->loop), 0);
    if (g->fake) twilio_fake_free(g->fake);
    free(g);
}

static void send_and_wait(rig *g, const cs_rest_req *q)
{
    g->calls = 0;
    char why[CS_REST_MESSAGE_MAX + 1];
    assert_int_equal(cs_control_send(g->ctl, q, on_result, g, NULL, why), 0);
    assert_int_equal(g->calls, 0); /* never from inside send */
    assert_true(tu_run_until(&g->loop, answered, g, WAIT_MS));
    assert_int_equal(g->calls, 1);
}

static const cs_rest_req create_req = {
    .op = CS_REST_CREATE,
    .to = "+15551230000",
    .from = "+15559870000",
    .url = "http://gw.example/twilio/voice",
    .status_callback = "http://gw.example/twilio/status",
};

static void test_create(void **state)
{
    (void)state;
    rig *g = rig_new(NULL, 0, NULL);
    send_and_wait(g, &create_req);
    assert_int_equal(g->err, 0);
    assert_true(strncmp(g->res.sid, "CA", 2) == 0 && strlen(g->res.sid) == 34);
    assert_string_equal(g->res.status, "queued");
    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536);
    assert_true(twilio_fake_request(g->fake, 0, &path, &body));
    assert_string_equal(path.data, "/2010-04-01/Accounts/" AC "/Calls.json");
    assert_string_equal(body.data,
                        "To=%2B15551230000&From=%2B15559870000&Url=http%3A%2F%2Fgw.example%2F"
                        "twilio%2Fvoice&Method=POST&StatusCallback=http%3A%2F%2Fgw.example%2F"
                        "twilio%2Fstatus&StatusCallbackMethod=POST&StatusCallbackEvent=initiated&"
                        "StatusCallbackEvent=ringing&StatusCallbackEvent=answered&"
                        "StatusCallbackEvent=completed");
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.calls_created, 1);
    assert_int_equal(cs_control_stats_get(g->ctl)->requests[CS_REST_CREATE], 1);
    cs_buf_free(&path);
    cs_buf_free(&body);
    rig_free(g);
}

static void test_updates(void **state)
{
    (void)state;
    rig *g = rig_new(NULL, 0, NULL);
    send_and_wait(g, &(cs_rest_req){.op = CS_REST_HANGUP, .call_sid = CA});
    assert_int_equal(g->err, 0);
    assert_string_equal(g->res.status, "completed");
    g->calls = 0;
    assert_int_equal(cs_control_transfer(g->ctl, CA, "+15550001111", on_result, g, NULL, NULL), 0);
    assert_true(tu_run_until(&g->loop, answered, g, WAIT_MS));
    assert_int_equal(g->err, 0);
    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536);
    assert_true(twilio_fake_request(g->fake, 1, &path, &body));
    assert_string_equal(path.data, "/2010-04-01/Accounts/" AC "/Calls/" CA ".json");
    assert_string_equal(body.data, "Twiml=%3C%3Fxml+version%3D%221.0%22+encoding%3D%22UTF-8%22%3F"
                                   "%3E%3CResponse%3E%3CDial%3E%2B15550001111%3C%2FDial%3E%3C%2F"
                                   "Response%3E");
    send_and_wait(g, &(cs_rest_req){.op = CS_REST_STREAM_START,
                                    .call_sid = CA,
                                    .stream_url = "wss://fork.example/a",
                                    .stream_name = "fork"});
    assert_int_equal(g->err, 0);
    assert_true(strncmp(g->res.sid, "MZ", 2) == 0);
    assert_string_equal(g->res.status, "in-progress");
    send_and_wait(g,
                  &(cs_rest_req){.op = CS_REST_STREAM_STOP, .call_sid = CA, .stream_name = "fork"});
    assert_int_equal(g->err, 0);
    assert_string_equal(g->res.status, "stopped");
    assert_true(twilio_fake_request(g->fake, 3, &path, &body));
    assert_string_equal(path.data, "/2010-04-01/Accounts/" AC "/Calls/" CA "/Streams/fork.json");
    assert_string_equal(body.data, "Status=stopped");
    cs_buf_free(&path);
    cs_buf_free(&body);
    rig_free(g);
}

static void test_errors(void **state)
{
    (void)state;
    static const twilio_fake_reply script[] = {
        {TWILIO_FAKE_ERROR, 400, 21211,
         "The 'To' number +15551230000 is not a valid phone number."},
        {TWILIO_FAKE_ERROR, 404, 20404, "The requested resource was not found"},
        {TWILIO_FAKE_ERROR, 429, 20429, "Too Many Requests"},
        {TWILIO_FAKE_ERROR, 500, 20500, "Internal Server Error"},
    };
    static const long codes[] = {21211, 20404, 20429, 20500};
    static const int statuses[] = {400, 404, 429, 500};
    rig *g = rig_new(script, 4, NULL);
    for (size_t i = 0; i < 4; i++) {
        send_and_wait(g, &create_req);
        assert_int_equal(g->err, CS_EBACKEND);
        assert_int_equal(g->res.http_status, statuses[i]);
        assert_int_equal(g->res.code, codes[i]);
        assert_string_equal(g->res.message, script[i].message);
        assert_non_null(strstr(g->res.more_info, "twilio.com/docs/errors/"));
    }
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.requests, 4); /* none retried */
    assert_int_equal(cs_control_stats_get(g->ctl)->failed, 4);
    rig_free(g);
}

static void test_bad_auth(void **state)
{
    (void)state;
    rig *g = rig_new(NULL, 0, "wrong");
    send_and_wait(g, &create_req);
    assert_int_equal(g->err, CS_EBACKEND);
    assert_int_equal(g->res.http_status, 401);
    assert_int_equal(g->res.code, 20003);
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.bad_auth, 1);
    assert_int_equal(st.calls_created, 0);
    rig_free(g);
}

/* A create that times out after it was sent may have placed the call: it is not sent again. */
static void test_timeout_not_retried(void **state)
{
    (void)state;
    static const twilio_fake_reply script[] = {{TWILIO_FAKE_STALL, 0, 0, NULL}};
    rig *g = rig_new(script, 1, NULL);
    cs_control_free(g->ctl);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    open_control(g, twilio_fake_url(g->fake), TOKEN, 300);
    send_and_wait(g, &create_req);
    assert_int_equal(g->err, -ETIMEDOUT);
    assert_int_equal(g->res.http_status, 0);
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(cs_control_stats_get(g->ctl)->retries, 0);
    rig_free(g);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static bool retried(void *data)
{
    rig *g = data;
    return cs_control_stats_get(g->ctl)->retries > 0 || g->calls > 0;
}

/* Refused: nothing was sent, so it is tried again, and reaches the server once it is up. */
static void test_refused_retried(void **state)
{
    (void)state;
    rig *g = calloc(1, sizeof *g);
    uv_loop_init(&g->loop);
    assert_int_equal(cs_fetch_open(&g->fetch, &g->loop), 0);
    int port = free_port();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    open_control(g, url, TOKEN, 0);
    assert_int_equal(cs_control_send(g->ctl, &create_req, on_result, g, NULL, NULL), 0);
    assert_true(tu_run_until(&g->loop, retried, g, WAIT_MS));
    assert_int_equal(g->calls, 0);
    twilio_fake_opts fo = {.account_sid = AC, .user = AC, .pass = TOKEN, .port = port};
    assert_int_equal(twilio_fake_start(&g->fake, &fo), 0);
    assert_true(tu_run_until(&g->loop, answered, g, WAIT_MS));
    assert_int_equal(g->err, 0);
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.calls_created, 1);
    rig_free(g);
}

/* Refused every time: the error after the retries. */
static void test_refused_gives_up(void **state)
{
    (void)state;
    rig *g = calloc(1, sizeof *g);
    uv_loop_init(&g->loop);
    assert_int_equal(cs_fetch_open(&g->fetch, &g->loop), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", free_port());
    open_control(g, url, TOKEN, 0);
    send_and_wait(g, &create_req);
    assert_int_equal(g->err, -ECONNREFUSED);
    assert_int_equal(cs_control_stats_get(g->ctl)->retries, CS_CONTROL_RETRIES);
    assert_non_null(strstr(g->res.message, "unreachable"));
    rig_free(g);
}

static void test_refused_before_sending(void **state)
{
    (void)state;
    rig *g = rig_new(NULL, 0, NULL);
    char why[CS_REST_MESSAGE_MAX + 1] = "";
    cs_rest_req q = {.op = CS_REST_HANGUP, .call_sid = "nope"};
    assert_int_equal(cs_control_send(g->ctl, &q, on_result, g, NULL, why), -EINVAL);
    assert_string_equal(why, "not a call SID");
    assert_int_equal(cs_control_transfer(g->ctl, CA, "", on_result, g, NULL, why), -EINVAL);
    assert_int_equal(cs_control_pending(g->ctl), 0);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    assert_int_equal(g->calls, 0);
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    assert_int_equal(st.requests, 0);
    rig_free(g);
}

static void count_result(void *data, int err, const cs_rest_result *res)
{
    (void)res;
    rig *g = data;
    g->calls++;
    if (err == CS_ECLOSED) g->err++;
}

/* More than CS_CONTROL_MAX_PENDING in flight: refused at once, counted; the rest end
 * with the control. */
static void test_full(void **state)
{
    (void)state;
    rig *g = rig_new(NULL, 0, NULL);
    for (int i = 0; i < CS_CONTROL_MAX_PENDING; i++)
        assert_int_equal(cs_control_send(g->ctl, &create_req, count_result, g, NULL, NULL), 0);
    assert_int_equal(cs_control_send(g->ctl, &create_req, count_result, g, NULL, NULL), CS_EFULL);
    assert_int_equal(cs_control_stats_get(g->ctl)->full, 1);
    assert_int_equal(cs_control_pending(g->ctl), CS_CONTROL_MAX_PENDING);
    cs_control_free(g->ctl);
    g->ctl = NULL;
    assert_int_equal(g->calls, CS_CONTROL_MAX_PENDING);
    assert_int_equal(g->err, CS_CONTROL_MAX_PENDING); /* every one CS_ECLOSED */
    rig_free(g);
}

/* Freed with a request in flight: its callback says so, once. */
static void test_free_in_flight(void **state)
{
    (void)state;
    static const twilio_fake_reply script[] = {{TWILIO_FAKE_STALL, 0, 0, NULL}};
    rig *g = rig_new(script, 1, NULL);
    assert_int_equal(cs_control_send(g->ctl, &create_req, on_result, g, NULL, NULL), 0);
    assert_int_equal(cs_control_pending(g->ctl), 1);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    cs_control_free(g->ctl);
    g->ctl = NULL;
    assert_int_equal(g->calls, 1);
    assert_int_equal(g->err, CS_ECLOSED);
    rig_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_updates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bad_auth),
        cmocka_unit_test(test_timeout_not_retried),
        cmocka_unit_test(test_refused_retried),
        cmocka_unit_test(test_refused_gives_up),
        cmocka_unit_test(test_refused_before_sending),
        cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
