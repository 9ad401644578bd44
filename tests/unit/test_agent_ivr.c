/* IVR menus (agent/ivr_menu.c): the example menus read as they are meant, phrases and
 * keys matched, grammars written, and every kind of mistake refused with the file and
 * the JSON pointer of what is wrong. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ivr_menu.h"
#include "core/err.h"

static cs_ivr_menu *load_example(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/../../examples/ivr/%s.json", tu_data_path(""), name);
    cs_ivr_menu *m = NULL;
    cs_buf err = CS_BUF_INIT(4096);
    int rc = cs_ivr_menu_load(&m, path, &err);
    if (rc < 0) fail_msg("%s: %s", name, err.data);
    cs_buf_free(&err);
    assert_string_equal(m->name, name);
    return m;
}

static const cs_ivr_node *node(const cs_ivr_menu *m, const char *name)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0) return &m->nodes[i];
    fail_msg("no node %s", name);
    return NULL;
}

static uint32_t index_of(const cs_ivr_menu *m, const char *name)
{
    return (uint32_t)(node(m, name) - m->nodes);
}

static void examples_read_as_meant(void **state)
{
    (void)state;
    cs_ivr_menu *m = load_example("pizza");
    assert_int_equal(m->start, index_of(m, "welcome"));
    assert_string_equal(m->goodbye, "Thank you for calling Pizza Phone. Goodbye.");
    const cs_ivr_node *w = node(m, "welcome");
    assert_int_equal(w->kind, CS_IVR_MENU);
    assert_int_equal(w->nchoices, 3);
    assert_int_equal(w->timeout_ms, 5000);
    assert_int_equal(w->retries, 2);
    assert_int_equal(w->fallback, CS_IVR_NONE); /* hang up */
    assert_string_equal(w->save, "intent");
    assert_string_equal(w->no_match, "Sorry, I did not get that.");
    assert_string_equal(w->grammar, "#JSGF V1.0;\ngrammar ivr;\npublic <choice> = ( order ) | "
                                    "( order a pizza ) | ( opening hours ) | ( hours ) | ( "
                                    "leave a message ) | ( message );\n");
    const cs_ivr_node *size = node(m, "size");
    assert_string_equal(size->choices[1].value, "medium"); /* its first phrase */
    assert_int_equal(size->fallback, index_of(m, "welcome"));
    const cs_ivr_node *phone = node(m, "phone");
    assert_int_equal(phone->kind, CS_IVR_COLLECT);
    assert_int_equal(phone->collect.max_digits, 15);
    assert_int_equal(phone->collect.min_digits, 7);
    assert_int_equal(phone->collect.finish, '#');
    assert_int_equal(phone->collect.digit_timeout_ms, 4000);
    const cs_ivr_node *order = node(m, "place_order");
    assert_int_equal(order->kind, CS_IVR_WEBHOOK);
    assert_string_equal(order->webhook.url, "http://127.0.0.1:8090/pizza/order");
    assert_int_equal(order->webhook.timeout_ms, 5000);
    assert_string_equal(order->error, "Sorry, our ordering system is not answering right now.");
    const cs_ivr_node *msg = node(m, "message");
    assert_int_equal(msg->kind, CS_IVR_RECORD);
    assert_int_equal(msg->record.max_ms, 60000);
    assert_true(msg->record.beep);
    assert_int_equal(node(m, "hours")->kind, CS_IVR_SAY);
    assert_int_equal(node(m, "hours")->next, index_of(m, "welcome"));
    assert_int_equal(node(m, "goodbye")->kind, CS_IVR_HANGUP);
    cs_ivr_menu_free(m);

    m = load_example("bank");
    const cs_ivr_node *pin = node(m, "pin");
    assert_int_equal(pin->collect.finish, '\0');           /* four digits end it */
    assert_int_equal(pin->collect.digit_timeout_ms, 5000); /* the menu's default */
    assert_null(node(m, "welcome")->grammar);              /* keys only */
    assert_string_equal(node(m, "welcome")->choices[2].value, "end");
    assert_string_equal(node(m, "anything_else")->choices[0].value, "1"); /* its key */
    assert_null(node(m, "balance")->say);
    assert_string_equal(node(m, "account")->no_match, "An account number has eight digits.");
    cs_ivr_menu_free(m);

    m = load_example("rover");
    assert_int_equal(node(m, "command")->timeout_ms, 6000);
    cs_ivr_menu_free(m);
}

