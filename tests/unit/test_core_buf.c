#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "core/buf.h"

/* The buffer holds exactly `n` bytes of `want`, followed by a NUL. */
static void expect(const cs_buf *b, const char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, n);
    assert_int_equal(b->data[n], '\0');
    assert_true(b->cap >= b->len);
    assert_true(b->cap <= b->max);
}

static void expect_str(const cs_buf *b, const char *want)
{
    expect(b, want, strlen(want));
}

/* The buffer is exactly as `before` was, contents included. */
static void expect_unchanged(const cs_buf *b, const cs_buf *before, const char *contents)
{
    assert_memory_equal(b, before, sizeof *b);
    if (b->data) expect_str(b, contents);
}

static int vprintf_into(cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vprintf_into(cs_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cs_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* `n` bytes of a repeating pattern, NUL-terminated; caller frees. */
static char *pattern(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + i % 26);
    s[n] = '\0';
    return s;
}

static void init_free_reset_are_idempotent(void **state)
{
    (void)state;
    cs_buf a = CS_BUF_INIT(100), b;
    cs_buf_init(&b, 100);
    assert_memory_equal(&a, &b, sizeof a);
    assert_null(b.data);

    cs_buf_reset(&b); /* fresh: nothing to terminate */
    assert_null(b.data);
    cs_buf_free(&b);
    cs_buf_free(&b);
    assert_memory_equal(&a, &b, sizeof a);

    assert_int_equal(cs_buf_puts(&b, "hello"), 0);
    char *data = b.data;
    size_t cap = b.cap;
    cs_buf_reset(&b);
    cs_buf_reset(&b);
    expect_str(&b, "");
    assert_ptr_equal(b.data, data); /* storage kept */
    assert_int_equal(b.cap, cap);

    cs_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    cs_buf_free(&b);

    assert_int_equal(cs_buf_puts(&b, "again"), 0); /* usable after free */
    expect_str(&b, "again");
    cs_buf_free(&b);
}

static void appends_keep_text_terminated(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 20);
    assert_int_equal(cs_buf_append(&b, "ab\0c", 4), 0);
    expect(&b, "ab\0c", 4);
    assert_int_equal(cs_buf_puts(&b, "de"), 0);
    expect(&b, "ab\0cde", 6);
    assert_int_equal(cs_buf_putc(&b, 'f'), 0);
    expect(&b, "ab\0cdef", 7);
    assert_int_equal(cs_buf_putc(&b, '\0'), 0);
    expect(&b, "ab\0cdef\0", 8);
    cs_buf_reset(&b);
    assert_int_equal(cs_buf_printf(&b, "%d-%s-%c", 42, "x", 'y'), 0);
    expect_str(&b, "42-x-y");
    assert_int_equal(vprintf_into(&b, "[%05.1f]", 3.14159), 0);
    expect_str(&b, "42-x-y[003.1]");
    cs_buf_free(&b);
}

static void printf_longer_than_the_stack_buffer(void **state)
{
    (void)state;
    /* Lengths around the 256-byte stack buffer, and well past it. */
    static const size_t lens[] = {254, 255, 256, 257, 1000, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        char *s = pattern(lens[i]);
        cs_buf b = CS_BUF_INIT(1 << 20);
        assert_int_equal(cs_buf_puts(&b, "<"), 0);
        assert_int_equal(cs_buf_printf(&b, "%s>", s), 0);
        assert_int_equal(b.len, lens[i] + 2);
        assert_int_equal(b.data[0], '<');
        assert_memory_equal(b.data + 1, s, lens[i]);
        assert_int_equal(b.data[b.len - 1], '>');
        assert_int_equal(b.data[b.len], '\0');

        cs_buf_reset(&b);
        assert_int_equal(vprintf_into(&b, "%s|%s", s, s), 0);
        assert_int_equal(b.len, 2 * lens[i] + 1);
        assert_memory_equal(b.data, s, lens[i]);
        assert_memory_equal(b.data + lens[i] + 1, s, lens[i]);
        assert_int_equal(b.data[b.len], '\0');
        cs_buf_free(&b);
        free(s);
    }
}

