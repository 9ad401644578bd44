/* bench_vad: the voice activity detector (src/audio/vad.c) on the speech corpus as phone
 * lines deliver it (tests/unit/phoneline.h): each recording after LEAD_MS of a line
 * condition and before TAIL_MS of it, fed in 20 ms frames, against reference onsets and
 * offsets measured on the recording's original-rate WAV.
 *
 *   bench_vad [corpus]
 * (corpus: ../shared/corpus when it is there, else tests/data/speech; run from the
 * checkout's root)
 *
 * The corpus is split before any tuning: the recordings sorted by name, the 1st, 3rd, 5th, …
 * are the tuning half and the 2nd, 4th, … the held-out half. SPLIT=heldout (the default),
 * tune or all picks the recordings scored. The settings come from the environment as for
 * the gateway: BARGE_IN_MIN_MS, VAD_HANGOVER_MS, VAD_THRESHOLD_DB. CONDS=a,b limits the
 * conditions; LEAD_MS (4000) and TAIL_MS (2000) the line around each recording; VERBOSE=1
 * adds a line per recording and condition.
 *
 * prints, one line each:
 *   vad split= clips= min_speech_ms= hangover_ms= threshold_db= lead_ms= tail_ms=
 *   vad cond=NAME clips= onset_pct= onset_err_p50_ms= onset_err_p95_ms= within100_pct=
 *       confirm_p50_ms= confirm_p95_ms= false_per_min= noise_speech_pct= split_per_min=
 *       offset_pct= offset_err_p50_ms= offset_delay_p50_ms= offset_delay_p95_ms=
 *     onset_pct: recordings whose speech got an onset reported between 250 ms before and
 *       1 s after the reference onset; onset_err: that onset's position minus the reference
 *       (p50 signed, p95 of the absolute error); within100: |error| <= 100 ms; confirm: when
 *       it was confirmed (confirmed_pos) after the reference onset; false_per_min: onsets
 *       reported in noise only (more than 250 ms before the reference onset, or after the
 *       reference offset) per minute of it; noise_speech_pct: share of the lead-in's noise
 *       the detector spent in speech; split_per_min: offsets whose silence (pos to
 *       confirmed_pos) held 200 ms or more of reference speech, per minute of it (speech
 *       taken for a pause); offset: the last offset, reported at or after the
 *       reference offset minus 1 s (offset_err: its position minus the reference offset;
 *       offset_delay: its confirmation after the reference offset).
 *   vad cost ns_per_20ms= state_bytes=
 *     CPU time per 160-byte feed, over a minute of noisy speech fed repeatedly.
 *
 * REFCHECK=1 checks the reference instead, on every recording: pocketsphinx aligns the
 * recording's transcript to its original audio (a grammar of exactly that sentence), and
 * the first word's start and the last word's end are compared with the energy reference:
 *   vad refcheck clip= aligned_onset_ms= onset_ms= aligned_offset_ms= offset_ms=   (each)
 *   vad refcheck clips= aligned= onsets= onset_diff_p50_ms= onset_within100_pct=
 *       onset_diff_max_ms= offset_diff_p50_ms= offset_within100_pct=
 *   (diff: energy reference minus alignment)
 * Onsets are compared only where the aligned speech starts 50 ms or more into the recording
 * (an alignment that starts at 0 took the leading silence into its first word); recordings
 * with words the dictionary lacks are not aligned. */
#include <pocketsphinx.h>
#include <sphinxbase/ckd_alloc.h>
#include <sphinxbase/err.h>
#include <sphinxbase/fsg_model.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio/resample.h"
#include "audio/vad.h"
#include "audio/wav.h"
#include "core/buf.h"
#include "core/config.h"
#include "phoneline.h"
#include "stats.h"
#include "wer.h"

#define FRAME     160 /* 20 ms, as Twilio sends */
#define MAX_CLIPS 256
#define NEAR_MS   250  /* an onset this far before the reference still counts as found */
#define LATE_MS   1000 /* and this far after it */
#define MAX_EDGES 4096
#define COST_SECS 60
#define COST_REPS 50
#define SPLIT_MS  200 /* an offset whose silence overlaps this much reference speech */

typedef struct clip {
    char name[128];
    pl_ref ref;
    int16_t *pcm;
    size_t n;
    double rms;
} clip;