static void keys_and_phrases_match(void **state)
{
    (void)state;
    cs_ivr_menu *m = load_example("rover");
    const cs_ivr_node *n = node(m, "command");
    assert_ptr_equal(cs_ivr_menu_match(n, "go forward ten meters"), &n->choices[0]);
    assert_ptr_equal(cs_ivr_menu_match(n, "  Go FORWARD\tten  meters "), &n->choices[0]);
    assert_ptr_equal(cs_ivr_menu_match(n, "STOP"), &n->choices[2]);
    assert_null(cs_ivr_menu_match(n, "go forward")); /* a part is no phrase */
    assert_null(cs_ivr_menu_match(n, "stop stop"));
    assert_null(cs_ivr_menu_match(n, ""));
    char long_text[400];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    assert_null(cs_ivr_menu_match(n, long_text));
    assert_ptr_equal(cs_ivr_menu_key(n, '2'), &n->choices[1]);
    assert_null(cs_ivr_menu_key(n, '9'));
    assert_null(cs_ivr_menu_key(n, '\0'));
    cs_ivr_menu_free(m);
}

static void grammars_hold_each_phrase(void **state)
{
    (void)state;
    cs_buf g = CS_BUF_INIT(4096);
    const char *phrases[] = {"yes", "talk to someone"};
    assert_int_equal(cs_ivr_grammar(&g, phrases, 2), 0);
    assert_string_equal(g.data, "#JSGF V1.0;\ngrammar ivr;\npublic <choice> = ( yes ) | ( talk to "
                                "someone );\n");
    cs_buf_free(&g);
}

/* ---- mistakes ---- */

/* A menu of one node `a` (and whatever else `nodes` says) around `node_a`. */
#define ONE(node_a) "{\"start\": \"a\", \"nodes\": {\"a\": " node_a "}}"
#define MENU(nodes) "{\"start\": \"a\", \"nodes\": {" nodes "}}"

