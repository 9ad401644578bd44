/* The Deepgram engine against a fake Deepgram (deepgram_harness.h), when all goes well:
 * the configuration and its limits, segments placed on the call's timeline, the
 * documented request, keywords and keyterms, KeepAlive and CloseStream, connecting only
 * with audio to send, UtteranceEnd, and the bounded buffer. Failures are in
 * test_stt_deepgramfail.c. */
#include "deepgram_harness.h"
#include "net/ws.h"

/* ---- configuration ---- */

static void test_create_refuses_bad_configuration(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct {
        const char *key, *url, *says;
    } cases[] = {
        {"", "ws://127.0.0.1:1/v1/listen", "DEEPGRAM_API_KEY"},
        {"two\r\nlines", "ws://127.0.0.1:1/v1/listen", "DEEPGRAM_API_KEY"},
        {KEY, "https://api.deepgram.com/v1/listen", "DEEPGRAM_URL"},
        {KEY, "not a url", "DEEPGRAM_URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_config cfg = config(cases[i].key, cases[i].url, "nova-2", 4);
        cs_buf err = CS_BUF_INIT(1024);
        cs_stt *e = NULL;
        assert_int_equal(cs_stt_deepgram.create(&e, &cfg, &loop, NULL, &err), CS_ECONFIG);
        assert_null(e);
        assert_non_null(err.data);
        assert_non_null(strstr(err.data, cases[i].says));
        cs_buf_free(&err);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_create_wss_uses_system_cas(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_config cfg = config(KEY, "wss://api.deepgram.com/v1/listen", "nova-2", 4);
    cs_buf err = CS_BUF_INIT(1024);
    cs_stt *e = NULL;
    assert_int_equal(cs_stt_deepgram.create(&e, &cfg, &loop, NULL, &err), 0);
    cs_stt_deepgram.destroy(e);
    cs_buf_free(&err);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_open_refuses_grammar_and_keywords_past_a_url(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 4);
    cs_stt_session *s = NULL;
    assert_int_equal(open_with(t, NULL, "#JSGF V1.0; grammar g; public <a> = yes;", &s), CS_EPARSE);
    cs_buf many = CS_BUF_INIT(1 << 20);
    for (int i = 0; i < 90; i++)
        cs_buf_printf(&many, "%050d /1e-20/\n", i); /* within the count, not in one URL */
    assert_int_equal(open_with(t, many.data, NULL, &s), CS_EPARSE);
    assert_null(s);
    cs_buf_free(&many);
    stop(t);
}

/* STT_KEYWORDS past Deepgram's 100 (words, for keywords; phrases, for keyterm) is a
 * configuration error at start-up. */
static void test_create_refuses_more_than_100_keywords(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_buf words = CS_BUF_INIT(1 << 16), phrases = CS_BUF_INIT(1 << 16);
    for (int i = 0; i < 60; i++) cs_buf_printf(&words, "%sacme%d corp", i ? "," : "", i);
    for (int i = 0; i < 101; i++) cs_buf_printf(&phrases, "%sacme%d", i ? "," : "", i);
    static const struct {
        const char *model;
        int rc;
        const char *says;
    } cases[] = {
        {"nova-2", CS_ECONFIG, "at most 100 keywords (words, on this model), not 120"},
        {"nova-3", 0, NULL}, /* 60 keyterms */
        {"nova-3", CS_ECONFIG, "at most 100 keyterms, not 101"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cs_config cfg = config(KEY, "ws://127.0.0.1:1/v1/listen", cases[i].model, 4);
        cfg.stt_keywords = i < 2 ? words.data : phrases.data;
        cs_buf err = CS_BUF_INIT(1024);
        cs_stt *e = NULL;
        assert_int_equal(cs_stt_deepgram.create(&e, &cfg, &loop, NULL, &err), cases[i].rc);
        if (cases[i].says) {
            assert_null(e);
            assert_non_null(strstr(err.data, "STT_KEYWORDS"));
            assert_non_null(strstr(err.data, cases[i].says));
        }
        cs_stt_deepgram.destroy(e);
        cs_buf_free(&err);
    }
    cs_buf_free(&words);
    cs_buf_free(&phrases);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_full_beyond_max_sessions(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 1);
    assert_int_equal(open_with(t, NULL, NULL, &t->s), 0);
    cs_stt_session *second = NULL;
    assert_int_equal(open_with(t, NULL, NULL, &second), CS_EFULL);
    assert_null(second);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.sessions_open, 1);
    close_session(t);
    stop(t);
}

/* ---- the stream ---- */

static void test_two_utterances_on_call_timeline(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    two_utterances(t, BASE_MS);
    uint32_t pos = BASE_MS + 4100;
    speak(t, &pos, 400); /* still speaking at the end: CloseStream flushes it */
    wait_finals(t, 2, WAIT_MS);
    close_session(t);

    check_two_utterances(t, BASE_MS);
    check_final(t, 2, "utterance 3", BASE_MS + 4100, BASE_MS + 4500);
    assert_int_equal(t->nfinals, 3);
    assert_true(interims_of(t, final_no(t, 0)->id) >= 2);
    assert_true(interims_of(t, final_no(t, 1)->id) >= 1);
    assert_int_not_equal(final_no(t, 0)->id, final_no(t, 1)->id);
    for (size_t i = 0; i < t->nsegs; i++) /* interims are the final text word by word */
        if (!t->segs[i].final && t->segs[i].id == final_no(t, 0)->id)
            assert_true(strncmp("hello world", t->segs[i].text, strlen(t->segs[i].text)) == 0);

    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_string_equal(fs->authorization, "Token " KEY);
    assert_int_equal(fs->upgrades, 1);
    assert_int_equal(fs->close_streams, 1);
    assert_int_equal(fs->audio_bytes, 4500 * 8);
    static const char *const want[][2] = {
        {"encoding", "mulaw"},        {"sample_rate", "8000"},       {"channels", "1"},
        {"interim_results", "true"},  {"punctuate", "true"},         {"endpointing", "300"},
        {"utterance_end_ms", "1000"}, {"model", "nova-2-phonecall"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(count_param(t, want[i][0], want[i][1]), 1);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.finals, 3);
    assert_int_equal(st.interims, t->nsegs - 3);
    assert_int_equal(st.audio_ms, 4500);
    assert_int_equal(st.dropped_ms, 0);
    assert_int_equal(st.sessions_total, 1);
    assert_int_equal(t->errors, 0);
    stop(t);
}

/* Nova-3 takes each phrase as a keyterm, its spaces as %20; older models take keywords,
 * which Deepgram boosts word by word, so each word goes as its own keyword. */
static void test_keywords_become_parameters(void **state)
{
    (void)state;
    static const struct {
        const char *model, *param, *raw;
        const char *terms[3];
    } cases[] = {
        {"nova-2-phonecall", "keywords", "keywords=corp", {"callstream", "acme", "corp"}},
        {"nova-3", "keyterm", "keyterm=acme%20corp", {"callstream", "acme corp", NULL}},
    };
    for (size_t i = 0; i < 2; i++) {
        dg_fake_opts fo = {SCRIPT};
        tctx *t = start_engine(&fo, cases[i].model, 4);
        assert_int_equal(open_with(t, "callstream /1e-20/\n  acme corp /1e-10/ \n\n", NULL, &t->s),
                         0);
        uint32_t pos = 0;
        hush(t, &pos, FRAME_MS);
        assert_true(tu_run_until(&t->loop, upgraded, t, WAIT_MS));
        for (size_t k = 0; k < 3 && cases[i].terms[k]; k++)
            assert_int_equal(count_param(t, cases[i].param, cases[i].terms[k]), 1);
        assert_int_equal(count_param(t, i ? "keywords" : "keyterm", "callstream"), 0);
        assert_non_null(strstr(dg_fake_stats_get(t->fake)->query, cases[i].raw));
        close_session(t);
        stop(t);
    }
}

/* A call asking for more than Deepgram's 100 gets the first 100, and a warning. */
static void test_keywords_past_the_limit_are_cut(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 4);
    cs_buf many = CS_BUF_INIT(1 << 16);
    for (int i = 0; i < 150; i++) cs_buf_printf(&many, "word%d /1e-20/\n", i);
    tu_log_capture_start();
    assert_int_equal(open_with(t, many.data, NULL, &t->s), 0);
    assert_true(tu_log_contains("only the first 100 of 150 are sent"));
    tu_log_capture_stop();
    assert_int_equal(stats_of(t).keywords_cut, 50);
    two_utterances(t, BASE_MS);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(count_param(t, "keywords", "word99"), 1);
    assert_int_equal(count_param(t, "keywords", "word100"), 0);
    assert_int_equal(dg_fake_stats_get(t->fake)->refused, 0);
    cs_buf_free(&many);
    stop(t);
}

static bool kept_alive_twice(void *d)
{
    return dg_fake_stats_get(((tctx *)d)->fake)->keepalives >= 2;
}

/* No audio now: KeepAlives, as often as Deepgram asks (every 3–5 s), so the stream is
 * not closed after its 10 s. */
static void test_keepalive_during_silence(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 500);
    assert_true(tu_run_until(&t->loop, kept_alive_twice, t, 15000));
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->net0001, 0);
    assert_int_equal(fs->upgrades, 1);
    assert_true(fs->max_gap_ms <= 5000); /* sent 3–4 s apart */
    close_session(t);
    assert_int_equal(fs->close_streams, 1);
    stop(t);
}

/* Deepgram closes a connection that gets no audio soon after the upgrade, KeepAlive or
 * not: a session connects when its first audio comes, however long the line is quiet. */
static void test_connects_once_there_is_audio(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .idle_ms = 1000};
    tctx *t = start(&fo);
    run_for(t, 2500);
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->upgrades, 0);
    assert_int_equal(fs->net0001, 0);
    two_utterances(t, BASE_MS);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(fs->upgrades, 1);
    assert_int_equal(t->errors, 0);
    stop(t);
}

