/* callstream sim: plays Twilio against a gateway — N calls started over a ramp, each
 * doing what Twilio does (see call.c) — and prints one JSON summary: calls completed,
 * frames sent and echoed, round-trip percentiles against the echo agent, how late the
 * simulator itself sent frames (if that is high, the numbers are the simulator's), and
 * with --say each turn's voice-to-voice and barge-in times (turns.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "audio/wav.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "sim/sim.h"
#include "sim/sim_int.h"

#define DEFAULT_SECONDS   10.0
#define RAMP_TICK_MS      1
#define SAY_MAX_SECONDS   600.0 /* --say: a call's cap without --duration */
#define FIRST_AFTER_MS    3000
#define TURN_GAP_MS       700
#define ANSWER_TIMEOUT_MS 10000
#define MS_MAX            3600000 /* any of the turn options */

/* ---- latency samples ---- */

void sim_hist_add(sim_hist *h, uint64_t us)
{
    size_t b = us / SIM_HIST_STEP_US;
    if (b >= SIM_HIST_BUCKETS) b = SIM_HIST_BUCKETS - 1;
    h->buckets[b]++;
    h->count++;
    if (us > h->max_us) h->max_us = us;
}

double sim_hist_quantile(const sim_hist *h, double q)
{
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
    if (rank == 0) rank = 1;
    for (size_t b = 0; b < SIM_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) return (double)((b + 1) * SIM_HIST_STEP_US);
    }
    return (double)h->max_us;
}

int sim_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- audio ---- */

/* A test signal when no WAV is given: a gliding tone with a little noise, so every frame
 * differs and echoes can be told apart. */
static int synth(sim *s, double seconds)
{
    size_t n = (size_t)(seconds * 8000);
    s->ulaw = malloc(n ? n : 1);
    if (!s->ulaw) return -ENOMEM;
    uint32_t rnd = 12345;
    double phase = 0;
    for (size_t i = 0; i < n; i++) {
        double f = 300 + 900 * (0.5 + 0.5 * sin(2 * M_PI * (double)i / 8000 / 3));
        phase += 2 * M_PI * f / 8000;
        rnd = rnd * 1664525u + 1013904223u;
        double v = 8000 * sin(phase) + (double)(rnd >> 24) * 4 - 512;
        s->ulaw[i] = cs_pcm_to_ulaw((int16_t)v);
    }
    s->nulaw = n;
    return 0;
}

int cs_sim_audio(const char *wav, uint8_t **ulaw, size_t *nulaw)
{
    int16_t *pcm = NULL, *at8k = NULL;
    size_t n = 0, n8 = 0;
    unsigned rate = 0;
    int rc = cs_wav_load(wav, &pcm, &n, &rate);
    if (rc < 0) {
        fprintf(stderr, "sim: cannot read %s: %s\n", wav, cs_strerror(rc));
        return rc;
    }
    rc = cs_resample_all(pcm, n, rate, 8000, &at8k, &n8);
    free(pcm);
    if (rc < 0 || n8 == 0) {
        fprintf(stderr, "sim: cannot resample %s from %u Hz\n", wav, rate);
        free(at8k);
        return rc < 0 ? rc : CS_EPARSE;
    }
    *ulaw = malloc(n8);
    if (!*ulaw) {
        free(at8k);
        return -ENOMEM;
    }
    cs_ulaw_encode(*ulaw, at8k, n8);
    *nulaw = n8;
    free(at8k);
    return 0;
}

static int load_wav(sim *s)
{
    return cs_sim_audio(s->o.wav, &s->ulaw, &s->nulaw);
}

static void free_clips(sim *s, char *list)
{
    for (size_t i = 0; i < s->nclips; i++) free(s->clips[i].ulaw);
    s->nclips = 0;
    free(list);
}

/* --say: each clip, padded with silence to whole frames, and where its speech is. The
 * list is cut in place. */
