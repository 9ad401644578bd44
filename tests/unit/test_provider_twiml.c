#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "provider/twiml.h"
#include "xmlcheck.h"

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
                          "<Parameter name=\"ctl\" value=\"xyz\x7f&#9;&#10;\"/>"
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
    /* a byte that is not UTF-8 counts as the one character it becomes */
    memset(value, 0xff, sizeof value);
    assert_true(cs_twiml_param_fits(CS_STR("n"), (cs_str){value, CS_TWIML_MAX_PARAM - 1}));
    assert_false(cs_twiml_param_fits(CS_STR("n"), (cs_str){value, CS_TWIML_MAX_PARAM}));
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

#define FFFD "\xef\xbf\xbd"

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
        {"a\tb\nc\rd", 7, "a&#9;b&#10;c&#13;d"},
        {"\x01x\x08y\x0bz\x1f", 7, "xyz"},
        {"nul\0byte", 8, "nulbyte"},
        {"\xc3\xa9\x7f", 3, "\xc3\xa9\x7f"},
        {"", 0, ""},
        /* not UTF-8: each byte becomes U+FFFD */
        {"a\x80" "b", 3, "a" FFFD "b"},
        {"\xff\xfe", 2, FFFD FFFD},
        {"\xc3", 1, FFFD},                         /* cut short */
        {"\xc0\xaf", 2, FFFD FFFD},                /* overlong '/' */
        {"\xed\xa0\x80", 3, FFFD FFFD FFFD},       /* a surrogate */
        {"\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD}, /* past U+10FFFF */
        {"\xef\xbf\xbe\xef\xbf\xbf", 6, FFFD FFFD}, /* U+FFFE, U+FFFF: not XML characters */
        {"<Say\xef\xbf\xbfStream", 13, "&lt;Say" FFFD "Stream"}, /* after plain text */
        {"\xef\xbf\xbd\xf0\x9f\x98\x80", 7, FFFD "\xf0\x9f\x98\x80"},
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

/* Whatever the values, the document parses (expat: a strict XML 1.0 parser) and holds
 * what was written: hostile characters, bytes that are not UTF-8, values at the limit. */
static void assert_parses(const cs_twiml *t, size_t elements, size_t attrs)
{
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_twiml_write(&out, t), 0);
    char why[256];
    size_t e, a;
    if (!xml_well_formed(out.data, out.len, why, sizeof why, &e, &a))
        fail_msg("not well-formed: %s: %s", why, out.data);
    assert_int_equal(e, elements);
    assert_int_equal(a, attrs);
    cs_buf_free(&out);
}

/* A relay: <Connect action> and <ConversationRelay> with the attributes given, escaped,
 * and the <Parameter>s inside; without `connect` it is refused. */
static void relay_minimal_and_full(void **state)
{
    (void)state;
    cs_twiml_relay r = {0};
    cs_twiml t = {.connect = true, .stream_url = "wss://example.com/twilio/relay", .relay = &r};
    assert_twiml(&t, DECL "<Response><Connect><ConversationRelay "
                          "url=\"wss://example.com/twilio/relay\" dtmfDetection=\"true\">"
                          "</ConversationRelay></Connect></Response>");
    cs_kv params[] = {{CS_STR("Greeting"), CS_STR("Hi & welcome")}};
    r = (cs_twiml_relay){
        .action = "https://example.com/twilio/relay-action",
        .welcome = "Hi & welcome",
        .language = "en-US",
        .tts_provider = "ElevenLabs",
        .voice = "UgBBYS2sOqTuMpoF3BR0",
        .transcription_provider = "Deepgram",
        .speech_model = "nova-3-general",
        .interruptible = "any",
    };
    t.params = params;
    t.nparams = 1;
    t.say = "Connecting";
    assert_twiml(&t, DECL "<Response><Say>Connecting</Say>"
                          "<Connect action=\"https://example.com/twilio/relay-action\">"
                          "<ConversationRelay url=\"wss://example.com/twilio/relay\" "
                          "welcomeGreeting=\"Hi &amp; welcome\" "
                          "welcomeGreetingInterruptible=\"any\" language=\"en-US\" "
                          "ttsProvider=\"ElevenLabs\" voice=\"UgBBYS2sOqTuMpoF3BR0\" "
                          "transcriptionProvider=\"Deepgram\" speechModel=\"nova-3-general\" "
                          "interruptible=\"any\" dtmfDetection=\"true\">"
                          "<Parameter name=\"Greeting\" value=\"Hi &amp; welcome\"/>"
                          "</ConversationRelay></Connect></Response>");
    assert_parses(&t, 5, 13);
    t.connect = false;
    t.pause_seconds = 10;
    assert_refused(&t, -EINVAL);
}

static void hostile_values_give_well_formed_xml(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        "&amp; &#0; &#x1; &lt;",  "]]><!-- --><?pi?>", "\"'<>&", "<Stream url=\"x\"/>",
        "\x01\x02\x0b\x0c\x1b[31m", "\xff\xfe\xfd", "\xc3(", "\xed\xa0\x80\xed\xbf\xbf",
        "\xef\xbf\xbe\xef\xbf\xbf", "\xf8\x88\x80\x80\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "\r\n\t",
    };
    size_t nh = sizeof hostile / sizeof *hostile;
    cs_kv params[CS_PEV_MAX_PARAMS];
    for (size_t i = 0; i < nh; i++)
        params[i] = (cs_kv){cs_str_of(hostile[i]), cs_str_of(hostile[(i + 1) % nh])};
    cs_twiml t = {.say = hostile[1], .voice = hostile[0], .connect = true, .stream_url = STREAM,
                  .stream_name = hostile[2], .status_callback = hostile[3], .params = params,
                  .nparams = nh};
    /* Response, Say, Connect, Stream, the parameters; voice, url, name, the callback
     * and its method, two per parameter. */
    assert_parses(&t, 4 + nh, 5 + 2 * nh);
    t.connect = false;
    t.dial = hostile[5];
    assert_parses(&t, 5 + nh, 5 + 2 * nh);

    /* Random bytes, as long as a parameter may be: as many as Twilio takes. */
    uint64_t seed = 9;
    static char junk[CS_PEV_MAX_PARAMS][CS_TWIML_MAX_PARAM];
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < CS_PEV_MAX_PARAMS; i++) {
            size_t n = tu_rand_below(&seed, 60) + 1;
            for (size_t k = 0; k < n; k++) junk[i][k] = (char)tu_rand(&seed);
            params[i] = (cs_kv){{junk[i], 1 + tu_rand_below(&seed, n)}, {junk[i], n}};
            params[i].name.n = params[i].name.n < n ? params[i].name.n : n;
        }
        t = (cs_twiml){.connect = true, .stream_url = STREAM, .params = params,
                       .nparams = CS_PEV_MAX_PARAMS};
        assert_parses(&t, 3 + CS_PEV_MAX_PARAMS, 1 + 2 * CS_PEV_MAX_PARAMS);
    }
    /* The longest a parameter may be, of the character that escapes longest. */
    memset(junk[0], '"', sizeof junk[0]);
    params[0] = (cs_kv){CS_STR("From"), {junk[0], CS_TWIML_MAX_PARAM - 4}};
    t = (cs_twiml){.connect = true, .stream_url = STREAM, .params = params, .nparams = 1};
    assert_parses(&t, 4, 3);
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
        cmocka_unit_test(hostile_values_give_well_formed_xml),
        cmocka_unit_test(relay_minimal_and_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
