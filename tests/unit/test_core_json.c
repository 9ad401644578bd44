#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* One document using every writer. */
static void write_sample(cs_json *j)
{
    cs_json_obj(j);
    cs_json_kstr(j, "event", "media");
    cs_json_kstr(j, "none", NULL);
    cs_json_kint(j, "min", INT64_MIN);
    cs_json_kuint(j, "max", UINT64_MAX);
    cs_json_kdouble(j, "ratio", 0.25);
    cs_json_kbool(j, "on", true);
    cs_json_kbool(j, "off", false);
    cs_json_key(j, "list");
    cs_json_arr(j);
    cs_json_int(j, -1);
    cs_json_uint(j, 2);
    cs_json_double(j, 1.5);
    cs_json_str(j, "s");
    cs_json_strn(j, "tab\there", 5);
    cs_json_bool(j, false);
    cs_json_null(j);
    cs_json_raw(j, "{\"r\":[1]}", 9);
    cs_json_arr_end(j);
    cs_json_key(j, "q\"k");
    cs_json_obj(j);
    cs_json_obj_end(j);
    cs_json_obj_end(j);
}

static const char sample[] = "{\"event\":\"media\",\"none\":null,\"min\":-9223372036854775808,"
                             "\"max\":18446744073709551615,\"ratio\":0.25,\"on\":true,"
                             "\"off\":false,\"list\":[-1,2,1.5,\"s\",\"tab\\th\",false,null,"
                             "{\"r\":[1]}],\"q\\\"k\":{}}";

/* Runs `write` into a fresh buffer bounded by `max`; returns cs_json_end's result. */
static int write_into(cs_buf *out, size_t max, void (*write)(cs_json *))
{
    cs_buf_init(out, max);
    cs_json j;
    cs_json_init(&j, out);
    write(&j);
    return cs_json_end(&j);
}

/* The text of a single value written by `write`; caller frees. */
static char *text_of(void (*write)(cs_json *))
{
    cs_buf out;
    assert_int_equal(write_into(&out, 1 << 20, write), 0);
    return cs_buf_detach(&out, NULL);
}

static void every_value_type(void **state)
{
    (void)state;
    char *s = text_of(write_sample);
    assert_string_equal(s, sample);
    free(s);
}

static void write_nesting(cs_json *j)
{
    cs_json_arr(j);
    cs_json_arr(j);
    cs_json_arr_end(j);
    cs_json_obj(j);
    cs_json_obj_end(j);
    cs_json_arr(j);
    cs_json_int(j, 1);
    cs_json_arr(j);
    cs_json_int(j, 2);
    cs_json_int(j, 3);
    cs_json_arr_end(j);
    cs_json_arr_end(j);
    cs_json_obj(j);
    cs_json_key(j, "a");
    cs_json_arr(j);
    cs_json_arr_end(j);
    cs_json_key(j, "b");
    cs_json_obj(j);
    cs_json_kint(j, "c", 4);
    cs_json_obj_end(j);
    cs_json_kint(j, "d", 5);
    cs_json_obj_end(j);
    cs_json_int(j, 6);
    cs_json_arr_end(j);
}

static void commas_and_nesting(void **state)
{
    (void)state;
    char *s = text_of(write_nesting);
    assert_string_equal(s, "[[],{},[1,[2,3]],{\"a\":[],\"b\":{\"c\":4},\"d\":5},6]");
    free(s);
}

static void write_long_array(cs_json *j)
{
    cs_json_arr(j);
    for (int i = 0; i < 1000; i++) cs_json_int(j, i);
    cs_json_arr_end(j);
}

static void commas_past_255_elements(void **state)
{
    (void)state;
    char *s = text_of(write_long_array);
    cs_buf want = CS_BUF_INIT(1 << 20);
    assert_int_equal(cs_buf_putc(&want, '['), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cs_buf_printf(&want, "%s%d", i ? "," : "", i), 0);
    assert_int_equal(cs_buf_putc(&want, ']'), 0);
    assert_string_equal(s, want.data);
    cs_buf_free(&want);
    free(s);
}

