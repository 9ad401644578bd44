/* `callstream sim --say`: a caller taking turns with the gateway's agent. Against the echo
 * agent every turn is answered (its echo of our last words) and reported in order; with
 * --barge-in-ms the next clip starts into the answer (echo cannot be interrupted: no
 * clear); several calls report percentiles; an agent that never answers is waited for
 * --answer-timeout-ms; --duration caps a call mid-turn; --out-stereo keeps both sides;
 * and bad option mixes are refused. Times are printed, never asserted: only their order
 * and what the turn rules guarantee whatever the machine's load. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integ_util.h"

#define CLIP_A "ulaw8k/pocketsphinx_goforward.wav"             /* speech 0.5..2.5 s */
#define CLIP_B "ulaw8k/librivox_sense_sensibility_01-0880.wav" /* 3 s */

static char clip_a[1024], clip_b[1024]; /* the corpus paths (it_corpus has one buffer) */

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static bool is_null(const cJSON *o, const char *k)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, k));
}

static bool flag(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *turn(const cJSON *sum, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "turns"), i);
}

static void print_turns(const char *what, const cJSON *sum)
{
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(sum, "turns"))
    {
        printf("%s: turn %d: start %.1f speech %.1f..%.1f answer %.1f voice-to-voice %.1f "
               "overlap %.1f heard %.1f ms%s%s\n",
               what, i++, num(t, "start_ms"), num(t, "speech_start_ms"), num(t, "speech_end_ms"),
               num(t, "answer_ms"), num(t, "voice_to_voice_ms"), num(t, "overlap_ms"),
               num(t, "agent_heard_ms"), flag(t, "barge_in") ? " barge-in" : "",
               flag(t, "clear") ? " cleared" : "");
    }
    const cJSON *v = cJSON_GetObjectItem(sum, "voice_to_voice_ms");
    printf("%s: voice-to-voice count %.0f p50 %.1f p95 %.1f max %.1f ms\n", what, num(v, "count"),
           num(v, "p50"), num(v, "p95"), num(v, "max"));
}

/* What holds for every answered turn: its times in order, voice-to-voice their gap. */
static void check_answered(const cJSON *t, const char *clip)
{
    IT_CHECK(t != NULL, "turn missing");
    if (!t) return;
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(t, "clip"));
    IT_CHECK(c && strcmp(c, clip) == 0, "clip %s, not %s", c ? c : "(none)", clip);
    IT_CHECK(flag(t, "speech"), "the clip's speech was not found");
    double start = num(t, "start_ms"), on = num(t, "speech_start_ms"),
           end = num(t, "speech_end_ms");
    double answer = num(t, "answer_ms"), v2v = num(t, "voice_to_voice_ms");
    IT_CHECK(start <= on && on < end, "speech %.1f..%.1f in a clip from %.1f", on, end, start);
    IT_CHECK(flag(t, "answered"), "not answered");
    IT_CHECK(end < answer, "the answer (%.1f) is not after our speech (%.1f)", answer, end);
    IT_CHECK(fabs(v2v - (answer - end)) < 0.2, "voice-to-voice %.1f, not %.1f", v2v, answer - end);
    IT_CHECK(num(t, "agent_heard_ms") > 0, "nothing heard");
    /* echo talks over us: its voice played while we spoke */
    IT_CHECK(num(t, "overlap_ms") > 0, "no overlap with an echo");
}

