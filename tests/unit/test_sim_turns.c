/* The simulated caller's turn taking (tools/sim/turns.c): where the speech of a clip is,
 * Twilio's playback buffer (what played, what a clear dropped, when the agent's voice
 * ends), and scripted conversations — an agent that answers, one that speaks first, one
 * that never answers, a clear before the answer played, and a barge-in whose clear is
 * timed from our speech onset. The clock is the test's: every time below is exact. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "sim/sim.h"
#include "sim/sim_int.h"

#define MS   1000000ull
#define T0   (1000000 * MS) /* the clock is nowhere near 0 */
#define SLOT (SIM_FRAME_MS * MS)

static uint8_t voice[SIM_FRAME_BYTES], hush[SIM_FRAME_BYTES];

/* One frame of a 440 Hz tone at about `db` dBFS (RMS). */
static void tone(uint8_t *out, double db, size_t k)
{
    double amp = 32768 * pow(10, db / 20) * sqrt(2);
    for (size_t i = 0; i < SIM_FRAME_BYTES; i++) {
        double t = (double)(k * SIM_FRAME_BYTES + i) / 8000;
        out[i] = cs_pcm_to_ulaw((int16_t)(amp * sin(2 * M_PI * 440 * t)));
    }
}

/* Noise at about `db` dBFS. */
static void noise(uint8_t *out, double db, uint64_t *seed)
{
    double amp = 32768 * pow(10, db / 20) * sqrt(3); /* uniform: rms = amp / sqrt(3) */
    for (size_t i = 0; i < SIM_FRAME_BYTES; i++) {
        double u = (double)tu_rand_below(seed, 20001) / 10000 - 1;
        out[i] = cs_pcm_to_ulaw((int16_t)(amp * u));
    }
}

static int setup(void **state)
{
    (void)state;
    tone(voice, -20, 0);
    memset(hush, CS_ULAW_SILENCE, sizeof hush);
    return 0;
}

/* ---- speech in a clip ---- */

/* Frames described by a string: '.' noise at -60 dBFS, 'v' voice at -20, '!' a click. */
static sim_speech find(const char *shape)
{
    size_t n = strlen(shape);
    uint8_t *ulaw = malloc(n * SIM_FRAME_BYTES);
    uint64_t seed = 7;
    for (size_t k = 0; k < n; k++) {
        uint8_t *f = ulaw + k * SIM_FRAME_BYTES;
        if (shape[k] == 'v')
            tone(f, -20 - (double)(k % 7), k); /* speech varies */
        else if (shape[k] == '!')
            tone(f, -6, k);
        else
            noise(f, -60, &seed);
    }
    sim_speech sp;
    assert_int_equal(sim_speech_find(ulaw, n, &sp), 0);
    free(ulaw);
    return sp;
}

static void energy_of_frames(void **state)
{
    (void)state;
    assert_true(fabs(sim_energy_db(voice, sizeof voice) - -20) < 0.5);
    assert_true(sim_energy_db(hush, sizeof hush) <= -99);
    assert_true(sim_energy_db(hush, 0) <= -99);
}

static void speech_bounds(void **state)
{
    (void)state;
    /* 300 ms of line noise, speech with a 200 ms pause inside it (bridged), silence, then
     * a click (too short and too far to be speech) */
    sim_speech sp = find("..............."
                         "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
                         ".........."
                         "vvvvvvvvvvvvvvvvvvvv"
                         ".............................."
                         "!"
                         "..............................");
    assert_true(sp.found);
    assert_int_equal(sp.onset, 15);
    assert_int_equal(sp.end, 95);
    assert_true(sp.threshold_db >= SIM_VOICE_FLOOR_DB);

    /* a click before the speech is not its onset; a short sound close to it is part of it */
    sp = find("..!!......................vvvvvvvvvvvvvvvvvvvv.....vv.................");
    assert_true(sp.found);
    assert_int_equal(sp.onset, 26);
    assert_int_equal(sp.end, 53);

    /* a pause longer than SIM_SPEECH_GAP_FRAMES: speech ends at the second stretch's end */
    sp = find("...vvvvvvvvvv....................vvvvvvvvvv...");
    assert_int_equal(sp.onset, 3);
    assert_int_equal(sp.end, 43);
}