/* A session that ends before any audio never connects. */
static void test_close_without_audio_never_connects(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    close_session(t);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 0);
    assert_int_equal(t->nsegs, 0);
    stop(t);
}

/* The connection drops once everything sent was finalized: the session reconnects when
 * there is audio again, not to an empty stream Deepgram would close. */
static void test_reconnects_only_with_audio_to_send(void **state)
{
    (void)state;
    /* 1.7 s: "hello world", its final after 300 ms, and an empty final 1 s later. */
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_DROP, .faulty = 1, .fault_after = 1700 * 8};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    speak(t, &pos, 400);
    hush(t, &pos, 1300);
    wait_finals(t, 1, WAIT_MS);
    run_for(t, 1500); /* well past the first backoff */
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->upgrades, 1);
    pos += 1000;
    speak(t, &pos, 600);
    hush(t, &pos, 1500);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", BASE_MS, BASE_MS + 400);
    check_final(t, 1, "goodbye", BASE_MS + 2700, BASE_MS + 3300);
    assert_int_equal(fs->upgrades, 2);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_noisy_line_ends_utterances_by_utterance_end(void **state)
{
    (void)state;
    static const char *const words[] = {"good", "morning", "again"};
    dg_fake_opts fo = {.script = words, .nscript = 3, .noisy = true};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 500);
    speak(t, &pos, 400);
    hush(t, &pos, 500); /* a pause, but the next words come before UtteranceEnd */
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    speak(t, &pos, 300);
    hush(t, &pos, 1500);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_final(t, 0, "good morning", 500, 1800);
    check_final(t, 1, "again", 3300, 3600);
    assert_int_equal(t->nfinals, 2);
    check_ids(t);
    stop(t);
}

