/* Agents' transfers and hang-ups through call control (call/talk.h: cs_agent_transfer,
 * cs_agent_end_call), against a fake of Twilio's REST API: refused without call control,
 * for a number that is not E.164, or with a request waiting; nothing sent while the agent
 * talks; a request dropped when the stream ends first; sent once quiet, its result given
 * to the agent and recorded as a `control` event; one that cannot be built reported and
 * recorded too; end_call without call control closing our side as before, and with it
 * hanging up at the provider. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "call/control.h"
#include "call/talk.h"
#include "core/err.h"
#include "twilio_rest_fake.h"

#define AC      "AC0123456789abcdef0123456789abcdef"
#define CA1     "CA0123456789abcdef0123456789abcd01"
#define CA2     "CA0123456789abcdef0123456789abcd02"
#define TOKEN   "secret-token"
#define WAIT_MS 20000

/* ---- an agent that only notes how its requests ended ---- */

static struct {
    int results, err;
    char message[CS_REST_MESSAGE_MAX + 1];
} got;

static int ta_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s, (void)env;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void ta_close(cs_agent *a)
{
    cs_agent_closed(a);
    free(a);
}

static const cs_agent_ops test_agent = {.name = "t", .open = ta_open, .close = ta_close};

static void on_result(cs_agent *a, int err, const char *message)
{
    (void)a;
    got.results++;
    got.err = err;
    snprintf(got.message, sizeof got.message, "%s", message);
}

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return &test_agent;
}

/* ---- the rig: calls with that agent, call control on the fake ---- */

typedef struct rig {
    uv_loop_t loop;
    cs_fetch *fetch;
    cs_control *ctl;
    twilio_fake *fake;
    cs_calls calls;
    int closes;
    cs_stream *open; /* the stream the sink ends on close */
    char events[4][512];
    int nevents;
} rig;

static void on_event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                     int64_t at_ms, const char *detail)
{
    (void)call, (void)s, (void)at_ms;
    rig *g = o;
    if (type == CS_EVENT_CONTROL && g->nevents < 4)
        snprintf(g->events[g->nevents++], sizeof g->events[0], "%s", detail ? detail : "");
}

static int sink_media(void *data, const uint8_t *ulaw, size_t n)
{
    (void)data, (void)ulaw, (void)n;
    return 0;
}

static int sink_mark(void *data, cs_str name)
{
    (void)data, (void)name;
    return 0;
}

static int sink_clear(void *data)
{
    (void)data;
    return 0;
}

static void sink_close(void *data)
{
    rig *g = data;
    g->closes++;
    cs_stream *s = g->open;
    g->open = NULL;
    if (s) cs_stream_end(s, CS_END_HANGUP);
}

static const twilio_fake_reply script[] = {
    {TWILIO_FAKE_ERROR, 400, 21220, "Call is not in-progress. Cannot redirect.", "2B15550009999"},
};

static rig *rig_new(bool control)
{
    rig *g = calloc(1, sizeof *g);
    uv_loop_init(&g->loop);
    assert_int_equal(cs_fetch_open(&g->fetch, &g->loop), 0);
    twilio_fake_opts fo = {
        .account_sid = AC, .user = AC, .pass = TOKEN, .script = script, .nscript = 1};
    assert_int_equal(twilio_fake_start(&g->fake, &fo), 0);
    cs_control_opts o = {
        .fetch = g->fetch,
        .rest = cs_rest_find("twilio"),
        .creds = {.base_url = twilio_fake_url(g->fake),
                  .account_sid = AC,
                  .user = AC,
                  .pass = TOKEN},
        .calls = &g->calls,
    };
    assert_int_equal(cs_control_new(&g->ctl, &g->loop, &o), 0);
    cs_calls_init(&g->calls, NULL);
    g->calls.talk.agent_for = agent_for;
    g->calls.talk.control = control ? g->ctl : NULL;
    cs_call_observer ob = {.event = on_event, .data = g};
    assert_int_equal(cs_calls_observe(&g->calls, &ob), 0);
    memset(&got, 0, sizeof got);
    return g;
}

