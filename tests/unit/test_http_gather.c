/* The TwiML of each <Gather> turn (cs_gather_twiml): what the agent said as <Say> and
 * <Play> in order, inside a <Gather input="speech dtmf"> posting to the action with a
 * <Redirect> there after it (nothing gathered), or before <Hangup/>; every text escaped,
 * the document well-formed, and nothing written on an error. */
#include "testutil.h"

#include <string.h>

#include "http/gateway.h"
#include "provider/twiml.h"
#include "xmlcheck.h"

#define DECL   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define ACTION "https://calls.example.com/twilio/gather"

static const cs_gather_twiml_opts opts = {ACTION, "Polly.Joanna", "en-GB", 7};

static void assert_turn(const cs_gather_reply *r, const cs_gather_twiml_opts *o, const char *want)
{
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_gather_twiml(&out, r, o), 0);
    cs_buf_putc(&out, '\0');
    assert_string_equal(out.data, want);
    char why[128];
    assert_true(xml_well_formed(out.data, out.len - 1, why, sizeof why, NULL, NULL));
    cs_buf_free(&out);
}

static void listen_after_what_was_said(void **state)
{
    (void)state;
    const cs_gather_item items[] = {
        {false, "Hello & welcome <friend>.", 0},
        {true, "https://cdn.example.com/chime.wav?a=1&b=2", 2},
        {false, "What can I do?", 0},
    };
    cs_gather_reply r = {CS_GATHER_LISTEN, items, 3, false};
    assert_turn(&r, &opts,
                DECL "<Response><Gather input=\"speech dtmf\" action=\"" ACTION
                     "\" method=\"POST\" "
                     "timeout=\"7\" speechTimeout=\"auto\" language=\"en-GB\">"
                     "<Say voice=\"Polly.Joanna\" language=\"en-GB\">Hello &amp; welcome "
                     "&lt;friend&gt;.</Say>"
                     "<Play loop=\"2\">https://cdn.example.com/chime.wav?a=1&amp;b=2</Play>"
                     "<Say voice=\"Polly.Joanna\" language=\"en-GB\">What can I do?</Say>"
                     "</Gather><Redirect method=\"POST\">" ACTION "</Redirect></Response>");
}

static void nothing_said_listens_again(void **state)
{
    (void)state;
    cs_gather_reply r = {CS_GATHER_LISTEN, NULL, 0, true};
    const cs_gather_twiml_opts plain = {ACTION, NULL, NULL, 5};
    assert_turn(&r, &plain,
                DECL "<Response><Gather input=\"speech dtmf\" action=\"" ACTION
                     "\" method=\"POST\" "
                     "timeout=\"5\" speechTimeout=\"auto\"/>"
                     "<Redirect method=\"POST\">" ACTION "</Redirect></Response>");
}

static void hang_up_after_the_goodbye(void **state)
{
    (void)state;
    const cs_gather_item items[] = {{false, "Goodbye.", 0}, {true, "https://x/bye.mp3", 0}};
    cs_gather_reply r = {CS_GATHER_HANGUP, items, 2, false};
    assert_turn(&r, &opts,
                DECL "<Response><Say voice=\"Polly.Joanna\" language=\"en-GB\">Goodbye.</Say>"
                     "<Play>https://x/bye.mp3</Play><Hangup/></Response>");
    cs_gather_reply bare = {CS_GATHER_HANGUP, NULL, 0, false};
    assert_turn(&bare, &opts, DECL "<Response><Hangup/></Response>");
}

static void bad_replies_write_nothing(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    cs_buf_puts(&out, "kept");
    const cs_gather_item empty[] = {{false, NULL, 0}};
    cs_gather_reply r = {CS_GATHER_LISTEN, empty, 1, false};
    assert_int_equal(cs_gather_twiml(&out, &r, &opts), -EINVAL); /* a <Say> with no text */
    r.nitems = CS_GATHER_ITEMS_MAX + 1;
    assert_int_equal(cs_gather_twiml(&out, &r, &opts), -EINVAL);
    assert_int_equal(out.len, 4);
    cs_buf_free(&out);
}

/* The largest answer a conversation can hold fits Twilio's bound, escaped. */
static void the_largest_answer_fits(void **state)
{
    (void)state;
    static char text[CS_GATHER_TEXT_MAX / CS_GATHER_ITEMS_MAX];
    memset(text, '&', sizeof text - 1);
    cs_gather_item items[CS_GATHER_ITEMS_MAX];
    for (size_t i = 0; i < CS_GATHER_ITEMS_MAX; i++) items[i] = (cs_gather_item){false, text, 0};
    cs_gather_reply r = {CS_GATHER_LISTEN, items, CS_GATHER_ITEMS_MAX, false};
    cs_buf out = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    assert_int_equal(cs_gather_twiml(&out, &r, &opts), 0);
    assert_true(out.len < CS_TWIML_MAX_BYTES);
    cs_buf_free(&out);
}

/* A stream's fate from the store's rows: the latest one not in turns decides. */
static void fate_from_rows(void **state)
{
    (void)state;
    enum cs_end_reason why = CS_END_COUNT;
    assert_int_equal(cs_gather_fate_of_rows(NULL, 0, &why), CS_FATE_UNKNOWN);
    const cs_stream_row turns[] = {
        {.mode = "gather", .started_at = 5, .ended_at = 9, .end_reason = "stop"}};
    assert_int_equal(cs_gather_fate_of_rows(turns, 1, &why), CS_FATE_UNKNOWN);
    const cs_stream_row rows[] = {
        {.mode = "two-way", .started_at = 1, .ended_at = 2, .end_reason = "abnormal"},
        {.mode = "two-way", .started_at = 3, .ended_at = 4, .end_reason = "stop"},
        {.mode = "gather", .started_at = 5, .ended_at = 0},
    };
    assert_int_equal(cs_gather_fate_of_rows(rows, 3, &why), CS_FATE_ENDED);
    assert_int_equal(why, CS_END_STOP);
    assert_int_equal(cs_gather_fate_of_rows(rows, 1, &why), CS_FATE_ENDED);
    assert_int_equal(why, CS_END_ABNORMAL);
    const cs_stream_row open[] = {
        {.mode = "two-way", .started_at = 1, .ended_at = 2, .end_reason = "stop"},
        {.mode = "one-way", .started_at = 3}, /* its end not written yet */
    };
    why = CS_END_COUNT;
    assert_int_equal(cs_gather_fate_of_rows(open, 2, &why), CS_FATE_LIVE);
    assert_int_equal(why, CS_END_COUNT);
    const cs_stream_row odd[] = {
        {.mode = "two-way", .started_at = 1, .ended_at = 2, .end_reason = "vanished"}};
    assert_int_equal(cs_gather_fate_of_rows(odd, 1, &why), CS_FATE_LIVE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listen_after_what_was_said), cmocka_unit_test(nothing_said_listens_again),
        cmocka_unit_test(hang_up_after_the_goodbye),  cmocka_unit_test(bad_replies_write_nothing),
        cmocka_unit_test(the_largest_answer_fits),    cmocka_unit_test(fate_from_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
