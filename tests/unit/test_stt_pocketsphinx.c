/* The pocketsphinx engine on real recordings (pocketsphinx_harness.h): segments on the
 * call's timeline, interims then one final per utterance, the decoder pool (refusal when
 * empty, a decoder reused clean), grammars and keyword lists, gaps and overlaps in
 * positions, audio dropped when the decoder is behind, and a grammar the decoder refuses. */
#include "pocketsphinx_harness.h"

/* ---- tests ---- */

static void test_bad_model_dir(void **state)
{
    (void)state;
    uv_loop_t loop;
    cs_mailbox *mb;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(cs_mailbox_open(&mb, &loop), 0);
    cs_config cfg = config("/nonexistent/model", 1);
    cs_buf err = CS_BUF_INIT(1024);
    cs_stt *e = NULL;
    assert_int_equal(cs_stt_pocketsphinx.create(&e, &cfg, &loop, mb, &err), CS_ECONFIG);
    assert_null(e);
    assert_non_null(strstr(err.data, "STT_MODEL_DIR"));
    assert_non_null(strstr(err.data, "pocketsphinx-en-us"));
    cs_buf_free(&err);
    cs_mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* "go forward ten meters", placed a minute into the call and fed in real time: interims,
 * then the final with the words where the audio put them. */
static void test_utterance_on_timeline(void **state)
{
    (void)state;
    tctx *t = start(1);
    uint32_t len_ms;
    voice *v = play_live(t, "pocketsphinx_goforward", &len_ms);

    char text[2048];
    finals(v, text, sizeof text, BASE_MS - 500, BASE_MS + len_ms + 1000);
    print_message("goforward: \"%s\" (%zu interims, %zu finals)\n", text, count(v, false),
                  count(v, true));
    assert_true(wer_against("pocketsphinx_goforward", text) <= 0.25);
    assert_true(count(v, false) >= 1);
    assert_int_equal(v->errors, 0);
    /* The speech in the clip lies between 0.4 s and 2.5 s. */
    const seg_rec *f = NULL;
    for (size_t i = 0; i < v->nsegs && !f; i++)
        if (v->segs[i].final && v->segs[i].text[0]) f = &v->segs[i];
    assert_non_null(f);
    assert_in_range(f->start_ms, BASE_MS + 200, BASE_MS + 900);
    assert_in_range(f->end_ms, BASE_MS + 2000, BASE_MS + 2786);

    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.sessions_open, 0);
    assert_int_equal(st.sessions_total, 1);
    assert_int_equal(st.finals, count(v, true));
    assert_int_equal(st.interims, count(v, false));
    assert_in_range(st.audio_ms, len_ms + 1400, len_ms + 1520);
    assert_int_equal(st.dropped_ms, 0);
    free(v);
    stop(t);
}

/* A decoder comes back from a call clean: the same audio gives the same transcript on
 * the next call, and a full pool refuses a session without disturbing the open one. */
static void test_pool(void **state)
{
    (void)state;
    tctx *t = start(1);
    char first[2048] = "", text[2048];
    for (int round = 0; round < 2; round++) {
        voice *v =
            transcribe(t, "librivox_sense_sensibility_01-0880", NULL, NULL, text, sizeof text);
        assert_true(text[0] != '\0');
        if (round == 0)
            snprintf(first, sizeof first, "%s", text);
        else
            assert_string_equal(text, first);
        free(v);
    }
    /* The one decoder is taken from open to on_closed. */
    voice *v = calloc(1, sizeof *v), other = {0};
    cs_stt_session *s, *s2 = NULL;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    assert_int_equal(open_voice(t, &other, NULL, NULL, &s2), CS_EFULL);
    finish(t, v, s);
    free(v);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.sessions_total, 3);
    stop(t);
}

