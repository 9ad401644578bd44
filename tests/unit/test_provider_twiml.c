/* The writer's output, byte for byte, for the shapes the voice webhook answers with;
 * escaping; <Parameter> lengths in characters; hostile values. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "provider/twiml.h"
#include "xmlcheck.h"

#define DECL   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define STREAM "wss://example.com/twilio/media"
#define N(a)   (sizeof(a) / sizeof *(a))

static void assert_twiml(const cs_twiml_verb *v, size_t n, const char *want)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&out, v, n), 0);
    assert_string_equal(out.data, want);
    cs_buf_free(&out);
}

/* Refused with `err`, leaving what the buffer held. */
static void assert_refused(const cs_twiml_verb *v, size_t n, int err)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_buf_puts(&out, "kept"), 0);
    assert_int_equal(cs_twiml_verbs_write(&out, v, n), err);
    assert_string_equal(out.data, "kept");
    cs_buf_free(&out);
}

/* <Connect> (or <Start>) around one <Stream url=STREAM> with `params`. */
typedef struct one_stream {
    cs_twiml_attr url;
    cs_twiml_verb stream, verb;
} one_stream;

static const cs_twiml_verb *stream_of(one_stream *o, cs_twiml_kind kind, const cs_kv *params,
                                      size_t n)
{
    o->url = (cs_twiml_attr){"url", STREAM};
    o->stream = (cs_twiml_verb){CS_TWIML_STREAM, .attrs = &o->url, .nattrs = 1, .params = params,
                                .nparams = n};
    o->verb = (cs_twiml_verb){kind, .nested = &o->stream, .nnested = 1};
    return &o->verb;
}

static void connect_minimal(void **state)
{
    (void)state;
    one_stream o;
    assert_twiml(stream_of(&o, CS_TWIML_CONNECT, NULL, 0),
                 1, DECL "<Response><Connect><Stream url=\"" STREAM "\"/></Connect></Response>");
}

static void connect_everything_escaped(void **state)
{
    (void)state;
    const cs_kv params[] = {
        {CS_STR("from"), CS_STR("+15550001111")},
        {CS_STR("a&b"), CS_STR("<tag> \"q\" 'a'")},
        {CS_STR("ctl"), CS_STR("x\x01y\x1fz\x7f\t\n")},
    };
    const cs_twiml_attr voice = {"voice", "Polly.Joanna"};
    const cs_twiml_attr attrs[] = {
        {"url", STREAM},
        {"name", "agent \"1\""},
        {"track", NULL}, /* left out */
        {"statusCallback", "https://example.com/twilio/stream-status?x=1&y=2"},
        {"statusCallbackMethod", "POST"},
    };
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = N(attrs),
                                  .params = params, .nparams = N(params)};
    const cs_twiml_verb v[] = {
        {CS_TWIML_SAY, .text = "Hello & welcome, <caller> \"Bob\" O'Neil\x07!", .attrs = &voice,
         .nattrs = 1},
        {CS_TWIML_CONNECT, .nested = &stream, .nnested = 1},
    };
    assert_twiml(v, 2, DECL "<Response>"
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

static void start_then_dial_or_pause(void **state)
{
    (void)state;
    const cs_kv params[] = {{CS_STR("tenant"), CS_STR("acme")}};
    const cs_twiml_attr attrs[] = {{"url", STREAM}, {"name", "rec1"}, {"track", "both_tracks"}};
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = 3, .params = params,
                                  .nparams = 1};
    const cs_twiml_attr len = {"length", "3600"};
    cs_twiml_verb v[] = {
        {CS_TWIML_START, .nested = &stream, .nnested = 1},
        {CS_TWIML_DIAL, .text = "+15551234567"},
    };
    assert_twiml(v, 2, DECL "<Response><Start><Stream url=\"" STREAM
                            "\" name=\"rec1\" track=\"both_tracks\">"
                            "<Parameter name=\"tenant\" value=\"acme\"/></Stream></Start>"
                            "<Dial>+15551234567</Dial></Response>");
    v[1] = (cs_twiml_verb){CS_TWIML_PAUSE, .attrs = &len, .nattrs = 1};
    assert_twiml(v, 2, DECL "<Response><Start><Stream url=\"" STREAM
                            "\" name=\"rec1\" track=\"both_tracks\">"
                            "<Parameter name=\"tenant\" value=\"acme\"/></Stream></Start>"
                            "<Pause length=\"3600\"/></Response>");
    static const char *const tracks[] = {"inbound_track", "outbound_track", "both_tracks"};
    for (size_t i = 0; i < N(tracks); i++) {
        const cs_twiml_attr a[] = {{"url", STREAM}, {"track", tracks[i]}};
        const cs_twiml_verb s = {CS_TWIML_STREAM, .attrs = a, .nattrs = 2};
        cs_buf out = CS_BUF_INIT(1 << 16);
        assert_int_equal(cs_twiml_verbs_write(&out, &(cs_twiml_verb){CS_TWIML_START, .nested = &s,
                                                                      .nnested = 1},
                                              1),
                         0);
        assert_non_null(strstr(out.data, tracks[i]));
        cs_buf_free(&out);
    }
}

