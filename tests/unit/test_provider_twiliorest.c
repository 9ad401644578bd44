/* Twilio's REST half: each operation built into the exact URL, form body and Basic auth
 * Twilio's 2010-04-01 API takes, requests that cannot be sent refused with a reason,
 * answers and Twilio's error bodies read, E.164 numbers, and the <Dial> a transfer says. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "core/err.h"
#include "provider/rest.h"

#define AC "AC0123456789abcdef0123456789abcdef"
#define CA "CA0123456789abcdef0123456789abcdef"

static const cs_rest_creds creds = {
    .base_url = "https://api.example.test",
    .account_sid = AC,
    .user = AC,
    .pass = "token",
};

typedef struct built {
    cs_rest_http h;
    cs_rest_result res;
    int rc;
} built;

static void build(built *b, const cs_rest_creds *c, const cs_rest_req *q)
{
    memset(b, 0, sizeof *b);
    cs_buf_init(&b->h.url, 8192);
    cs_buf_init(&b->h.body, 65536);
    cs_buf_init(&b->h.auth, 2048);
    b->rc = cs_rest_twilio.build(c, q, &b->h, &b->res);
}

static void unbuild(built *b)
{
    cs_buf_free(&b->h.url);
    cs_buf_free(&b->h.body);
    cs_buf_free(&b->h.auth);
}

static void test_create(void **state)
{
    (void)state;
    built b;
    cs_rest_req q = {.op = CS_REST_CREATE,
                     .to = "+15551230000",
                     .from = "+15559870000",
                     .url = "https://gw.example/twilio/voice?Agent=ivr&x=a b",
                     .status_callback = "https://gw.example/twilio/status",
                     .timeout_s = 25,
                     .machine_detection = true};
    build(&b, &creds, &q);
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.url.data,
                        "https://api.example.test/2010-04-01/Accounts/" AC "/Calls.json");
    assert_string_equal(
        b.h.body.data,
        "To=%2B15551230000&From=%2B15559870000&Url=https%3A%2F%2Fgw.example%2Ftwilio%2Fvoice%3F"
        "Agent%3Divr%26x%3Da+b&Method=POST&StatusCallback=https%3A%2F%2Fgw.example%2Ftwilio%2F"
        "status&StatusCallbackMethod=POST&StatusCallbackEvent=initiated&StatusCallbackEvent="
        "ringing&StatusCallbackEvent=answered&StatusCallbackEvent=completed&Timeout=25&"
        "MachineDetection=Enable");
    /* base64("AC…:token") */
    assert_string_equal(b.h.auth.data, "Authorization: Basic "
                                       "QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2tlbg==");
    unbuild(&b);
}

static void test_updates(void **state)
{
    (void)state;
    built b;
    build(&b, &creds, &(cs_rest_req){.op = CS_REST_HANGUP, .call_sid = CA});
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.url.data,
                        "https://api.example.test/2010-04-01/Accounts/" AC "/Calls/" CA ".json");
    assert_string_equal(b.h.body.data, "Status=completed");
    unbuild(&b);

    build(&b, &creds, &(cs_rest_req){.op = CS_REST_TWIML, .call_sid = CA, .twiml = "<Response/>"});
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.body.data, "Twiml=%3CResponse%2F%3E");
    unbuild(&b);

    build(&b, &creds, &(cs_rest_req){.op = CS_REST_URL, .call_sid = CA, .url = "https://x/y"});
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.body.data, "Url=https%3A%2F%2Fx%2Fy&Method=POST");
    unbuild(&b);

    build(&b, &creds,
          &(cs_rest_req){.op = CS_REST_STREAM_START,
                         .call_sid = CA,
                         .stream_url = "wss://fork.example/s",
                         .stream_name = "fork1",
                         .track = "both_tracks"});
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.url.data, "https://api.example.test/2010-04-01/Accounts/" AC
                                      "/Calls/" CA "/Streams.json");
    assert_string_equal(b.h.body.data,
                        "Url=wss%3A%2F%2Ffork.example%2Fs&Name=fork1&Track=both_tracks");
    unbuild(&b);

    build(&b, &creds,
          &(cs_rest_req){.op = CS_REST_STREAM_STOP, .call_sid = CA, .stream_name = "fork1"});
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.h.url.data, "https://api.example.test/2010-04-01/Accounts/" AC
                                      "/Calls/" CA "/Streams/fork1.json");
    assert_string_equal(b.h.body.data, "Status=stopped");
    unbuild(&b);
}

