/* Call summaries' pure parts: the transcript cut to SUMMARY_MAX_CHARS (start and end kept,
 * a marker between, UTF-8 never split) and the model's answer checked (good, fenced in
 * ```json, missing members, wrong types, not JSON, a whole completion). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "summary/summary.h"

/* Whether s[0, n) is valid UTF-8. */
static bool utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static void short_text_is_kept_whole(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 20);
    const char *t = "[00:01.0] Caller: hello\n";
    assert_int_equal(cs_summary_cut(&out, t, strlen(t), 200), 0);
    assert_int_equal(out.len, strlen(t));
    assert_memory_equal(out.data, t, out.len);
    cs_buf_free(&out);
}

static void long_text_keeps_start_and_end(void **state)
{
    (void)state;
    char *t = malloc(10001);
    for (int i = 0; i < 10000; i++) t[i] = (char)('a' + i % 26);
    memcpy(t, "BEGIN", 5);
    memcpy(t + 10000 - 3, "END", 3);
    t[10000] = '\0';
    cs_buf out = CS_BUF_INIT(1 << 20);
    assert_int_equal(cs_summary_cut(&out, t, 10000, 1000), 0);
    assert_true(out.len <= 1000);
    assert_true(out.len >= 900); /* nearly all of the room is used */
    assert_memory_equal(out.data, "BEGIN", 5);
    assert_memory_equal(out.data + out.len - 3, "END", 3);
    assert_non_null(strstr(out.data, "left out"));
    /* the marker says how much: everything that is not there */
    const char *m = strstr(out.data, "[... ");
    assert_non_null(m);
    size_t gone = strtoul(m + 5, NULL, 10);
    size_t marker_len = (size_t)(strstr(m, "]\n") + 2 - m) + 1;
    assert_int_equal(gone, 10000 - (out.len - marker_len));
    cs_buf_free(&out);
    free(t);
}

static void cut_never_splits_utf8(void **state)
{
    (void)state;
    /* "é" (2 bytes), "€" (3), "😀" (4), over and over: every cut point lands inside one */
    static const char *const pieces[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "a"};
    cs_buf t = CS_BUF_INIT(1 << 20);
    for (int i = 0; i < 3000; i++) cs_buf_puts(&t, pieces[i % 4]);
    for (size_t max = 200; max < 400; max++) {
        cs_buf out = CS_BUF_INIT(1 << 20);
        assert_int_equal(cs_summary_cut(&out, t.data, t.len, max), 0);
        assert_true(out.len <= max);
        if (!utf8_ok(out.data, out.len)) fail_msg("max %zu: the cut split a UTF-8 sequence", max);
        cs_buf_free(&out);
    }
    cs_buf_free(&t);
}

/* ---- the answer ---- */

static int parse(const char *content, cs_buf *out, char *why)
{
    cs_buf_reset(out);
    return cs_summary_parse(content, strlen(content), out, why, 256);
}

static void good_answer_is_written_again(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 20);
    char why[256] = "";
    const char *a =
        "{\"summary\":\"The caller asked about an order.\",\"key_points\":[\"order "
        "42\"],\"action_items\":[\"call back\"],\"sentiment\":\"Positive\",\"extra\":1}";
    assert_int_equal(parse(a, &out, why), 0);
    cJSON *j = cJSON_Parse(out.data);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "summary")->valuestring,
                        "The caller asked about an order.");
    assert_string_equal(cJSON_GetObjectItem(j, "sentiment")->valuestring, "positive");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "key_points")), 1);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "action_items"), 0)->valuestring,
                        "call back");
    assert_null(cJSON_GetObjectItem(j, "extra")); /* only what was asked */
    cJSON_Delete(j);
    cs_buf_free(&out);
}

static void fenced_answer_is_taken(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 20);
    char why[256] = "";
    const char *a = "  ```json\n{\"summary\":\"s\",\"key_points\":[],\"action_items\":[],"
                    "\"sentiment\":\"mixed\"}\n```\n";
    assert_int_equal(parse(a, &out, why), 0);
    assert_non_null(strstr(out.data, "\"sentiment\":\"mixed\""));
    cs_buf_free(&out);
}

