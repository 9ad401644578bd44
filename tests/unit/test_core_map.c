#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"

/* 6000 keys fill the table to 73% of its 8192 slots, just under the 3/4 that makes it grow,
 * so probe runs get long and deletions shift many entries back. */
#define NKEYS 6000

static char keys[NKEYS][16];

static cs_str key(size_t i)
{
    return cs_str_of(keys[i]);
}

/* Distinct non-NULL values. */
static void *value(size_t v)
{
    return (void *)(uintptr_t)(v * 2 + 1);
}

static int setup_keys(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) snprintf(keys[i], sizeof keys[i], "key-%zu", i);
    return 0;
}

static void empty_map(void **state)
{
    (void)state;
    cs_map m = CS_MAP_INIT;
    assert_null(cs_map_get(&m, CS_STR("a")));
    assert_null(cs_map_del(&m, CS_STR("a")));
    size_t pos = 0;
    assert_int_equal(cs_map_next(&m, &pos, NULL, NULL), 0);
    cs_map_free(&m);
    cs_map_free(&m);
    assert_null(m.slots);
    assert_int_equal(m.len, 0);
}

static void put_get_replace_del(void **state)
{
    (void)state;
    cs_map m = CS_MAP_INIT;
    int a = 1, b = 2, c = 3;
    assert_int_equal(cs_map_put(&m, CS_STR("alpha"), &a), 0);
    assert_int_equal(cs_map_put(&m, CS_STR("beta"), &b), 0);
    assert_int_equal(m.len, 2);
    assert_ptr_equal(cs_map_get(&m, CS_STR("alpha")), &a);
    assert_ptr_equal(cs_map_get(&m, CS_STR("beta")), &b);
    assert_null(cs_map_get(&m, CS_STR("gamma")));
    assert_null(cs_map_get(&m, CS_STR("alph")));   /* a prefix */
    assert_null(cs_map_get(&m, CS_STR("alphaa"))); /* longer */

    assert_int_equal(cs_map_put(&m, CS_STR("alpha"), &c), 0); /* replace */
    assert_int_equal(m.len, 2);
    assert_ptr_equal(cs_map_get(&m, CS_STR("alpha")), &c);

    assert_ptr_equal(cs_map_del(&m, CS_STR("alpha")), &c);
    assert_int_equal(m.len, 1);
    assert_null(cs_map_get(&m, CS_STR("alpha")));
    assert_null(cs_map_del(&m, CS_STR("alpha")));
    assert_null(cs_map_del(&m, CS_STR("never")));
    assert_int_equal(m.len, 1);
    assert_ptr_equal(cs_map_get(&m, CS_STR("beta")), &b);
    cs_map_free(&m);
}

static void keys_are_byte_strings(void **state)
{
    (void)state;
    cs_map m = CS_MAP_INIT;
    int e = 0, z = 1, z2 = 2, up = 3;
    assert_int_equal(cs_map_put(&m, CS_STR(""), &e), 0);
    assert_int_equal(cs_map_put(&m, CS_STR("a\0b"), &z), 0);
    assert_int_equal(cs_map_put(&m, CS_STR("a\0c"), &z2), 0);
    assert_int_equal(cs_map_put(&m, CS_STR("A"), &up), 0);
    assert_int_equal(m.len, 4);
    assert_ptr_equal(cs_map_get(&m, CS_STR("")), &e);
    assert_ptr_equal(cs_map_get(&m, CS_STR_NULL), &e);
    assert_ptr_equal(cs_map_get(&m, CS_STR("a\0b")), &z);
    assert_ptr_equal(cs_map_get(&m, CS_STR("a\0c")), &z2);
    assert_null(cs_map_get(&m, CS_STR("a")));
    assert_ptr_equal(cs_map_get(&m, CS_STR("A")), &up); /* case-sensitive */
    assert_null(cs_map_get(&m, CS_STR("a")));
    cs_map_free(&m);
}

static void replace_takes_the_new_key(void **state)
{
    (void)state;
    /* Keys are borrowed: when the value is replaced by one holding its own copy of the
     * key, the entry must point at the new copy, so the old one may go. */
    cs_map m = CS_MAP_INIT;
    char *old = strdup("call-1"), *copy = strdup("call-1");
    int a = 1, b = 2;
    assert_int_equal(cs_map_put(&m, cs_str_of(old), &a), 0);
    assert_int_equal(cs_map_put(&m, cs_str_of(copy), &b), 0);
    free(old);
    assert_ptr_equal(cs_map_get(&m, CS_STR("call-1")), &b);
    size_t pos = 0;
    cs_str k;
    assert_true(cs_map_next(&m, &pos, &k, NULL));
    assert_ptr_equal(k.p, copy);
    cs_map_free(&m);
    free(copy);
}

static void iteration_visits_each_entry_once(void **state)
{
    (void)state;
    cs_map m = CS_MAP_INIT;
    for (size_t i = 0; i < 1000; i++) assert_int_equal(cs_map_put(&m, key(i), value(i)), 0);
    for (size_t i = 0; i < 1000; i += 3) assert_ptr_equal(cs_map_del(&m, key(i)), value(i));

    int seen[1000] = {0};
    size_t count = 0;
    cs_str k;
    void *v;
    for (size_t pos = 0; cs_map_next(&m, &pos, &k, &v);) {
        size_t i;
        assert_int_equal(sscanf(k.p, "key-%zu", &i), 1);
        assert_true(i < 1000 && i % 3 != 0);
        assert_ptr_equal(k.p, keys[i]);
        assert_ptr_equal(v, value(i));
        seen[i]++;
        count++;
    }
    assert_int_equal(count, m.len);
    for (size_t i = 0; i < 1000; i++) assert_int_equal(seen[i], i % 3 ? 1 : 0);

    /* Keys and values are optional; a finished walk stays finished. */
    size_t pos = 0, n = 0;
    while (cs_map_next(&m, &pos, NULL, NULL)) n++;
    assert_int_equal(n, m.len);
    assert_int_equal(pos, m.cap);
    assert_int_equal(cs_map_next(&m, &pos, NULL, NULL), 0);
    cs_map_free(&m);
}

