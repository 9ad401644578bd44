#include "testutil.h"

#include "core/clock.h"
#include "core/err.h"

static int64_t parsed(const char *s)
{
    int64_t ms = -1;
    int rc = cs_iso8601_parse(s, &ms);
    if (rc != 0) fail_msg("'%s' refused", s);
    return ms;
}

/* Every form it takes, and what cs_iso8601 writes reads back. */
static void iso8601_forms(void **state)
{
    (void)state;
    assert_int_equal(parsed("1970-01-01"), 0);
    assert_int_equal(parsed("2026-11-22T10:00:00.123Z"), INT64_C(1795341600123));
    assert_int_equal(parsed("2026-11-22T10:00:00Z"), INT64_C(1795341600000));
    assert_int_equal(parsed("2026-11-22T10:00Z"), INT64_C(1795341600000));
    assert_int_equal(parsed("2026-11-22T10:00:00"), INT64_C(1795341600000)); /* no zone: UTC */
    assert_int_equal(parsed("2026-11-22 10:00:00"), INT64_C(1795341600000));
    assert_int_equal(parsed("2026-11-22T11:30:00+01:30"), INT64_C(1795341600000));
    assert_int_equal(parsed("2026-11-22T05:00:00-0500"), INT64_C(1795341600000));
    assert_int_equal(parsed("2026-11-22T10:00:00.5Z"), INT64_C(1795341600500));
    assert_int_equal(parsed("2026-11-22T10:00:00.123456789Z"), INT64_C(1795341600123));
    assert_int_equal(parsed("2026-11-22"), INT64_C(1795305600000));
    assert_int_equal(parsed("2024-02-29"), INT64_C(1709164800000));
    assert_int_equal(parsed("1969-12-31T23:59:59Z"), -1000);
    char out[25];
    for (int64_t ms = 0; ms < INT64_C(4000000000000); ms += INT64_C(97654321987)) {
        cs_iso8601(out, ms);
        assert_int_equal(parsed(out), ms);
    }
}

static void iso8601_refuses_the_rest(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11",
        "2026-13-01",
        "2026-00-10",
        "2026-11-31",
        "2025-02-29",
        "2026-11-22T",
        "2026-11-22T24:00",
        "2026-11-22T10",
        "2026-11-22T10:60",
        "2026-11-22T10:00:60",
        "2026-11-22T10:00:00.Z",
        "2026-11-22T10:00:00+1",
        "2026-11-22T10:00:00+24:00",
        "2026-11-22T10:00:00Zjunk",
        "2026-11-22junk",
        "26-11-22",
        "2026/11/22",
        "yesterday",
        "1795341600000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 42;
        if (cs_iso8601_parse(bad[i], &ms) != CS_EPARSE)
            fail_msg("'%s' taken: %lld", bad[i], (long long)ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(iso8601_forms),
        cmocka_unit_test(iso8601_refuses_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