/* Two sessions decoded at once (two workers) keep their own results. */
static void test_sessions_in_parallel(void **state)
{
    (void)state;
    tctx *t = start(2);
    size_t na, nb;
    uint8_t *a = clip("pocketsphinx_goforward", &na);
    uint8_t *b = clip("librivox_sense_sensibility_01-0880", &nb);
    voice *va = calloc(1, sizeof *va), *vb = calloc(1, sizeof *vb);
    cs_stt_session *sa, *sb;
    assert_int_equal(open_voice(t, va, NULL, NULL, &sa), 0);
    assert_int_equal(open_voice(t, vb, NULL, NULL, &sb), 0);
    size_t most = na > nb ? na : nb;
    for (size_t i = 0; i < most; i += FRAME) {
        if (i < na)
            cs_stt_pocketsphinx.feed(sa, (uint32_t)(i / 8), a + i, na - i < FRAME ? na - i : FRAME);
        if (i < nb)
            cs_stt_pocketsphinx.feed(sb, (uint32_t)(i / 8), b + i, nb - i < FRAME ? nb - i : FRAME);
        uv_run(&t->loop, UV_RUN_NOWAIT);
    }
    cs_stt_pocketsphinx.close(sa);
    cs_stt_pocketsphinx.close(sb);
    assert_true(tu_run_until(&t->loop, is_closed, va, WAIT_MS));
    assert_true(tu_run_until(&t->loop, is_closed, vb, WAIT_MS));
    char ta[2048], tb[2048];
    finals(va, ta, sizeof ta, 0, (uint32_t)(na / 8) + 100);
    finals(vb, tb, sizeof tb, 0, (uint32_t)(nb / 8) + 100);
    print_message("a: \"%s\"\nb: \"%s\"\n", ta, tb);
    assert_true(wer_against("pocketsphinx_goforward", ta) <= 0.25);
    assert_true(wer_against("librivox_sense_sensibility_01-0880", tb) <= 0.6);
    free(a);
    free(b);
    free(va);
    free(vb);
    stop(t);
}

/* A gap up to a second is silence; a longer one is skipped, and what follows keeps its
 * place on the call's timeline. Audio before what was decoded is cut. */
static void test_gaps_and_overlap(void **state)
{
    (void)state;
    tctx *t = start(1);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    size_t n;
    uint8_t *audio = clip("pocketsphinx_goforward", &n);
    uint32_t len_ms = (uint32_t)(n / 8);
    feed(s, 0, audio, n);
    feed(s, len_ms - 1000, audio, 8000); /* overlaps the last second: cut */
    uint32_t later = 10 * 60 * 1000;     /* ten minutes on: skipped, not decoded */
    feed(s, later, audio, n);
    silence(s, later + len_ms, 1000);
    finish(t, v, s);
    size_t in_first = 0, in_second = 0;
    for (size_t i = 0; i < v->nsegs; i++) {
        const seg_rec *r = &v->segs[i];
        if (!r->final || !r->text[0]) continue;
        if (r->end_ms <= len_ms + 100)
            in_first++;
        else if (r->start_ms >= later && r->end_ms <= later + len_ms + 1000)
            in_second++;
        else
            fail_msg("a final at %u..%u ms", r->start_ms, r->end_ms);
    }
    assert_true(in_first >= 1 && in_second >= 1);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.dropped_ms, 0);
    free(audio);
    free(v);
    stop(t);
}

/* With a grammar, phone-band commands come out exactly. */
static void test_grammar(void **state)
{
    (void)state;
    char *grammar = cards_grammar();
    tctx *t = start(1);
    cs_wer_count total = {0};
    for (int i = 1; i <= 5; i++) {
        char name[64], text[1024], ref[1024];
        snprintf(name, sizeof name, "pocketsphinx_cards_%03d", i);
        voice *v = transcribe(t, name, grammar, NULL, text, sizeof text);
        assert_int_equal(v->errors, 0);
        const char *corpus = getenv("CS_CORPUS");
        assert_true(wer_reference(corpus ? corpus : "tests/data/speech", name, ref, sizeof ref));
        cs_wer_add(&total, ref, text);
        free(v);
    }
    print_message("grammar WER %.3f\n", cs_wer_rate(&total));
    assert_true(cs_wer_rate(&total) <= 0.10);
    free(grammar);
    stop(t);
}

/* A keyword list spots its phrases and nothing else. */
static void test_keywords(void **state)
{
    (void)state;
    tctx *t = start(1);
    char text[1024];
    voice *v = transcribe(t, "pocketsphinx_goforward", NULL, "forward /1e-20/\nbackward /1e-20/\n",
                          text, sizeof text);
    assert_non_null(strstr(text, "forward"));
    assert_null(strstr(text, "backward"));
    assert_null(strstr(text, "meters"));
    free(v);
    stop(t);
}