typedef struct stats {
    double err[MAX_CLIPS], aerr[MAX_CLIPS], confirm[MAX_CLIPS];
    double off_err[MAX_CLIPS], off_delay[MAX_CLIPS];
    size_t found, within100, offsets, clips, false_onsets, splits;
    double noise_ms, lead_ms, lead_speech_ms, speech_ms;
} stats;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the recordings in MANIFEST.tsv, sorted; n of them. */
static size_t manifest(const char *corpus, char **names)
{
    char path[2048], line[8192];
    snprintf(path, sizeof path, "%s/MANIFEST.tsv", corpus);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_vad: cannot read %s\n", path);
        exit(1);
    }
    size_t n = 0;
    while (fgets(line, sizeof line, f) && n < MAX_CLIPS) {
        if (strncmp(line, "wav/", 4) != 0) continue; /* the header */
        char *end = strstr(line, ".wav\t");
        if (!end) continue;
        names[n++] = strndup(line + 4, (size_t)(end - line - 4));
    }
    fclose(f);
    qsort(names, n, sizeof *names, cmp_name);
    return n;
}

static double ms(uint64_t samples)
{
    return (double)samples / 8.0;
}

/* Reference speech (ms) within [from, to), positions on the line. */
static double speech_within(const pl_ref *r, uint64_t lead, uint64_t from, uint64_t to)
{
    double sum = 0;
    for (size_t i = 0; i < r->nruns; i++) {
        uint64_t a = lead + (uint64_t)r->runs[i].start_ms * 8,
                 b = lead + (uint64_t)r->runs[i].end_ms * 8;
        if (a < from) a = from;
        if (b > to) b = to;
        if (b > a) sum += ms(b - a);
    }
    return sum;
}

/* One recording under one condition. */
static void run_clip(const clip *c, const pl_cond *cond, const cs_vad_opts *o, unsigned lead_ms,
                     unsigned tail_ms, uint64_t seed, stats *st, bool verbose)
{
    size_t len;
    uint8_t *line = pl_line(cond, c->pcm, c->n, c->rms, lead_ms, tail_ms, seed, &len);
    if (!line) {
        fprintf(stderr, "bench_vad: out of memory\n");
        exit(1);
    }
    static cs_vad_edge edges[MAX_EDGES];
    size_t ne = 0;
    cs_vad v;
    cs_vad_init(&v, o);
    for (size_t i = 0; i < len; i += FRAME) {
        size_t k = len - i < FRAME ? len - i : FRAME;
        cs_vad_edge e[CS_VAD_EDGES_MAX(FRAME)];
        size_t got = cs_vad_feed(&v, i, line + i, k, e, CS_VAD_EDGES_MAX(FRAME));
        for (size_t j = 0; j < got && ne < MAX_EDGES; j++) edges[ne++] = e[j];
    }
    free(line);

    uint64_t lead = (uint64_t)lead_ms * 8;
    uint64_t on = lead + (uint64_t)c->ref.onset_ms * 8, off = lead + (uint64_t)c->ref.offset_ms * 8;
    uint64_t near = NEAR_MS * 8, noise_end = on > near ? on - near : 0;
    st->clips++;
    bool found = false, offset = false;
    size_t false_onsets = 0, splits = 0;
    double err = 0, confirm = 0, off_err = 0, off_delay = 0;
    uint64_t speaking_since = 0;
    bool speaking = false;
    double lead_speech = 0;
    for (size_t j = 0; j < ne; j++) {
        const cs_vad_edge *e = &edges[j];
        if (e->speech) {
            speaking = true;
            speaking_since = e->confirmed_pos;
            if (e->pos < noise_end || e->pos > off) {
                false_onsets++;
            } else if (!found && e->pos <= on + LATE_MS * 8) {
                found = true;
                err = ms(e->pos) - ms(on);
                confirm = ms(e->confirmed_pos) - ms(on);
            }
        } else {
            if (speaking && speaking_since < noise_end)
                lead_speech += ms((e->confirmed_pos < noise_end ? e->confirmed_pos : noise_end) -
                                  speaking_since);
            speaking = false;
            if (speech_within(&c->ref, lead, e->pos, e->confirmed_pos) >= SPLIT_MS) splits++;
            if (e->pos + LATE_MS * 8 >= off) {
                offset = true;
                off_err = ms(e->pos) - ms(off);
                off_delay = ms(e->confirmed_pos) - ms(off);
            }
        }
    }
    if (speaking && speaking_since < noise_end) lead_speech += ms(noise_end - speaking_since);
    /* An offset counts only if no onset followed it (the last edge is that offset). */
    if (ne && edges[ne - 1].speech) offset = false;
    if (found) {
        st->err[st->found] = err;
        st->aerr[st->found] = err < 0 ? -err : err;
        st->confirm[st->found] = confirm;
        st->within100 += err >= -100 && err <= 100;
        st->found++;
    }
    if (offset) {
        st->off_err[st->offsets] = off_err;
        st->off_delay[st->offsets] = off_delay;
        st->offsets++;
    }
    st->false_onsets += false_onsets;
    st->splits += splits;
    st->speech_ms += speech_within(&c->ref, lead, 0, len);
    st->noise_ms += ms(noise_end) + ms(len - off);
    st->lead_ms += ms(noise_end);
    st->lead_speech_ms += lead_speech;
    if (verbose)
        printf("vad clip=%s cond=%s ref_onset_ms=%u ref_offset_ms=%u found=%d onset_err_ms=%.0f "
               "confirm_ms=%.0f false_onsets=%zu splits=%zu offset=%d offset_err_ms=%.0f "
               "offset_delay_ms=%.0f\n",
               c->name, cond->name, c->ref.onset_ms, c->ref.offset_ms, found, err, confirm,
               false_onsets, splits, offset, off_err, off_delay);
}