/* The JSON text cs_json_escape makes of `n` bytes of `s`; caller frees. */
static char *escaped(const char *s, size_t n)
{
    cs_buf out = CS_BUF_INIT(1 << 20);
    assert_int_equal(cs_json_escape(&out, s, n), 0);
    return cs_buf_detach(&out, NULL);
}

static void escapes_quotes_backslashes_and_controls(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", "\"\""},
        {"plain", "\"plain\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"C:\\dir\\", "\"C:\\\\dir\\\\\""},
        {"a/b", "\"a/b\""}, /* '/' may stay as it is */
        {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
        {"\x01x\x1f", "\"\\u0001x\\u001f\""},
        {"\x7f", "\"\x7f\""}, /* DEL is not a control character in JSON */
        {"end\n", "\"end\\n\""},
        {"\"", "\"\\\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = escaped(cases[i].in, strlen(cases[i].in));
        assert_string_equal(s, cases[i].out);
        free(s);
    }

    /* Every control character, NUL included, the short form where JSON has one. */
    static const char *const named[32] = {
        ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r"};
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c, want[16];
        if (named[c])
            snprintf(want, sizeof want, "\"%s\"", named[c]);
        else
            snprintf(want, sizeof want, "\"\\u%04x\"", c);
        char *s = escaped(&in, 1);
        assert_string_equal(s, want);
        free(s);
    }
}

static void utf8_passes_through(void **state)
{
    (void)state;
    const char *in = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xce\xba";
    char *s = escaped(in, strlen(in));
    assert_int_equal(strlen(s), strlen(in) + 2);
    assert_memory_equal(s + 1, in, strlen(in));
    free(s);
}

/* JSON is Unicode text: bytes that are not UTF-8 become U+FFFD, one each. */
static void invalid_utf8_is_replaced(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"a\xff" "b", "\"a\xef\xbf\xbd" "b\""},
        {"\xc3", "\"\xef\xbf\xbd\""},
        {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xed\xa0\x80x", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\""},
        {"\xe2\x82\xac\x80\"", "\"\xe2\x82\xac\xef\xbf\xbd\\\"\""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char *s = escaped(rows[i].in, strlen(rows[i].in));
        assert_string_equal(s, rows[i].want);
        free(s);
    }
}

static void write_strn(cs_json *j)
{
    cs_json_arr(j);
    cs_json_strn(j, "a\0b", 3);
    cs_json_strn(j, "abcdef", 2);
    cs_json_strn(j, NULL, 0);
    cs_json_arr_end(j);
}

static void strn_takes_the_length(void **state)
{
    (void)state;
    char *s = text_of(write_strn);
    assert_string_equal(s, "[\"a\\u0000b\",\"ab\",\"\"]");
    free(s);
}

static void write_non_finite(cs_json *j)
{
    cs_json_obj(j);
    cs_json_kdouble(j, "nan", NAN);
    cs_json_kdouble(j, "inf", INFINITY);
    cs_json_kdouble(j, "-inf", -INFINITY);
    cs_json_key(j, "list");
    cs_json_arr(j);
    cs_json_double(j, NAN);
    cs_json_double(j, -INFINITY);
    cs_json_double(j, 0);
    cs_json_arr_end(j);
    cs_json_obj_end(j);
}

static void non_finite_doubles_are_null(void **state)
{
    (void)state;
    char *s = text_of(write_non_finite);
    assert_string_equal(s, "{\"nan\":null,\"inf\":null,\"-inf\":null,\"list\":[null,null,0]}");
    free(s);
}

