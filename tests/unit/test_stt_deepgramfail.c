/* The Deepgram engine against a fake Deepgram (deepgram_harness.h) that fails: dropped,
 * erroring, stalled and refused connections, reconnection with the unfinalized audio
 * resent, what Deepgram says when it refuses or closes, giving up, and the end of a call
 * while the connection is down. */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "deepgram_harness.h"

/* ---- failures ---- */

static void check_reconnected(tctx *t)
{
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(t->nfinals, 2);
    assert_int_equal(t->errors, 0);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 2);
}

/* Dropped 2 s into the audio, after utterance 1's final and during utterance 2, the
 * session reconnects, resends what was not finalized, and logs what Deepgram said on one
 * line with the request id (from the Results' metadata): an Error message, or the close
 * frame's reason, which tells NET-0000 from NET-0001 (both 1011). */
static void test_reconnects_after_a_failure(void **state)
{
    (void)state;
    static const struct {
        dg_fake_fault fault;
        uint16_t code;
        const char *reason, *says;
    } cases[] = {
        {DG_FAKE_DROP, 0, NULL, ", request fake-1; reconnecting in"}, /* EOF or reset */
        {DG_FAKE_ERROR, 0, NULL,
         "Deepgram error: fake internal error: the fake was told to fail, request fake-1; "
         "reconnecting in"},
        {DG_FAKE_CLOSE, 1011, "NET-0000",
         "with 1011 NET-0000 (Deepgram sent no result in time), request fake-1; reconnecting"},
        {DG_FAKE_CLOSE, 1011, "NET-0001",
         "with 1011 NET-0001 (no audio or KeepAlive reached Deepgram in time), request fake-1; "
         "reconnecting"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dg_fake_opts fo = {SCRIPT,
                           .fault = cases[i].fault,
                           .faulty = 1,
                           .fault_after = 2000 * 8,
                           .close_code = cases[i].code,
                           .close_reason = cases[i].reason};
        tctx *t = start(&fo);
        tu_log_capture_start();
        two_utterances(t, BASE_MS);
        check_reconnected(t);
        assert_true(tu_log_contains(cases[i].says));
        assert_int_equal(stats_of(t).reconnects, 1);
        tu_log_capture_stop();
        stop(t);
    }
}

/* Audio Deepgram cannot decode (DATA-0000) will not decode on a new connection. */
static void test_undecodable_audio_is_not_retried(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT,
                       .fault = DG_FAKE_CLOSE,
                       .faulty = -1,
                       .fault_after = 2000 * 8,
                       .close_code = 1008,
                       .close_reason = "DATA-0000"};
    tctx *t = start(&fo);
    two_utterances(t, BASE_MS);
    assert_true(tu_run_until(&t->loop, has_error, t, WAIT_MS));
    assert_int_equal(t->last_err, CS_EBACKEND);
    assert_non_null(strstr(t->why, "Deepgram closed the stream with 1008 DATA-0000 (the audio "
                                   "could not be decoded), request fake-1"));
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 1);
    close_session(t);
    stop(t);
}

/* Speaks until the session gives up (within the backoff of every attempt) with `err` and
 * `why` in its reason. */
static void speak_until_it_gives_up(tctx *t, uint32_t *pos, int err, const char *why)
{
    speak(t, pos, 400);
    assert_true(tu_run_until(&t->loop, has_error, t, 40000));
    assert_int_equal(t->last_err, err);
    assert_non_null(strstr(t->why, why));
}

/* A server that answers every connection with an Error message makes no progress: the
 * failures add up and the session gives up, instead of reconnecting forever. */
static void test_error_messages_alone_do_not_reset_retries(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_ERROR, .faulty = -1, .fault_after = 0};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak_until_it_gives_up(t, &pos, CS_EBACKEND,
                            "Deepgram error: fake internal error: the fake was told to fail (7 "
                            "attempts)");
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 7);
    close_session(t);
    assert_int_equal(t->errors, 1);
    stop(t);
}

/* Each connection answers once (an interim), then drops: no real progress, as the audio
 * resent is never finalized, so the failures add up and the session gives up, instead of
 * reconnecting at the first backoff step, resending the backlog, for the whole call. */
