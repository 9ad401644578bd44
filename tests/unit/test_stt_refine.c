/* Refined finals of the pocketsphinx engine (pocketsphinx_harness.h), on real recordings:
 * each fast final followed by a refined one with the same id; a session closed before its
 * refinements are done still gets them, before on_closed, while its decoder already
 * serves the next call; a full refinement queue and an utterance over the cap leave the
 * fast final alone, counted; grammars are not refined; the passes are checked by name. */
#include "pocketsphinx_harness.h"

/* An engine of `sessions` decoders refining with one decoder (its default passes), its
 * queue `queue` long and utterances up to `max_ms`. */
static tctx *start_refining(int64_t sessions, int64_t queue, int64_t max_ms)
{
    cs_config cfg = config(MODEL_DIR, sessions);
    cfg.stt_refine = 1;
    cfg.stt_refine_decoders = 1;
    cfg.stt_refine_queue = queue;
    cfg.stt_refine_max_ms = max_ms;
    return start_with(&cfg);
}

static size_t refined_count(const voice *v)
{
    size_t n = 0;
    for (size_t i = 0; i < v->nsegs; i++) n += v->segs[i].refined;
    return n;
}

/* Every refined final follows a fast final with words and the same id, once; times lie
 * within [lo, hi]. Returns how many fast finals with words there were. */
static size_t check_refined(const voice *v, uint32_t lo, uint32_t hi)
{
    size_t spoken = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        const seg_rec *r = &v->segs[i];
        if (r->final && !r->refined && r->text[0]) spoken++;
        if (!r->refined) continue;
        assert_true(r->text[0] != '\0');
        assert_true(r->start_ms >= lo && r->end_ms <= hi && r->start_ms <= r->end_ms);
        size_t fast = 0, again = 0;
        for (size_t k = 0; k < v->nsegs; k++) {
            if (v->segs[k].id != r->id || !v->segs[k].final) continue;
            if (k < i && !v->segs[k].refined && v->segs[k].text[0]) fast++;
            if (k != i && v->segs[k].refined) again++;
        }
        assert_int_equal(fast, 1);
        assert_int_equal(again, 0);
    }
    return spoken;
}

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

/* Kennedy's sentence, fed in real time: each final with words is followed by its refined
 * version, same id, before on_closed; counters add up. */
static void test_refined_follows_fast(void **state)
{
    (void)state;
    tctx *t = start_refining(1, 32, 20000);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    size_t n;
    uint8_t *audio = clip("jfk_inaugural_1961", &n);
    uint32_t len_ms = (uint32_t)(n / 8);
    silence(s, BASE_MS - 500, 500);
    feed_live(t, s, BASE_MS, audio, n);
    silence(s, BASE_MS + len_ms, 1000);
    finish(t, v, s);

    size_t spoken = check_refined(v, BASE_MS - 500, BASE_MS + len_ms + 1000);
    char fast[4096], refined[4096];
    finals(v, fast, sizeof fast, BASE_MS - 500, BASE_MS + len_ms + 1000);
    refined_text(v, refined, sizeof refined);
    print_message("fast: \"%s\" (WER %.2f)\nrefined: \"%s\" (WER %.2f)\n", fast,
                  wer_against("jfk_inaugural_1961", fast), refined,
                  wer_against("jfk_inaugural_1961", refined));
    assert_true(spoken >= 1);
    assert_int_equal(refined_count(v), spoken);
    assert_true(wer_against("jfk_inaugural_1961", refined) <= 0.85); /* measured 0.77 */
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.refined, spoken);
    assert_int_equal(st.finals, count(v, true));
    assert_int_equal(st.refine_full, 0);
    assert_int_equal(st.refine_too_long, 0);
    assert_int_equal(st.refine_pending, 0);
    assert_int_equal(st.sessions_open, 0);
    free(audio);
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

/* A grammar's finals are exact enough: they are not refined. */
static void test_grammar_not_refined(void **state)
{
    (void)state;
    size_t glen;
    char *grammar = (char *)tu_read_file(tu_data_path("grammars/cards.jsgf"), &glen);
    assert_non_null(grammar);
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
        cmocka_unit_test(test_refined_follows_fast),
        cmocka_unit_test(test_closed_before_refined),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_grammar_not_refined),
        cmocka_unit_test(test_live_lattice),
        cmocka_unit_test(test_bad_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
