/* bench_tts: the speech engines in process, as agents use them: replies of a few
 * sentences, given to the engine N at once (N calls answering at the same moment, the
 * worst case for the first sentence), round after round.
 *
 *   bench_tts [engine[:voice] …]
 *       (default: espeak flite:kal flite:slt flite:rms flite:awb openai elevenlabs)
 *
 * prints one line per engine, voice and concurrency:
 *   tts engine= voice= concurrent=N jobs= first_audio_p50_ms= first_audio_p95_ms=
 *       rtf= cpu_rtf= audio_s=
 * first audio: from speak() to the first audio on the loop thread (queueing, the first
 * sentence's synthesis and conversion to 8 kHz μ-law, the hop back to the loop).
 * rtf: worker time making speech per second of speech (wall time on the workers, so it
 * grows when N jobs share fewer cores); cpu_rtf: the process's CPU time per second of
 * speech. ROUNDS (20), CONCURRENT ("1 8") and TTS_THREADS (2, flite) change the run.
 * The cloud engines (openai, elevenlabs) run against their local fakes
 * (tests/unit/openai_tts_fake.h, elevenlabs_fake.h), which answer at once: their first
 * audio is our own path (the request or socket, the fake's loopback answer, decoding or
 * resampling, the hop to the loop), never the service's network and synthesis; their rtf
 * is 0 (no worker time) and cpu_rtf includes the fake's thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "elevenlabs_fake.h"
#include "openai_tts_fake.h"
#include "stats.h"
#include "core/err.h"
#include "net/fetch.h"
#include "tts/tts.h"

#define CLOUD_KEY "bench-key"

#define MAX_JOBS 64

/* Replies as an agent gives them: a short first sentence, then a few more. */
static const char *const replies[] = {
    "Sure, I can help with that. Your order shipped yesterday and should arrive on Friday. "
    "Is there anything else you need?",
    "Thanks for calling. The office is open from nine to five, Monday to Friday. You can also "
    "reach us by email at any time.",
    "I found your account. The balance is 42 dollars and 17 cents, due on the 3rd of next "
    "month. Would you like to pay it now?",
    "Let me check. Dr. Smith has an opening on Tuesday at 10:30, and another one on Thursday "
    "afternoon. Which one works better for you?",
};
#define NREPLIES (sizeof replies / sizeof *replies)

typedef struct job {
    struct bench *b;
    cs_tts_job *j;
    uint64_t t0;
    bool heard, done;
} job;

typedef struct bench {
    uv_loop_t loop;
    cs_mailbox *mb;
    const cs_tts_ops *ops;
    cs_tts *e;
    job jobs[MAX_JOBS];
    size_t njobs, ndone;
    double *lat; /* ms */
    size_t nlat, cap_lat;
} bench;

static void on_audio(void *data, const uint8_t *ulaw, size_t n)
{
    job *jb = data;
    (void)ulaw;
    (void)n;
    if (jb->heard) return;
    jb->heard = true;
    bench *b = jb->b;
    if (b->nlat == b->cap_lat) {
        b->cap_lat = b->cap_lat ? 2 * b->cap_lat : 256;
        b->lat = realloc(b->lat, b->cap_lat * sizeof *b->lat);
        if (!b->lat) abort();
    }
    b->lat[b->nlat++] = (double)(uv_hrtime() - jb->t0) / 1e6;
}

static void on_done(void *data, int err)
{
    job *jb = data;
    if (err < 0) {
        fprintf(stderr, "bench_tts: a reply failed: %s\n", cs_strerror(err));
        exit(1);
    }
    jb->done = true;
    jb->b->ndone++;
}