/* name + value must stay under 500 characters. */
static void parameter_length_limit(void **state)
{
    (void)state;
    static char value[2 * CS_TWIML_MAX_PARAM];
    memset(value, 'v', sizeof value);
    cs_kv p = {CS_STR("name"), {value, CS_TWIML_MAX_PARAM - 4}};
    one_stream o;
    const cs_twiml_verb *t = stream_of(&o, CS_TWIML_CONNECT, &p, 1);
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&out, t, 1), 0);
    cs_buf_free(&out);
    p.value.n++;
    assert_refused(t, 1, -EMSGSIZE);
    /* characters, not bytes: 499 two-byte characters fit */
    for (size_t i = 0; i + 1 < sizeof value; i += 2) memcpy(value + i, "\xc3\xa9", 2);
    p = (cs_kv){CS_STR("n"), {value, 2 * (CS_TWIML_MAX_PARAM - 1)}};
    assert_int_equal(cs_twiml_verbs_write(&out, t, 1), 0);
    cs_buf_free(&out);
    p.value.n += 2;
    assert_refused(t, 1, -EMSGSIZE);
    /* a byte that is not UTF-8 counts as the one character it becomes */
    memset(value, 0xff, sizeof value);
    assert_true(cs_twiml_param_fits(CS_STR("n"), (cs_str){value, CS_TWIML_MAX_PARAM - 1}));
    assert_false(cs_twiml_param_fits(CS_STR("n"), (cs_str){value, CS_TWIML_MAX_PARAM}));
}

static void full_buffer_leaves_it_as_it_was(void **state)
{
    (void)state;
    one_stream o;
    cs_twiml_verb t[] = {{CS_TWIML_SAY, .text = "Hello & bye"},
                         *stream_of(&o, CS_TWIML_CONNECT, NULL, 0)};
    cs_buf full = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&full, t, 2), 0);
    for (size_t max = 4; max < 4 + full.len; max++) {
        cs_buf out = CS_BUF_INIT(max);
        assert_int_equal(cs_buf_puts(&out, "kept"), 0);
        assert_int_equal(cs_twiml_verbs_write(&out, t, 2), -EMSGSIZE);
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
static void assert_parses(const cs_twiml_verb *t, size_t n, size_t elements, size_t attrs)
{
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_twiml_verbs_write(&out, t, n), 0);
    char why[256];
    size_t e, a;
    if (!xml_well_formed(out.data, out.len, why, sizeof why, &e, &a))
        fail_msg("not well-formed: %s: %s", why, out.data);
    assert_int_equal(e, elements);
    assert_int_equal(a, attrs);
    cs_buf_free(&out);
}

/* A relay: <Connect action> and <ConversationRelay> with its attributes, escaped, and
 * the <Parameter>s inside. */
