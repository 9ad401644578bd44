/* Messages from /monitor browsers (docs/monitor.md, "Client → server"); the socket itself
 * is tested in tests/integ/monitor.c, and tests/fuzz/fuzz_http_monitor.c fuzzes this. */
#include "testutil.h"

#include <string.h>

#include "http/monitor_msg.h"

#define CA "CA0123456789abcdef0123456789abcdef"

static cs_monitor_msg parse(const char *text)
{
    cs_monitor_msg m;
    cs_monitor_msg_parse(&m, true, text, strlen(text));
    return m;
}

static void every_type(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum cs_monitor_type type;
        const char *call;
        unsigned audio;
    } cases[] = {
        {"{\"type\":\"watch_calls\"}", CS_MONITOR_WATCH_CALLS, NULL, 3},
        {"{\"type\":\"subscribe\",\"call\":\"" CA "\",\"audio\":\"both\"}", CS_MONITOR_SUBSCRIBE,
         CA, 3},
        {"{\"type\":\"subscribe\",\"call\":\"" CA "\"}", CS_MONITOR_SUBSCRIBE, CA, 3},
        {"{\"type\":\"audio\",\"call\":\"" CA "\",\"audio\":\"caller\"}", CS_MONITOR_AUDIO, CA,
         CS_MONITOR_AUDIO_CALLER},
        {"{\"audio\":\"agent\",\"type\":\"audio\",\"call\":\"" CA "\"}", CS_MONITOR_AUDIO, CA,
         CS_MONITOR_AUDIO_AGENT},
        {"{\"type\":\"audio\",\"call\":\"" CA "\",\"audio\":\"none\"}", CS_MONITOR_AUDIO, CA, 0},
        {"{\"type\":\"audio\",\"call\":\"" CA "\",\"audio\":\"left\"}", CS_MONITOR_AUDIO, CA, 0},
        {"{\"type\":\"unsubscribe\",\"call\":\"" CA "\"}", CS_MONITOR_UNSUBSCRIBE, CA, 3},
        {" {\"type\":\"subscribe\",\"call\":7}\r\n", CS_MONITOR_SUBSCRIBE, NULL, 3},
        {"{\"type\":\"hello\"}", CS_MONITOR_UNKNOWN, NULL, 3},
        {"{\"type\":\"Ping\"}", CS_MONITOR_UNKNOWN, NULL, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_monitor_msg m = parse(cases[i].text);
        assert_int_equal(m.type, cases[i].type);
        if (cases[i].call)
            assert_string_equal(m.call, cases[i].call);
        else
            assert_null(m.call);
        assert_int_equal(m.audio, cases[i].audio);
        const char *name = cs_monitor_type_name(m.type);
        if (m.type != CS_MONITOR_UNKNOWN) assert_non_null(strstr(cases[i].text, name));
        cs_monitor_msg_free(&m);
    }
}

static void ping_time(void **state)
{
    (void)state;
    cs_monitor_msg m = parse("{\"type\":\"ping\",\"t\":1732262400123.5}");
    assert_int_equal(m.type, CS_MONITOR_PING);
    assert_true(m.has_t);
    assert_true(m.t == 1732262400123.5);
    cs_monitor_msg_free(&m);
    m = parse("{\"type\":\"ping\",\"t\":\"soon\"}");
    assert_int_equal(m.type, CS_MONITOR_PING);
    assert_false(m.has_t);
    cs_monitor_msg_free(&m);
}

/* Anything but one JSON object with a string type, the whole frame, is BAD. */
static void bad_frames(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "null",
        "[\"type\",\"ping\"]",
        "{\"type\":1}",
        "{\"Type\":\"ping\"}",
        "{\"type\":\"ping\"",
        "{\"type\":\"ping\"} {\"type\":\"ping\"}",
        "{\"type\":\"ping\"}x",
        "\"ping\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_monitor_msg m = parse(bad[i]);
        assert_int_equal(m.type, CS_MONITOR_BAD);
        assert_null(m.call);
        cs_monitor_msg_free(&m);
    }
    static const char nul[] = "{\"type\":\"ping\"}\0";
    cs_monitor_msg m;
    cs_monitor_msg_parse(&m, true, nul, sizeof nul - 1);
    assert_int_equal(m.type, CS_MONITOR_BAD);
    cs_monitor_msg_free(&m);
    cs_monitor_msg_parse(&m, false, nul, sizeof nul - 2); /* a binary frame */
    assert_int_equal(m.type, CS_MONITOR_BAD);
    cs_monitor_msg_free(&m);
}

static void names(void **state)
{
    (void)state;
    assert_null(cs_monitor_type_name(CS_MONITOR_BAD));
    assert_null(cs_monitor_type_name(CS_MONITOR_UNKNOWN));
    assert_string_equal(cs_monitor_type_name(CS_MONITOR_PING), "ping");
    assert_string_equal(cs_monitor_audio_name(0), "none");
    assert_string_equal(cs_monitor_audio_name(CS_MONITOR_AUDIO_CALLER | CS_MONITOR_AUDIO_AGENT),
                        "both");
    assert_null(cs_monitor_audio_name(4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type),
        cmocka_unit_test(ping_time),
        cmocka_unit_test(bad_frames),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
