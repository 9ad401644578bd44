/* Commands between the nodes of a cluster (src/http/cluster_msg.h): each op written and
 * read back, and what a node must refuse. The routing itself is tested with two gateways
 * in tests/integ/cluster.c. */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/cluster_msg.h"

#define CA   "CA0123456789abcdef0123456789abcdef"
#define CS   "CS0123456789abcdef0123456789abcdef"
#define HASH "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int decode(cs_cmd *c, const char *text)
{
    char why[128] = "";
    int rc = cs_cmd_decode(c, text, strlen(text), why, sizeof why);
    if (rc < 0) assert_true(why[0]);
    return rc;
}

static void round_trips(void **state)
{
    (void)state;
    const cs_cmd cmds[] = {
        {.op = CS_CMD_EVENT,
         .sid = CA,
         .type = CS_EVENT_STATUS,
         .detail = "{\"CallStatus\":\"completed\"}",
         .at = 1733400000123},
        {.op = CS_CMD_EVENT, .sid = CA, .type = CS_EVENT_CONTROL, .at = 1},
        {.op = CS_CMD_STATUS, .sid = CA, .status = "completed"},
        {.op = CS_CMD_SAY, .sid = CA, .id = 42, .text = "hello \"there\"", .by = "ops"},
        {.op = CS_CMD_REPLY, .id = 42, .code = 409, .message = "the call has no agent"},
        {.op = CS_CMD_REPLY, .id = 7, .code = 202},
        {.op = CS_CMD_REPLY,
         .id = 8,
         .code = 200,
         .body = "{\"format\":\"pcm16\",\"rate\":16000,\"params\":{\"From\":\"a\"}}"},
        {.op = CS_CMD_CLAIM, .sid = CS, .id = 9, .hash = HASH},
        {.op = CS_CMD_PEEK, .sid = CS, .id = 10},
        {.op = CS_CMD_CANCEL, .sid = CS, .id = 11, .by = "ops"},
        {.op = CS_CMD_CANCEL, .sid = CS, .id = 12},
        {.op = CS_CMD_REPLY,
         .id = 13,
         .code = 200,
         .body = "<?xml version=\"1.0\"?><Response><Hangup/></Response>"},
        {.op = CS_CMD_GATHER,
         .sid = CA,
         .id = 14,
         .form = "CallSid=" CA "&SpeechResult=sales+please&Digits=12%23",
         .query = "fallback=stream&Team=blue"},
        {.op = CS_CMD_GATHER, .sid = CA, .id = 15, .form = ""},
    };
    cs_buf out = CS_BUF_INIT(1 << 20);
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        const cs_cmd *w = &cmds[i];
        assert_int_equal(cs_cmd_encode(&out, w), 0);
        cs_cmd c;
        assert_int_equal(decode(&c, out.data), 0);
        assert_int_equal(c.op, w->op);
        if (w->sid) assert_string_equal(c.sid, w->sid);
        assert_int_equal(c.id, w->id);
        if (w->op == CS_CMD_EVENT) {
            assert_int_equal(c.type, w->type);
            assert_int_equal(c.at, w->at);
            if (w->detail)
                assert_string_equal(c.detail, w->detail);
            else
                assert_null(c.detail);
        }
        if (w->status) assert_string_equal(c.status, w->status);
        if (w->text) assert_string_equal(c.text, w->text);
        if (w->by) assert_string_equal(c.by, w->by);
        assert_int_equal(c.code, w->code);
        if (w->message) assert_string_equal(c.message, w->message);
        if (w->body)
            assert_string_equal(c.body, w->body);
        else
            assert_null(c.body);
        if (w->hash)
            assert_string_equal(c.hash, w->hash);
        else
            assert_null(c.hash);
        if (!w->by) assert_null(c.by);
        if (w->form) assert_string_equal(c.form, w->form);
        if (w->query)
            assert_string_equal(c.query, w->query);
        else
            assert_null(c.query);
        cs_cmd_free(&c);
    }
    cs_buf_free(&out);
}

