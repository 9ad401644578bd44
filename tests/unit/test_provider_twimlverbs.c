/* TwiML verb lists: every verb, nesting, escaping, <Parameter> limits, the bound, and a
 * property: any list the writer takes is well-formed XML with what was asked for. */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include "provider/twiml.h"
#include "xmlcheck.h"

#define DECL   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define STREAM "wss://example.com/twilio/media"
#define N(a)   (sizeof(a) / sizeof *(a))

static void assert_verbs(const cs_twiml_verb *v, size_t n, const char *want)
{
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_twiml_verbs_write(&out, v, n), 0);
    assert_string_equal(out.data, want);
    char why[256];
    if (!xml_well_formed(out.data, out.len, why, sizeof why, NULL, NULL))
        fail_msg("not well-formed: %s: %s", why, out.data);
    cs_buf_free(&out);
}

/* Refused with `err`, leaving what the buffer held. */
static void assert_refused(const cs_twiml_verb *v, size_t n, int err)
{
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_buf_puts(&out, "kept"), 0);
    assert_int_equal(cs_twiml_verbs_write(&out, v, n), err);
    assert_string_equal(out.data, "kept");
    cs_buf_free(&out);
}

static void simple_verbs(void **state)
{
    (void)state;
    cs_twiml_attr voice[] = {{"voice", "Polly.Joanna"}, {"language", NULL}};
    cs_twiml_attr loop[] = {{"loop", "2"}};
    cs_twiml_attr len[] = {{"length", "3"}};
    cs_twiml_attr method[] = {{"method", "POST"}};
    cs_twiml_verb v[] = {
        {CS_TWIML_SAY, .text = "Hi & <bye> \"Bob\" O'Neil", .attrs = voice, .nattrs = 2},
        {CS_TWIML_PLAY, .text = "https://example.com/a.mp3?x=1&y=2", .attrs = loop, .nattrs = 1},
        {CS_TWIML_PAUSE, .attrs = len, .nattrs = 1},
        {CS_TWIML_DIAL, .text = "+1555<&>"},
        {CS_TWIML_REDIRECT, .text = "https://example.com/next?a=1&b=2", .attrs = method,
         .nattrs = 1},
        {CS_TWIML_HANGUP},
    };
    assert_verbs(v, N(v),
                 DECL "<Response><Say voice=\"Polly.Joanna\">Hi &amp; &lt;bye&gt; &quot;Bob&quot; "
                      "O&apos;Neil</Say>"
                      "<Play loop=\"2\">https://example.com/a.mp3?x=1&amp;y=2</Play>"
                      "<Pause length=\"3\"/><Dial>+1555&lt;&amp;&gt;</Dial>"
                      "<Redirect method=\"POST\">https://example.com/next?a=1&amp;b=2</Redirect>"
                      "<Hangup/></Response>");
    /* the transfer's document and the relay action's */
    assert_verbs(&(cs_twiml_verb){CS_TWIML_DIAL, .text = "+15551230000"}, 1,
                 DECL "<Response><Dial>+15551230000</Dial></Response>");
    assert_verbs(&(cs_twiml_verb){CS_TWIML_HANGUP}, 1, DECL "<Response><Hangup/></Response>");
}