static void report(const pl_cond *cond, stats *st)
{
    printf("vad cond=%s clips=%zu onset_pct=%.1f onset_err_p50_ms=%.0f onset_err_p95_ms=%.0f "
           "within100_pct=%.1f confirm_p50_ms=%.0f confirm_p95_ms=%.0f false_per_min=%.2f "
           "noise_speech_pct=%.2f split_per_min=%.2f offset_pct=%.1f offset_err_p50_ms=%.0f "
           "offset_delay_p50_ms=%.0f offset_delay_p95_ms=%.0f\n",
           cond->name, st->clips, 100.0 * (double)st->found / (double)st->clips,
           stats_pct(st->err, st->found, 0.5), stats_pct(st->aerr, st->found, 0.95),
           100.0 * (double)st->within100 / (double)st->clips,
           stats_pct(st->confirm, st->found, 0.5), stats_pct(st->confirm, st->found, 0.95),
           st->noise_ms > 0 ? (double)st->false_onsets / (st->noise_ms / 60000.0) : 0,
           st->lead_ms > 0 ? 100.0 * st->lead_speech_ms / st->lead_ms : 0,
           st->speech_ms > 0 ? (double)st->splits / (st->speech_ms / 60000.0) : 0,
           100.0 * (double)st->offsets / (double)st->clips,
           stats_pct(st->off_err, st->offsets, 0.5), stats_pct(st->off_delay, st->offsets, 0.5),
           stats_pct(st->off_delay, st->offsets, 0.95));
    fflush(stdout);
}

#define ALIGN_MIN_MS 50 /* aligned onsets earlier than this are not trusted */

/* First word's start and last word's end (ms) in `name`'s original audio, aligned with its
 * transcript; -1 if it cannot be aligned. */