static void refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "not json",
        "{\"op\":\"status\",\"sid\":\"" CA "\",\"status\":\"completed\"}",         /* no v */
        "{\"v\":2,\"op\":\"status\",\"sid\":\"" CA "\",\"status\":\"completed\"}", /* v2 */
        "{\"v\":\"1\",\"op\":\"status\",\"sid\":\"" CA "\",\"status\":\"x\"}",
        "{\"v\":1,\"op\":\"reboot\",\"sid\":\"" CA "\"}",
        "{\"v\":1,\"op\":7}",
        "{\"v\":1,\"op\":\"status\",\"status\":\"completed\"}", /* no sid */
        "{\"v\":1,\"op\":\"status\",\"sid\":\"CA/../x\",\"status\":\"completed\"}",
        "{\"v\":1,\"op\":\"status\",\"sid\":\"" CA "\"}", /* no status */
        "{\"v\":1,\"op\":\"status\",\"sid\":\"" CA "\",\"status\":\"\"}",
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"party\",\"at\":1}",
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"status\"}", /* no at */
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"status\",\"at\":1.5}",
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"status\",\"at\":1,"
        "\"detail\":\"{not json\"}",
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"status\",\"at\":1,"
        "\"detail\":\"[1]\"}",
        "{\"v\":1,\"op\":\"event\",\"sid\":\"" CA "\",\"type\":\"status\",\"at\":1,"
        "\"detail\":{}}",
        "{\"v\":1,\"op\":\"say\",\"sid\":\"" CA "\",\"text\":\"hi\"}", /* no id */
        "{\"v\":1,\"op\":\"say\",\"sid\":\"" CA "\",\"id\":0,\"text\":\"hi\"}",
        "{\"v\":1,\"op\":\"say\",\"sid\":\"" CA "\",\"id\":1,\"text\":\"\"}",
        "{\"v\":1,\"op\":\"say\",\"sid\":\"" CA "\",\"id\":1,\"text\":\"hi\",\"by\":3}",
        "{\"v\":1,\"op\":\"reply\",\"id\":1}", /* no code */
        "{\"v\":1,\"op\":\"reply\",\"id\":1,\"code\":99}",
        "{\"v\":1,\"op\":\"reply\",\"id\":1,\"code\":700}",
        "{\"v\":1,\"op\":\"reply\",\"id\":1,\"code\":200,\"body\":{}}",
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"hash\":\"" HASH "\"}", /* no id */
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1}",              /* no hash */
        "{\"v\":1,\"op\":\"claim\",\"id\":1,\"hash\":\"" HASH "\"}",           /* no sid */
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1,\"hash\":\"abc\"}",
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1,\"hash\":\"" HASH "0\"}",
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1,"
        "\"hash\":\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"}",
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1,"
        "\"hash\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeexx\"}",
        "{\"v\":1,\"op\":\"claim\",\"sid\":\"" CS "\",\"id\":1,\"hash\":32}",
        "{\"v\":1,\"op\":\"peek\",\"sid\":\"" CS "\"}", /* no id */
        "{\"v\":1,\"op\":\"peek\",\"id\":3}",           /* no sid */
        "{\"v\":1,\"op\":\"cancel\",\"sid\":\"" CS "\",\"id\":-1}",
        "{\"v\":1,\"op\":\"cancel\",\"sid\":\"" CS "\",\"id\":1,\"by\":[]}",
        "{\"v\":1,\"op\":\"reply\",\"id\":1,\"code\":200,\"body\":5}",
        "{\"v\":1,\"op\":\"gather\",\"sid\":\"" CA "\",\"id\":1}",         /* no form */
        "{\"v\":1,\"op\":\"gather\",\"sid\":\"" CA "\",\"form\":\"a=1\"}", /* no id */
        "{\"v\":1,\"op\":\"gather\",\"id\":1,\"form\":\"a=1\"}",           /* no sid */
        "{\"v\":1,\"op\":\"gather\",\"sid\":\"" CA "\",\"id\":1,\"form\":[]}",
        "{\"v\":1,\"op\":\"gather\",\"sid\":\"" CA "\",\"id\":1,\"form\":\"a=1\","
        "\"query\":7}",
        "{\"v\":2,\"op\":\"gather\",\"sid\":\"" CA "\",\"id\":1,\"form\":\"a=1\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_cmd c;
        if (decode(&c, bad[i]) != -EPROTO) fail_msg("accepted: %s", bad[i]);
        cs_cmd_free(&c);
    }
}