static void test_refused(void **state)
{
    (void)state;
    built b;
    /* No call SID, a bad stream name (it goes into the path), a bad track, no To. */
    const cs_rest_req bad[] = {
        {.op = CS_REST_HANGUP, .call_sid = "CA123"},
        {.op = CS_REST_STREAM_STOP, .call_sid = CA, .stream_name = "../x"},
        {.op = CS_REST_STREAM_STOP, .call_sid = CA, .stream_name = "a/b"},
        {.op = CS_REST_STREAM_START, .call_sid = CA, .stream_url = "wss://x", .track = "left"},
        {.op = CS_REST_CREATE, .from = "+1555", .url = "https://x"},
        {.op = CS_REST_TWIML, .call_sid = CA, .twiml = ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        build(&b, &creds, &bad[i]);
        assert_int_equal(b.rc, -EINVAL);
        assert_true(b.res.message[0]);
        unbuild(&b);
    }
    cs_rest_creds nokey = creds;
    nokey.pass = "";
    build(&b, &nokey, &(cs_rest_req){.op = CS_REST_HANGUP, .call_sid = CA});
    assert_int_equal(b.rc, -EINVAL);
    assert_non_null(strstr(b.res.message, "credentials"));
    unbuild(&b);
    cs_rest_creds noac = creds;
    noac.account_sid = "SK0123456789abcdef0123456789abcdef";
    build(&b, &noac, &(cs_rest_req){.op = CS_REST_HANGUP, .call_sid = CA});
    assert_int_equal(b.rc, -EINVAL);
    unbuild(&b);
}

static void test_parse(void **state)
{
    (void)state;
    cs_rest_result res = {0};
    const char *ok = "{\"sid\":\"" CA "\",\"status\":\"queued\",\"to\":\"+1555\"}";
    assert_int_equal(cs_rest_twilio.parse(CS_REST_CREATE, 201, ok, strlen(ok), &res), 0);
    assert_string_equal(res.sid, CA);
    assert_string_equal(res.status, "queued");
    assert_int_equal(res.http_status, 201);

    memset(&res, 0, sizeof res);
    const char *err = "{\"code\": 21211, \"message\": \"The 'To' number +1 is not a valid phone "
                      "number.\", \"more_info\": \"https://www.twilio.com/docs/errors/21211\", "
                      "\"status\": 400}";
    assert_int_equal(cs_rest_twilio.parse(CS_REST_CREATE, 400, err, strlen(err), &res),
                     CS_EBACKEND);
    assert_int_equal(res.code, 21211);
    assert_int_equal(res.http_status, 400);
    assert_non_null(strstr(res.message, "not a valid phone number"));
    assert_string_equal(res.more_info, "https://www.twilio.com/docs/errors/21211");

    memset(&res, 0, sizeof res);
    assert_int_equal(cs_rest_twilio.parse(CS_REST_HANGUP, 502, "<html>", 6, &res), CS_EBACKEND);
    assert_int_equal(res.code, 0);
    assert_string_equal(res.message, "HTTP 502 without Twilio's error");

    memset(&res, 0, sizeof res);
    assert_int_equal(cs_rest_twilio.parse(CS_REST_HANGUP, 200, "{}", 2, &res), CS_EBACKEND);
    assert_non_null(strstr(res.message, "no sid"));
}

static void test_e164(void **state)
{
    (void)state;
    assert_true(cs_e164_valid("+15551230000"));
    assert_true(cs_e164_valid("+123456789012345"));
    assert_false(cs_e164_valid("+1234567890123456")); /* 16 digits */
    assert_false(cs_e164_valid("15551230000"));
    assert_false(cs_e164_valid("+05551230000"));
    assert_false(cs_e164_valid("+1555 123"));
    assert_false(cs_e164_valid("+"));
    assert_false(cs_e164_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),  cmocka_unit_test(test_updates),
        cmocka_unit_test(test_refused), cmocka_unit_test(test_parse),
        cmocka_unit_test(test_e164),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