static void gather_nests_say_play_pause(void **state)
{
    (void)state;
    cs_twiml_attr len[] = {{"length", "1"}};
    cs_twiml_verb inside[] = {
        {CS_TWIML_SAY, .text = "Press 1 & speak"},
        {CS_TWIML_PAUSE, .attrs = len, .nattrs = 1},
        {CS_TWIML_PLAY, .text = "https://example.com/beep.wav"},
    };
    cs_twiml_attr g[] = {{"input", "speech dtmf"},
                         {"action", "https://example.com/twilio/gather?t=1&u=2"},
                         {"timeout", "5"},
                         {"hints", NULL}};
    cs_twiml_verb v[] = {{CS_TWIML_GATHER, .attrs = g, .nattrs = 4, .nested = inside, .nnested = 3},
                         {CS_TWIML_REDIRECT, .text = "https://example.com/twilio/gather"}};
    assert_verbs(v, 2,
                 DECL "<Response><Gather input=\"speech dtmf\" "
                      "action=\"https://example.com/twilio/gather?t=1&amp;u=2\" timeout=\"5\">"
                      "<Say>Press 1 &amp; speak</Say><Pause length=\"1\"/>"
                      "<Play>https://example.com/beep.wav</Play></Gather>"
                      "<Redirect>https://example.com/twilio/gather</Redirect></Response>");
    /* an empty Gather waits for input alone */
    assert_verbs(&(cs_twiml_verb){CS_TWIML_GATHER}, 1, DECL "<Response><Gather/></Response>");
    /* what a Gather may not hold */
    static const cs_twiml_kind bad[] = {CS_TWIML_GATHER, CS_TWIML_DIAL,   CS_TWIML_CONNECT,
                                        CS_TWIML_START,  CS_TWIML_HANGUP, CS_TWIML_REDIRECT,
                                        CS_TWIML_STREAM, CS_TWIML_RELAY};
    cs_twiml_attr url[] = {{"url", STREAM}};
    for (size_t i = 0; i < N(bad); i++) {
        cs_twiml_verb in = {bad[i], .attrs = url, .nattrs = 1};
        in.text = bad[i] == CS_TWIML_DIAL || bad[i] == CS_TWIML_REDIRECT ? "x" : NULL;
        cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = url, .nattrs = 1};
        if (bad[i] == CS_TWIML_CONNECT || bad[i] == CS_TWIML_START) {
            in = (cs_twiml_verb){bad[i], .nested = &stream, .nnested = 1};
            assert_verbs(&in, 1,
                         bad[i] == CS_TWIML_CONNECT ? DECL
                             "<Response><Connect><Stream url=\"" STREAM "\"/></Connect></Response>"
                                                    : DECL "<Response><Start><Stream url=\"" STREAM
                                                           "\"/></Start></Response>");
        }
        assert_refused(&(cs_twiml_verb){CS_TWIML_GATHER, .nested = &in, .nnested = 1}, 1, -EINVAL);
    }
}

static void connect_and_start_streams(void **state)
{
    (void)state;
    cs_kv params[] = {{CS_STR("a&b"), CS_STR("<x> \"y\"")}, {CS_STR("n"), CS_STR("v")}};
    cs_twiml_attr sa[] = {{"url", STREAM}, {"track", "both_tracks"}, {"name", "r\"1"}};
    cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = sa, .nattrs = 3, .params = params,
                            .nparams = 2};
    cs_twiml_attr len[] = {{"length", "60"}};
    cs_twiml_verb v[] = {{CS_TWIML_START, .nested = &stream, .nnested = 1},
                         {CS_TWIML_PAUSE, .attrs = len, .nattrs = 1}};
    assert_verbs(v, 2,
                 DECL "<Response><Start><Stream url=\"" STREAM "\" track=\"both_tracks\" "
                      "name=\"r&quot;1\"><Parameter name=\"a&amp;b\" value=\"&lt;x&gt; "
                      "&quot;y&quot;\"/><Parameter name=\"n\" value=\"v\"/></Stream></Start>"
                      "<Pause length=\"60\"/></Response>");
    /* <Connect action>: the call comes back to us when the stream ends */
    cs_twiml_attr action[] = {{"action", "https://example.com/twilio/ended?x=1&y=2"}};
    cs_twiml_attr ra[] = {{"url", "wss://example.com/twilio/relay"}, {"dtmfDetection", "true"}};
    cs_twiml_verb relay = {CS_TWIML_RELAY, .attrs = ra, .nattrs = 2, .params = params,
                           .nparams = 1};
    cs_twiml_verb c = {CS_TWIML_CONNECT, .attrs = action, .nattrs = 1, .nested = &relay,
                       .nnested = 1};
    assert_verbs(&c, 1,
                 DECL "<Response><Connect action=\"https://example.com/twilio/ended?x=1&amp;y=2\">"
                      "<ConversationRelay url=\"wss://example.com/twilio/relay\" "
                      "dtmfDetection=\"true\"><Parameter name=\"a&amp;b\" "
                      "value=\"&lt;x&gt; &quot;y&quot;\"/></ConversationRelay></Connect>"
                      "</Response>");
    /* Connect and Start hold exactly one noun; Start no relay */
    cs_twiml_verb two[] = {stream, stream};
    assert_refused(&(cs_twiml_verb){CS_TWIML_CONNECT}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){CS_TWIML_CONNECT, .nested = two, .nnested = 2}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){CS_TWIML_START, .nested = &relay, .nnested = 1}, 1, -EINVAL);
    /* a stream's url: present, without a query string (Twilio drops it) */
    static const char *const urls[] = {NULL, "", STREAM "?token=1", STREAM "?"};
    for (size_t i = 0; i < N(urls); i++) {
        cs_twiml_attr u[] = {{"url", urls[i]}};
        cs_twiml_verb s = {CS_TWIML_STREAM, .attrs = u, .nattrs = 1};
        assert_refused(&(cs_twiml_verb){CS_TWIML_CONNECT, .nested = &s, .nnested = 1}, 1, -EINVAL);
        s.kind = CS_TWIML_RELAY;
        if (urls[i] && strchr(urls[i], '?')) continue; /* a relay URL may have one */
        assert_refused(&(cs_twiml_verb){CS_TWIML_CONNECT, .nested = &s, .nnested = 1}, 1, -EINVAL);
    }
    /* an unknown track */
    cs_twiml_attr bt[] = {{"url", STREAM}, {"track", "both"}};
    cs_twiml_verb s = {CS_TWIML_STREAM, .attrs = bt, .nattrs = 2};
    assert_refused(&(cs_twiml_verb){CS_TWIML_START, .nested = &s, .nnested = 1}, 1, -EINVAL);
}

