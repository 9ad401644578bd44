#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "provider/twiml.h"

#define DECL   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define STREAM "wss://example.com/twilio/media"

static void assert_twiml(const cs_twiml *t, const char *want)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_write(&out, t), 0);
    assert_string_equal(out.data, want);
    cs_buf_free(&out);
}

/* Refused with `err`, leaving what the buffer held. */
static void assert_refused(const cs_twiml *t, int err)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_buf_puts(&out, "kept"), 0);
    assert_int_equal(cs_twiml_write(&out, t), err);
    assert_string_equal(out.data, "kept");
    cs_buf_free(&out);
}

static void connect_minimal(void **state)
{
    (void)state;
    cs_twiml t = {.connect = true, .stream_url = STREAM};
    assert_twiml(&t, DECL "<Response><Connect><Stream url=\"" STREAM "\"/></Connect></Response>");
    /* <Start>-only fields play no part */
    t.track = "both_tracks";
    t.dial = "+15551234567";
    t.pause_seconds = 30;
    assert_twiml(&t, DECL "<Response><Connect><Stream url=\"" STREAM "\"/></Connect></Response>");
}

static void connect_everything_escaped(void **state)
{
    (void)state;
    const cs_kv params[] = {
        {CS_STR("from"), CS_STR("+15550001111")},
        {CS_STR("a&b"), CS_STR("<tag> \"q\" 'a'")},
        {CS_STR("ctl"), CS_STR("x\x01y\x1fz\x7f\t\n")},
    };
    cs_twiml t = {
        .say = "Hello & welcome, <caller> \"Bob\" O'Neil\x07!",
        .voice = "Polly.Joanna",
        .connect = true,
        .stream_url = STREAM,
        .stream_name = "agent \"1\"",
        .status_callback = "https://example.com/twilio/stream-status?x=1&y=2",
        .params = params,
        .nparams = 3,
    };
    assert_twiml(&t, DECL "<Response>"
                          "<Say voice=\"Polly.Joanna\">Hello &amp; welcome, &lt;caller&gt; "
                          "&quot;Bob&quot; O&apos;Neil!</Say>"
                          "<Connect><Stream url=\"" STREAM "\" name=\"agent &quot;1&quot;\" "
                          "statusCallback=\"https://example.com/twilio/stream-status?x=1&amp;y=2\" "
                          "statusCallbackMethod=\"POST\">"
                          "<Parameter name=\"from\" value=\"+15550001111\"/>"
                          "<Parameter name=\"a&amp;b\" value=\"&lt;tag&gt; &quot;q&quot; "
                          "&apos;a&apos;\"/>"
                          "<Parameter name=\"ctl\" value=\"xyz\x7f\t\n\"/>"
                          "</Stream></Connect></Response>");
}

static void say_without_voice(void **state)
{
    (void)state;
    cs_twiml t = {.say = "Hi", .connect = true, .stream_url = STREAM};
    assert_twiml(&t, DECL "<Response><Say>Hi</Say><Connect><Stream url=\"" STREAM
                          "\"/></Connect></Response>");
}

static void start_then_dial(void **state)
{
    (void)state;
    const cs_kv params[] = {{CS_STR("tenant"), CS_STR("acme")}};
    cs_twiml t = {
        .stream_url = STREAM,
        .stream_name = "rec1",
        .track = "both_tracks",
        .params = params,
        .nparams = 1,
        .dial = "+15551234567",
        .pause_seconds = 60, /* the dial keeps the call going instead */
    };
    assert_twiml(&t, DECL "<Response><Start><Stream url=\"" STREAM
                          "\" name=\"rec1\" track=\"both_tracks\">"
                          "<Parameter name=\"tenant\" value=\"acme\"/></Stream></Start>"
                          "<Dial>+15551234567</Dial></Response>");
}

static void start_then_pause(void **state)
{
    (void)state;
    cs_twiml t = {
        .say = "Recording",
        .stream_url = STREAM,
        .status_callback = "https://example.com/twilio/stream-status",
        .pause_seconds = 3600,
    };
    assert_twiml(&t, DECL "<Response><Say>Recording</Say><Start><Stream url=\"" STREAM
                          "\" statusCallback=\"https://example.com/twilio/stream-status\" "
                          "statusCallbackMethod=\"POST\"/></Start>"
                          "<Pause length=\"3600\"/></Response>");
    static const char *const tracks[] = {"inbound_track", "outbound_track", "both_tracks"};
    for (size_t i = 0; i < 3; i++) {
        cs_twiml tt = {.stream_url = STREAM, .track = tracks[i], .pause_seconds = 1};
        cs_buf out = CS_BUF_INIT(1 << 16);
        assert_int_equal(cs_twiml_write(&out, &tt), 0);
        assert_non_null(strstr(out.data, tracks[i]));
        cs_buf_free(&out);
    }
}