/* An UtteranceEnd with last_word_end -1 points at no word: it ends nothing. */
static void test_utterance_end_without_a_word_is_ignored(void **state)
{
    (void)state;
    static const char *const words[] = {"good", "morning"};
    dg_fake_opts fo = {.script = words, .nscript = 2, .noisy = true, .stray_utterance_end = true};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 500);
    speak(t, &pos, 400);
    hush(t, &pos, 500); /* "good" is final here, followed by an UtteranceEnd -1 */
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    wait_finals(t, 1, WAIT_MS);
    close_session(t);
    check_final(t, 0, "good morning", 500, 1800);
    assert_int_equal(t->nfinals, 1);
    check_ids(t);
    stop(t);
}

static void test_gaps_keep_times_right(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    hush(t, &pos, 300);
    speak(t, &pos, 400);
    uint8_t frames[2 * FRAME];
    memset(frames, CS_ULAW_SILENCE, sizeof frames);
    cs_stt_deepgram.feed(t->s, pos - 2 * FRAME_MS, frames, FRAME);     /* all seen: cut */
    cs_stt_deepgram.feed(t->s, pos - FRAME_MS, frames, sizeof frames); /* half new */
    pos += FRAME_MS;
    hush(t, &pos, 200);
    pos += 200; /* lost packets: sent as silence */
    speak(t, &pos, 500);
    hush(t, &pos, 500);
    pos += 10000; /* a long gap: not sent in full */
    hush(t, &pos, 200);
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    wait_finals(t, 3, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", 300, 700);
    check_final(t, 1, "goodbye", 1120, 1620);
    check_final(t, 2, "utterance 3", 12320, 12720);
    /* What went out: the audio, the short gap and 1 s of the long one. */
    assert_int_equal(dg_fake_stats_get(t->fake)->audio_bytes,
                     (700 + 20 + 400 + 1000 + 1000 + 2100) * 8);
    stop(t);
}

static void test_long_text_is_bounded(void **state)
{
    (void)state;
    cs_buf a = CS_BUF_INIT(8192), b = CS_BUF_INIT(8192), c = CS_BUF_INIT(8192);
    for (int i = 0; i < 300; i++) cs_buf_puts(&a, i ? " aaaaaaaa" : "aaaaaaaa");
    for (int i = 0; i < 300; i++) cs_buf_puts(&b, i ? " bbbbbbbb" : "bbbbbbbb");
    cs_buf_putc(&c, 'x');
    for (int i = 0; i < 2500; i++) cs_buf_puts(&c, "\xc3\xa9"); /* é */
    const char *chunks[] = {a.data, b.data, c.data};
    dg_fake_opts fo = {.script = chunks, .nscript = 3, .noisy = true};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak(t, &pos, 400);
    hush(t, &pos, 500);
    speak(t, &pos, 400); /* same utterance, but together too long for one segment */
    hush(t, &pos, 1500);
    speak(t, &pos, 400);
    hush(t, &pos, 1500);
    wait_finals(t, 3, WAIT_MS);
    close_session(t);
    assert_string_equal(final_no(t, 0)->text, a.data);
    assert_string_equal(final_no(t, 1)->text, b.data);
    const char *cut = final_no(t, 2)->text;
    assert_int_equal(strlen(cut), CS_STT_TEXT_MAX - 1); /* between characters */
    assert_true(cs_utf8_valid(cut, strlen(cut)));
    for (size_t i = 0; i < t->nsegs; i++) assert_true(strlen(t->segs[i].text) <= CS_STT_TEXT_MAX);
    check_ids(t);
    cs_buf_free(&a);
    cs_buf_free(&b);
    cs_buf_free(&c);
    stop(t);
}

static void test_buffer_drops_oldest_while_disconnected(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    /* 35 s fed before the connection is up: the first 5 s do not fit in the buffer. */
    feed(t, &pos, 2000, false, false);
    feed(t, &pos, 800, true, false); /* lost */
    feed(t, &pos, 17200, false, false);
    feed(t, &pos, 800, true, false);
    feed(t, &pos, 12200, false, false);
    feed(t, &pos, 600, true, false);
    feed(t, &pos, 1400, false, false);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.audio_ms, 35000);
    assert_int_equal(st.dropped_ms, 5000);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", 20000, 20800);
    check_final(t, 1, "goodbye", 33000, 33600);
    stop(t);
}