static void refuses_bad_lists(void **state)
{
    (void)state;
    cs_twiml_attr url[] = {{"url", STREAM}};
    cs_kv p = {CS_STR("n"), CS_STR("v")};
    cs_twiml_verb ok = {CS_TWIML_HANGUP};
    assert_refused(&ok, 0, -EINVAL); /* nothing to do: say <Hangup/> */
    /* nouns only inside Connect/Start */
    assert_refused(&(cs_twiml_verb){CS_TWIML_STREAM, .attrs = url, .nattrs = 1}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){CS_TWIML_RELAY, .attrs = url, .nattrs = 1}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){(cs_twiml_kind)99}, 1, -EINVAL);
    /* text where it is needed, and only there */
    static const cs_twiml_kind needs[] = {CS_TWIML_SAY, CS_TWIML_PLAY, CS_TWIML_DIAL,
                                          CS_TWIML_REDIRECT};
    for (size_t i = 0; i < N(needs); i++) {
        assert_refused(&(cs_twiml_verb){needs[i]}, 1, -EINVAL);
        assert_refused(&(cs_twiml_verb){needs[i], .text = ""}, 1, -EINVAL);
    }
    assert_refused(&(cs_twiml_verb){CS_TWIML_HANGUP, .text = "x"}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){CS_TWIML_PAUSE, .text = "x"}, 1, -EINVAL);
    /* <Parameter>s only on a stream; nesting only where it belongs */
    assert_refused(&(cs_twiml_verb){CS_TWIML_HANGUP, .params = &p, .nparams = 1}, 1, -EINVAL);
    assert_refused(&(cs_twiml_verb){CS_TWIML_SAY, .text = "x", .nested = &ok, .nnested = 1}, 1,
                   -EINVAL);
    /* attribute names are letters, never escaped */
    static const char *const names[] = {"", "a b", "a\"", "a=", "x:y", NULL};
    for (size_t i = 0; i < N(names); i++) {
        cs_twiml_attr a = {names[i], "v"};
        assert_refused(&(cs_twiml_verb){CS_TWIML_HANGUP, .attrs = &a, .nattrs = 1}, 1, -EINVAL);
    }
    /* an attribute given twice, even one left out */
    cs_twiml_attr twice[] = {{"voice", "a"}, {"language", "en"}, {"voice", NULL}};
    assert_refused(&(cs_twiml_verb){CS_TWIML_SAY, .text = "x", .attrs = twice, .nattrs = 3}, 1,
                   -EINVAL);
    /* a bad verb anywhere refuses the whole list */
    cs_twiml_verb v[] = {{CS_TWIML_SAY, .text = "hi"}, {CS_TWIML_DIAL}};
    assert_refused(v, 2, -EINVAL);
}