static void silence_has_no_speech(void **state)
{
    (void)state;
    sim_speech sp = find("........................................");
    assert_false(sp.found);
    assert_int_equal(sp.onset, 39);
    assert_int_equal(sp.end, 40);
    sp = find("..........!..........."); /* a click alone */
    assert_false(sp.found);
    uint8_t digital[10 * SIM_FRAME_BYTES];
    memset(digital, CS_ULAW_SILENCE, sizeof digital);
    assert_int_equal(sim_speech_find(digital, 10, &sp), 0);
    assert_false(sp.found);
    assert_int_equal(sim_speech_find(digital, 0, &sp), 0);
    assert_false(sp.found);
    assert_int_equal(sp.end, 0);
}

/* A recorded clip: "go forward ten meters", spoken from about 0.5 s to 2.5 s. */
static void speech_of_a_recording(void **state)
{
    (void)state;
    char path[4096];
    const char *corpus = getenv("CS_CORPUS");
    snprintf(path, sizeof path, "%s/ulaw8k/pocketsphinx_goforward.wav",
             corpus ? corpus : "tests/data/speech");
    uint8_t *ulaw = NULL;
    size_t n = 0;
    assert_int_equal(cs_sim_audio(path, &ulaw, &n), 0);
    sim_speech sp;
    assert_int_equal(sim_speech_find(ulaw, n / SIM_FRAME_BYTES, &sp), 0);
    free(ulaw);
    assert_true(sp.found);
    print_message("goforward: speech %zu..%zu ms, threshold %.1f dBFS\n", sp.onset * 20,
                  sp.end * 20, sp.threshold_db);
    assert_in_range(sp.onset * SIM_FRAME_MS, 400, 600);
    assert_in_range(sp.end * SIM_FRAME_MS, 2300, 2700);
}

/* ---- the playback buffer ---- */

static void playback_in_order(void **state)
{
    (void)state;
    sim_playback p = {.end = T0, .played_to = T0};
    /* two voiced frames back to back, the second arriving while the first plays */
    assert_int_equal(sim_playback_add(&p, T0, 160, true), T0);
    assert_int_equal(sim_playback_add(&p, T0 + 5 * MS, 160, true), T0 + 20 * MS);
    assert_int_equal(sim_playback_add(&p, T0 + 10 * MS, 160, false), T0 + 40 * MS);
    assert_int_equal(p.end, T0 + 60 * MS);
    assert_int_equal(p.voiced_end, T0 + 40 * MS);
    sim_playback_advance(&p, T0 + 50 * MS);
    assert_int_equal(p.heard, 50 * MS);
    assert_int_equal(p.voiced, 40 * MS);
    /* nothing queued: audio plays as it arrives, after a gap */
    sim_playback_advance(&p, T0 + 100 * MS);
    assert_int_equal(p.heard, 60 * MS);
    assert_int_equal(sim_playback_add(&p, T0 + 100 * MS, 80, true), T0 + 100 * MS);
    sim_playback_advance(&p, T0 + 200 * MS);
    assert_int_equal(p.heard, 70 * MS);
    assert_int_equal(p.voiced, 50 * MS);
    assert_int_equal(p.voiced_end, T0 + 110 * MS);
}