static void doubles_read_back_exactly(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text; /* NULL: only the value must survive */
    } cases[] = {
        {0.25, "0.25"},         {-1.5, "-1.5"},
        {0.1, "0.1"},           {1234567.0, "1234567"},
        {1700000000.123, NULL}, {1e300, "1e+300"},
        {-0.0, "-0"},           {1.0 / 3, NULL},
        {5e-324, NULL},         {1.7976931348623157e308, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_buf out = CS_BUF_INIT(64);
        cs_json j;
        cs_json_init(&j, &out);
        cs_json_double(&j, cases[i].v);
        assert_int_equal(cs_json_end(&j), 0);
        if (cases[i].text) assert_string_equal(out.data, cases[i].text);
        char *end;
        double back = strtod(out.data, &end);
        assert_int_equal(*end, '\0');
        assert_memory_equal(&back, &cases[i].v, sizeof back);
        cs_buf_free(&out);
    }
}

static void appends_to_what_is_there(void **state)
{
    (void)state;
    cs_buf out = CS_BUF_INIT(100);
    assert_int_equal(cs_buf_puts(&out, "data: "), 0);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kint(&j, "n", 1);
    cs_json_obj_end(&j);
    assert_int_equal(cs_json_end(&j), 0);
    assert_string_equal(out.data, "data: {\"n\":1}");
    cs_buf_free(&out);
}

/* Opens `n` arrays and closes as many as it opened. */
static int nest(int n)
{
    cs_buf out = CS_BUF_INIT(1 << 10);
    cs_json j;
    cs_json_init(&j, &out);
    for (int i = 0; i < n; i++) cs_json_arr(&j);
    for (int i = 0; i < n; i++) cs_json_arr_end(&j);
    int rc = cs_json_end(&j);
    cs_buf_free(&out);
    return rc;
}

static void depth_limit(void **state)
{
    (void)state;
    assert_int_equal(nest(CS_JSON_MAX_DEPTH), 0);
    assert_int_equal(nest(CS_JSON_MAX_DEPTH + 1), -EMSGSIZE);
    assert_int_equal(nest(CS_JSON_MAX_DEPTH + 10), -EMSGSIZE);
}

static void write_open(cs_json *j)
{
    cs_json_obj(j);
    cs_json_key(j, "a");
    cs_json_arr(j);
    cs_json_arr_end(j);
}

static void write_extra_close(cs_json *j)
{
    cs_json_arr(j);
    cs_json_arr_end(j);
    cs_json_arr_end(j);
}

static void write_close_first(cs_json *j)
{
    cs_json_obj_end(j);
    cs_json_obj(j);
    cs_json_obj_end(j);
}

static void unbalanced_nesting_is_einval(void **state)
{
    (void)state;
    cs_buf out;
    assert_int_equal(write_into(&out, 100, write_open), -EINVAL);
    cs_buf_free(&out);
    assert_int_equal(write_into(&out, 100, write_extra_close), -EINVAL);
    assert_string_equal(out.data, "[]");
    cs_buf_free(&out);
    assert_int_equal(write_into(&out, 100, write_close_first), -EINVAL);
    assert_int_equal(out.len, 0); /* nothing is written after an error */
    cs_buf_free(&out);
}

static void write_top_key(cs_json *j)
{
    cs_json_key(j, "a");
    cs_json_int(j, 1);
}

static void write_key_in_array(cs_json *j)
{
    cs_json_arr(j);
    cs_json_key(j, "a");
    cs_json_int(j, 1);
    cs_json_arr_end(j);
}

static void write_value_without_key(cs_json *j)
{
    cs_json_obj(j);
    cs_json_int(j, 1);
    cs_json_obj_end(j);
}

static void write_dangling_key(cs_json *j)
{
    cs_json_obj(j);
    cs_json_key(j, "a");
    cs_json_obj_end(j);
}

static void write_two_keys(cs_json *j)
{
    cs_json_obj(j);
    cs_json_key(j, "a");
    cs_json_key(j, "b");
    cs_json_int(j, 1);
    cs_json_obj_end(j);
}

static void write_wrong_close(cs_json *j)
{
    cs_json_obj(j);
    cs_json_arr_end(j);
}

static void write_two_values(cs_json *j)
{
    cs_json_int(j, 1);
    cs_json_int(j, 2);
}

