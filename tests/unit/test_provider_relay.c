/* ConversationRelay's messages (provider/twilio_relay.c): Twilio's and Telnyx's documented
 * examples parse to the right events; what is malformed is refused with its reason; our
 * text, play, sendDigits and end are written as documented. */
#include "testutil.h"

#include <string.h>

#include "core/err.h"
#include "provider/twilio.h"

static cs_pscratch scratch;

static int parse(const char *msg, cs_pevent *ev, enum cs_bad *bad)
{
    static char copy[8192];
    snprintf(copy, sizeof copy, "%s", msg);
    return cs_provider_twilio.parse_relay(copy, strlen(copy), ev, &scratch, bad);
}

static void assert_str(cs_str got, const char *want)
{
    assert_non_null(got.p);
    assert_int_equal(got.n, strlen(want));
    assert_memory_equal(got.p, want, got.n);
}

static void twilio_setup(void **state)
{
    (void)state;
    cs_pevent ev;
    enum cs_bad bad;
    assert_int_equal(
        parse("{\"type\":\"setup\",\"sessionId\":\"VX00000000000000000000000000000000\","
              "\"accountSid\":\"AC00000000000000000000000000000001\",\"parentCallSid\":\"\","
              "\"callSid\":\"CA00000000000000000000000000000002\",\"from\":\"+18005550100\","
              "\"to\":\"+18005550101\",\"forwardedFrom\":\"+18005550102\",\"callType\":\"PSTN\","
              "\"callerName\":\"\",\"direction\":\"inbound\",\"callStatus\":\"RINGING\","
              "\"customParameters\":{\"callReference\":\"bar\"}}",
              &ev, &bad),
        0);
    assert_int_equal(ev.type, CS_PEV_START);
    assert_str(ev.stream_id, "VX00000000000000000000000000000000");
    assert_str(ev.start.stream_id, "VX00000000000000000000000000000000");
    assert_str(ev.start.call_id, "CA00000000000000000000000000000002");
    assert_str(ev.start.account_id, "AC00000000000000000000000000000001");
    assert_str(ev.start.from, "+18005550100");
    assert_str(ev.start.to, "+18005550101");
    assert_int_equal(ev.start.nparams, 1);
    assert_str(ev.start.params[0].name, "callReference");
    assert_str(ev.start.params[0].value, "bar");
}

static void telnyx_setup(void **state)
{
    (void)state;
    cs_pevent ev;
    enum cs_bad bad;
    /* Telnyx's ids are no Twilio SIDs, and it sends more members. */
    assert_int_equal(
        parse("{\"type\":\"setup\",\"sessionId\":\"7a7e6a4f-1d44-4f0c-b5d4-9f9bf3a5c1f2\","
              "\"accountSid\":\"1f1a8b6f-1234-4abc-9def-1234567890ab\","
              "\"callSid\":\"v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ\","
              "\"callControlId\":\"v2:T02\",\"from\":\"+13122010094\",\"to\":\"+13122123456\","
              "\"direction\":\"inbound\",\"callStatus\":\"active\","
              "\"customParameters\":{\"customer_id\":\"customer_123\"}}",
              &ev, &bad),
        0);
    assert_str(ev.start.call_id, "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ");
    assert_str(ev.stream_id, "7a7e6a4f-1d44-4f0c-b5d4-9f9bf3a5c1f2");
}

static void prompt_dtmf_interrupt_error(void **state)
{
    (void)state;
    cs_pevent ev;
    enum cs_bad bad;
    assert_int_equal(parse("{\"type\":\"prompt\",\"voicePrompt\":\"Can you tell me the weather?\","
                           "\"lang\":\"en-US\",\"last\":true}",
                           &ev, &bad),
                     0);
    assert_int_equal(ev.type, CS_PEV_PROMPT);
    assert_str(ev.prompt.text, "Can you tell me the weather?");
    assert_str(ev.prompt.lang, "en-US");
    assert_true(ev.prompt.last);
    assert_int_equal(
        parse("{\"type\":\"prompt\",\"voicePrompt\":\"hello\",\"last\":false}", &ev, &bad), 0);
    assert_false(ev.prompt.last);
    assert_int_equal(parse("{\"type\":\"prompt\",\"voicePrompt\":\"hi\"}", &ev, &bad), 0);
    assert_true(ev.prompt.last); /* a whole utterance when it does not say */

    assert_int_equal(parse("{\"type\":\"dtmf\",\"digit\":\"#\"}", &ev, &bad), 0);
    assert_int_equal(ev.type, CS_PEV_DTMF);
    assert_int_equal(ev.dtmf.digit, '#');

    assert_int_equal(parse("{\"type\":\"interrupt\",\"utteranceUntilInterrupt\":\"Welcome to\","
                           "\"durationUntilInterruptMs\":1820}",
                           &ev, &bad),
                     0);
    assert_int_equal(ev.type, CS_PEV_INTERRUPT);
    assert_str(ev.interrupt.heard, "Welcome to");
    assert_int_equal(ev.interrupt.heard_ms, 1820);
    assert_int_equal(parse("{\"type\":\"interrupt\"}", &ev, &bad), 0);
    assert_str(ev.interrupt.heard, "");
    assert_int_equal(ev.interrupt.heard_ms, 0);

    assert_int_equal(parse("{\"type\":\"error\",\"description\":\"Invalid message\"}", &ev, &bad),
                     0);
    assert_int_equal(ev.type, CS_PEV_PEER_ERROR);
    assert_str(ev.peer_error.description, "Invalid message");
}