static void echo_turns(const it_server *s)
{
    int st = -1;
    char out[512];
    snprintf(out, sizeof out, "%s/turns.wav", s->dir);
    cJSON *sum = it_sim(s, &st, "--say %s,%s --first-after-ms 500 --out %s --out-stereo", clip_a,
                        clip_b, out);
    IT_CHECK(sum && st == 0, "sim exit %d", st);
    if (!sum) return;
    print_turns("echo", sum);
    IT_CHECK(num(sum, "completed") == 1, "completed %.0f", num(sum, "completed"));
    IT_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(sum, "turns")) == 2, "not 2 turns");
    IT_CHECK(num(sum, "turns_spoken") == 2 && num(sum, "turns_answered") == 2,
             "spoken %.0f answered %.0f", num(sum, "turns_spoken"), num(sum, "turns_answered"));
    const cJSON *t0 = turn(sum, 0), *t1 = turn(sum, 1);
    check_answered(t0, clip_a);
    check_answered(t1, clip_b);
    /* the agent says nothing of its own: the first clip waited --first-after-ms; the
     * second came after the answer had played and 700 ms (--turn-gap-ms) passed */
    IT_CHECK(num(t0, "start_ms") >= 500 - 0.1, "first clip at %.1f", num(t0, "start_ms"));
    IT_CHECK(num(t1, "start_ms") >= num(t0, "answer_ms") + 700 - 0.1,
             "second clip at %.1f, the answer at %.1f", num(t1, "start_ms"), num(t0, "answer_ms"));
    for (int i = 0; i < 2; i++) {
        const cJSON *t = turn(sum, i);
        IT_CHECK(t && !flag(t, "barge_in") && !flag(t, "clear") && is_null(t, "barge_in_ms"),
                 "turn %d: a barge-in or a clear", i);
    }
    const cJSON *v = cJSON_GetObjectItem(sum, "voice_to_voice_ms");
    IT_CHECK(num(v, "count") == 2 && num(v, "p50") > 0 && num(v, "max") >= num(v, "p50"),
             "voice_to_voice summary");
    IT_CHECK(num(cJSON_GetObjectItem(sum, "barge_in_ms"), "count") == 0, "barge_in count");
    IT_CHECK(num(sum, "missing") == 0, "echo lost %.0f frames", num(sum, "missing"));
    IT_CHECK(num(sum, "clears_received") == 0, "a clear from echo");

    /* both sides: our speech left, the echo right, each loud somewhere */
    unsigned ch = 0;
    long hdr = 0, frames = 0;
    IT_CHECK(it_wav_info(out, &ch, &hdr, &frames) == 0 && ch == 2, "--out-stereo: %u channels", ch);
    /* the call lasted past the second answer */
    IT_CHECK(frames >= (long)(num(t1, "answer_ms") * 8), "%ld frames", frames);
    FILE *f = fopen(out, "rb");
    long loud[2] = {0, 0};
    int16_t lr[2];
    if (f && fseek(f, 44, SEEK_SET) == 0)
        while (fread(lr, sizeof lr, 1, f) == 1)
            for (int c = 0; c < 2; c++) loud[c] += abs(lr[c]) > 3000;
    if (f) fclose(f);
    IT_CHECK(loud[0] > 800 && loud[1] > 800, "loud samples: said %ld, heard %ld", loud[0], loud[1]);
    cJSON_Delete(sum);
}

/* --barge-in-ms: the second clip starts into the answer. Echo is not interruptible, so
 * no clear comes and barge_in_ms stays null. */
static void echo_barge_in(const it_server *s)
{
    int st = -1;
    cJSON *sum =
        it_sim(s, &st, "--say %s,%s --first-after-ms 300 --barge-in-ms 200", clip_a, clip_b);
    IT_CHECK(sum && st == 0, "sim exit %d", st);
    if (!sum) return;
    print_turns("barge-in", sum);
    const cJSON *t0 = turn(sum, 0), *t1 = turn(sum, 1);
    IT_CHECK(t0 && !flag(t0, "barge_in"), "the first turn is no barge-in (no greeting)");
    IT_CHECK(t1 && flag(t1, "barge_in"), "the second turn is a barge-in");
    IT_CHECK(t1 && !flag(t1, "clear") && is_null(t1, "barge_in_ms"), "echo cleared");
    IT_CHECK(num(t1, "start_ms") >= num(t0, "answer_ms") + 200 - 0.1, "barged at %.1f",
             num(t1, "start_ms"));
    IT_CHECK(num(sum, "barge_ins") == 1 && num(sum, "barge_ins_cleared") == 0,
             "barge_ins %.0f cleared %.0f", num(sum, "barge_ins"), num(sum, "barge_ins_cleared"));
    cJSON_Delete(sum);
}

/* Several conversations at once: counts and percentiles, no per-turn list. */
static void echo_several(const it_server *s)
{
    int st = -1;
    cJSON *sum = it_sim(s, &st, "--calls 3 --say %s,%s --first-after-ms 300", clip_a, clip_b);
    IT_CHECK(sum && st == 0, "sim exit %d", st);
    if (!sum) return;
    print_turns("3 calls", sum);
    IT_CHECK(num(sum, "completed") == 3, "completed %.0f", num(sum, "completed"));
    IT_CHECK(!cJSON_GetObjectItem(sum, "turns"), "a turns list for 3 calls");
    IT_CHECK(num(sum, "turns_spoken") == 6 && num(sum, "turns_answered") == 6,
             "spoken %.0f answered %.0f", num(sum, "turns_spoken"), num(sum, "turns_answered"));
    IT_CHECK(num(cJSON_GetObjectItem(sum, "voice_to_voice_ms"), "count") == 6, "v2v count");
    cJSON_Delete(sum);
}

/* --duration caps a call in the middle of a turn: the turn is reported as far as it went
 * (the clip's audio from 200 ms, its speech from 700 ms to 2.7 s). */
