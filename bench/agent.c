/* bench_agent: N callers holding conversations with a running gateway's agent at once, as
 * people do: each waits for the agent to finish talking, says the next clip, and every
 * BARGE_EVERY-th turn cuts into the agent's answer BARGE_MS after it began (barge-in).
 * Calls are raw media streams (tests/integ's phone: frames on an absolute clock, marks
 * echoed as Twilio's playback would, clear honoured), several in one poll loop.
 *
 *   bench_agent URL TOKEN CONVERSATIONS TURNS CLIP.wav [CLIP.wav …]
 *
 * prints one line:
 *   agent conversations= turns= answered= v2v_p50_ms= v2v_p95_ms= v2v_caller_p50_ms=
 *       v2v_caller_p95_ms= bargein_p50_ms= bargein_p95_ms= bargein_caller_p50_ms=
 *       bargein_caller_p95_ms= barge_ins= seconds= failed=
 * v2v: the gateway's turn events (its detector's end of the caller's speech to the first
 * frame of the answer sent); v2v_caller: the end of the clip's speech as sent to the
 * first voiced frame of the answer received. bargein: the gateway's barge_in events
 * (speech onset to clear); bargein_caller: the clip's first voiced frame sent to the clear
 * received. Environment: BARGE_EVERY (3; 0: never), BARGE_MS (400), QUIET_MS (300: the
 * agent's silence that ends its turn), STAGGER_MS (250 between call starts), PARAMS
 * (customParameters, a=1&b=2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "stats.h"

#define MAX_CONV    256
#define MAX_SAMPLES 65536
#define TURN_MAX_MS 30000 /* an answer later than this: the turn failed */

typedef struct conv {
    it_phone p;
    char sid[40];
    int turn;            /* turns said */
    bool speaking;       /* our clip is being sent */
    bool barge;          /* this turn cuts into the answer */
    long long said_at;   /* when the current clip began */
    long long wait_from; /* when we began waiting for an answer */
    bool done, failed;
} conv;

typedef struct samples {
    double v[MAX_SAMPLES];
    size_t n;
} samples;