static const struct {
    const char *json, *error;
} bad[] = {
    {"{\"start\": \"a\",\n  \"nodes\": [}", "not JSON (line 2, column 13)"},
    {"[]", "/: not an object"},
    {"{\"start\": \"a\", \"nodes\": {\"a\": {\"say\": \"Hi.\", \"hangup\": true}}, \"voice\": 1}",
     "/voice: unknown member (expected one of description, start, defaults, nodes)"},
    {"{\"start\": \"a\"}", "/: no nodes"},
    {"{\"start\": \"a\", \"nodes\": {}}", "/nodes: not an object of nodes"},
    {"{\"nodes\": {\"a\": {\"say\": \"Hi.\", \"hangup\": true}}}",
     "/: no start: which node answers the call?"},
    {"{\"start\": \"b\", \"nodes\": {\"a\": {\"say\": \"Hi.\", \"hangup\": true}}}",
     "/start: no node 'b'"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"hangup\": true}, \"a\": {\"say\": \"Hi.\", \"hangup\": "
          "true}"),
     "/nodes/a: given twice"},
    {MENU("\"a/b\": {\"say\": \"Hi.\", \"hangup\": true}"),
     "/nodes/a/b: not a node name (letters, digits, _ - . up to 64)"},
    {ONE("{\"say\": \"Hi.\", \"nxt\": \"a\"}"),
     "/nodes/a/nxt: unknown member (expected one of description, say, choices, save, collect, "
     "record, webhook, hangup, transfer, next, fallback, timeout_s, retries, no_input, "
     "no_match, error)"},
    {ONE("{\"say\": \"Hi.\", \"say\": \"Ho.\", \"hangup\": true}"), "/nodes/a/say: given twice"},
    {ONE("{\"say\": 3, \"hangup\": true}"), "/nodes/a/say: not a string"},
    {ONE("{\"say\": \"\", \"hangup\": true}"), "/nodes/a/say: empty"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": false}"), "/nodes/a/hangup: only true is meaningful here"},
    {ONE("{\"say\": \"Hi.\"}"),
     "/nodes/a: no next: a node with nothing else to do (no choices, collect, record, webhook, "
     "transfer or hangup) needs one"},
    {ONE("{\"say\": \"Hi.\", \"next\": \"b\"}"), "/nodes/a/next: no node 'b'"},
    {ONE("{\"say\": \"Hi.\", \"next\": \"a\"}"),
     "/nodes/a: nodes with only say and next loop through here: the call would never wait for "
     "the caller"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"next\": \"b\"}, \"b\": {\"say\": \"Ho.\", \"next\": "
          "\"c\"}, \"c\": {\"say\": \"Hum.\", \"next\": \"b\"}"),
     "/nodes/b: nodes with only say and next loop through here: the call would never wait for "
     "the caller"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"next\": \"a\"}"),
     "/nodes/a/next: a node that hangs up goes nowhere next"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"fallback\": \"a\"}"),
     "/nodes/a/fallback: only nodes that wait (choices, collect, record, webhook, transfer) fall "
     "back"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": \"5551230001\"}}"),
     "/nodes/a/transfer/to: not an E.164 number (+ and up to 15 digits)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": \"+1555123000100000\"}}"),
     "/nodes/a/transfer/to: not an E.164 number (+ and up to 15 digits)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": 15551230001}}"),
     "/nodes/a/transfer/to: not an E.164 number (+ and up to 15 digits)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {}}"),
     "/nodes/a/transfer/to: not an E.164 number (+ and up to 15 digits)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": \"+15551230001\"}"), "/nodes/a/transfer: not an object"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": \"+15551230001\", \"from\": \"x\"}}"),
     "/nodes/a/transfer/from: unknown member (expected one of to)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": \"+15551230001\"}, \"next\": \"a\"}"),
     "/nodes/a/next: a node that transfers goes nowhere next (its fallback, if the transfer "
     "fails)"},
    {ONE("{\"say\": \"Hi.\", \"transfer\": {\"to\": \"+15551230001\"}, \"hangup\": true}"),
     "/nodes/a: both hangup and transfer: a node does one thing"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"choices\": [{\"key\": \"1\", \"goto\": \"a\"}]}"),
     "/nodes/a: both choices and hangup: a node does one thing"},
    {ONE("{\"choices\": [{\"key\": \"1\", \"goto\": \"a\"}]}"),
     "/nodes/a: no say: what does the caller hear?"},
    {ONE("{\"say\": \"Hi.\", \"choices\": []}"), "/nodes/a/choices: empty: a menu needs a choice"},
    {ONE("{\"say\": \"Hi.\", \"choices\": {}}"), "/nodes/a/choices: not an array"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\", \"goto\": \"a\"}], \"next\": \"a\"}"),
     "/nodes/a/next: a node with choices goes where they lead"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"goto\": \"a\"}]}"),
     "/nodes/a/choices/0: a choice needs a key or phrases"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\"}]}"),
     "/nodes/a/choices/0: no goto: where does this choice lead?"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\", \"goto\": \"b\"}]}"),
     "/nodes/a/choices/0/goto: no node 'b'"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"12\", \"goto\": \"a\"}]}"),
     "/nodes/a/choices/0/key: '12' is not a key (one of 0-9 * # A-D)"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\", \"goto\": \"a\"}, {\"key\": \"1\", "
         "\"goto\": \"a\"}]}"),
     "/nodes/a/choices/1: key 1 is choice 0's already"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"phrases\": [\"room 101\"], \"goto\": \"a\"}]}"),
     "/nodes/a/choices/0/phrases/0: 'room 101': write numbers as words (\"ten\", not \"10\")"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"phrases\": [\"yes | no\"], \"goto\": \"a\"}]}"),
     "/nodes/a/choices/0/phrases/0: 'yes | no': a phrase holds letters, apostrophes and spaces "
     "only"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"phrases\": [\"  \"], \"goto\": \"a\"}]}"),
     "/nodes/a/choices/0/phrases/0: empty"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"phrases\": [], \"goto\": \"a\"}]}"),
     "/nodes/a/choices/0/phrases: not an array of phrases"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"phrases\": [\"Yes\"], \"goto\": \"a\"}, "
         "{\"phrases\": [\"yes\"], \"goto\": \"a\"}]}"),
     "/nodes/a/choices/1/phrases/0: 'yes' is given twice"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\", \"goto\": \"a\", \"value\": 1}]}"),
     "/nodes/a/choices/0/value: not a string"},
    {ONE("{\"say\": \"Hi.\", \"collect\": {\"max_digits\": 4}}"),
     "/nodes/a: no next: a node with collect needs one"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"collect\": {\"min_digits\": 4}, \"next\": \"b\"}, \"b\": "
          "{\"hangup\": true}"),
     "/nodes/a/collect: no max_digits"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"collect\": {\"max_digits\": 4, \"min_digits\": 5}, "
          "\"next\": \"b\"}, \"b\": {\"hangup\": true}"),
     "/nodes/a/collect/min_digits: 5 is more than max_digits (4)"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"collect\": {\"max_digits\": 65}, \"next\": \"b\"}, \"b\": "
          "{\"hangup\": true}"),
     "/nodes/a/collect/max_digits: 65 is not in [1, 64]"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"collect\": {\"max_digits\": 2.5}, \"next\": \"b\"}, \"b\": "
          "{\"hangup\": true}"),
     "/nodes/a/collect/max_digits: not a whole number"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"collect\": {\"max_digits\": 4, \"finish_on_key\": \"x\"}, "
          "\"next\": \"b\"}, \"b\": {\"hangup\": true}"),
     "/nodes/a/collect/finish_on_key: 'x' is not a key (one of 0-9 * # A-D, or \"\")"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"record\": {\"max_s\": 601}, \"next\": \"b\"}, \"b\": "
          "{\"hangup\": true}"),
     "/nodes/a/record/max_s: 601 is not in [1, 600]"},
    {MENU("\"a\": {\"say\": \"Hi.\", \"record\": {\"beep\": \"yes\"}, \"next\": \"b\"}, \"b\": "
          "{\"hangup\": true}"),
     "/nodes/a/record/beep: not true or false"},
    {MENU("\"a\": {\"webhook\": {\"url\": \"ftp://x/y\"}, \"next\": \"b\"}, \"b\": {\"hangup\": "
          "true}"),
     "/nodes/a/webhook/url: 'ftp://x/y' is not an http(s) URL"},
    {MENU("\"a\": {\"webhook\": {}, \"next\": \"b\"}, \"b\": {\"hangup\": true}"),
     "/nodes/a/webhook/url: no URL"},
    {MENU("\"a\": {\"webhook\": {\"url\": \"http://x/\", \"timeout_s\": 31}, \"next\": \"b\"}, "
          "\"b\": {\"hangup\": true}"),
     "/nodes/a/webhook/timeout_s: 31 is not in [0.1, 30]"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"timeout_s\": \"5\"}"),
     "/nodes/a/timeout_s: not a number"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"retries\": 11}"),
     "/nodes/a/retries: 11 is not in [0, 10]"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"save\": \"x\"}"),
     "/nodes/a/save: only choices, collect and record have a result to save"},
    {ONE("{\"say\": \"Hi.\", \"choices\": [{\"key\": \"1\", \"goto\": \"a\"}], \"save\": \"a b\"}"),
     "/nodes/a/save: not a name (letters, digits, _ - . up to 64)"},
    {ONE("{\"say\": \"Hi.\", \"hangup\": true, \"description\": 1}"),
     "/nodes/a/description: not a string"},
    {"{\"start\": \"a\", \"defaults\": {\"retries\": -1}, \"nodes\": {\"a\": {\"hangup\": true}}}",
     "/defaults/retries: -1 is not in [0, 10]"},
    {"{\"start\": \"a\", \"defaults\": {\"timeout\": 1}, \"nodes\": {\"a\": {\"hangup\": true}}}",
     "/defaults/timeout: unknown member (expected one of timeout_s, retries, digit_timeout_s, "
     "no_input, no_match, error, goodbye)"},
};

