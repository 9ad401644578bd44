/* bench_agent_llm: the LLM agent's conversations, N at once, against an instant local
 * OpenAI-compatible server (tests/unit/llm_fake.h): the gateway with AGENT=llm, real
 * pocketsphinx (a decoder per caller) and espeak-ng; `callstream sim` plays N callers
 * taking turns ("go forward ten meters", every other time cutting in on the answer),
 * started evenly over RAMP_S seconds (5, about one turn: their turns fall at any moment of
 * each other's, as real callers' do; 0 puts them all in step, the worst case), and keeps
 * what each heard (--out).
 *
 *   bench_agent_llm [N …]   (default: 1 2 4 8 12 16)
 *
 * prints one line per N:
 *   agent_llm conversations=N turns= v2v_p50_ms= v2v_p95_ms= v2v_max_ms= unanswered=
 *       barge_ins= barge_in_p50_ms= barge_in_p95_ms= cpu_pct_per_conversation=
 *       server_turn_v2v_p50_ms= server_turn_v2v_p95_ms=
 * v2v (voice to voice): from the end of the caller's words (the clip's reference offset,
 * tests/unit/phoneline.h) to the first sound of the answer the caller hears (in the audio
 * the simulator played back, on the caller's timeline). barge-in: from the caller's speech onset,
 * as the detector places it, to the clear (the gateway's barge_in events). cpu: the gateway's CPU
 * time over the run, per conversation, in % of one core. server_turn_v2v: the gateway's own `turn`
 * events, for comparison. TURNS (6), BARGE_GAP_MS (2000: the next words start this long after the
 * last, in the answer), WAIT_GAP_MS (7000: a whole answer heard), CS_BIN and CS_CORPUS
 * change the run; the last line says how many conversations held v2v p95 <= 500 ms. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/wav.h"
#include "integ_util.h"
#include "llm_fake.h"
#include "phoneline.h"
#include "stats.h"

#define FRAME       160 /* 20 ms */
#define LOUD        300 /* mean |sample| of a frame with speech in it */
#define TARGET_MS   500 /* voice to voice, p95 */
#define MAX_TURNS   32
#define MAX_SAMPLES 4096
#define CLIP        "pocketsphinx_goforward" /* the caller's words, each turn */

static const char reply[] =
    "Sure, I can help with that. The next bus leaves at nine. Is there anything else?";

static long env_or(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static bool loud(const int16_t *s, size_t n)
{
    long sum = 0;
    for (size_t i = 0; i < n; i++) sum += abs(s[i]);
    return n && sum / (long)n >= LOUD;
}

typedef struct run {
    double v2v[MAX_SAMPLES], barge[MAX_SAMPLES], server_v2v[MAX_SAMPLES];
    size_t nv2v, nbarge, nserver;
    unsigned unanswered;
} run;

/* One caller's played-back audio: the first sound after each turn's end of speech. */
static void heard(run *r, const char *path, const size_t *ends, const size_t *next, size_t turns)
{
    int16_t *pcm = NULL;
    size_t n = 0;
    unsigned rate = 0;
    if (cs_wav_load(path, &pcm, &n, &rate) < 0 || rate != 8000) {
        r->unanswered += (unsigned)turns;
        free(pcm);
        return;
    }
    for (size_t t = 0; t < turns; t++) {
        bool found = false;
        for (size_t at = ends[t]; at + FRAME <= n && at < next[t] && !found; at += FRAME / 4) {
            if (!loud(pcm + at, FRAME / 4)) continue;
            if (r->nv2v < MAX_SAMPLES) r->v2v[r->nv2v++] = (double)(at - ends[t]) / 8.0;
            found = true;
        }
        if (!found) r->unanswered++;
    }
    free(pcm);
}

/* The gateway's barge_in and turn events of every call. */
static void server_events(run *r, int port)
{
    cJSON *calls = it_get_json(port, "/api/v1/calls?limit=100");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(calls, "calls"))
    {
        cJSON *call = it_call(port, it_str(c, "sid"));
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
        {
            const cJSON *d = cJSON_GetObjectItem(e, "detail");
            if (!strcmp(it_str(e, "type"), "barge_in") && r->nbarge < MAX_SAMPLES)
                r->barge[r->nbarge++] = it_num(d, "latencyMs");
            if (!strcmp(it_str(e, "type"), "turn") && r->nserver < MAX_SAMPLES)
                r->server_v2v[r->nserver++] = it_num(d, "voiceToVoiceMs");
        }
        cJSON_Delete(call);
    }
    cJSON_Delete(calls);
}