static void rig_free(rig *g)
{
    cs_calls_free(&g->calls, CS_END_SHUTDOWN);
    cs_control_free(g->ctl);
    cs_fetch_close(g->fetch);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g->loop), 0);
    twilio_fake_free(g->fake);
    free(g);
}

static cs_stream *begin(rig *g, const char *call_sid, const char *stream_sid)
{
    cs_pevent start = {
        .type = CS_PEV_START,
        .seq = 1,
        .stream_id = cs_str_of(stream_sid),
        .start = {.account_id = CS_STR(AC),
                  .call_id = cs_str_of(call_sid),
                  .stream_id = cs_str_of(stream_sid),
                  .tracks = CS_TRACK_BIT(CS_TRACK_INBOUND),
                  .encoding = CS_STR("audio/x-mulaw"),
                  .sample_rate = 8000,
                  .channels = 1},
    };
    cs_stream_sink sink = {sink_media, sink_mark, sink_clear, sink_close, g, NULL};
    cs_stream *s = NULL;
    assert_int_equal(cs_stream_begin(&g->calls, &start, CS_MODE_TWO_WAY, false, &sink, g, NULL, &s),
                     0);
    assert_non_null(s->agent);
    g->open = s;
    return s;
}

static unsigned requests(rig *g)
{
    twilio_fake_stats st;
    twilio_fake_stats_get(g->fake, &st);
    return st.requests;
}

static bool has_result(void *data)
{
    (void)data;
    return got.results > 0;
}

static bool has_event(void *data)
{
    return ((rig *)data)->nevents > 0;
}

/* Ticks the calls (which send what is due) and runs the loop until a result came. */
static bool tick_until_result(rig *g)
{
    cs_calls_tick(&g->calls);
    return tu_run_until(&g->loop, has_result, NULL, WAIT_MS);
}

/* ---- tests ---- */

static void refused_without_control(void **state)
{
    (void)state;
    rig *g = rig_new(false);
    cs_stream *s = begin(g, CA1, "MZ1");
    cs_agent *a = s->agent;
    assert_false(cs_agent_can_control(a));
    assert_int_equal(cs_agent_transfer(a, "+15551230001", NULL, on_result), CS_ESTATE);
    /* end_call closes our side, once what was said has played: as before. */
    assert_int_equal(cs_agent_end_call(a, "bye"), 0);
    assert_int_equal(g->closes, 0); /* on the next tick, never inside the call */
    cs_calls_tick(&g->calls);
    assert_int_equal(g->closes, 1);
    assert_int_equal(requests(g), 0);
    assert_int_equal(g->nevents, 0);
    rig_free(g);
}