static int load_clips(sim *s, char *list)
{
    for (char *save = NULL, *path = strtok_r(list, ",", &save); path;
         path = strtok_r(NULL, ",", &save)) {
        if (s->nclips == SIM_CLIPS_MAX) {
            fprintf(stderr, "sim: --say: more than %d clips\n", SIM_CLIPS_MAX);
            return CS_ELIMIT;
        }
        sim_clip *c = &s->clips[s->nclips];
        size_t n = 0;
        int rc = cs_sim_audio(path, &c->ulaw, &n);
        if (rc < 0) return rc;
        s->nclips++;
        c->path = path;
        c->frames = (n + SIM_FRAME_BYTES - 1) / SIM_FRAME_BYTES;
        uint8_t *p = realloc(c->ulaw, c->frames * SIM_FRAME_BYTES);
        if (!p) return -ENOMEM;
        memset(p + n, CS_ULAW_SILENCE, c->frames * SIM_FRAME_BYTES - n);
        c->ulaw = p;
        if ((rc = sim_speech_find(c->ulaw, c->frames, &c->speech)) < 0) return rc;
        if (!c->speech.found) fprintf(stderr, "sim: %s: no speech found (a silent turn)\n", path);
    }
    if (!s->nclips) {
        fprintf(stderr, "sim: --say: no clip given\n");
        return CS_EPARSE;
    }
    return 0;
}

/* --gather-speech, --gather-digits: one answer per <Gather>, comma-separated, an empty one
 * for a gather that hears nothing. The list is cut in place. */
static int split_answers(char *list, const char **out, size_t *n, const char *opt)
{
    for (char *p = list;;) {
        if (*n == SIM_ANSWERS_MAX) {
            fprintf(stderr, "sim: %s: more than %d answers\n", opt, SIM_ANSWERS_MAX);
            return CS_ELIMIT;
        }
        out[(*n)++] = p;
        char *comma = strchr(p, ',');
        if (!comma) return 0;
        *comma = '\0';
        p = comma + 1;
    }
}

/* Twilio's DialCallStatus values. */
static bool dial_status_ok(const char *v)
{
    static const char *const ok[] = {"completed", "answered", "busy",
                                     "no-answer", "failed",   "canceled"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(v, ok[i]) == 0) return true;
    return false;
}

/* ---- the run ---- */

void sim_call_finished(sim *s)
{
    if (++s->finished < s->o.calls) return;
    uv_close((uv_handle_t *)&s->ramp, NULL);
    cs_net_close_all(s->net, false);
    cs_fetch_close(s->fetch);
}

static void on_ramp(uv_timer_t *t)
{
    sim *s = t->data;
    uint64_t elapsed = uv_hrtime() - s->t0_ns;
    while (s->started < s->o.calls) {
        double at = s->o.calls > 1 ? s->o.ramp_s * s->started / s->o.calls : 0;
        if ((double)elapsed < at * 1e9) break;
        sim_call_start(s, s->started++);
    }
    if (s->started == s->o.calls) uv_timer_stop(t);
}

/* ---- the turns' report ---- */

/* Signed, to 0.1 ms. */
static double ms_between(uint64_t from, uint64_t to)
{
    return round(((double)to - (double)from) / 1e5) / 10;
}

/* {count, p50, p95, max} of `n` samples (sorted here), nearest rank. */
static void samples(cs_json *j, const char *key, double *v, size_t n)
{
    qsort(v, n, sizeof *v, sim_cmp_double);
    cs_json_key(j, key);
    cs_json_obj(j);
    cs_json_kuint(j, "count", n);
    static const struct {
        const char *key;
        double q;
    } qs[] = {{"p50", 0.50}, {"p95", 0.95}};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        size_t rank = (size_t)ceil(qs[i].q * (double)n);
        if (n)
            cs_json_kdouble(j, qs[i].key, v[rank ? rank - 1 : 0]);
        else {
            cs_json_key(j, qs[i].key);
            cs_json_null(j);
        }
    }
    cs_json_key(j, "max");
    if (n)
        cs_json_double(j, v[n - 1]);
    else
        cs_json_null(j);
    cs_json_obj_end(j);
}

static void kms(cs_json *j, const char *key, bool known, uint64_t from, uint64_t to)
{
    cs_json_key(j, key);
    if (known)
        cs_json_double(j, ms_between(from, to));
    else
        cs_json_null(j);
}