static void playback_clear(void **state)
{
    (void)state;
    sim_playback p = {.end = T0, .played_to = T0};
    sim_playback_add(&p, T0, 160, true);  /* plays 0..20 */
    sim_playback_add(&p, T0, 800, false); /* 20..120: silence */
    sim_playback_add(&p, T0, 1600, true); /* 120..320 */
    assert_int_equal(p.voiced_end, T0 + 320 * MS);
    sim_playback_clear(&p, T0 + 70 * MS);
    /* what had not played never will; the voice heard last ended at 20 ms */
    assert_int_equal(p.end, T0 + 70 * MS);
    assert_int_equal(p.voiced_end, T0 + 20 * MS);
    sim_playback_advance(&p, T0 + 400 * MS);
    assert_int_equal(p.heard, 70 * MS);
    assert_int_equal(p.voiced, 20 * MS);
    /* cut in the middle of a voice: it ended at the clear */
    sim_playback_add(&p, T0 + 400 * MS, 1600, true);
    sim_playback_clear(&p, T0 + 450 * MS);
    assert_int_equal(p.voiced_end, T0 + 450 * MS);
    assert_int_equal(p.heard, 120 * MS);
    /* after a clear, audio plays from its arrival */
    assert_int_equal(sim_playback_add(&p, T0 + 460 * MS, 160, false), T0 + 460 * MS);
}

/* More alternations of voice and silence than stretches fit: merged, counted, and every
 * byte still plays. */
static void playback_merges_when_full(void **state)
{
    (void)state;
    sim_playback p = {.end = T0, .played_to = T0};
    size_t n = SIM_PLAY_SEGS_MAX + 50;
    for (size_t i = 0; i < n; i++) sim_playback_add(&p, T0, 160, i % 2 == 0);
    assert_true(p.merged > 0);
    assert_int_equal(p.n, SIM_PLAY_SEGS_MAX);
    assert_int_equal(p.end, T0 + n * 20 * MS);
    sim_playback_advance(&p, p.end);
    assert_int_equal(p.heard, n * 20 * MS);
    assert_true(p.voiced >= n / 2 * 20 * MS);
    assert_int_equal(p.n, 0);
}

/* ---- turns ---- */

typedef struct world {
    sim_turn_opts o;
    sim_clip clips[2];
    sim_playback play;
    sim_turn turns[2];
    sim_turns t;
    uint64_t now; /* the next slot */
    bool over;
    uint64_t over_at;
    uint8_t sent[2000][SIM_FRAME_BYTES]; /* what went out, slot by slot */
} world;

static world w;

/* A clip of `lead` frames of silence, `speech` voiced ones, `tail` silence. */
static void clip(sim_clip *c, size_t lead, size_t speech, size_t tail)
{
    c->frames = lead + speech + tail;
    c->ulaw = malloc(c->frames * SIM_FRAME_BYTES);
    c->path = "clip";
    for (size_t k = 0; k < c->frames; k++)
        memcpy(c->ulaw + k * SIM_FRAME_BYTES, k >= lead && k < lead + speech ? voice : hush,
               SIM_FRAME_BYTES);
    assert_int_equal(sim_speech_find(c->ulaw, c->frames, &c->speech), 0);
}

static void world_init(size_t nclips, uint64_t barge_ms)
{
    w.o = (sim_turn_opts){.clips = w.clips,
                          .nclips = nclips,
                          .first_after_ns = 1000 * MS,
                          .gap_ns = 700 * MS,
                          .answer_timeout_ns = 5000 * MS,
                          .barge = barge_ms > 0,
                          .barge_ns = barge_ms * MS};
    w.play = (sim_playback){.end = T0, .played_to = T0};
    memset(w.turns, 0, sizeof w.turns);
    sim_turns_init(&w.t, &w.o, &w.play, w.turns, T0);
    w.now = T0;
    w.over = false;
}

static int world_free(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        free(w.clips[i].ulaw);
        w.clips[i].ulaw = NULL;
    }
    return 0;
}

/* The slots before `until`, as the call's timer runs them. */
static void run_to(uint64_t until)
{
    while (!w.over && w.now < until) {
        size_t k = (w.now - T0) / SLOT;
        assert_true(k < 2000);
        if (!sim_turns_frame(&w.t, w.now, w.sent[k])) {
            w.over = true;
            w.over_at = w.now;
        }
        w.now += SLOT;
    }
}

static void run_out(void)
{
    run_to(T0 + 2000 * SLOT);
    assert_true(w.over);
}

