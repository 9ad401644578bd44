/* The simulator following TwiML as Twilio does, against canned documents: a Gather heard
 * (speech or keys) posts its action, one that hears nothing goes on with the next verb,
 * Redirect and Dial actions fetch the next document, Hangup and a document's end hang up,
 * a <Connect action> is asked when its stream ends, a loop stops at the limit, and every
 * hop is in the report. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "provider/twiml.h"
#include "sim/sim_int.h"

#define BASE "http://gw.test:8080/twilio/voice?x=1"

static sim_flow_opts o;
static sim_flow f;
static sim_step st;

static int setup(void **state)
{
    (void)state;
    memset(&st, 0, sizeof st);
    o = (sim_flow_opts){.dial_status = "busy", .max_docs = SIM_DOCS_MAX};
    assert_int_equal(sim_flow_init(&f, &o, BASE), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sim_flow_free(&f);
    return 0;
}

/* The document `xml` answers the fetch of `url`; then the next step. */
static void answer(const char *url, const char *xml)
{
    sim_flow_answer(&f, st.method ? st.method : "POST", url, 200, 0, "", xml, strlen(xml));
    sim_flow_next(&f, &st);
}

static void want_fetch(const char *method, const char *url)
{
    assert_int_equal(st.kind, SIM_STEP_FETCH);
    assert_string_equal(st.method, method);
    assert_string_equal(st.url, url);
}

static void want_extra(size_t i, const char *name, const char *value)
{
    assert_true(i < st.nextra);
    assert_true(cs_str_eqz(st.extra[i].name, name));
    assert_true(cs_str_eqz(st.extra[i].value, value));
}

/* The report, parsed (caller frees). */
static cJSON *report(void)
{
    size_t len;
    const char *json = sim_flow_report(&f, &len);
    cJSON *r = cJSON_ParseWithLength(json, len);
    assert_non_null(r);
    assert_true(cJSON_IsArray(r));
    return r;
}

static const char *str(const cJSON *obj, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, k));
    return s ? s : "(none)";
}

static void urls_resolve_as_a_browser_would(void **state)
{
    (void)state;
    static const struct {
        const char *ref, *want;
    } cases[] = {
        {"https://other.test/a?b=1", "https://other.test/a?b=1"},
        {"/twilio/gather", "http://gw.test:8080/twilio/gather"},
        {"gather?t=2", "http://gw.test:8080/twilio/gather?t=2"},
        {"?t=3", "http://gw.test:8080/twilio/voice?t=3"},
        {"", BASE},
        {"a/b://c", "http://gw.test:8080/twilio/a/b://c"}, /* not a scheme: a path */
    };
    char out[SIM_URL_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(sim_url_resolve(out, sizeof out, BASE, cases[i].ref), 0);
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(sim_url_resolve(out, sizeof out, "http://h", "x"), 0);
    assert_string_equal(out, "http://h/x");
    assert_int_equal(sim_url_resolve(out, 10, BASE, "/long/path"), CS_ELIMIT);
}

/* Webhook → Gather heard (speech) → its action → Redirect GET → Say + Hangup. */
static void a_chain_of_documents(void **state)
{
    (void)state;
    o.speech[0] = "I need help";
    o.nspeech = 1;
    answer(BASE, "<Response><Say>Welcome!</Say><Pause length=\"2\"/>"
                 "<Gather input=\"speech dtmf\" action=\"/twilio/gather?t=1\" timeout=\"3\">"
                 "<Say loop=\"2\">Say something</Say><Play>https://a/b.mp3</Play></Gather>"
                 "<Say>not reached</Say></Response>");
    want_fetch("POST", "http://gw.test:8080/twilio/gather?t=1");
    /* the prompts' time: "Welcome!" (8 chars), 2 s, "Say something" (13 chars) twice */
    assert_int_equal(st.wait_ms, 8 * 1000 / 15 + 2000 + 26 * 1000 / 15);
    assert_int_equal(st.nextra, 2);
    want_extra(0, "SpeechResult", "I need help");
    want_extra(1, "Confidence", SIM_CONFIDENCE);

    answer(st.url, "<Response><Redirect method=\"GET\">next?step=2</Redirect></Response>");
    want_fetch("GET", "http://gw.test:8080/twilio/next?step=2");
    assert_int_equal(st.wait_ms, 0);
    assert_int_equal(st.nextra, 0);

    answer(st.url, "<Response><Say>Goodbye</Say><Hangup/><Say>never</Say></Response>");
    assert_int_equal(st.kind, SIM_STEP_END);
    assert_int_equal(st.end, SIM_END_HANGUP);
    assert_int_equal(st.wait_ms, 7 * 1000 / 15);
    sim_flow_next(&f, &st); /* it stays ended */
    assert_int_equal(st.end, SIM_END_HANGUP);
    assert_string_equal(sim_end_name(st.end), "twiml_hangup");
    assert_int_equal(f.n.documents, 3);
    assert_int_equal(f.n.gathers, 1);
    assert_int_equal(f.n.redirects, 1);
    assert_int_equal(f.n.hangups, 1);
    assert_int_equal(f.n.says, 3);

    cJSON *r = report();
    assert_int_equal(cJSON_GetArraySize(r), 3);
    const cJSON *h0 = cJSON_GetArrayItem(r, 0), *h1 = cJSON_GetArrayItem(r, 1),
                *h2 = cJSON_GetArrayItem(r, 2);
    assert_string_equal(str(h0, "url"), BASE);
    assert_string_equal(str(h0, "outcome"), "gather");
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(h0, "verbs"), 2);
    assert_string_equal(str(g, "verb"), "Gather");
    assert_string_equal(str(g, "speech"), "I need help");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(g, "prompts")), 2);
    assert_string_equal(str(h1, "outcome"), "redirect");
    assert_string_equal(str(h2, "outcome"), "hangup");
    assert_string_equal(str(h2, "method"), "GET");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h2, "verbs")), 2);
    cJSON_Delete(r);
}