static void printf_encoding_error_is_einval(void **state)
{
    (void)state;
    /* In the C locale a non-ASCII wide character cannot be converted. */
    cs_buf b = CS_BUF_INIT(100);
    assert_int_equal(cs_buf_puts(&b, "kept"), 0);
    cs_buf before = b;
    assert_int_equal(cs_buf_printf(&b, "%ls", L"\u00e9"), -EINVAL);
    expect_unchanged(&b, &before, "kept");
    cs_buf_free(&b);
}

static void exactly_max_fits(void **state)
{
    (void)state;
    char *s = pattern(300);
    cs_buf b = CS_BUF_INIT(10);
    assert_int_equal(cs_buf_append(&b, s, 10), 0);
    expect(&b, s, 10);
    assert_int_equal(b.cap, 10); /* growth stops at max */
    assert_int_equal(cs_buf_append(&b, "", 0), 0);
    expect(&b, s, 10);
    cs_buf_free(&b);

    cs_buf_init(&b, 10);
    assert_int_equal(cs_buf_puts(&b, "12345"), 0);
    assert_int_equal(cs_buf_printf(&b, "%s", "67890"), 0);
    expect_str(&b, "1234567890");
    cs_buf_free(&b);

    cs_buf_init(&b, 300); /* the long printf path, to the byte */
    assert_int_equal(cs_buf_printf(&b, "%s", s), 0);
    expect(&b, s, 300);
    cs_buf_free(&b);
    free(s);
}

static void past_max_is_emsgsize_and_changes_nothing(void **state)
{
    (void)state;
    char *s = pattern(400);
    cs_buf b = CS_BUF_INIT(300);

    /* On a fresh buffer nothing is allocated. */
    cs_buf before = b;
    assert_int_equal(cs_buf_append(&b, s, 301), -EMSGSIZE);
    assert_int_equal(cs_buf_printf(&b, "%s", s), -EMSGSIZE);
    assert_null(cs_buf_space(&b, 301));
    expect_unchanged(&b, &before, "");

    assert_int_equal(cs_buf_append(&b, s, 295), 0);
    char *kept = strndup(s, 295);
    before = b;
    assert_int_equal(cs_buf_append(&b, s, 6), -EMSGSIZE);
    expect_unchanged(&b, &before, kept);
    assert_int_equal(cs_buf_puts(&b, "123456"), -EMSGSIZE);
    expect_unchanged(&b, &before, kept);
    assert_int_equal(cs_buf_printf(&b, "%d", 123456), -EMSGSIZE); /* short path */
    expect_unchanged(&b, &before, kept);
    assert_int_equal(vprintf_into(&b, "%s", s), -EMSGSIZE); /* long path */
    expect_unchanged(&b, &before, kept);
    assert_null(cs_buf_space(&b, 6));
    expect_unchanged(&b, &before, kept);
    assert_null(cs_buf_space(&b, (size_t)-1));
    expect_unchanged(&b, &before, kept);

    assert_int_equal(cs_buf_append(&b, s, 5), 0); /* exactly to max */
    assert_int_equal(cs_buf_putc(&b, 'x'), -EMSGSIZE);
    assert_int_equal(b.len, 300);
    assert_int_equal(b.data[300], '\0');
    free(kept);
    cs_buf_free(&b);
    free(s);
}

static void zero_length_appends_on_a_fresh_buffer(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(100);
    assert_int_equal(cs_buf_append(&b, "", 0), 0);
    expect_str(&b, ""); /* allocated, so data is a valid empty string */
    cs_buf_free(&b);

    assert_int_equal(cs_buf_puts(&b, ""), 0);
    expect_str(&b, "");
    cs_buf_free(&b);

    assert_int_equal(cs_buf_printf(&b, "%s", ""), 0);
    expect_str(&b, "");
    cs_buf_free(&b);

    cs_buf none = CS_BUF_INIT(0); /* a zero max still holds the empty string */
    assert_int_equal(cs_buf_append(&none, "", 0), 0);
    expect_str(&none, "");
    assert_int_equal(cs_buf_putc(&none, 'x'), -EMSGSIZE);
    expect_str(&none, "");
    cs_buf_free(&none);
}