/* A grammar the decoder refuses fails the session (CS_EPARSE), which still closes, and
 * the decoder serves the next call normally. */
static void test_bad_grammar(void **state)
{
    (void)state;
    tctx *t = start(1);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, "#JSGF V1.0; grammar g; public <x> = ( unclosed;", NULL, &s),
                     0);
    size_t n;
    uint8_t *audio = clip("pocketsphinx_goforward", &n);
    feed(s, 0, audio, n);
    finish(t, v, s);
    assert_int_equal(v->errors, 1);
    assert_int_equal(v->last_err, CS_EPARSE);
    assert_int_equal(v->nsegs, 0);

    char text[1024];
    voice *w = transcribe(t, "pocketsphinx_goforward", NULL, NULL, text, sizeof text);
    assert_true(wer_against("pocketsphinx_goforward", text) <= 0.25);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    assert_int_equal(st.failures, 1);
    free(audio);
    free(v);
    free(w);
    stop(t);
}

/* Audio that arrives faster than it can be decoded waits up to ten seconds; beyond that
 * it is dropped and counted, the loop never waits, and what was kept is transcribed. */
static void test_behind_drops(void **state)
{
    (void)state;
    tctx *t = start(1);
    voice *v = calloc(1, sizeof *v);
    cs_stt_session *s;
    assert_int_equal(open_voice(t, v, NULL, NULL, &s), 0);
    size_t n;
    uint8_t *audio = clip("jfk_inaugural_1961", &n);
    uint32_t len_ms = (uint32_t)(n / 8);
    for (int i = 0; i < 6; i++) feed(s, (uint32_t)i * len_ms, audio, n); /* 66 s at once */
    finish(t, v, s);
    cs_stt_stats st;
    cs_stt_pocketsphinx.stats(t->e, &st);
    print_message("dropped %llu of %llu ms\n", (unsigned long long)st.dropped_ms,
                  (unsigned long long)st.audio_ms);
    assert_true(st.dropped_ms >= 66000 - 10000 - 40000); /* at most 40 s decoded meanwhile */
    assert_true(st.dropped_ms < st.audio_ms);
    assert_true(count(v, true) >= 1);
    free(audio);
    free(v);
    stop(t);
}

/* A session closed from inside its own segment callback (an agent that has what it
 * wanted): the decoder's last work waits until the callback's batch is delivered, the
 * session closes once, and nothing is read or freed twice. */
typedef struct closer {
    voice v;
    cs_stt_session *s;
    int closes;
} closer;

static void close_on_segment(void *data, const cs_stt_segment *seg)
{
    closer *c = data;
    on_segment(&c->v, seg);
    if (c->closes++) return;
    cs_stt_pocketsphinx.close(c->s);
    uv_sleep(300); /* the worker would run meanwhile, on what this batch still reads */
}

static void close_on_error(void *data, int err, const char *why)
{
    on_error(&((closer *)data)->v, err, why);
}

static void close_on_closed(void *data)
{
    on_closed(&((closer *)data)->v);
}

static void test_close_from_a_callback(void **state)
{
    (void)state;
    tctx *t = start(1);
    closer *c = calloc(1, sizeof *c);
    assert_non_null(c);
    static const tu_stt_callbacks cb = {close_on_segment, close_on_error, close_on_closed};
    assert_int_equal(tu_stt_open(&cs_stt_pocketsphinx, t->e, &cb, c, NULL, NULL, &c->s), 0);
    size_t n;
    uint8_t *audio = clip("pocketsphinx_goforward", &n);
    feed(c->s, 0, audio, n);
    silence(c->s, (uint32_t)(n / 8), 1000);
    assert_true(tu_run_until(&t->loop, is_closed, &c->v, WAIT_MS));
    assert_true(c->closes >= 1);
    assert_true(c->v.nsegs >= 1);
    free(audio);
    free(c);
    stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_model_dir),
        cmocka_unit_test(test_utterance_on_timeline),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_sessions_in_parallel),
        cmocka_unit_test(test_gaps_and_overlap),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_bad_grammar),
        cmocka_unit_test(test_behind_drops),
        cmocka_unit_test(test_close_from_a_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