static void transfer_waits_for_quiet(void **state)
{
    (void)state;
    rig *g = rig_new(true);
    cs_stream *s = begin(g, CA1, "MZ1");
    cs_agent *a = s->agent;
    assert_true(cs_agent_can_control(a));
    assert_int_equal(cs_agent_transfer(a, "5551230001", NULL, on_result), -EINVAL);
    assert_int_equal(cs_agent_transfer(a, "+1555123000100000", NULL, on_result), -EINVAL);
    /* The agent is talking: nothing goes. */
    uint32_t utt;
    assert_int_equal(cs_stream_say_begin(s, &utt), 0);
    assert_int_equal(cs_agent_transfer(a, "+15551230001", "to sales", on_result), 0);
    assert_int_equal(cs_agent_transfer(a, "+15551230002", NULL, on_result), CS_ESTATE);
    for (int i = 0; i < 5; i++) cs_calls_tick(&g->calls);
    uv_run(&g->loop, UV_RUN_NOWAIT);
    assert_int_equal(requests(g), 0);
    /* The stream ends first: the request is dropped, never sent, never answered. */
    cs_stream_end(s, CS_END_HANGUP);
    g->open = NULL;
    uv_run(&g->loop, UV_RUN_NOWAIT);
    assert_int_equal(requests(g), 0);
    assert_int_equal(got.results, 0);
    assert_int_equal(g->nevents, 0);

    /* Quiet: sent on the tick, its result to the agent and in an event. */
    s = begin(g, CA2, "MZ2");
    a = s->agent;
    assert_int_equal(cs_agent_transfer(a, "+15551230001", "to sales", on_result), 0);
    assert_true(tick_until_result(g));
    assert_int_equal(got.err, 0);
    assert_int_equal(requests(g), 1);
    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536);
    assert_true(twilio_fake_request(g->fake, 0, &path, &body));
    assert_non_null(strstr(path.data, "/Calls/" CA2 ".json"));
    assert_non_null(strstr(body.data, "%3CDial%3E%2B15551230001%3C%2FDial%3E"));
    cs_buf_free(&path);
    cs_buf_free(&body);
    assert_int_equal(g->nevents, 1);
    assert_string_equal(g->events[0],
                        "{\"action\":\"redirect_twiml\",\"by\":\"agent:t\",\"to\":"
                        "\"+15551230001\",\"reason\":\"to sales\",\"state\":\"done\"}");
    /* Refused: the provider's message to the agent, and a failed event. */
    memset(&got, 0, sizeof got);
    assert_int_equal(cs_agent_transfer(a, "+15550009999", NULL, on_result), 0);
    assert_true(tick_until_result(g));
    assert_int_equal(got.err, CS_EBACKEND);
    assert_string_equal(got.message, "Call is not in-progress. Cannot redirect.");
    assert_int_equal(g->nevents, 2);
    assert_non_null(
        strstr(g->events[1], "\"state\":\"failed\",\"http_status\":400,\"code\":21220"));
    rig_free(g);
}

static void not_built_is_reported(void **state)
{
    (void)state;
    rig *g = rig_new(true);
    cs_stream *s = begin(g, "CA1", "MZ1"); /* not a call SID the provider takes */
    assert_int_equal(cs_agent_transfer(s->agent, "+15551230001", NULL, on_result), 0);
    assert_int_equal(got.results, 0);
    cs_calls_tick(&g->calls);
    assert_int_equal(got.results, 1);
    assert_int_equal(got.err, -EINVAL);
    assert_string_equal(got.message, "not sent: not a call SID");
    assert_int_equal(requests(g), 0);
    assert_int_equal(g->nevents, 1);
    assert_non_null(
        strstr(g->events[0], "\"state\":\"failed\",\"message\":\"not sent: not a call SID\""));
    rig_free(g);
}

static void end_call_hangs_up_at_the_provider(void **state)
{
    (void)state;
    rig *g = rig_new(true);
    cs_stream *s = begin(g, CA1, "MZ1");
    assert_int_equal(cs_agent_end_call(s->agent, "end_call"), 0);
    assert_int_equal(g->closes, 0);
    cs_calls_tick(&g->calls); /* quiet: sent */
    assert_true(tu_run_until(&g->loop, has_event, g, WAIT_MS));
    assert_int_equal(requests(g), 1);
    cs_buf path = CS_BUF_INIT(4096), body = CS_BUF_INIT(65536);
    assert_true(twilio_fake_request(g->fake, 0, &path, &body));
    assert_non_null(strstr(path.data, "/Calls/" CA1 ".json"));
    assert_string_equal(body.data, "Status=completed");
    cs_buf_free(&path);
    cs_buf_free(&body);
    assert_int_equal(g->closes, 1); /* the hang-up closed our side */
    assert_string_equal(g->events[0], "{\"action\":\"hangup\",\"by\":\"agent:t\",\"reason\":"
                                      "\"end_call\",\"state\":\"done\"}");
    rig_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_without_control),
        cmocka_unit_test(transfer_waits_for_quiet),
        cmocka_unit_test(not_built_is_reported),
        cmocka_unit_test(end_call_hangs_up_at_the_provider),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
