#include "testutil.h"

#include "core/backoff.h"

/* Every draw lies in [d/2, d] for the attempt's d. */
static void doubles_up_to_the_cap_with_jitter(void **state)
{
    (void)state;
    static const uint32_t want[] = {100, 100, 200, 400, 800, 1000, 1000, 1000};
    for (unsigned attempt = 0; attempt < sizeof want / sizeof *want; attempt++) {
        uint32_t d = want[attempt], lo = d, hi = 0;
        for (int i = 0; i < 200; i++) {
            uint32_t ms = cs_backoff_ms(attempt, 100, 1000);
            if (ms < lo) lo = ms;
            if (ms > hi) hi = ms;
        }
        if (lo < d / 2 || hi > d)
            fail_msg("attempt %u: drew %u..%u, expected within %u..%u", attempt, lo, hi, d / 2, d);
        assert_true(hi > lo); /* jittered */
    }
}

static void huge_attempts_and_odd_bounds_stay_bounded(void **state)
{
    (void)state;
    assert_true(cs_backoff_ms(1000000, 250, 5000) <= 5000);
    assert_true(cs_backoff_ms(1000000, 250, 5000) >= 2500);
    assert_true(cs_backoff_ms(3, 0, 0) <= 1);
    assert_true(cs_backoff_ms(40, UINT32_MAX, UINT32_MAX) >= UINT32_MAX / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_up_to_the_cap_with_jitter),
        cmocka_unit_test(huge_attempts_and_odd_bounds_stay_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