static void misuse_is_einval(void **state)
{
    (void)state;
    void (*const cases[])(cs_json *) = {
        write_top_key,  write_key_in_array, write_value_without_key, write_dangling_key,
        write_two_keys, write_wrong_close,  write_two_values};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_buf out;
        assert_int_equal(write_into(&out, 100, cases[i]), -EINVAL);
        cs_buf_free(&out);
    }
}

static void the_first_error_is_kept(void **state)
{
    (void)state;
    /* Out of room, then an extra close: the overflow is reported. */
    cs_buf out = CS_BUF_INIT(4);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_arr(&j);
    cs_json_str(&j, "too long");
    size_t len = out.len;
    cs_json_int(&j, 1);
    cs_json_arr_end(&j);
    cs_json_arr_end(&j);
    assert_int_equal(out.len, len); /* nothing written after the error */
    assert_int_equal(cs_json_end(&j), -EMSGSIZE);
    assert_int_equal(cs_json_end(&j), -EMSGSIZE);
    cs_buf_free(&out);

    /* An extra close, then out of room: the close is reported. */
    cs_buf_init(&out, 4);
    cs_json_init(&j, &out);
    cs_json_arr_end(&j);
    cs_json_str(&j, "too long");
    assert_int_equal(cs_json_end(&j), -EINVAL);
    cs_buf_free(&out);

    /* Too deep, then unbalanced at the end: the depth is reported. */
    cs_buf_init(&out, 100);
    cs_json_init(&j, &out);
    for (int i = 0; i <= CS_JSON_MAX_DEPTH; i++) cs_json_arr(&j);
    assert_int_equal(cs_json_end(&j), -EMSGSIZE);
    cs_buf_free(&out);
}

static void every_writer_fails_cleanly_when_out_of_room(void **state)
{
    (void)state;
    size_t full = strlen(sample);
    for (size_t max = 0; max < full; max++) {
        cs_buf out;
        assert_int_equal(write_into(&out, max, write_sample), -EMSGSIZE);
        assert_true(out.len <= max);
        if (out.len) assert_memory_equal(out.data, sample, out.len); /* a clean prefix */
        cs_buf_free(&out);
    }
    cs_buf out;
    assert_int_equal(write_into(&out, full, write_sample), 0);
    assert_string_equal(out.data, sample);
    cs_buf_free(&out);
}

static void escape_fails_cleanly_when_out_of_room(void **state)
{
    (void)state;
    const char in[] = "ab\"cd\x01"
                      "ef\n";
    const char want[] = "\"ab\\\"cd\\u0001ef\\n\"";
    for (size_t max = 0; max < sizeof want - 1; max++) {
        cs_buf out = CS_BUF_INIT(max);
        assert_int_equal(cs_json_escape(&out, in, sizeof in - 1), -EMSGSIZE);
        if (out.len) assert_memory_equal(out.data, want, out.len);
        cs_buf_free(&out);
    }
    char *s = escaped(in, sizeof in - 1);
    assert_string_equal(s, want);
    free(s);
}

/* ---- random documents, written with cs_json and built in parallel with cJSON ---- */