static void capped(const it_server *s, const char *duration, bool began)
{
    int st = -1;
    cJSON *sum = it_sim(s, &st, "--say %s --first-after-ms 200 --duration %s", clip_a, duration);
    IT_CHECK(sum && st == 0, "sim exit %d", st);
    if (!sum) return;
    const cJSON *t = turn(sum, 0);
    IT_CHECK(num(sum, "completed") == 1, "not completed");
    IT_CHECK(num(sum, "frames_sent") == atof(duration) * 50, "frames %.0f",
             num(sum, "frames_sent"));
    IT_CHECK(t && is_null(t, "speech_start_ms") == !began, "speech start %.1f",
             num(t, "speech_start_ms"));
    IT_CHECK(t && is_null(t, "speech_end_ms") && !flag(t, "answered") &&
                 is_null(t, "voice_to_voice_ms"),
             "a turn cut by the cap");
    IT_CHECK(num(sum, "turns_spoken") == 1 && num(sum, "turns_answered") == 0, "answered");
    cJSON_Delete(sum);
}

/* An agent that never answers: each turn waits --answer-timeout-ms after our speech. */
static void silent_agent(void)
{
    it_server s;
    const char *args[] = {"--agent", "none", NULL};
    if (!it_server_up(&s, args)) return;
    int st = -1;
    cJSON *sum =
        it_sim(&s, &st, "--say %s,%s --first-after-ms 200 --answer-timeout-ms 300", clip_a, clip_b);
    IT_CHECK(sum && st == 0, "sim exit %d", st);
    if (sum) {
        print_turns("silent agent", sum);
        const cJSON *t0 = turn(sum, 0), *t1 = turn(sum, 1);
        IT_CHECK(num(sum, "turns_spoken") == 2 && num(sum, "turns_answered") == 0,
                 "spoken %.0f answered %.0f", num(sum, "turns_spoken"), num(sum, "turns_answered"));
        IT_CHECK(t0 && t1 && !flag(t0, "answered") && is_null(t0, "voice_to_voice_ms"),
                 "an answer from nobody");
        IT_CHECK(num(t1, "start_ms") >= num(t0, "speech_end_ms") + 300 - 0.1,
                 "second clip at %.1f, our speech ended %.1f", num(t1, "start_ms"),
                 num(t0, "speech_end_ms"));
        IT_CHECK(num(t0, "agent_heard_ms") == 0, "heard %.1f", num(t0, "agent_heard_ms"));
        IT_CHECK(num(cJSON_GetObjectItem(sum, "voice_to_voice_ms"), "count") == 0, "v2v count");
        cJSON_Delete(sum);
    }
    it_server_stop(&s, SIGTERM, 10000);
    it_server_cleanup(&s);
}

/* Refused before any call, with a line saying why. */
static void refused(const it_server *s)
{
    static const struct {
        const char *args;
        int status;
        const char *says;
    } cases[] = {
        {"--say %s --wav %s", 2, "--say and --wav do not mix"},
        {"--say %s --dtmf 1", 2, "--say and --dtmf do not mix"},
        {"--wav %s --barge-in-ms 100", 2, "--barge-in-ms needs --say"},
        {"--say %s --out-stereo", 2, "--out-stereo needs --out"},
        {"--say %s --turn-gap-ms -5", 2, "take 0 to 3600000"},
        {"--say %s --first-after-ms 3600001", 2, "take 0 to 3600000"},
        {"--say %s --barge-in-ms 12x", 2, "is not a number"},
        {"--say ,,", 1, "no clip given"},
        {"--say /nonexistent/clip.wav", 1, "cannot read /nonexistent/clip.wav"},
    };
    const char *a = clip_a;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024];
        int st = it_sim_err(s, err, sizeof err, cases[i].args, a, a);
        IT_CHECK(st == cases[i].status && strstr(err, cases[i].says), "%s: exit %d, said '%s'",
                 cases[i].args, st, err);
    }
    /* more clips than SIM_CLIPS_MAX (64), by a short name that fits the command line */
    char link[300], many[65 * 310] = "";
    snprintf(link, sizeof link, "%s/c.wav", s->dir);
    IT_CHECK(symlink(a, link) == 0, "symlink %s", link);
    for (int i = 0; i < 65; i++) {
        strcat(many, i ? "," : "");
        strcat(many, link);
    }
    char err[1024];
    int st = it_sim_err(s, err, sizeof err, "--say %s", many);
    IT_CHECK(st == 1 && strstr(err, "more than 64 clips"), "65 clips: exit %d, said '%s'", st, err);
}

int main(void)
{
    snprintf(clip_a, sizeof clip_a, "%s", it_corpus(CLIP_A));
    snprintf(clip_b, sizeof clip_b, "%s", it_corpus(CLIP_B));
    it_server s;
    const char *args[] = {"--agent", "echo", "--echo-mark-ms", "500", NULL};
    if (it_server_up(&s, args)) {
        refused(&s);
        echo_turns(&s);
        echo_barge_in(&s);
        echo_several(&s);
        capped(&s, "1", true);
        capped(&s, "0.6", false);
        it_server_stop(&s, SIGTERM, 10000);
        it_server_cleanup(&s);
    }
    silent_agent();
    return it_done("sim_turns");
}