static void space_and_commit(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1 << 16);
    char *p = cs_buf_space(&b, 100);
    assert_non_null(p);
    assert_ptr_equal(p, b.data);
    assert_int_equal(b.len, 0);
    assert_true(b.cap >= 100);
    memcpy(p, "hello", 5);
    cs_buf_commit(&b, 5); /* less than reserved */
    expect_str(&b, "hello");

    p = cs_buf_space(&b, 0);
    assert_ptr_equal(p, b.data + 5);
    cs_buf_commit(&b, 0);
    expect_str(&b, "hello");

    /* Growing moves the data along. */
    p = cs_buf_space(&b, 40000);
    assert_non_null(p);
    assert_ptr_equal(p, b.data + 5);
    assert_true(b.cap >= 40005);
    expect_str(&b, "hello");
    memset(p, 'z', 40000);
    cs_buf_commit(&b, 40000);
    assert_int_equal(b.len, 40005);
    assert_memory_equal(b.data, "hellozzz", 8);
    assert_int_equal(b.data[b.len], '\0');
    cs_buf_free(&b);
}

static void growth_is_bounded_by_max(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(1000);
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(cs_buf_putc(&b, (char)('0' + i % 10)), 0);
        assert_int_equal(b.len, i + 1);
        assert_int_equal(b.data[b.len], '\0');
        assert_true(b.cap >= b.len && b.cap <= 1000);
    }
    assert_int_equal(b.cap, 1000);
    for (size_t i = 0; i < 1000; i++) assert_int_equal(b.data[i], '0' + i % 10);
    cs_buf_free(&b);
}

static void consume_drops_the_front(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(100);
    cs_buf_consume(&b, 0); /* fresh */
    cs_buf_consume(&b, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    assert_int_equal(cs_buf_puts(&b, "hello world"), 0);
    cs_buf_consume(&b, 0);
    expect_str(&b, "hello world");
    cs_buf_consume(&b, 6);
    expect_str(&b, "world");
    cs_buf_consume(&b, 4);
    expect_str(&b, "d");
    cs_buf_consume(&b, 1); /* all */
    expect_str(&b, "");

    assert_int_equal(cs_buf_puts(&b, "abc"), 0);
    cs_buf_consume(&b, 1000); /* more than len */
    expect_str(&b, "");
    assert_int_equal(cs_buf_puts(&b, "xyz"), 0);
    expect_str(&b, "xyz");
    cs_buf_free(&b);
}

static void truncate_cuts_back(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(100);
    cs_buf_truncate(&b, 0); /* fresh */
    cs_buf_truncate(&b, 10);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    assert_int_equal(cs_buf_puts(&b, "hello"), 0);
    cs_buf_truncate(&b, 5); /* == len */
    expect_str(&b, "hello");
    cs_buf_truncate(&b, 50); /* > len: never grows */
    expect_str(&b, "hello");
    cs_buf_truncate(&b, 2);
    expect_str(&b, "he");
    cs_buf_truncate(&b, 0);
    expect_str(&b, "");
    assert_int_equal(cs_buf_puts(&b, "llo"), 0);
    expect_str(&b, "llo");

    /* Undoing a half-written record after a failure. */
    size_t mark = b.len;
    assert_int_equal(cs_buf_puts(&b, ",partial"), 0);
    cs_buf_truncate(&b, mark);
    expect_str(&b, "llo");
    cs_buf_free(&b);
}

static void detach_hands_over_the_storage(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT(100);
    size_t len = 99;
    assert_null(cs_buf_detach(&b, &len)); /* fresh */
    assert_int_equal(len, 0);

    assert_int_equal(cs_buf_puts(&b, "owned"), 0);
    char *p = cs_buf_detach(&b, &len);
    assert_int_equal(len, 5);
    assert_string_equal(p, "owned");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    free(p);

    assert_int_equal(cs_buf_puts(&b, "next"), 0); /* usable again */
    p = cs_buf_detach(&b, NULL);
    assert_string_equal(p, "next");
    free(p);
    cs_buf_free(&b); /* nothing left to free */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_free_reset_are_idempotent),
        cmocka_unit_test(appends_keep_text_terminated),
        cmocka_unit_test(printf_longer_than_the_stack_buffer),
        cmocka_unit_test(printf_encoding_error_is_einval),
        cmocka_unit_test(exactly_max_fits),
        cmocka_unit_test(past_max_is_emsgsize_and_changes_nothing),
        cmocka_unit_test(zero_length_appends_on_a_fresh_buffer),
        cmocka_unit_test(space_and_commit),
        cmocka_unit_test(growth_is_bounded_by_max),
        cmocka_unit_test(consume_drops_the_front),
        cmocka_unit_test(truncate_cuts_back),
        cmocka_unit_test(detach_hands_over_the_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