/* A random string of ASCII, bytes JSON must escape, and UTF-8 sequences (é € 😀). */
static void random_string(uint64_t *rng, char *s, size_t cap)
{
    static const char singles[] = "aZ0 {]:,/\x7f\"\\\n\t\x01\x1f";
    static const char *const multi[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    const size_t nsingles = sizeof singles - 1, nmulti = sizeof multi / sizeof *multi;
    size_t n = 0;
    for (size_t i = tu_rand_below(rng, 12); i > 0 && n + 4 < cap; i--) {
        size_t r = tu_rand_below(rng, nsingles + nmulti);
        if (r < nsingles) {
            s[n++] = singles[r];
        } else {
            strcpy(s + n, multi[r - nsingles]);
            n += strlen(multi[r - nsingles]);
        }
    }
    s[n] = '\0';
}

static double random_double(uint64_t *rng)
{
    double mantissa = (double)(int64_t)tu_rand(rng) / 9007199254740992.0;
    return ldexp(mantissa, (int)tu_rand_below(rng, 200) - 100);
}

static cJSON *random_value(cs_json *j, uint64_t *rng, int depth)
{
    static const char *const raws[] = {"[1,{\"r\":true}]", "\"raw\"", "-0.5e3", "{}"};
    char s[64];
    switch (tu_rand_below(rng, depth < 5 ? 9 : 7)) {
    case 0:
        cs_json_null(j);
        return cJSON_CreateNull();
    case 1: {
        bool v = tu_rand(rng) & 1;
        cs_json_bool(j, v);
        return cJSON_CreateBool(v);
    }
    case 2: {
        int64_t v = (int64_t)tu_rand(rng) >> tu_rand_below(rng, 64);
        cs_json_int(j, v);
        return cJSON_CreateNumber((double)v);
    }
    case 3: {
        uint64_t v = tu_rand(rng) >> tu_rand_below(rng, 64);
        cs_json_uint(j, v);
        return cJSON_CreateNumber((double)v);
    }
    case 4: {
        double v = random_double(rng);
        cs_json_double(j, v);
        return cJSON_CreateNumber(v);
    }
    case 5:
        random_string(rng, s, sizeof s);
        cs_json_str(j, s);
        return cJSON_CreateString(s);
    case 6: {
        const char *raw = raws[tu_rand_below(rng, sizeof raws / sizeof *raws)];
        cs_json_raw(j, raw, strlen(raw));
        return cJSON_Parse(raw);
    }
    case 7: {
        cJSON *a = cJSON_CreateArray();
        cs_json_arr(j);
        for (size_t i = tu_rand_below(rng, 6); i > 0; i--)
            cJSON_AddItemToArray(a, random_value(j, rng, depth + 1));
        cs_json_arr_end(j);
        return a;
    }
    default: {
        cJSON *o = cJSON_CreateObject();
        cs_json_obj(j);
        for (size_t i = 0, n = tu_rand_below(rng, 6); i < n; i++) {
            char key[96];
            random_string(rng, s, sizeof s);
            snprintf(key, sizeof key, "%zu%s", i, s); /* unique within the object */
            cs_json_key(j, key);
            cJSON_AddItemToObject(o, key, random_value(j, rng, depth + 1));
        }
        cs_json_obj_end(j);
        return o;
    }
    }
}

static void random_documents_parse_back(void **state)
{
    (void)state;
    uint64_t rng = 20240601;
    for (int doc = 0; doc < 2000; doc++) {
        cs_buf out = CS_BUF_INIT(1 << 20);
        cs_json j;
        cs_json_init(&j, &out);
        cJSON *want = random_value(&j, &rng, 0);
        assert_int_equal(cs_json_end(&j), 0);
        for (size_t i = 0; i < out.len; i++) assert_true((unsigned char)out.data[i] >= 0x20);

        const char *end = NULL;
        cJSON *got = cJSON_ParseWithLengthOpts(out.data, out.len + 1, &end, true);
        if (!got) fail_msg("document %d does not parse: %s", doc, out.data);
        if (!cJSON_Compare(want, got, true)) fail_msg("document %d differs: %s", doc, out.data);
        cJSON_Delete(got);
        cJSON_Delete(want);
        cs_buf_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_value_type),
        cmocka_unit_test(commas_and_nesting),
        cmocka_unit_test(commas_past_255_elements),
        cmocka_unit_test(escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(utf8_passes_through),
        cmocka_unit_test(invalid_utf8_is_replaced),
        cmocka_unit_test(strn_takes_the_length),
        cmocka_unit_test(non_finite_doubles_are_null),
        cmocka_unit_test(doubles_read_back_exactly),
        cmocka_unit_test(appends_to_what_is_there),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(unbalanced_nesting_is_einval),
        cmocka_unit_test(misuse_is_einval),
        cmocka_unit_test(the_first_error_is_kept),
        cmocka_unit_test(every_writer_fails_cleanly_when_out_of_room),
        cmocka_unit_test(escape_fails_cleanly_when_out_of_room),
        cmocka_unit_test(random_documents_parse_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