static void turn_json(const sim *s, cs_json *j, const sim_turn *t, uint64_t t0)
{
    cs_json_obj(j);
    cs_json_kstr(j, "clip", s->clips[t->clip].path);
    kms(j, "start_ms", true, t0, t->start);
    cs_json_kbool(j, "speech", s->clips[t->clip].speech.found);
    kms(j, "speech_start_ms", t->began, t0, t->onset);
    kms(j, "speech_end_ms", t->ended, t0, t->end);
    cs_json_kbool(j, "barge_in", t->barge);
    cs_json_kbool(j, "answered", t->answered);
    kms(j, "answer_ms", t->answered, t0, t->answer);
    kms(j, "voice_to_voice_ms", t->answered, t->end, t->answer);
    kms(j, "overlap_ms", true, 0, t->overlap);
    cs_json_kbool(j, "clear", t->cleared);
    kms(j, "clear_ms", t->cleared, t0, t->clear);
    kms(j, "barge_in_ms", t->barge && t->cleared && t->began, t->onset, t->clear);
    kms(j, "agent_heard_ms", true, 0, t->heard);
    cs_json_obj_end(j);
}

/* Per turn when there is one call; over every call, counts and percentiles. */
static void turns_summary(const sim *s, cs_json *j)
{
    size_t total = (size_t)s->o.calls * s->nclips, spoken = 0, answered = 0, barges = 0;
    size_t nv2v = 0, nbarge = 0;
    double *v2v = malloc((total ? total : 1) * sizeof *v2v);
    double *barge = malloc((total ? total : 1) * sizeof *barge);
    if (!v2v || !barge) {
        free(v2v);
        free(barge);
        return;
    }
    for (size_t i = 0; i < total; i++) {
        const sim_turn *t = &s->turns[i];
        if (!t->spoken) continue;
        spoken++;
        if (t->answered) {
            answered++;
            v2v[nv2v++] = ms_between(t->end, t->answer);
        }
        if (t->barge) {
            barges++;
            if (t->cleared && t->began) barge[nbarge++] = ms_between(t->onset, t->clear);
        }
    }
    if (s->o.calls == 1) {
        const sim_call *c = sim_call_at((sim *)s, 0);
        cs_json_key(j, "turns");
        cs_json_arr(j);
        for (size_t i = 0; i < s->nclips; i++)
            if (s->turns[i].spoken) turn_json(s, j, &s->turns[i], sim_call_t0(c));
        cs_json_arr_end(j);
    }
    cs_json_kuint(j, "turns_spoken", spoken);
    cs_json_kuint(j, "turns_answered", answered);
    cs_json_kuint(j, "barge_ins", barges);
    cs_json_kuint(j, "barge_ins_cleared", nbarge);
    samples(j, "voice_to_voice_ms", v2v, nv2v);
    samples(j, "barge_in_ms", barge, nbarge);
    cs_json_kuint(j, "playback_merged", s->n.play_merged);
    free(v2v);
    free(barge);
}

/* What the calls' TwiML did: counts over every call; with one call, each hop. */
static void twiml_summary(const sim *s, cs_json *j)
{
    cs_json_key(j, "twiml_counts");
    cs_json_obj(j);
#define SIM_STAT_JSON(field, name) cs_json_kuint(j, name, s->n.twiml.field);
    SIM_FLOW_STATS(SIM_STAT_JSON)
#undef SIM_STAT_JSON
    cs_json_obj_end(j);
    if (s->o.calls != 1) return;
    cs_json_kstr(j, "hangup_by", sim_end_name(s->end));
    cs_json_key(j, "twiml");
    if (s->hops)
        cs_json_raw(j, s->hops, strlen(s->hops));
    else
        cs_json_null(j);
}

