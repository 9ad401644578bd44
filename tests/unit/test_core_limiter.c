#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "core/limiter.h"

#define MINUTE 60000 /* ms */

static void limits_each_key_and_refills(void **state)
{
    (void)state;
    cs_limiter l;
    cs_limiter_init(&l, 3, 100);
    for (int i = 0; i < 3; i++) assert_true(cs_limiter_take(&l, "10.0.0.1", 0));
    assert_false(cs_limiter_take(&l, "10.0.0.1", 0));
    assert_true(cs_limiter_take(&l, "10.0.0.2", 0)); /* other keys have their own */
    /* One attempt comes back every 20 s; a refused attempt takes nothing. */
    assert_false(cs_limiter_take(&l, "10.0.0.1", MINUTE / 3 - 1));
    assert_true(cs_limiter_take(&l, "10.0.0.1", MINUTE / 3));
    assert_false(cs_limiter_take(&l, "10.0.0.1", MINUTE / 3));
    /* A long quiet spell refills to the limit, not past it. */
    for (int i = 0; i < 3; i++) assert_true(cs_limiter_take(&l, "10.0.0.1", 10 * MINUTE));
    assert_false(cs_limiter_take(&l, "10.0.0.1", 10 * MINUTE));
    cs_limiter_free(&l);
}

/* A media socket's bucket: a one-second burst, refilled continuously. */
static void one_bucket(void **state)
{
    (void)state;
    cs_bucket b = cs_bucket_full(50, 1000);
    for (int i = 0; i < 50; i++) assert_true(cs_bucket_take(&b, 50, 1000, 1000));
    assert_false(cs_bucket_take(&b, 50, 1000, 1000));
    assert_false(cs_bucket_take(&b, 50, 1000, 1019));
    assert_true(cs_bucket_take(&b, 50, 1000, 1020)); /* one every 20 ms */
    assert_false(cs_bucket_take(&b, 50, 1000, 1020));
    assert_true(cs_bucket_level(&b, 50, 1000, 60000) == 50.0);
}

static void long_keys_are_cut(void **state)
{
    (void)state;
    char a[200], b[200];
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[150] = 'y'; /* differs past the kept length: the same key */
    cs_limiter l;
    cs_limiter_init(&l, 1, 10);
    assert_true(cs_limiter_take(&l, a, 0));
    assert_false(cs_limiter_take(&l, b, 0));
    assert_int_equal(cs_limiter_keys(&l), 1);
    cs_limiter_free(&l);
}

/* Full of keys still limited: new keys wait, the known ones keep their state, and
 * nothing is reset by arriving from many keys. */
static void full_of_active_keys_refuses_new_ones(void **state)
{
    (void)state;
    cs_limiter l;
    cs_limiter_init(&l, 2, 50);
    char key[32];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(cs_limiter_take(&l, key, 0));
    }
    assert_false(cs_limiter_take(&l, "newcomer", 1000));
    assert_int_equal(cs_limiter_keys(&l), 50);
    assert_true(cs_limiter_take(&l, "k7", 1000)); /* its second attempt */
    assert_false(cs_limiter_take(&l, "k7", 1000));
    /* One attempt of two left refills in 30 s: until then newcomers wait. */
    assert_false(cs_limiter_take(&l, "newcomer", MINUTE / 2 - 1));
    /* Then the buckets that filled up again are forgotten and room is made; k7, refilling
     * since 1 s, is still remembered. */
    assert_true(cs_limiter_take(&l, "newcomer", MINUTE / 2 + 1));
    assert_int_equal(cs_limiter_keys(&l), 2);
    assert_true(cs_limiter_take(&l, "k7", MINUTE / 2 + 1)); /* one attempt back, not two */
    assert_false(cs_limiter_take(&l, "k7", MINUTE / 2 + 1));
    /* Later every bucket has refilled: all are forgotten to make room. */
    for (int i = 0; i < 48; i++) {
        snprintf(key, sizeof key, "m%d", i);
        assert_true(cs_limiter_take(&l, key, 2 * MINUTE));
    }
    assert_true(cs_limiter_take(&l, "another", 3 * MINUTE));
    assert_int_equal(cs_limiter_keys(&l), 1);
    assert_true(cs_limiter_take(&l, "k7", 2 * MINUTE)); /* a fresh bucket: two, not three */
    assert_true(cs_limiter_take(&l, "k7", 2 * MINUTE));
    assert_false(cs_limiter_take(&l, "k7", 2 * MINUTE));
    cs_limiter_free(&l);
}

/* Full, with some keys refilled: only those are forgotten. */
static void full_forgets_only_refilled_keys(void **state)
{
    (void)state;
    cs_limiter l;
    cs_limiter_init(&l, 1, 10);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        /* k0–k4 at 0, k5–k9 at 50 s: at 61 s only the first five have refilled. */
        assert_true(cs_limiter_take(&l, key, i < 5 ? 0 : 50000));
    }
    assert_true(cs_limiter_take(&l, "new", 61000));
    assert_int_equal(cs_limiter_keys(&l), 6);
    assert_false(cs_limiter_take(&l, "k9", 61000)); /* still remembered and still limited */
    cs_limiter_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limits_each_key_and_refills),
        cmocka_unit_test(one_bucket),
        cmocka_unit_test(long_keys_are_cut),
        cmocka_unit_test(full_of_active_keys_refuses_new_ones),
        cmocka_unit_test(full_forgets_only_refilled_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