/* The agent sends `frames` frames from `at` (ms after T0): paced one per 20 ms as a
 * real-time sender does, or all at once. */
static void agent(uint64_t at_ms, size_t frames, bool voiced, bool paced)
{
    for (size_t i = 0; i < frames; i++) {
        uint64_t at = T0 + at_ms * MS + (paced ? i * SLOT : 0);
        run_to(at + 1);
        sim_turns_media(&w.t, at, voiced ? voice : hush, SIM_FRAME_BYTES);
    }
}

static void clear_at(uint64_t at_ms)
{
    run_to(T0 + at_ms * MS + 1);
    sim_turns_clear(&w.t, T0 + at_ms * MS);
}

#define ASSERT_MS(v, ms) assert_int_equal((v), T0 + (uint64_t)(ms)*MS)

/* An agent that waits for the caller, answers 310 ms after our speech, and stays silent
 * after our second turn. */
static void answer_then_silence(void **state)
{
    (void)state;
    clip(&w.clips[0], 5, 50, 10);
    clip(&w.clips[1], 0, 25, 5);
    world_init(2, 0);
    /* silence until --first-after-ms: the clip's audio from 1000 ms, its first frame sent
     * in the slot at 1020 */
    run_to(T0 + 1020 * MS);
    for (size_t k = 0; k < 51; k++) assert_memory_equal(w.sent[k], hush, SIM_FRAME_BYTES);
    assert_int_equal(w.t.started, 0);
    run_to(T0 + 1021 * MS);
    assert_int_equal(w.t.started, 1);
    assert_memory_equal(w.sent[51], w.clips[0].ulaw, SIM_FRAME_BYTES);
    ASSERT_MS(w.turns[0].start, 1000);

    /* our speech: frames 5..54, sent in the slots at 1120..2100 ms */
    agent(2390, 50, true, true); /* the answer: 1 s from 2390 ms */
    assert_true(w.turns[0].began && w.turns[0].ended);
    ASSERT_MS(w.turns[0].onset, 1100);
    ASSERT_MS(w.turns[0].end, 2100);
    assert_true(w.turns[0].answered);
    ASSERT_MS(w.turns[0].answer, 2390);
    assert_int_equal(w.turns[0].overlap, 0);

    /* the next clip once the answer has played (3390) and 700 ms passed: its audio from
     * 4100 (the slot at 4120) */
    run_to(T0 + 4120 * MS);
    assert_int_equal(w.t.started, 1);
    run_to(T0 + 4121 * MS);
    assert_int_equal(w.t.started, 2);
    assert_false(w.turns[1].barge);
    ASSERT_MS(w.turns[1].start, 4100);
    assert_int_equal(w.turns[0].heard, 1000 * MS);

    /* no answer: the call ends --answer-timeout-ms after our speech (4600 + 5000) */
    run_out();
    ASSERT_MS(w.turns[1].onset, 4100);
    ASSERT_MS(w.turns[1].end, 4600);
    assert_false(w.turns[1].answered);
    ASSERT_MS(w.over_at, 9620);
    assert_int_equal(w.turns[1].heard, 0);
    assert_false(w.turns[0].cleared);
    assert_false(sim_turns_frame(&w.t, w.now, w.sent[0])); /* over stays over */
}

/* An agent talking over us (an echo) answers while we speak: the answer is its first
 * voice that arrived after our speech ended; what it said during our speech is overlap. */
static void answer_during_our_speech(void **state)
{
    (void)state;
    clip(&w.clips[0], 5, 50, 10);
    world_init(1, 0);
    /* echo each of our voiced frames 5 ms after it went out (slots 1120..2100) */
    for (uint64_t ms = 1120; ms <= 2100; ms += 20) agent(ms + 5, 1, true, false);
    ASSERT_MS(w.turns[0].end, 2100);
    assert_true(w.turns[0].answered);
    ASSERT_MS(w.turns[0].answer, 2105);
    /* its voice played from 1125 on: 975 ms of it by our last voiced frame (2100) */
    assert_int_equal(w.turns[0].overlap, 975 * MS);
    run_out();
    ASSERT_MS(w.over_at, 2860); /* voice ended 2125, + 700 ms, a frame later, at a slot */
}