static void test_feed_larger_than_buffer_keeps_its_end(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    size_t n = 31000 * 8;
    uint8_t *audio = malloc(n);
    assert_non_null(audio);
    for (size_t at = 0; at < n; at += FRAME)
        make_frame(t, audio + at, at >= 30000 * 8 && at < 30600 * 8);
    cs_stt_deepgram.feed(t->s, BASE_MS, audio, n);
    free(audio);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.dropped_ms, 1000);
    wait_finals(t, 1, WAIT_MS);
    close_session(t);
    check_final(t, 0, "hello world", BASE_MS + 30000, BASE_MS + 30600);
    stop(t);
}

static void test_too_many_gaps_drop_audio(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    for (int i = 0; i < 24; i++) { /* each gap needs a run while nothing is finalized */
        feed(t, &pos, FRAME_MS, false, false);
        pos += 2000;
    }
    cs_stt_stats st = stats_of(t);
    assert_true(st.dropped_ms > 0);
    assert_true(st.dropped_ms < 24 * FRAME_MS);
    close_session(t);
    stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_refuses_bad_configuration),
        cmocka_unit_test(test_create_wss_uses_system_cas),
        cmocka_unit_test(test_open_refuses_grammar_and_keywords_past_a_url),
        cmocka_unit_test(test_create_refuses_more_than_100_keywords),
        cmocka_unit_test(test_full_beyond_max_sessions),
        cmocka_unit_test(test_two_utterances_on_call_timeline),
        cmocka_unit_test(test_keywords_become_parameters),
        cmocka_unit_test(test_keywords_past_the_limit_are_cut),
        cmocka_unit_test(test_keepalive_during_silence),
        cmocka_unit_test(test_connects_once_there_is_audio),
        cmocka_unit_test(test_close_without_audio_never_connects),
        cmocka_unit_test(test_reconnects_only_with_audio_to_send),
        cmocka_unit_test(test_noisy_line_ends_utterances_by_utterance_end),
        cmocka_unit_test(test_utterance_end_without_a_word_is_ignored),
        cmocka_unit_test(test_gaps_keep_times_right),
        cmocka_unit_test(test_long_text_is_bounded),
        cmocka_unit_test(test_buffer_drops_oldest_while_disconnected),
        cmocka_unit_test(test_feed_larger_than_buffer_keeps_its_end),
        cmocka_unit_test(test_too_many_gaps_drop_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