static void mistakes_are_refused_with_their_place(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_ivr_menu *m = (cs_ivr_menu *)1;
        cs_buf err = CS_BUF_INIT(4096);
        int rc = cs_ivr_menu_parse(&m, "t", "menus/t.json", bad[i].json, strlen(bad[i].json), &err);
        char want[1024];
        snprintf(want, sizeof want, "menus/t.json: %s", bad[i].error);
        if (rc != CS_ECONFIG || !err.data || strcmp(err.data, want) != 0)
            fail_msg("case %zu: %d, '%s', wanted '%s'", i, rc, err.data ? err.data : "", want);
        assert_null(m);
        cs_buf_free(&err);
    }
}

/* A transfer node: its number, what it says first, its fallback and apology. */
static void a_transfer_node_reads(void **state)
{
    (void)state;
    static const char json[] =
        "{\"start\": \"sales\", \"nodes\": {\"sales\": {\"say\": \"Putting you through.\", "
        "\"transfer\": {\"to\": \"+15551230001\"}, \"fallback\": \"sorry\", \"error\": "
        "\"Sorry, I could not transfer you.\"}, \"quiet\": {\"transfer\": {\"to\": "
        "\"+442071234567\"}}, \"sorry\": {\"say\": \"Bye.\", \"hangup\": true}}}";
    cs_ivr_menu *m = NULL;
    cs_buf err = CS_BUF_INIT(4096);
    int rc = cs_ivr_menu_parse(&m, "t", "t.json", json, strlen(json), &err);
    if (rc < 0) fail_msg("%s", err.data);
    cs_buf_free(&err);
    const cs_ivr_node *n = node(m, "sales");
    assert_int_equal(n->kind, CS_IVR_TRANSFER);
    assert_string_equal(cs_ivr_kind_label(n->kind), "transfer");
    assert_string_equal(n->transfer.to, "+15551230001");
    assert_string_equal(n->say, "Putting you through.");
    assert_string_equal(n->error, "Sorry, I could not transfer you.");
    assert_int_equal(n->fallback, index_of(m, "sorry"));
    const cs_ivr_node *q = node(m, "quiet"); /* nothing said first; no fallback: goodbye */
    assert_int_equal(q->kind, CS_IVR_TRANSFER);
    assert_null(q->say);
    assert_string_equal(q->transfer.to, "+442071234567");
    assert_int_equal(q->fallback, CS_IVR_NONE);
    cs_ivr_menu_free(m);
}

