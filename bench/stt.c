/* bench_stt: the pocketsphinx engine over the speech corpus at 8 kHz μ-law, in process,
 * with audio fed in real time as calls deliver it (20 ms frames on an absolute clock).
 *
 *   bench_stt [corpus] [grammars=tests/data/grammars]
 * (corpus: ../shared/corpus when it is there, else tests/data/speech; run from the
 * checkout's root)
 *
 * prints, one line each:
 *   stt mode=free|grammar clips= words= wer= rtf= final_p50_ms= final_p95_ms= dropped_ms=
 *       every clip of the corpus (free speech), then the cards clips with their grammar,
 *       STREAMS at once. rtf: decoding CPU seconds per second of audio, per stream.
 *       final latency: from the moment the last word of an utterance was fed to its
 *       final result, which includes the 150 ms of silence that ends an utterance.
 *   stt decoders=N rss_mb_per_decoder=
 *   stt streams=N final_p95_ms= dropped_ms= cpu=   (CAPACITY=1: 4, 8, 12, … at once, until
 *       the final p95 passes 1 s or audio is dropped; the last line under 1 s is what this
 *       machine holds)
 * STREAMS (4) and SECONDS (30, per capacity step) change the run. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "bench.h"
#include "core/err.h"
#include "stt/stt.h"
#include "stats.h"
#include "wer.h"

#define FRAME      160  /* 20 ms */
#define TAIL_MS    1000 /* silence after each clip, as a caller pausing */
#define MAX_CLIPS  256
#define MAX_LAT    100000
#define MAX_STREAM 40

typedef struct clip {
    char name[128];
    uint8_t *ulaw;
    size_t n;
} clip;

typedef struct stream stream;

typedef struct bench {
    uv_loop_t loop;
    cs_mailbox *mb;
    cs_stt *e;
    uv_timer_t tick;
    clip *clips;
    size_t nclips, next_clip;
    bool loop_clips; /* capacity runs: play clips round and round until `until` */
    uint64_t until;  /* ms since start; 0: until the clips run out */
    const char *grammar;
    stream *streams;
    size_t nstreams, active;
    double *lat;
    size_t nlat;
    wer_count wer;
    uint64_t t0;
} bench;

struct stream {
    bench *b;
    cs_stt_session *s;
    const clip *c;
    uint64_t start; /* ms since the bench started, when position 0 was due */
    size_t fed;     /* bytes of clip + tail fed */
    char text[8192];
    size_t len;
    bool open, closing;
};

static uint64_t now_ms(const bench *b)
{
    return uv_now((uv_loop_t *)&b->loop) - b->t0;
}

static void on_segment(void *data, const cs_stt_segment *seg)
{
    stream *st = data;
    bench *b = st->b;
    if (!seg->final || !seg->text[0]) return;
    /* The last word was fed when the clock reached its end position. */
    double fed_at = (double)(st->start + seg->end_ms);
    if (b->nlat < MAX_LAT) b->lat[b->nlat++] = (double)now_ms(b) - fed_at;
    int w = snprintf(st->text + st->len, sizeof st->text - st->len, "%s%s", st->len ? " " : "",
                     seg->text);
    if (w > 0 && (size_t)w < sizeof st->text - st->len) st->len += (size_t)w;
}

static void on_error(void *data, int err, const char *why)
{
    (void)data;
    fprintf(stderr, "bench_stt: session failed: %s (%s)\n", why, cs_strerror(err));
}

static void start_clip(stream *st);

static void on_closed(void *data)
{
    stream *st = data;
    bench *b = st->b;
    if (!b->loop_clips) {
        char ref[8192];
        if (wer_reference(getenv("CS_CORPUS"), st->c->name, ref, sizeof ref))
            wer_add(&b->wer, ref, st->text);
    }
    st->open = st->closing = false;
    b->active--;
    start_clip(st);
}