static int align(ps_decoder_t *ps, const char *corpus, const char *name, int *on, int *off)
{
    char ref[CS_WER_TEXT_MAX], norm[CS_WER_TEXT_MAX];
    if (!wer_reference(corpus, name, ref, sizeof ref) ||
        cs_wer_normalize(ref, norm, sizeof norm) < 0)
        return -1;
    /* The sentence as a chain of words (the decoder adds optional silences and fillers). */
    size_t nwords = 1;
    for (const char *c = norm; *c; c++) nwords += *c == ' ';
    fsg_model_t *fsg = fsg_model_init("sentence", ps_get_logmath(ps), 6.5f, (int32)nwords + 1);
    fsg->start_state = 0;
    fsg->final_state = (int32)nwords;
    int32 state = 0, rc = 0;
    for (char *save, *w = strtok_r(norm, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *pron = ps_lookup_word(ps, w); /* NULL: not in the dictionary */
        if (!pron) rc = -1;
        ckd_free(pron);
        fsg_model_trans_add(fsg, state, state + 1, 0, fsg_model_word_add(fsg, w));
        state++;
    }
    if (rc == 0 && (ps_set_fsg(ps, "sentence", fsg) < 0 || ps_set_search(ps, "sentence") < 0))
        rc = -1;
    fsg_model_free(fsg);
    char path[2048];
    snprintf(path, sizeof path, "%s/wav/%s.wav", corpus, name);
    int16_t *pcm = NULL, *up = NULL;
    size_t n, m;
    unsigned rate;
    if (rc == 0 && cs_wav_load(path, &pcm, &n, &rate) == 0 &&
        cs_resample_all(pcm, n, rate, 16000, &up, &m) == 0) {
        ps_start_utt(ps);
        ps_process_raw(ps, up, m, FALSE, TRUE);
        ps_end_utt(ps);
        *on = *off = -1;
        for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
            const char *w = ps_seg_word(seg);
            int sf, ef;
            ps_seg_frames(seg, &sf, &ef);
            if (w[0] == '<' || w[0] == '[' || w[0] == '(') continue; /* silence, fillers */
            if (*on < 0) *on = sf * 10;
            *off = (ef + 1) * 10;
        }
        rc = *on < 0 ? -1 : 0;
    } else {
        rc = -1;
    }
    free(up);
    free(pcm);
    return rc;
}

static void refcheck(const char *corpus, char **names, size_t n, const char *model_dir)
{
    char hmm[1024], dict[1024];
    snprintf(hmm, sizeof hmm, "%s/en-us", model_dir);
    snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", model_dir);
    err_set_logfp(NULL);
    cmd_ln_t *c = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-dict", dict, "-remove_silence",
                              "no", NULL);
    ps_decoder_t *ps = c ? ps_init(c) : NULL;
    cmd_ln_free_r(c);
    if (!ps) {
        fprintf(stderr, "bench_vad: cannot load the pocketsphinx model in %s\n", model_dir);
        exit(1);
    }
    static double don[MAX_CLIPS], doff[MAX_CLIPS];
    size_t aligned = 0, onsets = 0, within = 0, on_within = 0;
    double on_max = 0;
    for (size_t i = 0; i < n; i++) {
        clip cl;
        int on, off;
        if (pl_load(corpus, names[i], &cl.ref, &cl.pcm, &cl.n) < 0) exit(1);
        free(cl.pcm);
        if (align(ps, corpus, names[i], &on, &off) < 0) continue;
        printf("vad refcheck clip=%s aligned_onset_ms=%d onset_ms=%u aligned_offset_ms=%d "
               "offset_ms=%u\n",
               names[i], on, cl.ref.onset_ms, off, cl.ref.offset_ms);
        doff[aligned++] = (double)cl.ref.offset_ms - off;
        within += doff[aligned - 1] >= -100 && doff[aligned - 1] <= 100;
        if (on >= ALIGN_MIN_MS) {
            don[onsets] = (double)cl.ref.onset_ms - on;
            double a = don[onsets] < 0 ? -don[onsets] : don[onsets];
            if (a > on_max) on_max = a;
            on_within += a <= 100;
            onsets++;
        }
    }
    printf("vad refcheck clips=%zu aligned=%zu onsets=%zu onset_diff_p50_ms=%.0f "
           "onset_within100_pct=%.1f onset_diff_max_ms=%.0f offset_diff_p50_ms=%.0f "
           "offset_within100_pct=%.1f\n",
           n, aligned, onsets, stats_pct(don, onsets, 0.5),
           onsets ? 100.0 * (double)on_within / (double)onsets : 0, on_max,
           stats_pct(doff, aligned, 0.5), aligned ? 100.0 * (double)within / (double)aligned : 0);
    ps_free(ps);
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU per 20 ms frame over a minute of the recordings, one after another, on a noisy line. */
static void cost(const clip *clips, size_t n, const cs_vad_opts *o)
{
    size_t cap = (size_t)COST_SECS * PL_RATE, len = 0;
    uint8_t *audio = malloc(cap);
    for (size_t i = 0; len < cap && n; i++) {
        const clip *c = &clips[i % n];
        size_t got;
        uint8_t *line = pl_line(pl_cond_named("white20"), c->pcm, c->n, c->rms, 500, 500, i, &got);
        size_t k = got < cap - len ? got : cap - len;
        memcpy(audio + len, line, k);
        len += k;
        free(line);
    }
    cs_vad v;
    cs_vad_init(&v, o);
    uint64_t pos = 0;
    size_t edges = 0, frames = 0;
    double t0 = cpu_ns();
    for (int r = 0; r < COST_REPS; r++) {
        for (size_t i = 0; i + FRAME <= len; i += FRAME, pos += FRAME, frames++) {
            cs_vad_edge e[CS_VAD_EDGES_MAX(FRAME)];
            edges += cs_vad_feed(&v, pos, audio + i, FRAME, e, CS_VAD_EDGES_MAX(FRAME));
        }
    }
    double t = cpu_ns() - t0;
    printf("vad cost ns_per_20ms=%.1f state_bytes=%zu frames=%zu edges=%zu\n", t / (double)frames,
           sizeof(cs_vad), frames, edges);
    free(audio);
}