static void relay_minimal_and_full(void **state)
{
    (void)state;
    const cs_twiml_attr url = {"url", "wss://example.com/twilio/relay"};
    cs_twiml_verb relay = {CS_TWIML_RELAY, .attrs = &url, .nattrs = 1};
    cs_twiml_verb c = {CS_TWIML_CONNECT, .nested = &relay, .nnested = 1};
    assert_twiml(&c, 1, DECL "<Response><Connect><ConversationRelay "
                             "url=\"wss://example.com/twilio/relay\"/></Connect></Response>");
    cs_kv params[] = {{CS_STR("Greeting"), CS_STR("Hi & welcome")}};
    const cs_twiml_attr attrs[] = {
        url,
        {"welcomeGreeting", "Hi & welcome"},
        {"welcomeGreetingInterruptible", "any"},
        {"language", "en-US"},
        {"ttsProvider", "ElevenLabs"},
        {"voice", "UgBBYS2sOqTuMpoF3BR0"},
        {"transcriptionProvider", "Deepgram"},
        {"speechModel", "nova-3-general"},
        {"interruptible", "any"},
        {"dtmfDetection", "true"},
    };
    relay = (cs_twiml_verb){CS_TWIML_RELAY, .attrs = attrs, .nattrs = N(attrs), .params = params,
                            .nparams = 1};
    const cs_twiml_attr action = {"action", "https://example.com/twilio/relay-action"};
    c.attrs = &action;
    c.nattrs = 1;
    const cs_twiml_verb t[] = {{CS_TWIML_SAY, .text = "Connecting"}, c};
    assert_twiml(t, 2, DECL "<Response><Say>Connecting</Say>"
                            "<Connect action=\"https://example.com/twilio/relay-action\">"
                            "<ConversationRelay url=\"wss://example.com/twilio/relay\" "
                            "welcomeGreeting=\"Hi &amp; welcome\" "
                            "welcomeGreetingInterruptible=\"any\" language=\"en-US\" "
                            "ttsProvider=\"ElevenLabs\" voice=\"UgBBYS2sOqTuMpoF3BR0\" "
                            "transcriptionProvider=\"Deepgram\" speechModel=\"nova-3-general\" "
                            "interruptible=\"any\" dtmfDetection=\"true\">"
                            "<Parameter name=\"Greeting\" value=\"Hi &amp; welcome\"/>"
                            "</ConversationRelay></Connect></Response>");
    assert_parses(t, 2, 5, 13);
    /* <Start> takes no relay */
    const cs_twiml_verb start = {CS_TWIML_START, .nested = &relay, .nnested = 1};
    assert_refused(&start, 1, -EINVAL);
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
    const cs_twiml_attr voice = {"voice", hostile[0]};
    const cs_twiml_attr attrs[] = {
        {"url", STREAM},
        {"name", hostile[2]},
        {"statusCallback", hostile[3]},
        {"statusCallbackMethod", "POST"},
    };
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = N(attrs),
                                  .params = params, .nparams = nh};
    cs_twiml_verb t[] = {
        {CS_TWIML_SAY, .text = hostile[1], .attrs = &voice, .nattrs = 1},
        {CS_TWIML_CONNECT, .nested = &stream, .nnested = 1},
        {CS_TWIML_DIAL, .text = hostile[5]},
    };
    /* Response, Say, Connect, Stream, the parameters; voice, url, name, the callback
     * and its method, two per parameter. */
    assert_parses(t, 2, 4 + nh, 5 + 2 * nh);
    t[1].kind = CS_TWIML_START;
    assert_parses(t, 3, 5 + nh, 5 + 2 * nh);

    /* Random bytes, as long as a parameter may be: as many as Twilio takes. */
    uint64_t seed = 9;
    static char junk[CS_PEV_MAX_PARAMS][CS_TWIML_MAX_PARAM];
    one_stream o;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < CS_PEV_MAX_PARAMS; i++) {
            size_t n = tu_rand_below(&seed, 60) + 1;
            for (size_t k = 0; k < n; k++) junk[i][k] = (char)tu_rand(&seed);
            params[i] = (cs_kv){{junk[i], 1 + tu_rand_below(&seed, n)}, {junk[i], n}};
            params[i].name.n = params[i].name.n < n ? params[i].name.n : n;
        }
        assert_parses(stream_of(&o, CS_TWIML_CONNECT, params, CS_PEV_MAX_PARAMS), 1,
                      3 + CS_PEV_MAX_PARAMS, 1 + 2 * CS_PEV_MAX_PARAMS);
    }
    /* The longest a parameter may be, of the character that escapes longest. */
    memset(junk[0], '"', sizeof junk[0]);
    params[0] = (cs_kv){CS_STR("From"), {junk[0], CS_TWIML_MAX_PARAM - 4}};
    assert_parses(stream_of(&o, CS_TWIML_CONNECT, params, 1), 1, 4, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_minimal),
        cmocka_unit_test(connect_everything_escaped),
        cmocka_unit_test(start_then_dial_or_pause),
        cmocka_unit_test(parameter_length_limit),
        cmocka_unit_test(full_buffer_leaves_it_as_it_was),
        cmocka_unit_test(xml_escape),
        cmocka_unit_test(hostile_values_give_well_formed_xml),
        cmocka_unit_test(relay_minimal_and_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