static void test_one_answer_per_connection_is_no_progress(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_DROP, .faulty = -1, .fault_after = 300 * 8};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak_until_it_gives_up(t, &pos, CS_EBACKEND, "(7 attempts)");
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 7);
    assert_int_equal(t->nsegs, 7); /* one interim from each connection */
    assert_int_equal(t->nfinals, 0);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.reconnects, 6);
    assert_int_equal(st.failures, 1);
    close_session(t);
    stop(t);
}

/* Until the session has counted n reconnections, or the fake n upgrades. */
typedef struct count_goal {
    tctx *t;
    uint64_t n;
} count_goal;

static bool reconnects_reach(void *d)
{
    const count_goal *g = d;
    return stats_of(g->t).reconnects >= g->n;
}

static bool upgrades_reach(void *d)
{
    const count_goal *g = d;
    return dg_fake_stats_get(g->t->fake)->upgrades >= g->n;
}

/* Each connection finalizes what it resent, then drops: progress every time, so the
 * count of failures starts over and the session never gives up. */
static void test_finalized_backlog_is_progress(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_DROP, .faulty = -1, .fault_after = 1200 * 8};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    for (unsigned i = 1; i <= 2 * 7; i++) {
        /* Connection i takes what is left (0.2 s) and 1 s more: an empty final after 1 s
         * covers the resent audio, then it drops. */
        hush(t, &pos, 1000 + (i == 1 ? 200 : 0));
        assert_true(tu_run_until(&t->loop, reconnects_reach, &(count_goal){t, i}, WAIT_MS));
        assert_true(tu_run_until(&t->loop, upgrades_reach, &(count_goal){t, i + 1}, WAIT_MS));
    }
    assert_int_equal(t->errors, 0);
    close_session(t);
    assert_int_equal(t->errors, 0);
    assert_int_equal(stats_of(t).failures, 0);
    stop(t);
}

static void test_reconnects_after_stall(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_STALL, .faulty = 1};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    hush(t, &pos, 500);
    speak(t, &pos, 800);
    hush(t, &pos, 12000); /* more than DG_STALL_MS without an answer */
    speak(t, &pos, 600);
    hush(t, &pos, 1500);
    wait_finals(t, 2, 25000);
    close_session(t);
    check_final(t, 0, "hello world", BASE_MS + 500, BASE_MS + 1300);
    check_final(t, 1, "goodbye", BASE_MS + 13300, BASE_MS + 13900);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 2);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_junk_messages_are_skipped(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_JUNK, .faulty = 1};
    tctx *t = start(&fo);
    tu_log_capture_start();
    two_utterances(t, BASE_MS);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, BASE_MS);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 1);
    assert_true(tu_log_contains("skipped a message that is not a typed JSON object"));
    assert_true(tu_log_contains("skipped a Results message"));
    tu_log_capture_stop();
    stop(t);
}

static void test_close_while_disconnected_still_flushes(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = 2, .refuse_status = 503};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    feed(t, &pos, 500, false, false);
    feed(t, &pos, 800, true, false);
    feed(t, &pos, 700, false, false);
    feed(t, &pos, 600, true, false);
    feed(t, &pos, 1500, false, false);
    close_session(t); /* the audio waits for a connection that works */
    check_two_utterances(t, BASE_MS);
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->refused, 2);
    assert_int_equal(fs->upgrades, 1);
    assert_int_equal(fs->close_streams, 1);
    assert_int_equal(t->errors, 0);
    stop(t);
}

/* The call ends while a reconnection is due, with 10 s not finalized: Deepgram takes the
 * resent backlog at 1.25× real time, so the final results come 8 s after it is sent, and
 * the session waits for them. */
static void test_close_waits_for_the_backlog(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .paced = true, .fault = DG_FAKE_REFUSE, .faulty = 2,
                       .refuse_status = 503};
    tctx *t = start(&fo);
    uint32_t pos = BASE_MS;
    feed(t, &pos, 9000, false, false);
    feed(t, &pos, 600, true, false); /* the call's last words */
    feed(t, &pos, 400, false, false);
    cs_stt_deepgram.close(t->s);
    assert_true(tu_run_until(&t->loop, is_closed, t, 30000));
    check_final(t, 0, "hello world", BASE_MS + 9000, BASE_MS + 9600);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.reconnects, 2);
    assert_int_equal(st.close_timeouts, 0);
    const dg_fake_stats *fs = dg_fake_stats_get(t->fake);
    assert_int_equal(fs->refused, 2);
    assert_int_equal(fs->audio_bytes, 10000 * 8);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_close_times_out_on_a_silent_server(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_STALL, .faulty = -1};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak(t, &pos, 600);
    assert_true(tu_run_until(&t->loop, upgraded, t, WAIT_MS));
    close_session(t);
    assert_int_equal(dg_fake_stats_get(t->fake)->close_streams, 1);
    assert_int_equal(stats_of(t).close_timeouts, 1);
    assert_int_equal(t->nsegs, 0);
    assert_int_equal(t->errors, 0);
    stop(t);
}