/* The agent greets first: the first clip waits for it to finish, not for first-after. */
static void agent_speaks_first(void **state)
{
    (void)state;
    clip(&w.clips[0], 0, 10, 0);
    world_init(1, 0);
    agent(210, 40, true, true); /* 210..1010 ms */
    run_to(T0 + 1740 * MS);
    assert_int_equal(w.t.started, 0); /* first-after (1000 ms) did not start it */
    run_to(T0 + 1741 * MS);
    assert_int_equal(w.t.started, 1);
    ASSERT_MS(w.turns[0].start, 1720); /* 1010 + 700, at a slot */
    assert_false(w.turns[0].barge);
    run_out();
    assert_int_equal(w.turns[0].heard, 0); /* the greeting was before the turn */
}

/* With --barge-in-ms the first clip cuts into the greeting. */
static void barge_into_greeting(void **state)
{
    (void)state;
    clip(&w.clips[0], 0, 10, 0);
    world_init(1, 300);
    agent(210, 40, true, false); /* 800 ms queued at once: plays 210..1010 */
    run_to(T0 + 540 * MS);
    assert_int_equal(w.t.started, 0);
    run_to(T0 + 541 * MS);
    assert_int_equal(w.t.started, 1);
    ASSERT_MS(w.turns[0].start, 520); /* 210 + 300, at a slot */
    assert_true(w.turns[0].barge);
}

/* Barge-in: the next clip starts 500 ms into the agent's answer; the gateway's clear
 * comes 120 ms after our speech onset, and barge_in is measured from that onset. */
static void barge_in_then_clear(void **state)
{
    (void)state;
    clip(&w.clips[0], 5, 50, 0);
    clip(&w.clips[1], 5, 25, 0);
    world_init(2, 500);
    run_to(T0 + 2101 * MS);
    ASSERT_MS(w.turns[0].end, 2100);
    agent(2390, 150, true, false); /* a 3 s answer sent at once: plays 2390..5390 */
    assert_true(w.turns[0].answered);
    ASSERT_MS(w.turns[0].answer, 2390);

    run_to(T0 + 2920 * MS);
    assert_int_equal(w.t.started, 1);
    run_to(T0 + 2921 * MS); /* audio from 2900 >= 2390 + 500: the slot at 2920 */
    assert_int_equal(w.t.started, 2);
    assert_true(w.turns[1].barge);
    ASSERT_MS(w.turns[1].start, 2900);
    assert_int_equal(w.turns[0].heard, 530 * MS); /* 2390..2920 */

    /* our onset: frame 5 of the clip, sent at 3020, its audio from 3000 */
    run_to(T0 + 3021 * MS);
    ASSERT_MS(w.turns[1].onset, 3000);
    assert_false(w.turns[1].cleared);
    clear_at(3120);
    assert_true(w.turns[1].cleared);
    ASSERT_MS(w.turns[1].clear, 3120);
    assert_int_equal(w.turns[1].clear - w.turns[1].onset, 120 * MS); /* barge_in_ms */
    ASSERT_MS(w.play.end, 3120);
    ASSERT_MS(w.play.voiced_end, 3120);
    assert_false(w.turns[0].cleared); /* the clear is the turn in progress' */

    /* a second clear is not the first */
    clear_at(3220);
    ASSERT_MS(w.turns[1].clear, 3120);

    /* our speech ends at 3500 (frame 29); the agent answers at 3600 */
    agent(3600, 10, true, true);
    ASSERT_MS(w.turns[1].end, 3500);
    assert_true(w.turns[1].answered);
    ASSERT_MS(w.turns[1].answer, 3600);
    /* the old answer played 3020..3120 of the slots from our onset to our end */
    assert_int_equal(w.turns[1].overlap, 100 * MS);
    /* the last turn: the call ends once the answer played (3800) and 700 ms passed,
     * never by the barge-in rule */
    run_out();
    ASSERT_MS(w.over_at, 4520);
    assert_int_equal(w.turns[1].heard, (200 + 200) * MS); /* 2920..3120, 3600..3800 */
}

