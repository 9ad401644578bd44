/* The simulator's TwiML reader: what the gateway writes reads back as elements, the reader
 * stays inside the body it is given, and what is not well-formed is refused with a reason
 * (tests/fuzz/fuzz_sim_twiml.c fuzzes both). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "provider/twiml.h"
#include "sim/sim_int.h"

static sim_doc d;

static int parse(const char *xml)
{
    return sim_doc_parse(&d, xml, strlen(xml));
}

/* The first node named `name` (it must exist). */
static size_t node(const char *name)
{
    for (size_t i = 0; i < d.n; i++)
        if (strcmp(d.nodes[i].name, name) == 0) return i;
    fail_msg("no <%s>", name);
    return 0;
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
    const cs_twiml_attr action = {"action", "https://gw/twilio/gather?a=1&b=2"};
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = 2, .params = params,
                                  .nparams = 3};
    const cs_twiml_verb tw[] = {
        {CS_TWIML_SAY, .text = "Hello <there>"},
        {CS_TWIML_CONNECT, .attrs = &action, .nattrs = 1, .nested = &stream, .nnested = 1}};
    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_twiml_verbs_write(&out, tw, 2), 0);
    assert_int_equal(sim_doc_parse(&d, out.data, out.len), 0);
    assert_int_equal(d.n, 7); /* Response, Say, Connect, Stream, 3 Parameters */
    assert_string_equal(d.nodes[0].name, "Response");
    assert_int_equal(sim_doc_child(&d, 0, 0), 1);
    assert_string_equal(d.nodes[1].text, "Hello <there>");
    size_t c = node("Connect"), s = node("Stream");
    assert_int_equal(sim_doc_child(&d, 0, 1), (int)c);
    assert_int_equal(sim_doc_child(&d, 0, c), -1); /* the Stream is not the Response's */
    assert_string_equal(sim_doc_attr(&d, c, "action"), "https://gw/twilio/gather?a=1&b=2");
    assert_string_equal(sim_doc_attr(&d, s, "url"), "wss://gw.example.com/twilio/media");
    assert_null(sim_doc_attr(&d, s, "track"));
    int p = sim_doc_child(&d, s, s);
    for (size_t i = 0; i < 3; i++, p = sim_doc_child(&d, s, (size_t)p)) {
        assert_true(p > 0);
        assert_true(cs_str_eqz(params[i].name, sim_doc_attr(&d, (size_t)p, "name")));
        assert_true(cs_str_eqz(params[i].value, sim_doc_attr(&d, (size_t)p, "value")));
    }
    assert_int_equal(p, -1);
    cs_buf_free(&out);
}

/* An answer with a Content-Length leaves the bytes after it in the same buffer: they are
 * not part of the TwiML. */
static void reads_only_its_body(void **state)
{
    (void)state;
    static const char buf[] = "<Response><Say>hi</Say></Response><Hangup/>";
    size_t body = strstr(buf, "<Hangup") - buf;
    assert_int_equal(sim_doc_parse(&d, buf, body), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(sim_doc_parse(&d, buf, body - 3), CS_EPARSE); /* "</Respo" */
}

/* Entities, character references, comments, the declaration, '>' inside a value, and
 * text trimmed. */
static void text_and_attributes(void **state)
{
    (void)state;
    assert_int_equal(parse("<?xml version=\"1.0\"?>\n<!-- a <Hangup/> -->\n<Response>"
                           "<Say voice='x&gt;y' name=\"a value=\">\n  A &amp; B&#x41;&#66;&#1234;"
                           "  </Say><Pause length=\"2\"/><Redirect method = \"GET\">/next"
                           "</Redirect></Response>"),
                     0);
    assert_int_equal(d.n, 4);
    assert_string_equal(d.nodes[1].text, "A & BAB&#1234;");
    assert_string_equal(sim_doc_attr(&d, 1, "voice"), "x>y");
    assert_string_equal(sim_doc_attr(&d, 1, "name"), "a value=");
    assert_null(sim_doc_attr(&d, 1, "value"));
    assert_string_equal(d.nodes[2].text, "");
    assert_string_equal(sim_doc_attr(&d, 2, "length"), "2");
    assert_string_equal(sim_doc_attr(&d, 3, "method"), "GET");
    assert_string_equal(d.nodes[3].text, "/next");
}

/* What is not well-formed TwiML is refused, each with a reason. */
static void refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "just text",
        "<Say>hi</Say>",                            /* the root is not <Response> */
        "<Response><Say>hi</Response>",             /* not nested */
        "<Response><Say>hi</Say>",                  /* not closed */
        "<Response></Say></Response>",              /* a closing tag alone */
        "<Response><Say x>hi</Say></Response>",     /* an attribute without value */
        "<Response><Say x=y>hi</Say></Response>",   /* not quoted */
        "<Response><Say x=\"y>hi</Say></Response>", /* a tag not closed */
        "<Response/><Response/>",                   /* two roots */
        "<Response><!-- </Response>",               /* a comment not closed */
        "<Response>< /></Response>",                /* a tag without a name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i]), CS_EPARSE);
        assert_non_null(d.error);
    }
    /* bounds: elements, depth, and Twilio's 64 KB */
    cs_buf b = CS_BUF_INIT(1 << 20);
    cs_buf_append(&b, "<Response>", 10);
    for (size_t i = 0; i < SIM_NODES_MAX; i++) cs_buf_append(&b, "<Pause/>", 8);
    cs_buf_append(&b, "</Response>", 12);
    assert_int_equal(parse(b.data), CS_EPARSE);
    assert_string_equal(d.error, "more elements than the simulator reads");
    cs_buf_reset(&b);
    cs_buf_append(&b, "<Response>", 10);
    for (size_t i = 0; i < SIM_DEPTH_MAX; i++) cs_buf_append(&b, "<a>", 3);
    cs_buf_append(&b, "", 1);
    assert_int_equal(parse(b.data), CS_EPARSE);
    assert_string_equal(d.error, "elements nested too deep");
    cs_buf_reset(&b);
    cs_buf_append(&b, "<Response><Say>", 15);
    for (size_t i = 0; i < CS_TWIML_MAX_BYTES / 8; i++) cs_buf_append(&b, "la la la", 8);
    cs_buf_append(&b, "</Say></Response>", 18);
    assert_int_equal(parse(b.data), -EMSGSIZE);
    cs_buf_free(&b);
    sim_doc_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_what_the_gateway_writes),
        cmocka_unit_test(reads_only_its_body),
        cmocka_unit_test(text_and_attributes),
        cmocka_unit_test(refusals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sim_doc_free(&d);
    return rc;
}