/* The machine's 1-minute load average: how much else ran beside the benchmark. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after ") ": state is field 3; utime and stime are 14 and 15 */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* N conversations at once; whether v2v p95 held the target. */
static bool step(const pl_ref *ref, int n, long turns, long barge_gap, long wait_gap, long ramp)
{
    static const llm_fake_reply script[] = {{.kind = LLM_FAKE_TEXT, .text = reply}};
    llm_fake_opts o = {.script = script, .nscript = 1};
    llm_fake *fake;
    if (llm_fake_start(&fake, &o) < 0) {
        fprintf(stderr, "bench_agent_llm: no fake LLM\n");
        return false;
    }
    char sessions[16];
    snprintf(sessions, sizeof sessions, "%d", n);
    const char *args[] = {"--agent", "llm",   "--llm-url",    llm_fake_url(fake),   "--llm-model",
                          "fake",    "--stt", "pocketsphinx", "--stt-max-sessions", sessions,
                          NULL};
    it_server s;
    if (it_server_start(&s, args) < 0) {
        fprintf(stderr, "bench_agent_llm: the gateway did not start\n");
        it_server_cleanup(&s);
        llm_fake_free(fake);
        return false;
    }
    /* The caller: a second of silence, then turns; after every other one the next words
     * come while the answer plays. */
    const char *clip = it_corpus("ulaw8k/" CLIP ".wav");
    size_t sp0 = ref->onset_ms * 8, sp1 = ref->offset_ms * 8;
    const char *clips[MAX_TURNS + 1] = {NULL};
    unsigned gaps[MAX_TURNS + 1] = {1000};
    for (long t = 0; t < turns; t++) {
        clips[t + 1] = clip;
        gaps[t + 1] = (unsigned)(t % 2 == 0 && t + 1 < turns ? barge_gap : wait_gap);
    }
    char wav[400], out[400];
    snprintf(wav, sizeof wav, "%s/caller.wav", s.dir);
    snprintf(out, sizeof out, "%s/heard", s.dir);
    size_t starts[MAX_TURNS + 1], ends[MAX_TURNS], next[MAX_TURNS];
    it_wav_compose(wav, clips, gaps, (size_t)turns + 1, starts);
    for (long t = 0; t < turns; t++) {
        ends[t] = starts[t + 1] + sp1;
        next[t] = t + 1 < turns ? starts[t + 2] + sp0 : (size_t)-1;
    }
    char mk[500];
    snprintf(mk, sizeof mk, "mkdir -p %s", out);
    if (system(mk) != 0) return false;
    double cpu0 = cpu_s(s.pid);
    long long t0 = it_now_ms();
    int status = -1;
    cJSON_Delete(it_sim(&s, &status, "--calls %d --ramp %ld --wav %s --out %s", n, ramp, wav, out));
    double wall = (double)(it_now_ms() - t0) / 1000.0, cpu = cpu_s(s.pid) - cpu0, load = load1();
    run *r = calloc(1, sizeof *r);
    DIR *d = opendir(out);
    struct dirent *e;
    int calls = 0;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".wav")) continue;
        char path[800];
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        heard(r, path, ends, next, (size_t)turns);
        calls++;
    }
    if (d) closedir(d);
    r->unanswered += (unsigned)((n - calls) * turns);
    server_events(r, s.port);
    it_server_stop(&s, SIGTERM, 20000);
    it_server_cleanup(&s);
    llm_fake_free(fake);
    double p95 = stats_pct(r->v2v, r->nv2v, 0.95);
    printf("agent_llm conversations=%d ramp_s=%ld turns=%ld v2v_p50_ms=%.0f v2v_p95_ms=%.0f "
           "v2v_max_ms=%.0f "
           "unanswered=%u barge_ins=%zu barge_in_p50_ms=%.0f barge_in_p95_ms=%.0f "
           "cpu_pct_per_conversation=%.1f server_turn_v2v_p50_ms=%.0f "
           "server_turn_v2v_p95_ms=%.0f sim_exit=%d load1=%.2f\n",
           n, ramp, turns * n, stats_pct(r->v2v, r->nv2v, 0.5), p95,
           stats_pct(r->v2v, r->nv2v, 1.0), r->unanswered, r->nbarge,
           stats_pct(r->barge, r->nbarge, 0.5), stats_pct(r->barge, r->nbarge, 0.95),
           100.0 * cpu / wall / n, stats_pct(r->server_v2v, r->nserver, 0.5),
           stats_pct(r->server_v2v, r->nserver, 0.95), status, load);
    fflush(stdout);
    bool ok = r->nv2v && p95 <= TARGET_MS && r->unanswered == 0;
    free(r);
    return ok;
}

int main(int argc, char **argv)
{
    setenv("CS_BIN", getenv("CS_BIN") ? getenv("CS_BIN") : "build/callstream", 1);
    setenv("CS_CORPUS", getenv("CS_CORPUS") ? getenv("CS_CORPUS") : "tests/data/speech", 1);
    long turns = env_or("TURNS", 6), barge_gap = env_or("BARGE_GAP_MS", 2000),
         wait_gap = env_or("WAIT_GAP_MS", 7000), ramp = env_or("RAMP_S", 5);
    if (turns < 1 || turns > MAX_TURNS) turns = 6;
    pl_ref ref; /* where the words are in the clip */
    int16_t *pcm = NULL;
    size_t len = 0;
    if (pl_load(getenv("CS_CORPUS"), CLIP, &ref, &pcm, &len) < 0) return 1;
    free(pcm);
    static const int defaults[] = {1, 2, 4, 8, 12, 16};
    int held = 0;
    int nsteps = argc > 1 ? argc - 1 : (int)(sizeof defaults / sizeof *defaults);
    for (int i = 0; i < nsteps; i++) {
        int n = argc > 1 ? atoi(argv[i + 1]) : defaults[i];
        if (n < 1) continue;
        if (step(&ref, n, turns, barge_gap, wait_gap, ramp) && n > held) held = n;
    }
    printf("agent_llm held_v2v_p95_500ms=%d\n", held);
    return 0;
}
