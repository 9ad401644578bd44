/* bench_stt: the pocketsphinx engine over the speech corpus at 8 kHz μ-law, in process,
 * with audio fed in real time as calls deliver it (20 ms frames on an absolute clock).
 *
 *   bench_stt [corpus] [grammars=tests/data/grammars]
 * (corpus: ../shared/corpus when it is there, else tests/data/speech; run from the
 * checkout's root)
 *
 * prints, one line each:
 *   stt part=tune|heldout setting=S streams= clips= words= wer= rtf= final_p50_ms=
 *       final_p95_ms= dropped_ms=
 *       free speech over each part of bench/stt-split.tsv (tuned on one, scored on the
 *       other; the whole corpus when the split names none of its clips), STREAMS at once,
 *       for each setting: forward, lattice, fwdflat (STT_PASSES: the passes live finals
 *       take), and pipeline (forward finals, then refined ones: STT_REFINE with
 *       STT_REFINE_PASSES and the other settings as the environment gives them, like
 *       the gateway's), which adds wer_fast= (its fast finals
 *       alone), refined_p50_ms= refined_p95_ms= (latency of the refined finals),
 *       after_fast_p50_ms= after_fast_p95_ms= (from the fast final to its refined one:
 *       queueing and re-decoding), refined= refine_full= refine_too_long= (finals
 *       refined, and left as they were). load1=: the machine's load average at the end.
 *       rtf: decoding CPU seconds per second of audio, per stream. Latency: from the
 *       moment the last word of an utterance was fed to its final, which includes the
 *       150 ms of silence that ends an utterance. SETTINGS and PARTS (comma lists) choose.
 *   stt mode=grammar clips= words= wer= rtf= final_p50_ms= final_p95_ms= dropped_ms=
 *       the cards clips with their grammar (never refined).
 *   stt decoders=N rss_mb_per_decoder=
 *   stt streams=N final_p95_ms= dropped_ms= cpu=   (CAPACITY=1: 4, 8, 12, … at once,
 *       live finals only (refinement runs below them and gives way), until the final p95
 *       passes 1 s or audio is dropped; the last line under 1 s is what this machine
 *       holds)
 * STREAMS (8) and SECONDS (30, per capacity step) change the run. */
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
#define MAX_UTTS   256 /* finals kept per clip */

typedef struct clip {
    char name[128];
    uint8_t *ulaw;
    size_t n;
} clip;

typedef struct stream stream;

/* One utterance's final text as it stands (a refined one replaces the fast one). */
typedef struct utt {
    uint64_t id;
    char *fast, *text;
    uint64_t fast_at; /* ms since the bench started */
} utt;

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
    double *lat, *rlat, *after; /* fast (or only) finals; refined ones; refined after fast */
    size_t nlat, nrlat;
    cs_wer_count wer, wer_fast;
    uint64_t t0;
} bench;

struct stream {
    bench *b;
    cs_stt_session *s;
    const clip *c;
    uint64_t start; /* ms since the bench started, when position 0 was due */
    size_t fed;     /* bytes of clip + tail fed */
    utt utts[MAX_UTTS];
    size_t nutts;
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
    utt *u = NULL;
    for (size_t i = 0; i < st->nutts && !u; i++)
        if (st->utts[i].id == seg->id) u = &st->utts[i];
    if (!u && st->nutts < MAX_UTTS) {
        u = &st->utts[st->nutts++];
        *u = (utt){.id = seg->id, .fast = strdup(seg->text)};
    }
    /* The last word was fed when the clock reached its end position. */
    uint64_t now = now_ms(b);
    double late = (double)now - (double)(st->start + seg->end_ms);
    if (!seg->refined && b->nlat < MAX_LAT) b->lat[b->nlat++] = late;
    if (seg->refined && u && b->nrlat < MAX_LAT) {
        b->after[b->nrlat] = (double)(now - u->fast_at);
        b->rlat[b->nrlat++] = late;
    }
    if (!u) return;
    if (!seg->refined) u->fast_at = now;
    free(u->text);
    u->text = strdup(seg->text);
}

/* The clip's transcript: its finals as they stand, or the fast ones. */
static void joined(const stream *st, bool fast, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < st->nutts; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", n ? " " : "",
                         fast ? st->utts[i].fast : st->utts[i].text);
        if (w > 0 && (size_t)w < cap - n) n += (size_t)w;
    }
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
        static char ref[8192], text[65536];
        if (wer_reference(getenv("CS_CORPUS"), st->c->name, ref, sizeof ref)) {
            joined(st, false, text, sizeof text);
            cs_wer_add(&b->wer, ref, text);
            joined(st, true, text, sizeof text);
            cs_wer_add(&b->wer_fast, ref, text);
        }
    }
    for (size_t i = 0; i < st->nutts; i++) {
        free(st->utts[i].fast);
        free(st->utts[i].text);
    }
    st->nutts = 0;
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
    st->nutts = 0;
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