static void a_long_text_is_refused(void **state)
{
    (void)state;
    cs_buf json = CS_BUF_INIT(1 << 16);
    cs_buf_puts(&json, "{\"start\": \"a\", \"nodes\": {\"a\": {\"hangup\": true, \"say\": \"");
    for (int i = 0; i <= CS_IVR_TEXT_MAX; i++) cs_buf_putc(&json, 'x');
    cs_buf_puts(&json, "\"}}}");
    cs_ivr_menu *m;
    cs_buf err = CS_BUF_INIT(4096);
    assert_int_equal(cs_ivr_menu_parse(&m, "t", "t.json", json.data, json.len, &err), CS_ECONFIG);
    assert_string_equal(err.data, "t.json: /nodes/a/say: longer than 4096 bytes");
    cs_buf_free(&err);
    cs_buf_free(&json);
}

static void files_that_cannot_be_menus(void **state)
{
    (void)state;
    tu_env e;
    assert_int_equal(tu_env_open(&e, "cs-test-ivr"), 0);
    cs_ivr_menu *m;
    cs_buf err = CS_BUF_INIT(4096);
    const char *missing = tu_path_in(&e, "none.json");
    assert_int_equal(cs_ivr_menu_load(&m, missing, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "none.json: cannot open: No such file or directory"));
    cs_buf_reset(&err);
    /* Larger than a menu may be. */
    const char *big = tu_path_in(&e, "big.json");
    FILE *f = fopen(big, "w");
    assert_non_null(f);
    for (unsigned i = 0; i <= CS_IVR_FILE_MAX; i++) fputc(' ', f);
    fclose(f);
    assert_int_equal(cs_ivr_menu_load(&m, big, &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "big.json: larger than 1048576 bytes"));
    cs_buf_free(&err);
    assert_int_equal(tu_env_close(&e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(examples_read_as_meant),
        cmocka_unit_test(keys_and_phrases_match),
        cmocka_unit_test(grammars_hold_each_phrase),
        cmocka_unit_test(mistakes_are_refused_with_their_place),
        cmocka_unit_test(a_transfer_node_reads),
        cmocka_unit_test(a_long_text_is_refused),
        cmocka_unit_test(files_that_cannot_be_menus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