static void test_gives_up_after_repeated_failures(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = -1, .refuse_status = 503};
    tctx *t = start(&fo);
    uint32_t pos = 0;
    speak_until_it_gives_up(t, &pos, CS_EBACKEND,
                            "HTTP 503: The fake was told to refuse. (7 attempts)");
    unsigned tries = dg_fake_stats_get(t->fake)->refused;
    assert_int_equal(tries, 7);
    hush(t, &pos, 400); /* taken and ignored: the session is failed */
    uv_sleep(600);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    assert_int_equal(dg_fake_stats_get(t->fake)->refused, tries);
    close_session(t);
    assert_int_equal(t->errors, 1);
    assert_int_equal(t->nsegs, 0);
    cs_stt_stats st = stats_of(t);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.reconnects, 6);
    stop(t);
}

static void test_final_refusals_give_up_at_once(void **state)
{
    (void)state;
    static const struct {
        dg_fake_opts fake;
        int err;
        const char *status;
    } cases[] = {
        /* Deepgram's refusal: dg-error and dg-request-id kept */
        {{SCRIPT, .api_key = "another-key"},
         CS_EAUTH,
         "HTTP 401: Invalid credentials., request fake-1"},
        /* a proxy's: its body */
        {{SCRIPT, .fault = DG_FAKE_REFUSE, .faulty = -1, .refuse_status = 400},
         CS_EBACKEND,
         "HTTP 400: The fake was told to refuse."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tctx *t = start(&cases[i].fake);
        uint32_t pos = 0;
        speak_until_it_gives_up(t, &pos, cases[i].err, cases[i].status);
        uv_sleep(1000); /* a retry would have come by now */
        uv_run(&t->loop, UV_RUN_NOWAIT);
        assert_int_equal(dg_fake_stats_get(t->fake)->refused, 1);
        close_session(t);
        assert_int_equal(t->errors, 1);
        stop(t);
    }
}

/* The descriptor the next socket would get. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static bool cannot_connect(void *d)
{
    (void)d;
    return tu_log_contains("cannot connect");
}

static void test_connect_failure_is_retried(void **state)
{
    (void)state;
    dg_fake_opts fo = {SCRIPT};
    tctx *t = start_engine(&fo, "nova-2", 4);
    assert_int_equal(open_with(t, NULL, NULL, &t->s), 0);
    tu_log_capture_start();
    struct rlimit was, tight;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    tight = was;
    tight.rlim_cur = (rlim_t)lowest_free_fd(); /* no socket for the first attempt */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    uint32_t pos = BASE_MS;
    feed(t, &pos, FRAME_MS, false, false); /* the first audio connects */
    bool failed = tu_run_until(&t->loop, cannot_connect, NULL, WAIT_MS);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_true(failed);
    tu_log_capture_stop();
    two_utterances(t, pos);
    wait_finals(t, 2, WAIT_MS);
    close_session(t);
    check_two_utterances(t, pos);
    assert_int_equal(dg_fake_stats_get(t->fake)->upgrades, 1);
    stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconnects_after_a_failure),
        cmocka_unit_test(test_undecodable_audio_is_not_retried),
        cmocka_unit_test(test_error_messages_alone_do_not_reset_retries),
        cmocka_unit_test(test_one_answer_per_connection_is_no_progress),
        cmocka_unit_test(test_finalized_backlog_is_progress),
        cmocka_unit_test(test_reconnects_after_stall),
        cmocka_unit_test(test_junk_messages_are_skipped),
        cmocka_unit_test(test_close_while_disconnected_still_flushes),
        cmocka_unit_test(test_close_waits_for_the_backlog),
        cmocka_unit_test(test_close_times_out_on_a_silent_server),
        cmocka_unit_test(test_gives_up_after_repeated_failures),
        cmocka_unit_test(test_final_refusals_give_up_at_once),
        cmocka_unit_test(test_connect_failure_is_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