/* A clear that drops the answer before it played: it was never heard, so the turn waits
 * for the agent's next voice, which is its answer. */
static void clear_before_the_answer_played(void **state)
{
    (void)state;
    clip(&w.clips[0], 5, 50, 10);
    world_init(1, 0);
    agent(2390, 50, false, false); /* 1 s of silence queued: 2390..3390 */
    agent(2400, 10, true, false);  /* then voice: 3390..3590 */
    assert_true(w.turns[0].answered);
    ASSERT_MS(w.turns[0].answer, 3390);
    clear_at(3000);
    assert_false(w.turns[0].answered);
    assert_true(w.turns[0].cleared);
    assert_int_equal(w.play.voiced_end, 0); /* no voice was ever heard */
    agent(3500, 5, true, true);
    assert_true(w.turns[0].answered);
    ASSERT_MS(w.turns[0].answer, 3500);
    run_out();
    ASSERT_MS(w.over_at, 4320); /* 3600 + 700, a frame later */
}

/* A silent clip: its speech "ends" with the clip, and the answer is timed from there. */
static void silent_turn(void **state)
{
    (void)state;
    clip(&w.clips[0], 20, 0, 0);
    world_init(1, 0);
    assert_false(w.clips[0].speech.found);
    run_to(T0 + 1401 * MS); /* clip in the slots 1020..1400 */
    ASSERT_MS(w.turns[0].onset, 1400);
    ASSERT_MS(w.turns[0].end, 1400);
    agent(1700, 5, true, true);
    ASSERT_MS(w.turns[0].answer, 1700);
    run_out();
}

/* The call ends (its --duration) before our speech began: the turn is reported as far as
 * it went, with what was heard so far. */
static void call_ends_mid_turn(void **state)
{
    (void)state;
    clip(&w.clips[0], 5, 50, 0);
    clip(&w.clips[1], 5, 50, 0);
    world_init(2, 0);
    run_to(T0 + 1041 * MS);       /* audio from 1000: frames 0 and 1 sent */
    agent(1050, 5, false, false); /* plays from 1050 */
    sim_turns_finish(&w.t, T0 + 1070 * MS);
    assert_int_equal(w.t.started, 1);
    assert_true(w.turns[0].spoken);
    assert_false(w.turns[0].began);
    assert_false(w.turns[0].ended);
    assert_false(w.turns[1].spoken);
    assert_int_equal(w.turns[0].heard, 20 * MS);
    assert_false(sim_turns_frame(&w.t, T0 + 1080 * MS, w.sent[0]));
    sim_turns_finish(&w.t, T0 + 1100 * MS); /* once */
    assert_int_equal(w.turns[0].heard, 20 * MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(energy_of_frames),
        cmocka_unit_test(speech_bounds),
        cmocka_unit_test(silence_has_no_speech),
        cmocka_unit_test(speech_of_a_recording),
        cmocka_unit_test(playback_in_order),
        cmocka_unit_test(playback_clear),
        cmocka_unit_test(playback_merges_when_full),
        cmocka_unit_test_teardown(answer_then_silence, world_free),
        cmocka_unit_test_teardown(answer_during_our_speech, world_free),
        cmocka_unit_test_teardown(agent_speaks_first, world_free),
        cmocka_unit_test_teardown(barge_into_greeting, world_free),
        cmocka_unit_test_teardown(barge_in_then_clear, world_free),
        cmocka_unit_test_teardown(clear_before_the_answer_played, world_free),
        cmocka_unit_test_teardown(silent_turn, world_free),
        cmocka_unit_test_teardown(call_ends_mid_turn, world_free),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
