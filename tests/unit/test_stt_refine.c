/* Refined finals of the pocketsphinx engine (pocketsphinx_harness.h), on real recordings:
 * each fast final followed by a refined one with the same id; a session closed before its
 * refinements are done still gets them, before on_closed, while its decoder already
 * serves the next call; grammars are not refined; the passes are checked by name. (Their
 * bounds: test_stt_refinelimits.c.) */
#include "pocketsphinx_harness.h"

/* The transcript as it stands once refined finals replaced fast ones by id. */
static void refined_text(const voice *v, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->nsegs; i++) {
        const seg_rec *r = &v->segs[i];
        if (!r->final || r->refined || !r->text[0]) continue;
        const char *text = r->text;
        for (size_t k = i + 1; k < v->nsegs; k++)
            if (v->segs[k].refined && v->segs[k].id == r->id) text = v->segs[k].text;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", text);
    }
}

/* ---- tests ---- */

/* A read sentence in phrases: each final with words is followed by its refined
 * version, same id, before on_closed; counters add up. */
static void test_refined_follows_fast(void **state)
{
    (void)state;
    static const char name[] = "ljspeech_LJ001-0005";
    tctx *t = start_refining(1, 32, 20000);
    char fast[4096], refined[4096];
    voice *v = transcribe(t, name, NULL, NULL, fast, sizeof fast);
    size_t spoken = check_refined(v, 0, LEAD_MS + 8111 + 1000);
    refined_text(v, refined, sizeof refined);
    print_message("fast: WER %.2f\nrefined: \"%s\" (WER %.2f)\n", wer_against(name, fast), refined,
                  wer_against(name, refined));
    assert_true(spoken >= 2);
    assert_int_equal(refined_count(v), spoken);
    /* measured: 0.72 fast, 0.36 refined */
    assert_true(wer_against(name, refined) <= 0.5);
    assert_true(wer_against(name, refined) < wer_against(name, fast));
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.refined, spoken);
    assert_int_equal(st.finals, count(v, true));
    assert_int_equal(st.refine_full, 0);
    assert_int_equal(st.refine_too_long, 0);
    assert_int_equal(st.refine_pending, 0);
    assert_int_equal(st.sessions_open, 0);
    assert_int_equal(st.dropped_ms, 0);
    free(v);
    stop(t);
}

static bool opened(void *data)
{
    void **a = data;
    tctx *t = a[0];
    return open_voice(t, a[1], NULL, NULL, a[2]) == 0;
}

/* A session closed with its refinements still to come: its decoder serves the next
 * session at once, and it gets every refined final before on_closed. */
static void test_closed_before_refined(void **state)
{
    (void)state;
    tctx *t = start_refining(1, 32, 20000);
    voice *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    cs_stt_session *sa, *sb = NULL;
    assert_int_equal(open_voice(t, a, NULL, NULL, &sa), 0);
    size_t n;
    uint8_t *audio = clip("librivox_sense_sensibility_01-0870", &n);
    feed(sa, 0, audio, n); /* at once, and closed at once */
    cs_stt_pocketsphinx.close(sa);
    void *args[] = {t, b, &sb};
    assert_true(tu_run_until(&t->loop, opened, args, WAIT_MS));
    /* The decoder came back with the last final, whose refinement was only then queued. */
    assert_false(a->closed);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_true(st.refine_pending >= 1);
    assert_int_equal(st.sessions_open, 2);
    assert_true(tu_run_until(&t->loop, is_closed, a, WAIT_MS));
    size_t spoken = check_refined(a, 0, (uint32_t)(n / 8) + 200);
    assert_true(spoken >= 1);
    assert_int_equal(refined_count(a), spoken);
    finish(t, b, sb);
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.refine_pending, 0);
    assert_int_equal(st.sessions_open, 0);
    free(audio);
    free(a);
    free(b);
    stop(t);
}

/* A grammar's finals are exact enough: they are not refined. */
static void test_grammar_not_refined(void **state)
{
    (void)state;
    char *grammar = cards_grammar();
    tctx *t = start_refining(1, 32, 20000);
    char text[1024];
    voice *v = transcribe(t, "pocketsphinx_cards_005", grammar, NULL, text, sizeof text);
    assert_true(text[0] != '\0');
    assert_int_equal(refined_count(v), 0);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.refined + st.refine_full + st.refine_too_long, 0);
    free(v);
    free(grammar);
    stop(t);
}

/* Live finals may take the lattice pass outright (no refinement then needed). */
static void test_live_lattice(void **state)
{
    (void)state;
    cs_config cfg = config(MODEL_DIR, 1);
    cfg.stt_passes = "lattice";
    tctx *t = start_with(&cfg);
    char text[1024];
    voice *v = transcribe(t, "pocketsphinx_goforward", NULL, NULL, text, sizeof text);
    assert_true(wer_against("pocketsphinx_goforward", text) <= 0.25);
    assert_int_equal(refined_count(v), 0);
    free(v);
    stop(t);
}

/* Passes are named: anything else is a configuration error that says which setting. */
static void test_bad_passes(void **state)
{
    (void)state;
    uv_loop_t loop;
    cs_mailbox *mb;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(cs_mailbox_open(&mb, &loop), 0);
    static const struct {
        const char *live, *refine, *named;
    } bad[] = {{"fast", "lattice", "STT_PASSES: 'fast'"},
               {"forward", "bestpath", "STT_REFINE_PASSES: 'bestpath'"}};
    for (size_t i = 0; i < 2; i++) {
        cs_config cfg = config(MODEL_DIR, 1);
        cfg.stt_passes = (char *)bad[i].live;
        cfg.stt_refine = 1;
        cfg.stt_refine_passes = (char *)bad[i].refine;
        cs_buf err = CS_BUF_INIT(1024);
        cs_stt *e = NULL;
        assert_int_equal(cs_stt_pocketsphinx.create(&e, &cfg, &loop, mb, &err), CS_ECONFIG);
        assert_null(e);
        assert_non_null(strstr(err.data, bad[i].named));
        cs_buf_free(&err);
    }
    cs_mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refined_follows_fast), cmocka_unit_test(test_closed_before_refined),
        cmocka_unit_test(test_grammar_not_refined),  cmocka_unit_test(test_live_lattice),
        cmocka_unit_test(test_bad_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