/* Keys: up to finishOnKey, at most numDigits, and only where input has dtmf; nothing heard
 * goes on with the next verb after the timeout; actionOnEmptyResult posts anyway, to the
 * document itself without an action. */
static void gathers_keys_and_nothing(void **state)
{
    (void)state;
    o.digits[0] = "12#9";
    o.digits[1] = "12345";
    o.digits[2] = "7";
    o.ndigits = 3;
    o.speech[4] = "yes";
    o.nspeech = 5;
    answer(BASE, "<Response><Gather action=\"g\"/></Response>");
    want_fetch("POST", "http://gw.test:8080/twilio/g");
    assert_int_equal(st.nextra, 1);
    want_extra(0, "Digits", "12");
    answer(st.url,
           "<Response><Gather numDigits=\"3\" finishOnKey=\"\" method=\"GET\"/></Response>");
    want_fetch("GET", "http://gw.test:8080/twilio/g"); /* no action: this document */
    want_extra(0, "Digits", "123");
    /* input speech: the keys are not heard; the timeout passes, the next verb follows */
    answer(st.url, "<Response><Gather input=\"speech\" timeout=\"2\" action=\"/x\"/>"
                   "<Gather input=\"dtmf\" actionOnEmptyResult=\"true\"/></Response>");
    want_fetch("POST", "http://gw.test:8080/twilio/g");
    assert_int_equal(st.wait_ms, 2000 + SIM_GATHER_TIMEOUT_S * 1000);
    assert_int_equal(st.nextra, 0);
    assert_int_equal(f.n.gathers_no_input, 2);
    /* the fourth gather hears speech; the fifth nothing, and the document ends */
    answer(st.url, "<Response><Gather input=\"speech\"/><Gather timeout=\"1\"/></Response>");
    want_extra(0, "SpeechResult", "yes");
    answer(st.url, "<Response><Gather timeout=\"1\"/></Response>");
    assert_int_equal(st.kind, SIM_STEP_END);
    assert_int_equal(st.end, SIM_END_DOCUMENT);
    assert_int_equal(st.wait_ms, 1000);
    assert_int_equal(f.n.gathers, 6);
}

