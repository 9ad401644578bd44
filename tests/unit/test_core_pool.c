#include "testutil.h"

#include <stdint.h>
#include <string.h>

#include "core/pool.h"

static void allocations_are_aligned_and_separate(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    unsigned char *got[200];
    for (size_t i = 0; i < 200; i++) {
        size_t n = i % 37 + 1;
        got[i] = cs_pool_alloc(&p, n);
        assert_non_null(got[i]);
        assert_int_equal((uintptr_t)got[i] % 8, 0);
        memset(got[i], (int)i, n);
    }
    for (size_t i = 0; i < 200; i++)
        for (size_t k = 0; k < i % 37 + 1; k++) assert_int_equal(got[i][k], (unsigned char)i);
    cs_pool_free(&p);
}

static void small_allocations_share_a_block(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    char *a = cs_pool_alloc(&p, 1);
    char *b = cs_pool_alloc(&p, 8);
    char *c = cs_pool_alloc(&p, 9);
    char *d = cs_pool_alloc(&p, 0);
    assert_ptr_equal(b, a + 8); /* rounded up to 8 */
    assert_ptr_equal(c, b + 8);
    assert_ptr_equal(d, c + 16);
    assert_int_equal(p.total, CS_POOL_BLOCK);
    assert_int_equal(p.used, 32);

    /* What does not fit in the rest of a block starts a new one. */
    assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK - 32));
    assert_int_equal(p.used, CS_POOL_BLOCK);
    assert_non_null(cs_pool_alloc(&p, 8));
    assert_int_equal(p.total, 2 * CS_POOL_BLOCK);
    assert_int_equal(p.used, 8);
    assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK)); /* exactly a block: not "big" */
    assert_int_equal(p.total, 3 * CS_POOL_BLOCK);
    assert_int_equal(p.used, CS_POOL_BLOCK);
    cs_pool_free(&p);
}

static void many_small_allocations(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    enum { N = 20000 };
    static uint32_t *got[N];
    for (uint32_t i = 0; i < N; i++) {
        got[i] = cs_pool_alloc(&p, 2 * sizeof *got[i]);
        assert_non_null(got[i]);
        got[i][0] = i;
        got[i][1] = ~i;
    }
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(got[i][0], i);
        assert_int_equal(got[i][1], ~i);
    }
    assert_true(p.total <= N * 8 + CS_POOL_BLOCK);
    cs_pool_free(&p);
}

static void a_big_allocation_keeps_the_current_block(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    char *a = cs_pool_alloc(&p, 100);
    char *big = cs_pool_alloc(&p, 5 * CS_POOL_BLOCK);
    assert_non_null(big);
    memset(big, 'x', 5 * CS_POOL_BLOCK);
    char *b = cs_pool_alloc(&p, 8);
    assert_ptr_equal(b, a + 104); /* still filling the first block */
    assert_int_equal(p.total, 6 * CS_POOL_BLOCK);
    char *big2 = cs_pool_alloc(&p, CS_POOL_BLOCK + 1);
    assert_non_null(big2);
    assert_ptr_equal(cs_pool_alloc(&p, 8), b + 8);
    assert_int_equal(p.total, 7 * CS_POOL_BLOCK + 8);
    cs_pool_free(&p);

    /* A big first allocation is the current block, full; the next one starts another. */
    big = cs_pool_alloc(&p, 3 * CS_POOL_BLOCK);
    assert_non_null(big);
    assert_int_equal(p.total, 3 * CS_POOL_BLOCK);
    assert_non_null(cs_pool_alloc(&p, 8));
    assert_int_equal(p.total, 4 * CS_POOL_BLOCK);
    cs_pool_free(&p);
}