/* The machine's load over the last minute: others' work shows in the latencies. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
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
    b->nlat = b->nrlat = 0;
    b->wer = b->wer_fast = (cs_wer_count){0};
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

/* The gateway's settings: defaults and the environment (STT_REFINE_PASSES, …). */
static cs_config settings_in_effect;

/* An engine of `decoders` whose live finals take `passes`, refining or not. */
static cs_stt *engine(bench *b, size_t decoders, const char *passes, bool refine)
{
    cs_config cfg = settings_in_effect; /* a copy: its strings stay the original's */
    cfg.stt_max_sessions = (int64_t)decoders;
    cfg.stt_passes = (char *)passes;
    cfg.stt_refine = refine;
    cs_buf err = CS_BUF_INIT(1024);
    cs_stt *e;
    if (cs_stt_pocketsphinx.create(&e, &cfg, &b->loop, b->mb, &err) < 0) {
        fprintf(stderr, "bench_stt: %s\n", err.data);
        exit(1);
    }
    cs_buf_free(&err);
    return e;
}

/* Whether `list` (commas; NULL: everything) names `name`. */
static bool chosen(const char *list, const char *name)
{
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return true;
    }
    return false;
}

/* The part bench/stt-split.tsv gives `name`, or NULL. */
static const char *part_of(const char *split, const char *name)
{
    static char line[512], part[32];
    FILE *f = fopen(split, "r");
    const char *found = NULL;
    while (!found && f && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\t");
        if (line[0] == '#' || line[n] != '\t' || strlen(name) != n || strncmp(line, name, n))
            continue;
        snprintf(part, sizeof part, "%.*s", (int)strcspn(line + n + 1, "\r\n"), line + n + 1);
        found = part;
    }
    if (f) fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    const char *corpus = wer_corpus(argc > 1 ? argv[1] : NULL);
    const char *gdir = argc > 2 ? argv[2] : "tests/data/grammars";
    const char *split = getenv("SPLIT") ? getenv("SPLIT") : "bench/stt-split.tsv";
    setenv("CS_CORPUS", corpus, 1);
    int argi = 0, help;
    cs_buf cfg_err = CS_BUF_INIT(1024);
    if (cs_config_load(&settings_in_effect, "/dev/null", 0, NULL, &argi, &help, &cfg_err) < 0) {
        fprintf(stderr, "bench_stt: %s\n", cfg_err.data);
        return 1;
    }
    cs_buf_free(&cfg_err);
    size_t nstreams = getenv("STREAMS") ? strtoul(getenv("STREAMS"), NULL, 10) : 8;
    uint64_t seconds = getenv("SECONDS") ? strtoull(getenv("SECONDS"), NULL, 10) : 30;
    if (nstreams < 1 || nstreams > MAX_STREAM) nstreams = 8;

    static bench b;
    static clip all[MAX_CLIPS], cards[MAX_CLIPS], parts[2][MAX_CLIPS];
    static stream streams[MAX_STREAM];
    static double lat[MAX_LAT], rlat[MAX_LAT], late[MAX_LAT];
    b.streams = streams;
    b.lat = lat;
    b.rlat = rlat;
    b.after = late;
    uv_loop_init(&b.loop);
    cs_mailbox_open(&b.mb, &b.loop);
    uv_timer_init(&b.loop, &b.tick);
    b.tick.data = &b;

    size_t nall = load_clips(corpus, NULL, all),
           ncards = load_clips(corpus, "pocketsphinx_cards", cards);
    static const char *const part_names[2] = {"tune", "heldout"};
    size_t nparts[2] = {0, 0};
    for (size_t i = 0; i < nall; i++) {
        const char *p = part_of(split, all[i].name);
        for (int k = 0; k < 2; k++)
            if (p && strcmp(p, part_names[k]) == 0) parts[k][nparts[k]++] = all[i];
    }
    struct part {
        const char *name;
        clip *clips;
        size_t n;
    } sets[2] = {{"tune", parts[0], nparts[0]}, {"heldout", parts[1], nparts[1]}};
    if (nparts[0] + nparts[1] == 0) sets[0] = (struct part){"all", all, nall};

    char path[2048];
    snprintf(path, sizeof path, "%s/cards.jsgf", gdir);
    FILE *f = fopen(path, "r");
    static char grammar[65536];
    size_t glen = f ? fread(grammar, 1, sizeof grammar - 1, f) : 0;
    if (f) fclose(f);
    grammar[glen] = '\0';

    /* The grammar, and the memory a decoder takes. */
    long rss0 = rss_kb();
    b.e = engine(&b, nstreams, "forward", false);
    long rss1 = rss_kb();
    if (ncards && glen && chosen(getenv("SETTINGS"), "grammar")) {
        cs_stt_stats before, after;
        cs_stt_pocketsphinx.stats(b.e, &before);
        double cpu = run(&b, cards, ncards, nstreams, grammar, 0);
        cs_stt_pocketsphinx.stats(b.e, &after);
        printf("stt mode=grammar clips=%zu words=%zu wer=%.3f rtf=%.3f final_p50_ms=%.0f "
               "final_p95_ms=%.0f dropped_ms=%llu\n",
               ncards, b.wer.words, cs_wer_rate(&b.wer), cpu / audio_s(cards, ncards),
               stats_pct(lat, b.nlat, 0.50), stats_pct(lat, b.nlat, 0.95),
               (unsigned long long)(after.dropped_ms - before.dropped_ms));
    }
    printf("stt decoders=%zu rss_mb_per_decoder=%.1f\n", nstreams,
           (double)(rss1 - rss0) / 1024.0 / (double)nstreams);
    fflush(stdout);
    cs_stt_pocketsphinx.destroy(b.e);

    /* Free speech, per setting and part. */
    static const struct {
        const char *name, *passes;
        bool refine;
    } settings[] = {{"forward", "forward", false},
                    {"lattice", "lattice", false},
                    {"fwdflat", "fwdflat", false},
                    {"pipeline", "forward", true}};
    for (size_t k = 0; k < sizeof settings / sizeof *settings; k++) {
        if (!chosen(getenv("SETTINGS"), settings[k].name)) continue;
        b.e = engine(&b, nstreams, settings[k].passes, settings[k].refine);
        for (size_t p = 0; p < 2; p++) {
            if (!sets[p].n || !chosen(getenv("PARTS"), sets[p].name)) continue;
            cs_stt_stats before, after;
            cs_stt_pocketsphinx.stats(b.e, &before);
            double cpu = run(&b, sets[p].clips, sets[p].n, nstreams, NULL, 0);
            cs_stt_pocketsphinx.stats(b.e, &after);
            printf("stt part=%s setting=%s streams=%zu clips=%zu words=%zu wer=%.3f rtf=%.3f "
                   "final_p50_ms=%.0f final_p95_ms=%.0f dropped_ms=%llu",
                   sets[p].name, settings[k].name, nstreams, sets[p].n, b.wer.words,
                   cs_wer_rate(&b.wer), cpu / audio_s(sets[p].clips, sets[p].n),
                   stats_pct(lat, b.nlat, 0.50), stats_pct(lat, b.nlat, 0.95),
                   (unsigned long long)(after.dropped_ms - before.dropped_ms));
            if (settings[k].refine)
                printf(" wer_fast=%.3f refined_p50_ms=%.0f refined_p95_ms=%.0f "
                       "after_fast_p50_ms=%.0f after_fast_p95_ms=%.0f refined=%llu "
                       "refine_full=%llu refine_too_long=%llu",
                       cs_wer_rate(&b.wer_fast), stats_pct(rlat, b.nrlat, 0.50),
                       stats_pct(rlat, b.nrlat, 0.95), stats_pct(late, b.nrlat, 0.50),
                       stats_pct(late, b.nrlat, 0.95),
                       (unsigned long long)(after.refined - before.refined),
                       (unsigned long long)(after.refine_full - before.refine_full),
                       (unsigned long long)(after.refine_too_long - before.refine_too_long));
            printf(" load1=%.1f\n", load1());
            fflush(stdout);
        }
        cs_stt_pocketsphinx.destroy(b.e);
    }

    if (getenv("CAPACITY")) b.e = engine(&b, MAX_STREAM, "forward", false);
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
    if (getenv("CAPACITY")) cs_stt_pocketsphinx.destroy(b.e);
    cs_mailbox_close(b.mb);
    uv_close((uv_handle_t *)&b.tick, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    cs_config_free(&settings_in_effect);
    return 0;
}