/* name + value under 500 characters, at most CS_PEV_MAX_PARAMS. */
static void parameter_limits(void **state)
{
    (void)state;
    static char value[CS_TWIML_MAX_PARAM];
    memset(value, 'v', sizeof value);
    cs_kv p = {CS_STR("name"), {value, CS_TWIML_MAX_PARAM - 4}};
    cs_twiml_attr url[] = {{"url", STREAM}};
    cs_twiml_verb s = {CS_TWIML_STREAM, .attrs = url, .nattrs = 1, .params = &p, .nparams = 1};
    cs_twiml_verb c = {CS_TWIML_CONNECT, .nested = &s, .nnested = 1};
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_twiml_verbs_write(&out, &c, 1), 0);
    p.value.n++;
    assert_refused(&c, 1, -EMSGSIZE);
    static cs_kv many[CS_PEV_MAX_PARAMS + 1];
    for (size_t i = 0; i < N(many); i++) many[i] = (cs_kv){CS_STR("n"), CS_STR("v")};
    s.params = many;
    s.nparams = CS_PEV_MAX_PARAMS;
    s.kind = CS_TWIML_RELAY;
    cs_buf_reset(&out);
    assert_int_equal(cs_twiml_verbs_write(&out, &c, 1), 0);
    s.nparams++;
    assert_refused(&c, 1, -EMSGSIZE);
    cs_buf_free(&out);
}

/* A document over 64 kB is refused whatever the buffer may hold; so is one over the
 * buffer's own limit (the transfer's 4,000 characters). */
static void bound(void **state)
{
    (void)state;
    static char text[CS_TWIML_MAX_BYTES];
    memset(text, 'a', sizeof text - 1);
    const char *fixed = DECL "<Response><Say></Say></Response>";
    size_t room = CS_TWIML_MAX_BYTES - strlen(fixed);
    text[room] = '\0';
    cs_twiml_verb say = {CS_TWIML_SAY, .text = text};
    cs_buf out = CS_BUF_INIT(2 * CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_twiml_verbs_write(&out, &say, 1), 0);
    assert_int_equal(out.len, CS_TWIML_MAX_BYTES);
    cs_buf_reset(&out);
    text[room - 1] = '&'; /* escaped: 4 bytes more */
    assert_int_equal(cs_buf_puts(&out, "kept"), 0);
    assert_int_equal(cs_twiml_verbs_write(&out, &say, 1), -EMSGSIZE);
    assert_string_equal(out.data, "kept");
    cs_buf_free(&out);
    cs_buf small = CS_BUF_INIT(64);
    assert_int_equal(cs_buf_puts(&small, "kept"), 0);
    assert_int_equal(cs_twiml_verbs_write(&small, &(cs_twiml_verb){CS_TWIML_DIAL, .text = text}, 1),
                     -EMSGSIZE);
    assert_string_equal(small.data, "kept");
    cs_buf_free(&small);
}

/* ---- property: any list the writer takes parses, with the elements and attributes it
 * was given; any it refuses leaves the buffer as it was. Seeded, so it always runs the
 * same lists. ---- */

static const char *const hostile[] = {
    "&amp; &#0; &lt;",
    "]]><!-- --><?pi?>",
    "\"'<>&",
    "<Stream url=\"x\"/>",
    "\x01\x0b\x1b[31m",
    "\xff\xfe\xfd",
    "\xc3(",
    "\xed\xa0\x80",
    "\xef\xbf\xbe\xef\xbf\xbf",
    "caf\xc3\xa9 \xf0\x9f\x98\x80",
    "\r\n\t",
    "plain",
    "",
};
static const char *const attr_names[] = {"voice", "action", "length", "url",
                                         "name",  "track",  "method", "input"};

typedef struct gen {
    uint64_t seed;
    cs_twiml_attr attrs[256][4];
    cs_kv params[256][4];
    cs_twiml_verb nested[256][3];
    size_t na, np, nn;
    bool dup; /* an attribute name given twice: the list must be refused */
} gen;

static const char *pick(gen *g)
{
    return hostile[tu_rand_below(&g->seed, N(hostile))];
}

/* A verb of `kind` with random attributes and, where it may, random content; counts the
 * elements and attributes it will write. */