void sim_report(const sim *s, cs_json *jp, double wall_s)
{
    cs_json j = *jp; /* the writer's state, handed back at the end */
    cs_json_kuint(&j, "calls", s->o.calls);
    cs_json_kuint(&j, "completed", s->n.completed);
    cs_json_kuint(&j, "failed", s->n.failed);
    cs_json_key(&j, "failures");
    cs_json_obj(&j);
    cs_json_kuint(&j, "webhook", s->n.fail_webhook);
    cs_json_kuint(&j, "twiml", s->n.fail_twiml);
    cs_json_kuint(&j, "connect", s->n.fail_connect);
    cs_json_kuint(&j, "upgrade", s->n.fail_upgrade);
    cs_json_kuint(&j, "closed_early", s->n.fail_closed);
    cs_json_kuint(&j, "timeout", s->n.fail_timeout);
    cs_json_kuint(&j, "twiml_fetch", s->n.fail_fetch);
    cs_json_kuint(&j, "twiml_limit", s->n.fail_limit);
    cs_json_obj_end(&j);
    /* with --say a call lasts as long as its turns take, at most this */
    cs_json_kuint(&j, s->nclips ? "max_frames_per_call" : "frames_per_call", s->frames);
    cs_json_kuint(&j, "frames_sent", s->n.frames_sent);
    cs_json_kuint(&j, "media_received", s->n.media_rx);
    cs_json_kuint(&j, "audio_bytes_received", s->n.bytes_rx);
    /* Against the echo agent every frame comes back; elsewhere this is all of them. */
    cs_json_kuint(&j, "missing",
                  s->n.frames_sent > s->n.media_rx ? s->n.frames_sent - s->n.media_rx : 0);
    cs_json_kuint(&j, "marks_received", s->n.marks_rx);
    cs_json_kuint(&j, "marks_echoed", s->n.marks_echoed);
    cs_json_kuint(&j, "clears_received", s->n.clears_rx);
    cs_json_kuint(&j, "dtmf_sent", s->n.dtmf_sent);
    cs_json_kuint(&j, "bad_messages_received", s->n.bad_rx);
    cs_json_key(&j, "rtt_ms");
    cs_json_obj(&j);
    cs_json_kuint(&j, "count", s->rtt.count);
    cs_json_kdouble(&j, "p50", sim_hist_quantile(&s->rtt, 0.50) / 1000);
    cs_json_kdouble(&j, "p95", sim_hist_quantile(&s->rtt, 0.95) / 1000);
    cs_json_kdouble(&j, "p99", sim_hist_quantile(&s->rtt, 0.99) / 1000);
    cs_json_kdouble(&j, "max", (double)s->rtt.max_us / 1000);
    cs_json_obj_end(&j);
    cs_json_key(&j, "send_lag_ms");
    cs_json_obj(&j);
    cs_json_kdouble(&j, "p99", sim_hist_quantile(&s->lag, 0.99) / 1000);
    cs_json_kdouble(&j, "max", (double)s->lag.max_us / 1000);
    cs_json_obj_end(&j);
    if (s->nclips) turns_summary(s, &j);
    twiml_summary(s, &j);
    cs_json_kdouble(&j, "wall_s", wall_s);
    *jp = j;
}

static void summary(const sim *s, double wall_s)
{
    cs_buf out = CS_BUF_INIT(1 << 20);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    sim_report(s, &j, wall_s);
    cs_json_obj_end(&j);
    puts(out.data);
    fflush(stdout);
    cs_buf_free(&out);
}

/* ---- the run ---- */