/* ROUNDS rounds of `n` replies given at once; prints the line. */
static void run(bench *b, const char *engine, const char *voice, size_t n, int rounds)
{
    cs_tts_stats before, after;
    b->ops->stats(b->e, &before);
    b->nlat = 0;
    double cpu0 = bench_cpu_s();
    for (int r = 0; r < rounds; r++) {
        b->ndone = 0;
        for (size_t i = 0; i < n; i++) {
            job *jb = &b->jobs[i];
            *jb = (job){.b = b, .t0 = uv_hrtime()};
            const char *text = replies[(r * n + i) % NREPLIES];
            cs_tts_opts o = {.text = text,
                             .len = strlen(text),
                             .voice = voice,
                             .on_audio = on_audio,
                             .on_done = on_done,
                             .data = jb};
            int rc = b->ops->speak(b->e, &o, &jb->j);
            if (rc < 0) {
                fprintf(stderr, "bench_tts: speak: %s\n", cs_strerror(rc));
                exit(1);
            }
        }
        while (b->ndone < n) uv_run(&b->loop, UV_RUN_ONCE);
    }
    double cpu = bench_cpu_s() - cpu0;
    b->ops->stats(b->e, &after);
    double audio = (double)(after.audio_ms - before.audio_ms) / 1000;
    double synth = (double)(after.synth_us - before.synth_us) / 1e6;
    size_t jobs = b->nlat;
    double p50 = stats_pct(b->lat, b->nlat, 0.5), p95 = stats_pct(b->lat, b->nlat, 0.95);
    printf("tts engine=%s voice=%s concurrent=%zu jobs=%zu first_audio_p50_ms=%.2f "
           "first_audio_p95_ms=%.2f rtf=%.4f cpu_rtf=%.4f audio_s=%.1f\n",
           engine, voice, n, jobs, p50, p95, synth / audio, cpu / audio, audio);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const char *const all[] = {"espeak",    "flite:kal", "flite:slt", "flite:rms",
                                      "flite:awb", "openai",    "elevenlabs"};
    const char *const *which = argc > 1 ? (const char *const *)argv + 1 : all;
    size_t nwhich = argc > 1 ? (size_t)argc - 1 : sizeof all / sizeof *all;
    int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 20;
    const char *conc = getenv("CONCURRENT") ? getenv("CONCURRENT") : "1 8";
    int threads = getenv("TTS_THREADS") ? atoi(getenv("TTS_THREADS")) : 2;

    bench b = {0};
    uv_loop_init(&b.loop);
    cs_fetch *fetch;
    if (cs_mailbox_open(&b.mb, &b.loop) < 0 || cs_fetch_open(&fetch, &b.loop) < 0) return 1;
    oa_fake *oa = NULL;
    el_fake *el = NULL;
    for (size_t w = 0; w < nwhich; w++) {
        char engine[32], voice[CS_TTS_VOICE_MAX] = "";
        snprintf(engine, sizeof engine, "%.*s", (int)strcspn(which[w], ":"), which[w]);
        if (strchr(which[w], ':')) snprintf(voice, sizeof voice, "%s", strchr(which[w], ':') + 1);
        if (cs_tts_find(engine, &b.ops) < 0 || !b.ops) {
            fprintf(stderr, "bench_tts: no engine '%s' (%s)\n", engine, cs_tts_names());
            return 2;
        }
        cs_config cfg = {.tts_voice = voice,
                         .tts_rate = 175,
                         .tts_pitch = 50,
                         .tts_threads = threads,
                         .tts_queue_max = MAX_JOBS,
                         .tts_cloud_timeout_ms = 10000,
                         .openai_api_key = CLOUD_KEY,
                         .openai_tts_model = "gpt-4o-mini-tts",
                         .openai_tts_voice = "alloy",
                         .elevenlabs_api_key = CLOUD_KEY,
                         .elevenlabs_voice_id = "benchVoice",
                         .elevenlabs_model = "eleven_flash_v2_5"};
        if (!strcmp(engine, "openai") && !oa &&
            oa_fake_start(&oa, &(oa_fake_opts){.api_key = CLOUD_KEY}) < 0)
            return 1;
        if (!strcmp(engine, "elevenlabs") && !el &&
            el_fake_start(&el, &(el_fake_opts){.api_key = CLOUD_KEY}) < 0)
            return 1;
        cfg.openai_tts_url = oa ? (char *)oa_fake_url(oa) : "";
        cfg.elevenlabs_url = el ? (char *)el_fake_url(el) : "";
        cs_buf err = CS_BUF_INIT(1024);
        if (b.ops->create(&b.e, &(cs_tts_env){&cfg, &b.loop, b.mb, fetch}, &err) < 0) {
            fprintf(stderr, "bench_tts: %s\n", err.data ? err.data : "cannot create the engine");
            return 1;
        }
        cs_buf_free(&err);
        if (!voice[0])
            snprintf(voice, sizeof voice, "%s",
                     !strcmp(engine, "espeak")   ? "en-us"
                     : !strcmp(engine, "flite")  ? "slt"
                     : !strcmp(engine, "openai") ? cfg.openai_tts_voice
                                                 : cfg.elevenlabs_voice_id);
        for (const char *c = conc; *c;) {
            size_t n = strtoul(c, (char **)&c, 10);
            if (n == 0 || n > MAX_JOBS) break;
            run(&b, engine, voice, n, rounds);
            c += strspn(c, " ,");
        }
        b.ops->destroy(b.e);
        for (int i = 0; i < 10; i++) uv_run(&b.loop, UV_RUN_NOWAIT), cs_mailbox_run(b.mb);
    }
    cs_fetch_close(fetch);
    if (oa) oa_fake_free(oa);
    if (el) el_fake_free(el);
    free(b.lat);
    cs_mailbox_close(b.mb);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    return 0;
}