static void start_clip(stream *st)
{
    bench *b = st->b;
    if (b->next_clip >= b->nclips) {
        if (!b->loop_clips) return;
        b->next_clip = 0;
    }
    if (b->until && now_ms(b) >= b->until) return;
    st->c = &b->clips[b->next_clip++];
    st->fed = 0;
    st->len = 0;
    st->text[0] = '\0';
    st->start = now_ms(b);
    cs_stt_session_opts o = {.label = st->c->name,
                             .grammar = b->grammar,
                             .on_segment = on_segment,
                             .on_error = on_error,
                             .on_closed = on_closed,
                             .data = st};
    if (cs_stt_pocketsphinx.open(b->e, &o, &st->s) < 0) {
        fprintf(stderr, "bench_stt: no decoder free\n");
        exit(1);
    }
    st->open = true;
    b->active++;
}

/* Every 20 ms: each stream gets the audio now due on its clock. */
static void on_tick(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = now_ms(b);
    for (size_t i = 0; i < b->nstreams; i++) {
        stream *st = &b->streams[i];
        if (!st->open || st->closing) continue;
        size_t total = st->c->n + (size_t)TAIL_MS * 8;
        size_t due = (size_t)(now - st->start) * 8;
        if (due > total) due = total;
        static const uint8_t quiet[FRAME] = {[0 ... FRAME - 1] = 0xFF};
        while (st->fed + FRAME <= due || (st->fed < due && due == total)) {
            size_t n = due - st->fed < FRAME ? due - st->fed : FRAME;
            const uint8_t *p = st->fed < st->c->n ? st->c->ulaw + st->fed : quiet;
            if (st->fed < st->c->n && st->fed + n > st->c->n) n = st->c->n - st->fed;
            cs_stt_pocketsphinx.feed(st->s, (uint32_t)(st->fed / 8), p, n);
            st->fed += n;
        }
        bool over = b->until && now >= b->until;
        if (st->fed >= total || over) {
            st->closing = true;
            cs_stt_pocketsphinx.close(st->s);
        }
    }
    if (b->active == 0) {
        uv_timer_stop(t);
        uv_stop(&b->loop);
    }
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static size_t load_clips(const char *corpus, const char *prefix, clip *out)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ulaw8k", corpus);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_stt: cannot open %s\n", dir);
        exit(1);
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_CLIPS) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".wav") != 0) continue;
        if (prefix && strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int16_t *pcm;
        size_t samples;
        unsigned rate;
        if (cs_wav_load(path, &pcm, &samples, &rate) < 0 || rate != 8000) continue;
        clip *c = &out[n++];
        snprintf(c->name, sizeof c->name, "%.*s", (int)(len - 4), e->d_name);
        c->ulaw = malloc(samples);
        cs_ulaw_encode(c->ulaw, pcm, samples);
        c->n = samples;
        free(pcm);
    }
    closedir(d);
    return n;
}

/* Plays `clips` over `nstreams` streams; returns the CPU seconds used. */
static double run(bench *b, clip *clips, size_t nclips, size_t nstreams, const char *grammar,
                  uint64_t seconds)
{
    b->clips = clips;
    b->nclips = nclips;
    b->next_clip = 0;
    b->grammar = grammar;
    b->nstreams = nstreams;
    b->nlat = 0;
    b->wer = (wer_count){0};
    b->loop_clips = seconds > 0;
    uv_update_time(&b->loop);
    b->t0 = uv_now(&b->loop);
    b->until = seconds * 1000;
    double cpu0 = bench_cpu_s();
    for (size_t i = 0; i < nstreams; i++) {
        b->streams[i] = (stream){.b = b};
        start_clip(&b->streams[i]);
    }
    uv_timer_start(&b->tick, on_tick, 20, 20);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return bench_cpu_s() - cpu0;
}

static double audio_s(const clip *clips, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)clips[i].n / 8000.0 + TAIL_MS / 1000.0;
    return s;
}