static void add(samples *s, double v)
{
    if (s->n < MAX_SAMPLES) s->v[s->n++] = v;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* The gateway's own figures, from each call's events. */
static void gateway_side(int port, conv *cs, int n, samples *v2v, samples *barge)
{
    for (int i = 0; i < n; i++) {
        for (long long after = 0; after >= 0;) { /* page after page */
            char target[160];
            snprintf(target, sizeof target, "/api/v1/calls/%s/events?limit=500&after=%lld",
                     cs[i].sid, after);
            cJSON *j = it_get_json(port, target);
            const cJSON *e, *next = cJSON_GetObjectItem(j, "next_after");
            cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
            {
                const cJSON *d = cJSON_GetObjectItem(e, "detail");
                if (strcmp(it_str(e, "type"), "turn") == 0) add(v2v, it_num(d, "voiceToVoiceMs"));
                if (strcmp(it_str(e, "type"), "barge_in") == 0)
                    add(barge, it_num(d, "latencyMs"));
            }
            after = cJSON_IsNumber(next) ? (long long)next->valuedouble : -1;
            cJSON_Delete(j);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_agent URL TOKEN CONVERSATIONS TURNS CLIP.wav [CLIP.wav …]\n");
        return 2;
    }
    int port = atoi(strrchr(argv[1], ':') ? strrchr(argv[1], ':') + 1 : "0");
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", argv[2]);
    int n = atoi(argv[3]), turns = atoi(argv[4]);
    char **clips = argv + 5;
    int nclips = argc - 5;
    int barge_every = env_int("BARGE_EVERY", 3), barge_ms = env_int("BARGE_MS", 400);
    int quiet_ms = env_int("QUIET_MS", 300), stagger = env_int("STAGGER_MS", 250);
    const char *params = getenv("PARAMS");
    if (n < 1 || n > MAX_CONV || turns < 1) {
        fprintf(stderr, "bench_agent: 1..%d conversations, at least one turn\n", MAX_CONV);
        return 2;
    }
    static conv cs[MAX_CONV];
    static samples v2v_caller, barge_caller, v2v, barge;
    it_phone *ps[MAX_CONV];
    long long t0 = it_now_ms();
    int started = 0, failed = 0, answered = 0, barge_ins = 0;
    while (true) {
        /* Calls start STAGGER_MS apart, as they would arrive. */
        if (started < n && it_now_ms() >= t0 + (long long)started * stagger) {
            conv *c = &cs[started];
            snprintf(c->sid, sizeof c->sid, "CA%032x", (unsigned)(0xbe000000u + started));
            char stream[40];
            snprintf(stream, sizeof stream, "MZ%032x", (unsigned)(0xbe000000u + started));
            if (it_phone_start(&c->p, port, c->sid, stream, params) != 0) {
                c->failed = c->done = true;
                failed++;
            }
            c->wait_from = it_now_ms();
            ps[started++] = &c->p;
        }
        bool all_done = started == n;
        long long now = it_now_ms();
        for (int i = 0; i < started; i++) {
            conv *c = &cs[i];
            it_phone *p = &c->p;
            if (c->done) continue;
            all_done = false;
            if (p->closed) { /* the gateway ended it */
                c->done = c->failed = true;
                failed++;
                continue;
            }
            if (c->speaking && p->talk_at >= p->talk_len) {
                c->speaking = false;
                c->wait_from = now;
            }
            if (c->speaking) continue;
            /* The answer to our last clip: measured once it has come. */
            bool answered_now = p->answer_ms && p->speech_end_ms && c->turn > 0;
            bool quiet = p->heard && now >= p->play_until + quiet_ms;
            bool cut_in = c->turn > 0 && barge_every && (c->turn + 1) % barge_every == 0 &&
                          p->answer_ms && now >= p->answer_ms + barge_ms && it_phone_talking(p);
            if (!quiet && !cut_in) {
                if (now - c->wait_from > TURN_MAX_MS) {
                    c->done = c->failed = true;
                    failed++;
                    it_phone_hangup(p);
                }
                continue;
            }
            if (answered_now) {
                add(&v2v_caller, (double)(p->answer_ms - p->speech_end_ms));
                answered++;
            }
            if (c->barge && p->clear_ms && p->onset_ms) {
                add(&barge_caller, (double)(p->clear_ms - p->onset_ms));
                barge_ins++;
            }
            if (c->turn == turns) {
                c->done = true;
                it_phone_hangup(p);
                continue;
            }
            c->barge = cut_in;
            it_phone_say(p, clips[c->turn % nclips]);
            c->turn++;
            c->speaking = true;
            c->said_at = now;
        }
        if (all_done) break;
        it_phones_step(ps, (size_t)started, 20);
    }
    double seconds = (double)(it_now_ms() - t0) / 1000.0;
    gateway_side(port, cs, n, &v2v, &barge);
    printf("agent conversations=%d turns=%d answered=%d v2v_p50_ms=%.0f v2v_p95_ms=%.0f "
           "v2v_caller_p50_ms=%.0f v2v_caller_p95_ms=%.0f bargein_p50_ms=%.0f "
           "bargein_p95_ms=%.0f bargein_caller_p50_ms=%.0f bargein_caller_p95_ms=%.0f "
           "barge_ins=%d seconds=%.1f failed=%d\n",
           n, n * turns, answered, stats_pct(v2v.v, v2v.n, 0.5), stats_pct(v2v.v, v2v.n, 0.95),
           stats_pct(v2v_caller.v, v2v_caller.n, 0.5), stats_pct(v2v_caller.v, v2v_caller.n, 0.95),
           stats_pct(barge.v, barge.n, 0.5), stats_pct(barge.v, barge.n, 0.95),
           stats_pct(barge_caller.v, barge_caller.n, 0.5),
           stats_pct(barge_caller.v, barge_caller.n, 0.95), barge_ins, seconds, failed);
    for (int i = 0; i < started; i++) it_phone_free(&cs[i].p);
    return failed ? 1 : 0;
}