static cs_twiml_verb random_verb(gen *g, cs_twiml_kind kind, size_t *elements, size_t *attrs)
{
    cs_twiml_verb v = {kind};
    cs_twiml_attr *a = g->attrs[g->na++ % 256];
    size_t na = tu_rand_below(&g->seed, 4);
    size_t first = tu_rand_below(&g->seed, N(attr_names));
    for (size_t i = 0; i < na; i++) {
        a[i] = (cs_twiml_attr){attr_names[(first + i) % N(attr_names)], pick(g)};
        if (i && tu_rand_below(&g->seed, 64) == 0) a[i].name = a[0].name; /* now and then */
        if (strcmp(a[i].name, "url") == 0 || strcmp(a[i].name, "track") == 0) a[i].name = "tag";
        if (tu_rand_below(&g->seed, 4) == 0) a[i].value = NULL;
        if (a[i].value) (*attrs)++;
        for (size_t k = 0; k < i; k++) g->dup |= strcmp(a[k].name, a[i].name) == 0;
    }
    v.attrs = a;
    v.nattrs = na;
    (*elements)++;
    if (kind == CS_TWIML_SAY || kind == CS_TWIML_PLAY || kind == CS_TWIML_DIAL ||
        kind == CS_TWIML_REDIRECT) {
        const char *t = pick(g);
        v.text = *t ? t : "x"; /* text may not be empty */
    }
    if (kind == CS_TWIML_STREAM || kind == CS_TWIML_RELAY) {
        a[na] = (cs_twiml_attr){"url", STREAM};
        v.nattrs = na + 1;
        (*attrs)++;
        cs_kv *p = g->params[g->np++ % 256];
        v.nparams = tu_rand_below(&g->seed, 4);
        for (size_t i = 0; i < v.nparams; i++)
            p[i] = (cs_kv){cs_str_of(pick(g)), cs_str_of(pick(g))};
        v.params = p;
        *elements += v.nparams;
        *attrs += 2 * v.nparams;
    }
    cs_twiml_verb *n = g->nested[g->nn++ % 256];
    if (kind == CS_TWIML_GATHER) {
        v.nnested = tu_rand_below(&g->seed, 4);
        for (size_t i = 0; i < v.nnested; i++)
            n[i] = random_verb(g, (cs_twiml_kind)tu_rand_below(&g->seed, 3), elements, attrs);
    } else if (kind == CS_TWIML_CONNECT || kind == CS_TWIML_START) {
        v.nnested = 1;
        n[0] = random_verb(g,
                           kind == CS_TWIML_START || tu_rand_below(&g->seed, 2) ? CS_TWIML_STREAM
                                                                                : CS_TWIML_RELAY,
                           elements, attrs);
    }
    v.nested = n;
    return v;
}

static void any_list_is_well_formed(void **state)
{
    (void)state;
    static gen g = {.seed = 12};
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    int written = 0;
    for (int round = 0; round < 500; round++) {
        cs_twiml_verb v[8];
        size_t n = 1 + tu_rand_below(&g.seed, N(v)), elements = 1, attrs = 0;
        g.dup = false;
        for (size_t i = 0; i < n; i++)
            v[i] = random_verb(&g, (cs_twiml_kind)tu_rand_below(&g.seed, CS_TWIML_STREAM),
                               &elements, &attrs);
        cs_buf_reset(&out);
        int rc = cs_twiml_verbs_write(&out, v, n);
        if (g.dup) {
            assert_int_equal(rc, -EINVAL);
            assert_int_equal(out.len, 0);
            continue;
        }
        if (rc) fail_msg("round %d refused: %d", round, rc);
        char why[256];
        size_t e, a;
        if (!xml_well_formed(out.data, out.len, why, sizeof why, &e, &a))
            fail_msg("round %d not well-formed: %s: %s", round, why, out.data);
        assert_int_equal(e, elements);
        assert_int_equal(a, attrs);
        written++;
    }
    assert_true(written > 250); /* most lists are taken: the property is not vacuous */
    cs_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_verbs),
        cmocka_unit_test(gather_nests_say_play_pause),
        cmocka_unit_test(connect_and_start_streams),
        cmocka_unit_test(refuses_bad_lists),
        cmocka_unit_test(parameter_limits),
        cmocka_unit_test(bound),
        cmocka_unit_test(any_list_is_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