static void grows_and_keeps_everything(void **state)
{
    (void)state;
    cs_map m = CS_MAP_INIT;
    size_t cap = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        assert_int_equal(cs_map_put(&m, key(i), value(i)), 0);
        assert_int_equal(m.len, i + 1);
        assert_int_equal(m.cap & (m.cap - 1), 0); /* a power of two */
        assert_true(m.len * 4 <= m.cap * 3);
        if (m.cap != cap) {
            /* Every entry survives the rehash. */
            for (size_t k = 0; k <= i; k++) assert_ptr_equal(cs_map_get(&m, key(k)), value(k));
            cap = m.cap;
        }
    }
    assert_int_equal(m.cap, 8192);
    for (size_t i = 0; i < NKEYS; i++) assert_ptr_equal(cs_map_del(&m, key(i)), value(i));
    assert_int_equal(m.len, 0);
    for (size_t i = 0; i < NKEYS; i++) assert_null(cs_map_get(&m, key(i)));

    assert_int_equal(cs_map_put(&m, key(7), value(7)), 0); /* usable after emptying */
    assert_ptr_equal(cs_map_get(&m, key(7)), value(7));
    cs_map_free(&m);
    assert_int_equal(cs_map_put(&m, key(8), value(8)), 0); /* and after freeing */
    assert_int_equal(m.cap, 16);
    cs_map_free(&m);
}

/* The map holds exactly the reference's entries: with the length right, finding every
 * present key proves nothing else is there. */
static void check_all(const cs_map *m, const cs_str *ks, void *const *ref, size_t n, size_t len)
{
    assert_int_equal(m->len, len);
    for (size_t i = 0; i < n; i++)
        if (ref[i] && cs_map_get(m, ks[i]) != ref[i]) fail_msg("%s is lost", ks[i].p);
}

/* `steps` random puts and deletions of the keys `ks`, checked against a reference array.
 * Phases fill the map, churn it and drain it, so deletions happen at every load. */
static void random_operations(const cs_str *ks, size_t n, size_t steps, uint64_t seed)
{
    static const unsigned put_percent[] = {90, 50, 10, 70, 50, 30, 95, 50, 5, 50};
    const size_t phase = steps / (sizeof put_percent / sizeof *put_percent);
    void **ref = calloc(n, sizeof *ref);
    assert_non_null(ref);
    size_t len = 0;
    cs_map m = CS_MAP_INIT;
    for (size_t step = 0; step < steps; step++) {
        size_t k = tu_rand_below(&seed, n);
        if (tu_rand_below(&seed, 100) < put_percent[step / phase]) {
            assert_int_equal(cs_map_put(&m, ks[k], value(step)), 0);
            len += ref[k] == NULL;
            ref[k] = value(step);
        } else {
            assert_ptr_equal(cs_map_del(&m, ks[k]), ref[k]);
            len -= ref[k] != NULL;
            ref[k] = NULL;
            /* A deletion is where backward-shift can strand an entry behind a hole. */
            check_all(&m, ks, ref, n, len);
        }
        assert_int_equal(m.len, len);
        assert_ptr_equal(cs_map_get(&m, ks[k]), ref[k]);
    }
    check_all(&m, ks, ref, n, len);
    cs_map_free(&m);
    free(ref);
}

static void random_operations_on_a_crowded_table(void **state)
{
    (void)state;
    static cs_str ks[NKEYS];
    for (size_t i = 0; i < NKEYS; i++) ks[i] = key(i);
    random_operations(ks, NKEYS, 200000, 42);
}

static void random_operations_on_runs_that_wrap(void **state)
{
    (void)state;
    /* 48 keys (the most 64 slots hold) whose home is one of the last or first 4 slots of a
     * 64-slot table: one long probe run across the end, where deletion has to compare slot
     * positions cyclically. The stored hashes tell each key's home. */
    enum { CAP = 64, WANT = CAP * 3 / 4, SPREAD = 4 };
    cs_map all = CS_MAP_INIT;
    for (size_t i = 0; i < NKEYS; i++) assert_int_equal(cs_map_put(&all, key(i), value(i)), 0);
    cs_str ks[WANT];
    size_t n = 0;
    for (size_t i = 0; i < all.cap && n < WANT; i++) {
        size_t home = all.slots[i].hash & (CAP - 1);
        if (all.slots[i].hash && (home < SPREAD || home >= CAP - SPREAD))
            ks[n++] = all.slots[i].key;
    }
    cs_map_free(&all);
    assert_int_equal(n, WANT);
    random_operations(ks, n, 200000, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_map),
        cmocka_unit_test(put_get_replace_del),
        cmocka_unit_test(keys_are_byte_strings),
        cmocka_unit_test(replace_takes_the_new_key),
        cmocka_unit_test(iteration_visits_each_entry_once),
        cmocka_unit_test(grows_and_keeps_everything),
        cmocka_unit_test(random_operations_on_a_crowded_table),
        cmocka_unit_test(random_operations_on_runs_that_wrap),
    };
    return cmocka_run_group_tests(tests, setup_keys, NULL);
}