/* Past their limits: refused when read, and never written. */
static void bounded(void **state)
{
    (void)state;
    char text[CS_CMD_TEXT_MAX + 2];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_cmd say = {.op = CS_CMD_SAY, .sid = CA, .id = 1, .text = text};
    assert_int_equal(cs_cmd_encode(&out, &say), -EINVAL);
    text[CS_CMD_TEXT_MAX] = '\0';
    assert_int_equal(cs_cmd_encode(&out, &say), 0);
    cs_buf doc = CS_BUF_INIT(1 << 20);
    cs_buf_printf(&doc, "{\"v\":1,\"op\":\"say\",\"sid\":\"%s\",\"id\":1,\"text\":\"%sa\"}", CA,
                  text);
    cs_cmd c;
    assert_int_equal(decode(&c, doc.data), -EPROTO);
    cs_cmd_free(&c);
    /* A reply's body: up to CS_CMD_BODY_MAX; a forwarded form or query: CS_CMD_FORM_MAX. */
    char *big = malloc(CS_CMD_FORM_MAX + 2);
    assert_non_null(big);
    memset(big, 'b', CS_CMD_FORM_MAX + 1);
    big[CS_CMD_BODY_MAX + 1] = '\0';
    cs_cmd reply = {.op = CS_CMD_REPLY, .id = 1, .code = 200, .body = big};
    assert_int_equal(cs_cmd_encode(&out, &reply), -EINVAL);
    big[CS_CMD_BODY_MAX] = '\0';
    assert_int_equal(cs_cmd_encode(&out, &reply), 0);
    cs_buf_reset(&doc);
    cs_buf_printf(&doc, "{\"v\":1,\"op\":\"reply\",\"id\":1,\"code\":200,\"body\":\"%sb\"}", big);
    assert_int_equal(decode(&c, doc.data), -EPROTO);
    cs_cmd_free(&c);
    memset(big, 'b', CS_CMD_FORM_MAX + 1);
    big[CS_CMD_FORM_MAX + 1] = '\0';
    cs_cmd fwd = {.op = CS_CMD_GATHER, .sid = CA, .id = 1, .form = big};
    assert_int_equal(cs_cmd_encode(&out, &fwd), -EINVAL);
    fwd = (cs_cmd){.op = CS_CMD_GATHER, .sid = CA, .id = 1, .form = "a=1", .query = big};
    assert_int_equal(cs_cmd_encode(&out, &fwd), -EINVAL);
    big[CS_CMD_FORM_MAX] = '\0';
    fwd.form = big;
    assert_int_equal(cs_cmd_encode(&out, &fwd), 0);
    cs_buf_reset(&doc);
    cs_buf_printf(&doc, "{\"v\":1,\"op\":\"gather\",\"sid\":\"%s\",\"id\":1,\"form\":\"%sb\"}", CA,
                  big);
    assert_int_equal(decode(&c, doc.data), -EPROTO);
    cs_cmd_free(&c);
    cs_cmd noform = {.op = CS_CMD_GATHER, .sid = CA, .id = 1};
    assert_int_equal(cs_cmd_encode(&out, &noform), -EINVAL);
    free(big);
    cs_cmd nosid = {.op = CS_CMD_STATUS, .sid = "", .status = "completed"};
    assert_int_equal(cs_cmd_encode(&out, &nosid), -EINVAL);
    cs_cmd bad_op = {.op = CS_CMD_COUNT};
    assert_int_equal(cs_cmd_encode(&out, &bad_op), -EINVAL);
    /* a claim's hash is 64 lowercase hex digits */
    cs_cmd claim = {.op = CS_CMD_CLAIM, .sid = CS, .id = 1, .hash = "abc"};
    assert_int_equal(cs_cmd_encode(&out, &claim), -EINVAL);
    claim.hash = NULL;
    assert_int_equal(cs_cmd_encode(&out, &claim), -EINVAL);
    char by[CS_CMD_FIELD_MAX + 2];
    memset(by, 'b', sizeof by - 1);
    by[sizeof by - 1] = '\0';
    cs_cmd cancel = {.op = CS_CMD_CANCEL, .sid = CS, .id = 1, .by = by};
    assert_int_equal(cs_cmd_encode(&out, &cancel), -EINVAL);
    cs_buf_reset(&doc);
    cs_buf_printf(&doc, "{\"v\":1,\"op\":\"cancel\",\"sid\":\"%s\",\"id\":1,\"by\":\"%s\"}", CS,
                  by);
    assert_int_equal(decode(&c, doc.data), -EPROTO);
    cs_cmd_free(&c);
    cs_buf_free(&doc);
    cs_buf_free(&out);
}

static void names(void **state)
{
    (void)state;
    assert_null(cs_cmd_op_name(CS_CMD_BAD));
    assert_null(cs_cmd_op_name(CS_CMD_COUNT));
    assert_string_equal(cs_cmd_op_name(CS_CMD_SAY), "say");
    assert_string_equal(cs_cmd_op_name(CS_CMD_CLAIM), "claim");
    assert_string_equal(cs_cmd_op_name(CS_CMD_PEEK), "peek");
    assert_string_equal(cs_cmd_op_name(CS_CMD_CANCEL), "cancel");
    assert_string_equal(cs_cmd_op_name(CS_CMD_GATHER), "gather");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(refused),
        cmocka_unit_test(bounded),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
