/* The simulator's TwiML reader: what the gateway writes reads back, and the reader stays
 * inside the body it is given (tests/fuzz/fuzz_sim_twiml.c fuzzes both). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "provider/twiml.h"
#include "sim/sim_int.h"

static sim_twiml t;

/* Reads `xml` into t: it must parse, with the stream at `url`. */
static void read_ok(const char *xml, const char *url)
{
    assert_int_equal(sim_twiml_parse(xml, strlen(xml), &t), 0);
    assert_string_equal(t.stream_url, url);
}

static void reads_what_the_gateway_writes(void **state)
{
    (void)state;
    static const cs_kv params[] = {
        {CS_STR("From"), CS_STR("+14155551234")},
        {CS_STR("Caller\"Name"), CS_STR("O'Brien & <Ana>")},
        {CS_STR("Empty"), CS_STR("")},
    };
    const cs_twiml_attr attrs[] = {{"url", "wss://gw.example.com/twilio/media"},
                                   {"name", "callstream"}};
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = 2, .params = params,
                                  .nparams = 3};
    const cs_twiml_verb tw[] = {{CS_TWIML_SAY, .text = "Hello <there>"},
                                {CS_TWIML_CONNECT, .nested = &stream, .nnested = 1}};
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&out, tw, 2), 0);
    assert_int_equal(sim_twiml_parse(out.data, out.len, &t), 0);
    assert_string_equal(t.stream_url, "wss://gw.example.com/twilio/media");
    assert_true(t.connect);
    assert_false(t.both_tracks);
    assert_int_equal(t.nparams, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_true(cs_str_eq(t.params[i].name, params[i].name));
        assert_true(cs_str_eq(t.params[i].value, params[i].value));
    }
    cs_buf_free(&out);
}

/* An answer with a Content-Length leaves the bytes after it in the same buffer: they are
 * not part of the TwiML. */
static void reads_only_its_body(void **state)
{
    (void)state;
    static const char buf[] = "<Response><Connect><Stream url=\"wss://a/m\">"
                              "<Parameter name=\"x\" value=\"y\"/></Stream></Connect></Response>";
    size_t body = strstr(buf, "<Parameter") - buf; /* cut inside the <Stream> element */
    assert_int_equal(sim_twiml_parse(buf, body, &t), 0);
    assert_string_equal(t.stream_url, "wss://a/m");
    assert_int_equal(t.nparams, 0);

    size_t tag = strstr(buf, "<Stream") - buf + 5; /* "<Stre": no stream in the body */
    assert_int_equal(sim_twiml_parse(buf, tag, &t), CS_EPARSE);
}

static void character_references(void **state)
{
    (void)state;
    read_ok("<Response><Connect><Stream url=\"wss://h/m&#x41;&#66;&#x;&#1234;&#9\"/>"
            "</Connect></Response>",
            "wss://h/mAB&#x;&#1234;&#9");
}

/* A self-closed <Stream/> has no parameters, whatever comes after it. */
static void self_closed_stream(void **state)
{
    (void)state;
    read_ok("<Response><Start><Stream url=\"wss://a/one\" track=\"both_tracks\"/>"
            "</Start><Start><Stream url=\"wss://b/two\">"
            "<Parameter name=\"x\" value=\"y\"/></Stream></Start></Response>",
            "wss://a/one");
    assert_false(t.connect);
    assert_true(t.both_tracks);
    assert_int_equal(t.nparams, 0);
}

/* Text inside one attribute's value is never read as another attribute. */
static void attribute_text_in_a_value(void **state)
{
    (void)state;
    read_ok("<Response><Connect><Stream name=\"x url=\" url = 'wss://real/m'>"
            "<Parameter name=\"a value=\" value=\"b\"/></Stream></Connect></Response>",
            "wss://real/m");
    assert_int_equal(t.nparams, 1);
    assert_true(cs_str_eqz(t.params[0].name, "a value="));
    assert_true(cs_str_eqz(t.params[0].value, "b"));
}