int main(int argc, char **argv)
{
    const char *corpus = wer_corpus(argc > 1 ? argv[1] : NULL);
    const char *gdir = argc > 2 ? argv[2] : "tests/data/grammars";
    setenv("CS_CORPUS", corpus, 1);
    size_t nstreams = getenv("STREAMS") ? strtoul(getenv("STREAMS"), NULL, 10) : 4;
    uint64_t seconds = getenv("SECONDS") ? strtoull(getenv("SECONDS"), NULL, 10) : 30;
    if (nstreams < 1 || nstreams > MAX_STREAM) nstreams = 4;

    static bench b;
    static clip all[MAX_CLIPS], cards[MAX_CLIPS];
    static stream streams[MAX_STREAM];
    static double lat[MAX_LAT];
    b.streams = streams;
    b.lat = lat;
    uv_loop_init(&b.loop);
    cs_mailbox_open(&b.mb, &b.loop);
    uv_timer_init(&b.loop, &b.tick);
    b.tick.data = &b;

    size_t nall = load_clips(corpus, NULL, all),
           ncards = load_clips(corpus, "pocketsphinx_cards", cards);
    char path[2048];
    snprintf(path, sizeof path, "%s/cards.jsgf", gdir);
    FILE *f = fopen(path, "r");
    static char grammar[65536];
    size_t glen = f ? fread(grammar, 1, sizeof grammar - 1, f) : 0;
    if (f) fclose(f);
    grammar[glen] = '\0';

    size_t ndec = getenv("CAPACITY") ? MAX_STREAM : nstreams;
    cs_config cfg = {0};
    cfg.stt_model_dir = "/usr/share/pocketsphinx/model/en-us";
    cfg.stt_max_sessions = (int64_t)ndec;
    long rss0 = rss_kb();
    cs_buf err = CS_BUF_INIT(1024);
    if (cs_stt_pocketsphinx.create(&b.e, &cfg, &b.loop, b.mb, &err) < 0) {
        fprintf(stderr, "bench_stt: %s\n", err.data);
        return 1;
    }
    long rss1 = rss_kb();

    struct {
        const char *mode;
        clip *clips;
        size_t n;
        const char *grammar;
    } modes[] = {{"free", all, nall, NULL}, {"grammar", cards, ncards, glen ? grammar : NULL}};
    for (size_t m = 0; m < 2; m++) {
        if (!modes[m].n || (m == 1 && !glen)) continue;
        cs_stt_stats before, after;
        cs_stt_pocketsphinx.stats(b.e, &before);
        double cpu = run(&b, modes[m].clips, modes[m].n, nstreams, modes[m].grammar, 0);
        cs_stt_pocketsphinx.stats(b.e, &after);
        printf("stt mode=%s clips=%zu words=%zu wer=%.3f rtf=%.3f final_p50_ms=%.0f "
               "final_p95_ms=%.0f dropped_ms=%llu\n",
               modes[m].mode, modes[m].n, b.wer.words, wer_rate(&b.wer),
               cpu / audio_s(modes[m].clips, modes[m].n), stats_pct(lat, b.nlat, 0.50),
               stats_pct(lat, b.nlat, 0.95),
               (unsigned long long)(after.dropped_ms - before.dropped_ms));
        fflush(stdout);
    }
    printf("stt decoders=%zu rss_mb_per_decoder=%.1f\n", ndec,
           (double)(rss1 - rss0) / 1024.0 / (double)ndec);
    fflush(stdout);

    for (size_t n = 4; getenv("CAPACITY") && n <= MAX_STREAM; n += 4) {
        cs_stt_stats before, after;
        cs_stt_pocketsphinx.stats(b.e, &before);
        double cpu = run(&b, all, nall, n, NULL, seconds);
        cs_stt_pocketsphinx.stats(b.e, &after);
        double p95 = stats_pct(lat, b.nlat, 0.95);
        unsigned long long dropped = after.dropped_ms - before.dropped_ms;
        printf("stt streams=%zu final_p95_ms=%.0f dropped_ms=%llu cpu=%.2f\n", n, p95, dropped,
               cpu / (double)seconds);
        fflush(stdout);
        if (p95 >= 1000 || dropped) break;
    }
    cs_stt_pocketsphinx.destroy(b.e);
    cs_mailbox_close(b.mb);
    uv_close((uv_handle_t *)&b.tick, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    cs_buf_free(&err);
    return 0;
}