int sim_run(sim *s, double *wall_s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    s->rtt.buckets = calloc(SIM_HIST_BUCKETS, sizeof *s->rtt.buckets);
    s->lag.buckets = calloc(SIM_HIST_BUCKETS, sizeof *s->lag.buckets);
    s->calls = calloc(s->o.calls, sim_call_size());
    uv_loop_t loop;
    uv_loop_init(&loop);
    s->loop = &loop;
    cs_buf_init(&s->msg, 1 << 20);
    int rc = s->rtt.buckets && s->lag.buckets && s->calls ? cs_net_new(&s->net, &loop) : -ENOMEM;
    if (rc == 0) rc = cs_fetch_open(&s->fetch, &loop);
    if (rc == 0 && (s->o.ca_file || s->o.insecure))
        rc = cs_net_tls_client(s->net, s->o.ca_file, !s->o.insecure);
    if (rc == 0 && (s->o.ca_file || s->o.insecure))
        rc = cs_fetch_tls(s->fetch, s->o.ca_file, !s->o.insecure);
    if (rc == 0) {
        s->t0_ns = uv_hrtime();
        uv_timer_init(&loop, &s->ramp);
        s->ramp.data = s;
        uv_timer_start(&s->ramp, on_ramp, 0, RAMP_TICK_MS);
        uv_run(&loop, UV_RUN_DEFAULT);
        *wall_s = (double)(uv_hrtime() - s->t0_ns) / 1e9;
    } else {
        fprintf(stderr, "sim: cannot start: %s\n", cs_strerror(rc));
        cs_fetch_close(s->fetch);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cs_net_free(s->net);
    s->net = NULL;
    uv_loop_close(&loop);
    s->loop = NULL;
    return rc;
}

void sim_release(sim *s)
{
    cs_buf_free(&s->msg);
    free(s->calls);
    free(s->turns);
    free(s->rtt.buckets);
    free(s->lag.buckets);
    free(s->hops);
    s->calls = NULL;
    s->turns = NULL;
    s->hops = NULL;
    s->rtt.buckets = s->lag.buckets = NULL;
}

static void usage(FILE *f)
{
    fputs("usage: callstream sim --url URL [options]\n"
          "\n"
          "Plays Twilio against a callstream gateway: posts the signed voice webhook, reads\n"
          "the TwiML, opens its <Stream url> with a signed upgrade, streams audio as\n"
          "20 ms μ-law frames paced in real time, echoes marks as Twilio's playback would,\n"
          "then stops. Prints a JSON summary; exits 0 when every call completed.\n"
          "\n"
          "  --url URL            the gateway's base URL, e.g. http://127.0.0.1:8080\n"
          "  --wav FILE           audio to stream (any rate, mono or stereo); default: a\n"
          "                       synthetic tone\n"
          "  --calls N            calls to run (default 1)\n"
          "  --ramp SECONDS       start the calls evenly over this long (default 0)\n"
          "  --duration SECONDS   length of each call (default: the WAV's, looped if longer)\n"
          "  --dtmf DIGITS        send these digits spread over each call\n"
          "  --auth-token TOKEN   sign requests as Twilio does (the gateway's\n"
          "                       TWILIO_AUTH_TOKEN)\n"
          "  --account-sid SID    AccountSid to send (default AC000…0)\n"
          "  --from NUMBER        caller (default +15550001111)\n"
          "  --to NUMBER          called number (default +15550002222)\n"
          "  --out PATH           save what the server sent back: a .wav for one call, or a\n"
          "                       folder (one <CallSid>.wav per call)\n"
          "  --out-stereo         --out in stereo: what we said left, what we heard right\n"
          "  --ca FILE            trust this CA for https/wss\n"
          "  --insecure           do not verify https/wss certificates\n"
          "  --setup-timeout S    each fetch and upgrade must finish within S (default 10)\n"
          "\n"
          "A caller taking turns with the gateway's agent (instead of --wav):\n"
          "  --say A.wav,B.wav    say each clip as a turn once the agent stopped talking;\n"
          "                       silence between turns; the call ends once the last is\n"
          "                       answered (--duration is then a cap, default 600)\n"
          "  --first-after-ms N   an agent that does not speak first: the first clip after\n"
          "                       N ms (default 3000)\n"
          "  --turn-gap-ms N      the agent stopped talking: no voice for N ms (default 700)\n"
          "  --answer-timeout-ms N  no answer N ms after our speech: go on (default 10000)\n"
          "  --barge-in-ms N      start the next clip N ms into the agent's answer\n"
          "\n"
          "TwiML without a stream is followed as Twilio would (Say, Play, Pause, Gather,\n"
          "Redirect, Dial, Hangup, a <Connect action> after its stream):\n"
          "  --gather-speech A,B  what the caller says to each <Gather> in turn (SpeechResult);\n"
          "                       an empty entry: nothing heard\n"
          "  --gather-digits 1,23 the keys pressed at each <Gather> in turn (Digits)\n"
          "  --dial-status S      each <Dial>'s DialCallStatus (default completed)\n"
          "  --max-documents N    TwiML documents one call may fetch (default 50)\n",
          f);
}

int cs_sim_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, 0, 'u'},
        {"wav", required_argument, 0, 'w'},
        {"calls", required_argument, 0, 'n'},
        {"ramp", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'},
        {"dtmf", required_argument, 0, 'D'},
        {"auth-token", required_argument, 0, 'a'},
        {"account-sid", required_argument, 0, 'A'},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},
        {"ca", required_argument, 0, 'c'},
        {"insecure", no_argument, 0, 'k'},
        {"setup-timeout", required_argument, 0, 'T'},
        {"out-stereo", no_argument, 0, 'S'},
        {"say", required_argument, 0, 's'},
        {"first-after-ms", required_argument, 0, 'F'},
        {"turn-gap-ms", required_argument, 0, 'G'},
        {"answer-timeout-ms", required_argument, 0, 'W'},
        {"barge-in-ms", required_argument, 0, 'B'},
        {"gather-speech", required_argument, 0, 'g'},
        {"gather-digits", required_argument, 0, 'K'},
        {"dial-status", required_argument, 0, 'X'},
        {"max-documents", required_argument, 0, 'M'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    sim s = {0};
    long first_after_ms = FIRST_AFTER_MS, gap_ms = TURN_GAP_MS, answer_ms = ANSWER_TIMEOUT_MS;
    long barge_ms = -1;
    unsigned long max_docs = SIM_DOCS_MAX;
    const char *gather_speech = NULL, *gather_digits = NULL;
    s.o = (sim_opts){
        .calls = 1,
        .account_sid = "AC00000000000000000000000000000000",
        .from = "+15550001111",
        .to = "+15550002222",
        .setup_timeout_s = 10,
    };
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'u':
            s.o.url = optarg;
            break;
        case 'w':
            s.o.wav = optarg;
            break;
        case 'n':
            s.o.calls = (unsigned)strtoul(optarg, &end, 10);
            break;
        case 'r':
            s.o.ramp_s = strtod(optarg, &end);
            break;
        case 'd':
            s.o.duration_s = strtod(optarg, &end);
            break;
        case 'D':
            s.o.dtmf = optarg;
            break;
        case 'a':
            s.o.auth_token = optarg;
            break;
        case 'A':
            s.o.account_sid = optarg;
            break;
        case 'f':
            s.o.from = optarg;
            break;
        case 't':
            s.o.to = optarg;
            break;
        case 'o':
            s.o.out = optarg;
            break;
        case 'c':
            s.o.ca_file = optarg;
            break;
        case 'k':
            s.o.insecure = true;
            break;
        case 'T':
            s.o.setup_timeout_s = strtod(optarg, &end);
            break;
        case 'S':
            s.o.out_stereo = true;
            break;
        case 's':
            s.o.say = optarg;
            break;
        case 'F':
            first_after_ms = strtol(optarg, &end, 10);
            break;
        case 'G':
            gap_ms = strtol(optarg, &end, 10);
            break;
        case 'W':
            answer_ms = strtol(optarg, &end, 10);
            break;
        case 'B':
            barge_ms = strtol(optarg, &end, 10);
            break;
        case 'g':
            gather_speech = optarg;
            break;
        case 'K':
            gather_digits = optarg;
            break;
        case 'X':
            s.flow.dial_status = optarg;
            break;
        case 'M':
            max_docs = strtoul(optarg, &end, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "sim: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!s.o.url || s.o.calls == 0 || s.o.ramp_s < 0 || s.o.duration_s < 0 || optind < argc) {
        usage(stderr);
        return 2;
    }
    const char *bad = NULL;
    if (first_after_ms < 0 || first_after_ms > MS_MAX || gap_ms < 0 || gap_ms > MS_MAX ||
        answer_ms < 0 || answer_ms > MS_MAX || barge_ms < -1 || barge_ms > MS_MAX)
        bad = "the --*-ms options take 0 to 3600000";
    else if (s.o.say && s.o.wav)
        bad = "--say and --wav do not mix: the call says the clips";
    else if (s.o.say && s.o.dtmf)
        bad = "--say and --dtmf do not mix";
    else if (s.o.out_stereo && !s.o.out)
        bad = "--out-stereo needs --out";
    else if (!s.o.say && barge_ms >= 0)
        bad = "--barge-in-ms needs --say";
    else if (max_docs < 1 || max_docs > 1000)
        bad = "--max-documents takes 1 to 1000";
    else if (gather_digits && gather_digits[strspn(gather_digits, "0123456789*#,")])
        bad = "--gather-digits: only 0-9, * and # between the commas";
    else if (s.flow.dial_status && !dial_status_ok(s.flow.dial_status))
        bad = "--dial-status: completed, answered, busy, no-answer, failed or canceled";
    if (bad) {
        fprintf(stderr, "sim: %s\n", bad);
        return 2;
    }
    s.turn = (sim_turn_opts){
        .clips = s.clips,
        .first_after_ns = (uint64_t)first_after_ms * 1000000,
        .gap_ns = (uint64_t)gap_ms * 1000000,
        .answer_timeout_ns = (uint64_t)answer_ms * 1000000,
        .barge = barge_ms >= 0,
        .barge_ns = barge_ms >= 0 ? (uint64_t)barge_ms * 1000000 : 0,
    };
    size_t ulen = strlen(s.o.url);
    char url[SIM_URL_MAX];
    snprintf(url, sizeof url, "%.*s", (int)(ulen && s.o.url[ulen - 1] == '/' ? ulen - 1 : ulen),
             s.o.url);
    s.o.url = url;
    if (s.o.dtmf) {
        for (const char *p = s.o.dtmf; *p; p++) {
            if (!strchr("0123456789*#ABCD", *p)) {
                fprintf(stderr, "sim: --dtmf: '%c' is not a DTMF digit\n", *p);
                return 2;
            }
        }
    }
    if (!s.flow.dial_status) s.flow.dial_status = "completed";
    s.flow.max_docs = (unsigned)max_docs;
    char *speech = gather_speech ? strdup(gather_speech) : NULL;
    char *digits = gather_digits ? strdup(gather_digits) : NULL;
    if ((gather_speech && !speech) || (gather_digits && !digits) ||
        (speech && split_answers(speech, s.flow.speech, &s.flow.nspeech, "--gather-speech") < 0) ||
        (digits && split_answers(digits, s.flow.digits, &s.flow.ndigits, "--gather-digits") < 0)) {
        free(speech);
        free(digits);
        return 2;
    }
    cs_log_min = CS_LOG_WARN;
    char *say = s.o.say ? strdup(s.o.say) : NULL;
    int rc = s.o.say   ? (say ? load_clips(&s, say) : -ENOMEM)
             : s.o.wav ? load_wav(&s)
                       : synth(&s, s.o.duration_s > 0 ? s.o.duration_s : DEFAULT_SECONDS);
    s.turn.nclips = s.nclips;
    if (rc == 0 && s.nclips) {
        s.turns = calloc((size_t)s.o.calls * s.nclips, sizeof *s.turns);
        if (!s.turns) rc = -ENOMEM;
    }
    if (rc < 0) {
        free_clips(&s, say);
        free(speech);
        free(digits);
        return 1;
    }
    double seconds = s.o.duration_s > 0 ? s.o.duration_s
                     : s.o.say          ? SAY_MAX_SECONDS
                                        : (double)s.nulaw / 8000;
    s.frames = (uint64_t)(seconds * 1000 / SIM_FRAME_MS);
    if (s.o.out &&
        (s.o.calls > 1 || strlen(s.o.out) < 5 || strcmp(s.o.out + strlen(s.o.out) - 4, ".wav")))
        mkdir(s.o.out, 0755);

    double wall_s = 0;
    rc = sim_run(&s, &wall_s);
    if (rc == 0) summary(&s, wall_s);
    sim_release(&s);
    free_clips(&s, say);
    free(speech);
    free(digits);
    free(s.ulaw);
    return rc == 0 && s.n.failed == 0 ? 0 : 1;
}