static void refuses_bad_documents(void **state)
{
    (void)state;
    assert_refused(&(cs_twiml){.connect = true}, -EINVAL);
    assert_refused(&(cs_twiml){.connect = true, .stream_url = ""}, -EINVAL);
    assert_refused(&(cs_twiml){.connect = true, .stream_url = STREAM "?token=1"}, -EINVAL);
    assert_refused(&(cs_twiml){.connect = true, .stream_url = STREAM "?"}, -EINVAL);
    /* a <Start> with nothing after it would hang up */
    assert_refused(&(cs_twiml){.stream_url = STREAM}, -EINVAL);
    assert_refused(&(cs_twiml){.stream_url = STREAM, .dial = ""}, -EINVAL);
    assert_refused(&(cs_twiml){.stream_url = STREAM, .track = "both", .pause_seconds = 5}, -EINVAL);
    assert_refused(&(cs_twiml){.stream_url = STREAM, .track = "inbound", .dial = "+1555"}, -EINVAL);
}

/* name + value must stay under 500 characters. */
static void parameter_length_limit(void **state)
{
    (void)state;
    static char value[2 * CS_TWIML_MAX_PARAM];
    memset(value, 'v', sizeof value);
    cs_kv p = {CS_STR("name"), {value, CS_TWIML_MAX_PARAM - 4}};
    cs_twiml t = {.connect = true, .stream_url = STREAM, .params = &p, .nparams = 1};
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_write(&out, &t), 0);
    cs_buf_free(&out);
    p.value.n++;
    assert_refused(&t, -EMSGSIZE);
    /* characters, not bytes: 499 two-byte characters fit */
    for (size_t i = 0; i + 1 < sizeof value; i += 2) memcpy(value + i, "\xc3\xa9", 2);
    p = (cs_kv){CS_STR("n"), {value, 2 * (CS_TWIML_MAX_PARAM - 1)}};
    assert_int_equal(cs_twiml_write(&out, &t), 0);
    cs_buf_free(&out);
    p.value.n += 2;
    assert_refused(&t, -EMSGSIZE);
}

static void parameter_count_limit(void **state)
{
    (void)state;
    static cs_kv params[CS_PEV_MAX_PARAMS + 1];
    for (size_t i = 0; i <= CS_PEV_MAX_PARAMS; i++) params[i] = (cs_kv){CS_STR("n"), CS_STR("v")};
    cs_twiml t = {.connect = true, .stream_url = STREAM, .params = params};
    t.nparams = CS_PEV_MAX_PARAMS;
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_write(&out, &t), 0);
    cs_buf_free(&out);
    t.nparams++;
    assert_refused(&t, -EMSGSIZE);
}

static void full_buffer_leaves_it_as_it_was(void **state)
{
    (void)state;
    cs_twiml t = {.say = "Hello & bye", .connect = true, .stream_url = STREAM};
    cs_buf full = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_write(&full, &t), 0);
    for (size_t max = 4; max < 4 + full.len; max++) {
        cs_buf out = CS_BUF_INIT(max);
        assert_int_equal(cs_buf_puts(&out, "kept"), 0);
        assert_int_equal(cs_twiml_write(&out, &t), -EMSGSIZE);
        assert_string_equal(out.data, "kept");
        cs_buf_free(&out);
    }
    cs_buf_free(&full);
}

static void xml_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } rows[] = {
        {"plain", 5, "plain"},
        {"&<>\"'", 5, "&amp;&lt;&gt;&quot;&apos;"},
        {"a\tb\nc\rd", 7, "a\tb\nc\rd"},
        {"\x01x\x08y\x0bz\x1f", 7, "xyz"},
        {"nul\0byte", 8, "nulbyte"},
        {"\xc3\xa9\x7f", 3, "\xc3\xa9\x7f"},
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        cs_buf out = CS_BUF_INIT(1 << 10);
        assert_int_equal(cs_buf_puts(&out, "["), 0);
        assert_int_equal(cs_xml_escape(&out, rows[i].in, rows[i].n), 0);
        assert_int_equal(out.len, 1 + strlen(rows[i].want));
        assert_memory_equal(out.data + 1, rows[i].want, strlen(rows[i].want));
        cs_buf_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_minimal),
        cmocka_unit_test(connect_everything_escaped),
        cmocka_unit_test(say_without_voice),
        cmocka_unit_test(start_then_dial),
        cmocka_unit_test(start_then_pause),
        cmocka_unit_test(refuses_bad_documents),
        cmocka_unit_test(parameter_length_limit),
        cmocka_unit_test(parameter_count_limit),
        cmocka_unit_test(full_buffer_leaves_it_as_it_was),
        cmocka_unit_test(xml_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