/* A redirect loop stops at the limit, reported. */
static void a_loop_stops_at_the_limit(void **state)
{
    (void)state;
    o.max_docs = 5;
    const char *loop = "<Response><Redirect>/twilio/voice</Redirect></Response>";
    answer(BASE, loop);
    for (int i = 1; i < 5; i++) {
        want_fetch("POST", "http://gw.test:8080/twilio/voice");
        answer(st.url, loop);
    }
    assert_int_equal(st.kind, SIM_STEP_END);
    assert_int_equal(st.end, SIM_END_LIMIT);
    assert_int_equal(f.n.limits, 1);
    assert_int_equal(f.n.documents, 5);
    cJSON *r = report();
    assert_int_equal(cJSON_GetArraySize(r), 5);
    const cJSON *last = cJSON_GetArrayItem(r, 4);
    assert_string_equal(str(last, "outcome"), "limit");
    assert_string_equal(str(last, "error"), "5 documents fetched: the limit");
    cJSON_Delete(r);
}

/* A Dial with an action posts DialCallStatus; without one the next verb follows. */
static void dial(void **state)
{
    (void)state;
    answer(BASE, "<Response><Dial action=\"/dialed\" method=\"POST\">+15550009999</Dial>"
                 "</Response>");
    want_fetch("POST", "http://gw.test:8080/dialed");
    want_extra(0, "DialCallStatus", "busy");
    answer(st.url, "<Response><Dial><Number>+15550001234</Number></Dial><Say>after</Say>"
                   "</Response>");
    assert_int_equal(st.kind, SIM_STEP_END);
    assert_int_equal(st.end, SIM_END_DOCUMENT);
    assert_int_equal(f.n.dials, 2);
    cJSON *r = report();
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(r, 1), "verbs");
    assert_string_equal(str(cJSON_GetArrayItem(v, 0), "number"), "+15550001234");
    assert_string_equal(str(cJSON_GetArrayItem(v, 0), "noun"), "Number");
    assert_string_equal(str(cJSON_GetArrayItem(v, 1), "verb"), "Say");
    cJSON_Delete(r);
}

/* A stream: its parameters; when the server ends it, the <Connect action>; when the
 * caller ends it, the call is over; after a <Start>, the next verb. */
static void streams(void **state)
{
    (void)state;
    answer(BASE, "<Response><Connect action=\"/twilio/after\"><Stream url=\"wss://gw/m\">"
                 "<Parameter name=\"a\" value=\"1\"/></Stream></Connect><Hangup/></Response>");
    assert_int_equal(st.kind, SIM_STEP_STREAM);
    assert_string_equal(st.stream.url, "wss://gw/m");
    assert_true(st.stream.connect);
    assert_int_equal(st.stream.nparams, 1);
    assert_true(sim_flow_connect_action(&f));
    sim_flow_stream_end(&f, true, "closed by the server");
    sim_flow_next(&f, &st);
    want_fetch("POST", "http://gw.test:8080/twilio/after");

    answer(st.url, "<Response><Start><Stream url=\"wss://gw/fork\" track=\"both_tracks\"/></Start>"
                   "<Say>hold on</Say><Connect><Stream url=\"wss://gw/m2\"/></Connect></Response>");
    assert_int_equal(st.kind, SIM_STEP_STREAM);
    assert_false(st.stream.connect);
    assert_true(st.stream.both_tracks);
    assert_false(sim_flow_connect_action(&f));
    sim_flow_stream_end(&f, true, NULL);
    sim_flow_next(&f, &st);
    assert_int_equal(st.kind, SIM_STEP_STREAM);
    assert_string_equal(st.stream.url, "wss://gw/m2");
    assert_int_equal(st.wait_ms, 7 * 1000 / 15);
    sim_flow_stream_end(&f, false, NULL);
    sim_flow_next(&f, &st);
    assert_int_equal(st.end, SIM_END_CALLER);
    cJSON *r = report();
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(r, 0), "verbs");
    assert_string_equal(str(cJSON_GetArrayItem(v, 0), "ended_by"), "server");
    assert_string_equal(str(cJSON_GetArrayItem(r, 0), "outcome"), "connect_action");
    assert_string_equal(str(cJSON_GetArrayItem(r, 1), "outcome"), "caller_hangup");
    cJSON_Delete(r);
}

/* HTTP errors, bad XML and what cannot be simulated end the call, said; unknown verbs are
 * skipped and counted. */