/* Reads `n` verbs as the gateway would write them. */
static void read_verbs(const cs_twiml_verb *v, size_t n)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&out, v, n), 0);
    assert_int_equal(sim_twiml_parse(out.data, out.len, &t), 0);
    assert_string_equal(t.stream_url, "");
    cs_buf_free(&out);
}

/* What the report says, one line each. */
static void assert_report(const char *want)
{
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    assert_non_null(f);
    sim_twiml_report(&t, "CA1", f);
    fclose(f);
    assert_string_equal(got, want);
    free(got);
}

/* Without a stream: a <Gather> that hears nothing, then what follows it. */
static void gather_then_redirect_hangup_or_dial(void **state)
{
    (void)state;
    const cs_twiml_attr g = {"action", "https://gw/twilio/gather?t=1&u=2"};
    const cs_twiml_verb say = {CS_TWIML_SAY, .text = "Press <1>"};
    cs_twiml_verb v[] = {
        {CS_TWIML_GATHER, .attrs = &g, .nattrs = 1, .nested = &say, .nnested = 1},
        {CS_TWIML_REDIRECT, .text = "https://gw/twilio/voice?a=1&b=2"},
        {CS_TWIML_HANGUP},
    };
    read_verbs(v, 3);
    assert_true(t.gather);
    assert_string_equal(t.gather_action, "https://gw/twilio/gather?t=1&u=2");
    assert_int_equal(t.then, SIM_THEN_REDIRECT);
    assert_string_equal(t.then_text, "https://gw/twilio/voice?a=1&b=2");
    assert_report(
        "sim: CA1: <Gather action=\"https://gw/twilio/gather?t=1&u=2\">, which hears "
        "nothing\nsim: CA1: no stream; then <Redirect> https://gw/twilio/voice?a=1&b=2\n");
    read_verbs(v + 2, 1);
    assert_false(t.gather);
    assert_int_equal(t.then, SIM_THEN_HANGUP);
    assert_report("sim: CA1: no stream; then <Hangup>\n");
    v[1] = (cs_twiml_verb){CS_TWIML_DIAL, .text = "+15550001111"};
    read_verbs(v, 3);
    assert_int_equal(t.then, SIM_THEN_DIAL);
    assert_string_equal(t.then_text, "+15550001111");
    /* a Gather with nothing after it: the document ends, the call with it */
    read_verbs(v, 1);
    assert_int_equal(t.then, SIM_THEN_HANGUP);
    const cs_twiml_verb plain = {CS_TWIML_GATHER};
    read_verbs(&plain, 1);
    assert_report("sim: CA1: <Gather action=\"\">, which hears nothing\n"
                  "sim: CA1: no stream; then <Hangup>\n");
}

/* A stream comes first: what follows a <Start> is not read; a <Redirect> or <Dial>
 * that says nowhere, or a document with none of them, does not parse. */
static void stream_first_and_refusals(void **state)
{
    (void)state;
    read_ok("<Response><Start><Stream url=\"wss://a/m\"/></Start><Dial>+1555</Dial></Response>",
            "wss://a/m");
    assert_int_equal(t.then, SIM_THEN_NONE);
    static const char *const bad[] = {
        "<Response><Redirect></Redirect></Response>",
        "<Response><Redirect/></Response>",
        "<Response><Dial/></Response>",
        "<Response><Say>hi</Say></Response>",
        "<Response><Hangup",
        "<Response><Gather action=\"x\"",
        "<Response><Gatherer/><Hangups/></Response>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sim_twiml_parse(bad[i], strlen(bad[i]), &t), CS_EPARSE);
    /* a URL longer than the reader keeps */
    static char big[SIM_URL_MAX + 64];
    snprintf(big, sizeof big, "<Response><Redirect>%0*d</Redirect></Response>", SIM_URL_MAX, 7);
    assert_int_equal(sim_twiml_parse(big, strlen(big), &t), CS_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_what_the_gateway_writes),
        cmocka_unit_test(reads_only_its_body),
        cmocka_unit_test(character_references),
        cmocka_unit_test(self_closed_stream),
        cmocka_unit_test(attribute_text_in_a_value),
        cmocka_unit_test(gather_then_redirect_hangup_or_dial),
        cmocka_unit_test(stream_first_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