static void strdup_and_strndup(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    char *s = cs_pool_strdup(&p, "hello");
    assert_string_equal(s, "hello");
    assert_int_equal((uintptr_t)s % 8, 0);
    assert_string_equal(cs_pool_strdup(&p, ""), "");
    assert_null(cs_pool_strdup(&p, NULL));

    const char *text = "call=CA123;stream=MZ9";
    assert_string_equal(cs_pool_strndup(&p, (cs_str){text + 5, 5}), "CA123");
    assert_string_equal(cs_pool_strndup(&p, (cs_str){text, 0}), "");
    assert_null(cs_pool_strndup(&p, CS_STR_NULL));
    char *z = cs_pool_strndup(&p, CS_STR("a\0b"));
    assert_memory_equal(z, "a\0b", 4);

    char long_text[3000];
    memset(long_text, 'q', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    assert_string_equal(cs_pool_strdup(&p, long_text), long_text);
    assert_string_equal(s, "hello"); /* earlier copies untouched */
    cs_pool_free(&p);
}

static void a_custom_max(void **state)
{
    (void)state;
    cs_pool p = {.max = 4 * CS_POOL_BLOCK};
    for (int i = 0; i < 4; i++) assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK));
    assert_int_equal(p.total, p.max);
    assert_null(cs_pool_alloc(&p, 8));
    assert_null(cs_pool_alloc(&p, 5 * CS_POOL_BLOCK));
    assert_null(cs_pool_strdup(&p, "x"));
    assert_null(cs_pool_strndup(&p, CS_STR("x")));
    assert_int_equal(p.total, p.max);
    cs_pool_free(&p);

    /* Refused requests leave the current block usable. */
    char *a = cs_pool_alloc(&p, 8);
    assert_null(cs_pool_alloc(&p, 4 * CS_POOL_BLOCK));
    assert_ptr_equal(cs_pool_alloc(&p, 8), a + 8);
    cs_pool_free(&p);

    cs_pool tiny = {.max = CS_POOL_BLOCK / 2}; /* smaller than a block: nothing fits */
    assert_null(cs_pool_alloc(&tiny, 1));
    assert_int_equal(tiny.total, 0);
    cs_pool_free(&tiny);
}

static void the_default_max(void **state)
{
    (void)state;
    cs_pool p = CS_POOL_INIT;
    for (size_t i = 0; i < CS_POOL_MAX / CS_POOL_BLOCK; i++)
        assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK));
    assert_int_equal(p.total, CS_POOL_MAX);
    assert_null(cs_pool_alloc(&p, 1));
    cs_pool_free(&p);
    assert_null(cs_pool_alloc(&p, CS_POOL_MAX + 1));
    assert_non_null(cs_pool_alloc(&p, CS_POOL_MAX));
    cs_pool_free(&p);
}

static void huge_requests_are_refused(void **state)
{
    (void)state;
    /* Sizes that would wrap around when rounded up to 8. */
    cs_pool p = CS_POOL_INIT;
    assert_null(cs_pool_alloc(&p, SIZE_MAX));
    assert_null(cs_pool_alloc(&p, SIZE_MAX - 6));
    assert_non_null(cs_pool_alloc(&p, 8));
    assert_null(cs_pool_alloc(&p, SIZE_MAX));
    assert_int_equal(p.total, CS_POOL_BLOCK);
    cs_pool_free(&p);
}

static void free_and_reuse(void **state)
{
    (void)state;
    cs_pool p = {.max = 2 * CS_POOL_BLOCK};
    cs_pool_free(&p); /* empty */
    for (int round = 0; round < 3; round++) {
        assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK));
        assert_non_null(cs_pool_alloc(&p, CS_POOL_BLOCK));
        assert_null(cs_pool_alloc(&p, 8));
        cs_pool_free(&p);
        assert_null(p.blocks);
        assert_int_equal(p.total, 0);
        assert_int_equal(p.used, 0);
        assert_int_equal(p.max, 2 * CS_POOL_BLOCK); /* the limit stays */
    }
    cs_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allocations_are_aligned_and_separate),
        cmocka_unit_test(small_allocations_share_a_block),
        cmocka_unit_test(many_small_allocations),
        cmocka_unit_test(a_big_allocation_keeps_the_current_block),
        cmocka_unit_test(strdup_and_strndup),
        cmocka_unit_test(a_custom_max),
        cmocka_unit_test(the_default_max),
        cmocka_unit_test(huge_requests_are_refused),
        cmocka_unit_test(free_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