static void errors_and_unknown_verbs(void **state)
{
    (void)state;
    answer(BASE, "<Response><Sms>hi</Sms><Enqueue>q</Enqueue><Redirect>/a</Redirect></Response>");
    want_fetch("POST", "http://gw.test:8080/a");
    assert_int_equal(f.n.unknown, 2);
    sim_flow_answer(&f, "POST", st.url, 500, 0, "", "oops", 4);
    sim_flow_next(&f, &st);
    assert_int_equal(st.end, SIM_END_HTTP);
    assert_string_equal(f.error, "http://gw.test:8080/a: HTTP 500");
    cJSON *r = report();
    const cJSON *h = cJSON_GetArrayItem(r, 1);
    assert_int_equal(cJSON_GetObjectItem(h, "status")->valueint, 500);
    assert_string_equal(str(h, "outcome"), "error");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(r, 0), "verbs"), 0), "skipped")));
    cJSON_Delete(r);

    static char long_redirect[SIM_URL_MAX + 64], big[CS_TWIML_MAX_BYTES + 64];
    snprintf(long_redirect, sizeof long_redirect, "<Response><Redirect>/%0*d</Redirect></Response>",
             SIM_URL_MAX, 7);
    snprintf(big, sizeof big, "<Response><Say>%0*d</Say></Response>", CS_TWIML_MAX_BYTES, 7);
    const struct {
        int status, err;
        const char *body;
        sim_end end;
        const char *error;
    } cases[] = {
        {0, -ECONNREFUSED, "", SIM_END_HTTP, BASE ": connection refused"},
        {200, 0, "<Response><Say>hi</Response>", SIM_END_TWIML,
         BASE ": bad TwiML: a closing tag that does not match its element"},
        {200, 0, "<Response><Connect><ConversationRelay url=\"wss://r\"/></Connect></Response>",
         SIM_END_TWIML, "<Connect> without a <Stream url>: not simulated"},
        {200, 0, "<Response><Say>only</Say></Response>", SIM_END_DOCUMENT, ""},
        {200, 0, long_redirect, SIM_END_TWIML, "a URL too long in " BASE},
        {200, 0, big, SIM_END_TWIML, BASE ": bad TwiML: over 64 KB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sim_flow_free(&f);
        assert_int_equal(sim_flow_init(&f, &o, BASE), 0);
        sim_flow_answer(&f, "POST", BASE, cases[i].status, cases[i].err, "connection refused",
                        cases[i].body, strlen(cases[i].body));
        sim_flow_next(&f, &st);
        assert_int_equal(st.kind, SIM_STEP_END);
        assert_int_equal(st.end, cases[i].end);
        assert_string_equal(f.error, cases[i].error);
        cJSON *rr = report();
        assert_int_equal(cJSON_GetArraySize(rr), 1);
        cJSON_Delete(rr);
    }
}

/* A call whose hops outgrow the report keeps those that fit, and says so. */
static void the_report_is_bounded(void **state)
{
    (void)state;
    o.max_docs = 10;
    cs_buf doc = CS_BUF_INIT(1 << 17);
    cs_buf_append(&doc, "<Response>", 10);
    for (int i = 0; i < 60; i++) {
        cs_buf_append(&doc, "<Say>", 5);
        for (int k = 0; k < 100; k++) cs_buf_append(&doc, "\"quoted\" ", 9);
        cs_buf_append(&doc, "</Say>", 6);
    }
    cs_buf_append(&doc, "<Redirect>voice</Redirect></Response>", 38);
    answer(BASE, doc.data);
    for (int i = 1; i < 10; i++) answer(st.url, doc.data);
    assert_int_equal(st.end, SIM_END_LIMIT);
    cJSON *r = report();
    int n = cJSON_GetArraySize(r);
    assert_true(n > 1 && n < 10);
    assert_string_equal(str(cJSON_GetArrayItem(r, n - 1), "error"),
                        "more hops than the report keeps");
    assert_string_equal(str(cJSON_GetArrayItem(r, n - 2), "outcome"), "redirect");
    cJSON_Delete(r);
    cs_buf_free(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_resolve_as_a_browser_would),
        cmocka_unit_test_setup_teardown(a_chain_of_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(gathers_keys_and_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_loop_stops_at_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(dial, setup, teardown),
        cmocka_unit_test_setup_teardown(streams, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_and_unknown_verbs, setup, teardown),
        cmocka_unit_test_setup_teardown(the_report_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