int main(int argc, char **argv)
{
    const char *corpus = wer_corpus(argc > 1 ? argv[1] : NULL);
    const char *split = getenv("SPLIT") ? getenv("SPLIT") : "heldout";
    const char *conds = getenv("CONDS");
    unsigned lead_ms = getenv("LEAD_MS") ? (unsigned)atoi(getenv("LEAD_MS")) : 4000;
    unsigned tail_ms = getenv("TAIL_MS") ? (unsigned)atoi(getenv("TAIL_MS")) : 2000;
    bool verbose = getenv("VERBOSE") && atoi(getenv("VERBOSE"));
    if (strcmp(split, "heldout") && strcmp(split, "tune") && strcmp(split, "all")) {
        fprintf(stderr, "bench_vad: SPLIT is heldout, tune or all\n");
        return 2;
    }

    cs_config cfg;
    cs_buf err = {0};
    int argi = 1, help = 0;
    if (cs_config_load(&cfg, NULL, 1, argv, &argi, &help, &err) < 0) {
        fprintf(stderr, "bench_vad: %.*s\n", (int)err.len, (const char *)err.data);
        return 2;
    }
    cs_vad_opts o = {(uint32_t)cfg.barge_in_min_ms, (uint32_t)cfg.vad_hangover_ms,
                     (int)cfg.vad_threshold_db};

    static char *names[MAX_CLIPS];
    static clip clips[MAX_CLIPS];
    size_t nnames = manifest(corpus, names), nclips = 0;
    bool check = getenv("REFCHECK") && atoi(getenv("REFCHECK"));
    if (check) refcheck(corpus, names, nnames, cfg.stt_model_dir);
    cs_config_free(&cfg);
    cs_buf_free(&err);
    if (check) {
        for (size_t i = 0; i < nnames; i++) free(names[i]);
        return 0;
    }
    for (size_t i = 0; i < nnames; i++) {
        bool tune = i % 2 == 0;
        if ((tune && !strcmp(split, "heldout")) || (!tune && !strcmp(split, "tune"))) continue;
        clip *c = &clips[nclips];
        snprintf(c->name, sizeof c->name, "%s", names[i]);
        if (pl_load(corpus, names[i], &c->ref, &c->pcm, &c->n) < 0) return 1;
        c->rms = pl_speech_rms(c->pcm, c->n, &c->ref);
        nclips++;
    }
    printf("vad split=%s clips=%zu min_speech_ms=%u hangover_ms=%u threshold_db=%d lead_ms=%u "
           "tail_ms=%u\n",
           split, nclips, o.min_speech_ms, o.hangover_ms, o.threshold_db, lead_ms, tail_ms);
    for (size_t k = 0; k < pl_nconds; k++) {
        const pl_cond *cond = &pl_conds[k];
        if (conds) {
            char want[256];
            snprintf(want, sizeof want, ",%s,", cond->name);
            char have[4096];
            snprintf(have, sizeof have, ",%s,", conds);
            if (!strstr(have, want)) continue;
        }
        static stats st;
        memset(&st, 0, sizeof st);
        for (size_t i = 0; i < nclips; i++)
            run_clip(&clips[i], cond, &o, lead_ms, tail_ms, i * 131 + k, &st, verbose);
        report(cond, &st);
    }
    cost(clips, nclips, &o);
    for (size_t i = 0; i < nclips; i++) free(clips[i].pcm);
    for (size_t i = 0; i < nnames; i++) free(names[i]);
    return 0;
}