static void refusals(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        enum cs_bad why;
    } cases[] = {
        {"not json", CS_BAD_JSON},
        {"[1,2]", CS_BAD_JSON},
        {"{\"type\":\"prompt\",\"voicePrompt\":\"a\"} trailing", CS_BAD_JSON},
        {"{}", CS_BAD_EVENT},
        {"{\"type\":\"bogus\"}", CS_BAD_EVENT},
        {"{\"type\":7}", CS_BAD_EVENT},
        {"{\"type\":\"setup\",\"callSid\":\"CA1\"}", CS_BAD_FIELD},
        {"{\"type\":\"setup\",\"sessionId\":\"\",\"callSid\":\"CA1\"}", CS_BAD_FIELD},
        {"{\"type\":\"setup\",\"sessionId\":\"VX1\",\"callSid\":\"CA1\",\"customParameters\":"
         "{\"a\":1}}",
         CS_BAD_FIELD},
        {"{\"type\":\"prompt\"}", CS_BAD_FIELD},
        {"{\"type\":\"prompt\",\"voicePrompt\":\"a\",\"last\":\"yes\"}", CS_BAD_FIELD},
        {"{\"type\":\"dtmf\",\"digit\":\"12\"}", CS_BAD_FIELD},
        {"{\"type\":\"dtmf\",\"digit\":\"x\"}", CS_BAD_FIELD},
        {"{\"type\":\"interrupt\",\"durationUntilInterruptMs\":-5}", CS_BAD_FIELD},
        {"{\"type\":\"interrupt\",\"durationUntilInterruptMs\":1.5}", CS_BAD_FIELD},
        {"{\"type\":\"interrupt\",\"durationUntilInterruptMs\":\"10\"}", CS_BAD_FIELD},
        {"{\"type\":\"error\",\"description\":false}", CS_BAD_FIELD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_pevent ev;
        enum cs_bad bad = CS_BAD_COUNT;
        int rc = parse(cases[i].msg, &ev, &bad);
        if (rc != CS_EPARSE || bad != cases[i].why)
            fail_msg("%s: rc %d, %s", cases[i].msg, rc, cs_bad_label(bad));
    }
}

static void write_one(const cs_relay_out *m, const char *want)
{
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(cs_provider_twilio.write_relay(&out, m), 0);
    assert_non_null(out.data);
    assert_string_equal(out.data, want);
    cs_buf_free(&out);
}

static void writers(void **state)
{
    (void)state;
    write_one(&(cs_relay_out){.type = CS_RELAY_TEXT,
                              .text = CS_STR("Hello \"you\""),
                              .interruptible = true},
              "{\"type\":\"text\",\"token\":\"Hello \\\"you\\\"\",\"last\":false,"
              "\"interruptible\":true}");
    write_one(&(cs_relay_out){.type = CS_RELAY_TEXT, .text = CS_STR(""), .last = true},
              "{\"type\":\"text\",\"token\":\"\",\"last\":true,\"interruptible\":false}");
    write_one(&(cs_relay_out){.type = CS_RELAY_PLAY,
                              .text = CS_STR("https://x/a.mp3"),
                              .loop = 2,
                              .interruptible = true},
              "{\"type\":\"play\",\"source\":\"https://x/a.mp3\",\"loop\":2,"
              "\"interruptible\":true}");
    write_one(&(cs_relay_out){.type = CS_RELAY_DIGITS, .text = CS_STR("12w#")},
              "{\"type\":\"sendDigits\",\"digits\":\"12w#\"}");
    write_one(&(cs_relay_out){.type = CS_RELAY_END, .text = CS_STR("{\"a\":1}")},
              "{\"type\":\"end\",\"handoffData\":\"{\\\"a\\\":1}\"}");
    write_one(&(cs_relay_out){.type = CS_RELAY_END}, "{\"type\":\"end\"}");
    cs_buf out = CS_BUF_INIT(16);
    assert_int_equal(cs_provider_twilio.write_relay(&out, &(cs_relay_out){.type = 9}), -EINVAL);
    /* Too long for the buffer: nothing half-written is left. */
    assert_true(cs_provider_twilio.write_relay(
                    &out, &(cs_relay_out){.type = CS_RELAY_TEXT, .text = CS_STR("a long token")}) <
                0);
    assert_int_equal(out.len, 0);
    cs_buf_free(&out);
}

static void peer_round_trip(void **state)
{
    (void)state;
    cs_pevent ev, again;
    enum cs_bad bad;
    assert_int_equal(parse("{\"type\":\"interrupt\",\"utteranceUntilInterrupt\":\"caf\\u00e9\","
                           "\"durationUntilInterruptMs\":7}",
                           &ev, &bad),
                     0);
    cs_buf out = CS_BUF_INIT(4096);
    assert_int_equal(cs_twilio_relay_peer_write(&out, &ev), 0);
    cs_pscratch other;
    cs_pscratch_init(&other);
    assert_int_equal(cs_twilio_relay_parse(out.data, out.len, &again, &other, &bad), 0);
    assert_str(again.interrupt.heard, "caf\xc3\xa9");
    assert_int_equal(again.interrupt.heard_ms, 7);
    cs_pscratch_free(&other);
    cs_buf_free(&out);
}

static int teardown(void **state)
{
    (void)state;
    cs_pscratch_free(&scratch);
    return 0;
}

int main(void)
{
    cs_pscratch_init(&scratch);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(twilio_setup),
        cmocka_unit_test(telnyx_setup),
        cmocka_unit_test(prompt_dtmf_interrupt_error),
        cmocka_unit_test(refusals),
        cmocka_unit_test(writers),
        cmocka_unit_test(peer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
