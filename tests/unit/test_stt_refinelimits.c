/* The bounds of refinement in the pocketsphinx engine (pocketsphinx_harness.h), on real
 * recordings: a full refinement queue and an utterance over the cap leave the fast final
 * alone, counted. */
#include "pocketsphinx_harness.h"

/* Finals come faster than one refining decoder with a queue of one takes them: the ones it
 * has no room for keep their fast text, and are counted. */
static void test_queue_full(void **state)
{
    (void)state;
    tctx *t = start_refining(1, 1, 20000);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    /* Five short phrases with pauses, all fed at once: their finals come in one batch. */
    uint32_t at = 0;
    for (int i = 1; i <= 5; i++) {
        char name[64];
        size_t n;
        snprintf(name, sizeof name, "pocketsphinx_cards_%03d", i);
        uint8_t *audio = clip(name, &n);
        feed(s, at, audio, n);
        at += (uint32_t)(n / 8);
        silence(s, at, 600);
        at += 600;
        free(audio);
    }
    finish(t, v, s);
    size_t spoken = check_refined(v, 0, at + 200);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    print_message("%zu finals: %llu refined, %llu left (queue full)\n", spoken,
                  (unsigned long long)st.refined, (unsigned long long)st.refine_full);
    assert_true(st.refine_full >= 1);
    assert_int_equal(st.refined + st.refine_full, spoken);
    assert_int_equal(refined_count(v), st.refined);
    assert_int_equal(st.refine_too_long, 0);
    assert_int_equal(st.refine_pending, 0);
    free(v);
    stop(t);
}

/* An utterance longer than STT_REFINE_MAX_MS is not refined: its fast final stands,
 * counted; a shorter one after it is refined as usual. */
static void test_too_long(void **state)
{
    (void)state;
    tctx *t = start_refining(1, 32, 1000);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    size_t nlong, nshort;
    uint8_t *slow = clip("librivox_sense_sensibility_01-0880", &nlong); /* 2.4 s of speech */
    uint8_t *quick = clip("pocketsphinx_cards_001", &nshort);           /* "three" */
    silence(s, 0, 500);
    feed(s, 500, slow, nlong);
    uint32_t at = 500 + (uint32_t)(nlong / 8);
    silence(s, at, 1000);
    feed(s, at + 1000, quick, nshort);
    at += 1000 + (uint32_t)(nshort / 8);
    silence(s, at, 1000);
    finish(t, v, s);
    size_t spoken = check_refined(v, 0, at + 1000);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    print_message("%zu finals: %llu refined, %llu too long\n", spoken,
                  (unsigned long long)st.refined, (unsigned long long)st.refine_too_long);
    assert_true(st.refine_too_long >= 1);
    assert_true(st.refined >= 1);
    assert_int_equal(st.refined + st.refine_too_long, spoken);
    /* The long phrase's final stands unrefined. */
    for (size_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].refined) assert_true(v->segs[i].start_ms >= 500 + nlong / 8);
    free(slow);
    free(quick);
    free(v);
    stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