static void bad_answers_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *answer, *why;
    } rows[] = {
        {"not json at all", "not JSON"},
        {"{\"summary\":\"s\",\"key_points\":[", "not JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"key_points\":[],\"action_items\":[],\"sentiment\":\"neutral\"}", "no summary"},
        {"{\"summary\":\"s\",\"action_items\":[],\"sentiment\":\"neutral\"}", "no key_points"},
        {"{\"summary\":\"s\",\"key_points\":[],\"sentiment\":\"neutral\"}", "no action_items"},
        {"{\"summary\":\"s\",\"key_points\":[],\"action_items\":[]}", "no sentiment"},
        {"{\"summary\":42,\"key_points\":[],\"action_items\":[],\"sentiment\":\"neutral\"}",
         "summary is not a string"},
        {"{\"summary\":\"\",\"key_points\":[],\"action_items\":[],\"sentiment\":\"neutral\"}",
         "summary is not a string, or empty"},
        {"{\"summary\":\"s\",\"key_points\":\"a\",\"action_items\":[],\"sentiment\":\"neutral\"}",
         "key_points is not an array"},
        {"{\"summary\":\"s\",\"key_points\":[1],\"action_items\":[],\"sentiment\":\"neutral\"}",
         "key_points holds something other than strings"},
        {"{\"summary\":\"s\",\"key_points\":[],\"action_items\":[],\"sentiment\":\"angry\"}",
         "sentiment is not positive"},
        {"{\"summary\":\"s\",\"key_points\":[],\"action_items\":[],\"sentiment\":3}",
         "sentiment is not positive"},
    };
    cs_buf out = CS_BUF_INIT(1 << 20);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char why[256] = "";
        int rc = parse(rows[i].answer, &out, why);
        if (rc != CS_EPARSE || !strstr(why, rows[i].why))
            fail_msg("%s: rc %d, why '%s', expected '%s'", rows[i].answer, rc, why, rows[i].why);
        assert_int_equal(out.len, 0); /* nothing half-written */
    }
    cs_buf_free(&out);
}

static void completion_content_is_parsed(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(1 << 20);
    char why[256] = "";
    const char *good =
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"{\\\"summary\\\":\\\"s\\\",\\\"key_points\\\":[],"
        "\\\"action_items\\\":[],\\\"sentiment\\\":\\\"neutral\\\"}\"},\"finish_reason\":\"stop\"}]"
        "}";
    assert_int_equal(cs_summary_parse_completion(good, strlen(good), &out, why, sizeof why), 0);
    assert_non_null(strstr(out.data, "\"summary\":\"s\""));
    cs_buf_reset(&out);
    const char *none = "{\"choices\":[]}";
    assert_int_equal(cs_summary_parse_completion(none, strlen(none), &out, why, sizeof why),
                     CS_EPARSE);
    assert_non_null(strstr(why, "no choices[0].message.content"));
    const char *html = "<html>502</html>";
    assert_int_equal(cs_summary_parse_completion(html, strlen(html), &out, why, sizeof why),
                     CS_EPARSE);
    assert_non_null(strstr(why, "not JSON"));
    cs_buf_free(&out);
}

static void transcript_lines_name_the_speaker(void **state)
{
    (void)state;
    cs_segment_row segs[] = {
        {.speaker = "caller", .text = "hello", .start_ms = 61234},
        {.speaker = "agent", .text = "hi there", .start_ms = 62000},
    };
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_summary_transcript(&out, segs, 2);
    assert_string_equal(out.data, "[01:01.2] Caller: hello\n[01:02.0] Agent: hi there\n");
    cs_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(short_text_is_kept_whole),
        cmocka_unit_test(long_text_keeps_start_and_end),
        cmocka_unit_test(cut_never_splits_utf8),
        cmocka_unit_test(good_answer_is_written_again),
        cmocka_unit_test(fenced_answer_is_taken),
        cmocka_unit_test(bad_answers_say_why),
        cmocka_unit_test(completion_content_is_parsed),
        cmocka_unit_test(transcript_lines_name_the_speaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
