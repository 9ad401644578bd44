#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#include "core/quota.h"

#define RACERS 2
#define ROUNDS 20000

static void takes_up_to_max_and_gives_back(void **state)
{
    (void)state;
    cs_quota q;
    cs_quota_init(&q, 2);
    assert_true(cs_quota_take(&q));
    assert_true(cs_quota_take(&q));
    assert_false(cs_quota_take(&q)); /* a refusal takes nothing */
    assert_int_equal(cs_quota_held(&q), 2);
    cs_quota_give(&q);
    assert_true(cs_quota_take(&q));
    cs_quota_add(&q); /* taken over past max */
    assert_int_equal(cs_quota_held(&q), 3);
    assert_false(cs_quota_take(&q));
    cs_quota_give(&q);
    cs_quota_give(&q);
    assert_true(cs_quota_take(&q));
}

/* Loops racing for the last slot, round after round: exactly one gets it each time. */
typedef struct race {
    cs_quota q;
    cs_quota_addrs addrs;
    pthread_barrier_t start, done;
    atomic_int won, addr_won;
} race;

static void *racer(void *arg)
{
    race *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_barrier_wait(&r->start);
        if (cs_quota_take(&r->q)) atomic_fetch_add(&r->won, 1);
        cs_quota_addr *a;
        if (cs_quota_addr_take(&r->addrs, "10.0.0.9", &a) == CS_QUOTA_TAKEN)
            atomic_fetch_add(&r->addr_won, 1);
        pthread_barrier_wait(&r->done);
        pthread_barrier_wait(&r->start); /* the main thread counts and resets */
    }
    return NULL;
}

static void two_threads_race_for_the_last_slot(void **state)
{
    (void)state;
    race r;
    cs_quota_init(&r.q, 3);
    cs_quota_addrs_init(&r.addrs, 2, 0);
    pthread_barrier_init(&r.start, NULL, RACERS + 1);
    pthread_barrier_init(&r.done, NULL, RACERS + 1);
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
    int bad = 0, bad_addr = 0;
    for (int i = 0; i < ROUNDS; i++) {
        /* all slots but one held */
        atomic_store(&r.won, 0);
        atomic_store(&r.addr_won, 0);
        while (cs_quota_take(&r.q)) {
        }
        cs_quota_give(&r.q);
        cs_quota_addr *mine;
        assert_int_equal(cs_quota_addr_take(&r.addrs, "10.0.0.9", &mine), CS_QUOTA_TAKEN);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.done);
        bad += atomic_load(&r.won) != 1 || cs_quota_held(&r.q) != 3;
        bad_addr += atomic_load(&r.addr_won) != 1;
        while (cs_quota_held(&r.q)) cs_quota_give(&r.q);
        for (int k = 0; k < 1 + atomic_load(&r.addr_won); k++)
            cs_quota_addr_give(&r.addrs, "10.0.0.9");
        pthread_barrier_wait(&r.start);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_addr, 0);
    assert_int_equal(r.addrs.map.len, 0); /* every address given back is forgotten */
    cs_quota_addrs_free(&r.addrs);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.done);
}

static void per_address_and_heads(void **state)
{
    (void)state;
    cs_quota_addrs t;
    cs_quota_addrs_init(&t, 3, 2);
    cs_quota_addr *a, *b, *c, *x;
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &a), CS_QUOTA_TAKEN);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &b), CS_QUOTA_TAKEN);
    assert_ptr_equal(a, b); /* one entry per address */
    cs_quota_addr_heads(a, +1);
    cs_quota_addr_heads(a, +1);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &x), CS_QUOTA_HEADS);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.2", &x), CS_QUOTA_TAKEN); /* its own */
    cs_quota_addr_heads(a, -1);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &c), CS_QUOTA_TAKEN);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &x), CS_QUOTA_PER_ADDR);
    cs_quota_addr_heads(a, -1);
    for (int i = 0; i < 3; i++) cs_quota_addr_give(&t, "10.0.0.1");
    assert_int_equal(t.map.len, 1);
    assert_int_equal(cs_quota_addr_take(&t, "10.0.0.1", &a), CS_QUOTA_TAKEN); /* a new one */
    cs_quota_addr_give(&t, "10.0.0.1");
    cs_quota_addr_give(&t, "10.0.0.2");
    assert_int_equal(t.map.len, 0);
    cs_quota_addrs_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(takes_up_to_max_and_gives_back),
        cmocka_unit_test(two_threads_race_for_the_last_slot),
        cmocka_unit_test(per_address_and_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
