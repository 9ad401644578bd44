#include "phoneline.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "stats.h"

/* The reference segmentation, on the clean original at its own rate (Rabiner and Sambur's
 * double energy threshold, without the zero-crossing step), high-passed at 100 Hz so that
 * breath pops, handling thumps and rumble do not count: levels of 10 ms windows every 2 ms;
 * the recording's noise N is their 5th percentile and its peak P the 99th. Windows at least
 * max(N + 12, P - 40) dB are speech-like; runs of them (bridging dips under 100 ms) are
 * speech when at least 40 ms of the run reaches max(N + 20, P - 25) dB, which leaves out
 * breaths, lip noise and clicks. Onset and offset are the centres of the first and last
 * speech-like windows of the first and last speech runs: ±5 ms. Checked against
 * pocketsphinx's forced alignment of the transcripts (REFCHECK=1 build/bench_vad): onsets
 * agree within 100 ms on 30 of 31 recordings, p50 33 ms later than the aligned first word. */
#define SEG_WIN_MS      10
#define SEG_HOP_MS      2
#define SEG_LO_NOISE    12.0
#define SEG_LO_PEAK     40.0
#define SEG_HI_NOISE    20.0
#define SEG_HI_PEAK     25.0
#define SEG_BRIDGE_MS   100
#define SEG_CORE_MS     40
#define SEG_HIGHPASS_HZ 100.0
#define SEG_NOISE_Q     0.05
#define SEG_PEAK_Q      0.99

/* 2nd-order Butterworth high-pass (RBJ's cookbook biquad) at SEG_HIGHPASS_HZ. */
static void highpass(const int16_t *in, size_t n, unsigned rate, double *out)
{
    double w = 2 * M_PI * SEG_HIGHPASS_HZ / rate, alpha = sin(w) / (2 * M_SQRT1_2), c = cos(w);
    double a0 = 1 + alpha, b0 = (1 + c) / 2 / a0, b1 = -(1 + c) / a0, b2 = b0;
    double a1 = -2 * c / a0, a2 = (1 - alpha) / a0;
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
    for (size_t i = 0; i < n; i++) {
        double x0 = in[i], y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        x2 = x1;
        x1 = x0;
        y2 = y1;
        y1 = y0;
        out[i] = y0;
    }
}

int pl_segment(const int16_t *pcm, size_t n, unsigned rate, pl_ref *r)
{
    size_t win = rate * SEG_WIN_MS / 1000, hop = rate * SEG_HOP_MS / 1000;
    if (!win || !hop || n < win) return -1;
    size_t nk = (n - win) / hop + 1;
    double *lv = malloc(nk * sizeof *lv), *sorted = malloc(nk * sizeof *sorted);
    double *x = malloc(n * sizeof *x);
    if (!lv || !sorted || !x) {
        free(lv);
        free(sorted);
        free(x);
        return -1;
    }
    highpass(pcm, n, rate, x);
    for (size_t k = 0; k < nk; k++) {
        double e = 0;
        for (size_t i = 0; i < win; i++) e += x[k * hop + i] * x[k * hop + i];
        lv[k] = 10 * log10(e / (double)win + 1e-3);
    }
    free(x);
    memcpy(sorted, lv, nk * sizeof *lv);
    double noise = stats_pct(sorted, nk, SEG_NOISE_Q), peak = stats_pct(sorted, nk, SEG_PEAK_Q);
    free(sorted);
    double lo = fmax(noise + SEG_LO_NOISE, peak - SEG_LO_PEAK);
    double hi = fmax(noise + SEG_HI_NOISE, peak - SEG_HI_PEAK);
    size_t bridge = SEG_BRIDGE_MS / SEG_HOP_MS, core = SEG_CORE_MS / SEG_HOP_MS;

    r->nruns = 0;
    for (size_t k = 0; k < nk;) {
        if (lv[k] < lo) {
            k++;
            continue;
        }
        /* A run from k: speech-like windows with dips shorter than `bridge`. */
        size_t start = k, end = k, loud = 0, dip = 0;
        for (; k < nk && dip < bridge; k++) {
            if (lv[k] >= lo) {
                end = k;
                dip = 0;
            } else {
                dip++;
            }
            loud += lv[k] >= hi;
        }
        k = end + 1;
        if (loud < core) continue;
        size_t half = win / 2;
        pl_run run = {(uint32_t)((start * hop + half) * 1000 / rate),
                      (uint32_t)((end * hop + half) * 1000 / rate)};
        if (r->nruns < PL_MAX_RUNS)
            r->runs[r->nruns++] = run;
        else
            r->runs[PL_MAX_RUNS - 1].end_ms = run.end_ms; /* the last run takes the rest */
    }
    free(lv);
    if (!r->nruns) return -1;
    r->onset_ms = r->runs[0].start_ms;
    r->offset_ms = r->runs[r->nruns - 1].end_ms;
    return 0;
}

int pl_load(const char *corpus, const char *name, pl_ref *r, int16_t **pcm, size_t *n)
{
    char path[2048];
    int16_t *orig;
    size_t norig;
    unsigned rate;
    snprintf(path, sizeof path, "%s/wav/%s.wav", corpus, name);
    if (cs_wav_load(path, &orig, &norig, &rate) < 0) {
        fprintf(stderr, "phoneline: cannot read %s\n", path);
        return -1;
    }
    int rc = pl_segment(orig, norig, rate, r);
    free(orig);
    if (rc < 0) {
        fprintf(stderr, "phoneline: no speech found in %s\n", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/ulaw8k/%s.wav", corpus, name);
    if (cs_wav_load(path, pcm, n, &rate) < 0 || rate != PL_RATE) {
        if (rate != PL_RATE) free(*pcm);
        fprintf(stderr, "phoneline: cannot read %s at 8 kHz\n", path);
        return -1;
    }
    return 0;
}

double pl_speech_rms(const int16_t *pcm, size_t n, const pl_ref *r)
{
    enum { FRAME = PL_RATE / 100 };
    size_t from = (size_t)r->onset_ms * 8, to = (size_t)r->offset_ms * 8;
    if (to > n) to = n;
    double level = 0; /* mean square */
    for (int iter = 0; iter < 20; iter++) {
        double floor = level * pow(10, -15.9 / 10), sum = 0;
        size_t count = 0;
        for (size_t i = from; i + FRAME <= to; i += FRAME) {
            double e = 0;
            for (size_t j = 0; j < FRAME; j++) e += (double)pcm[i + j] * pcm[i + j];
            e /= FRAME;
            if (e >= floor) {
                sum += e;
                count++;
            }
        }
        if (!count) break;
        double next = sum / (double)count;
        if (fabs(next - level) <= level * 1e-6) break;
        level = next;
    }
    return sqrt(level);
}

const pl_cond pl_conds[] = {
    {"silence", PL_SILENCE, 0, PL_NONE},
    {"white30", PL_WHITE, 30, PL_NONE},
    {"white20", PL_WHITE, 20, PL_NONE},
    {"white10", PL_WHITE, 10, PL_NONE},
    {"pink30", PL_PINK, 30, PL_NONE},
    {"pink20", PL_PINK, 20, PL_NONE},
    {"pink10", PL_PINK, 10, PL_NONE},
    {"hum30", PL_HUM, 30, PL_NONE},
    {"hum20", PL_HUM, 20, PL_NONE},
    {"hum10", PL_HUM, 10, PL_NONE},
    {"step10", PL_WHITE, 10, PL_STEP},
    {"clicks", PL_SILENCE, 0, PL_CLICKS},
    {"clicks_white30", PL_WHITE, 30, PL_CLICKS},
    {"dtmf", PL_SILENCE, 0, PL_DTMF},
    {"dtmf_held", PL_SILENCE, 0, PL_DTMF_HELD},
};
const size_t pl_nconds = sizeof pl_conds / sizeof *pl_conds;

const pl_cond *pl_cond_named(const char *name)
{
    for (size_t i = 0; i < pl_nconds; i++)
        if (strcmp(pl_conds[i].name, name) == 0) return &pl_conds[i];
    return NULL;
}

/* xorshift64*: plenty for noise, and the same everywhere. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double uniform(uint64_t *s) /* (0, 1) */
{
    return ((double)(rnd(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
    return sqrt(-2 * log(uniform(s))) * cos(2 * M_PI * uniform(s));
}

/* Noise of the condition's colour with unit RMS over x[0..n). */
static void noise(enum pl_noise kind, double *x, size_t n, uint64_t *s)
{
    double b[7] = {0};
    double phase[5];
    for (int h = 0; h < 5; h++) phase[h] = 2 * M_PI * uniform(s);
    for (size_t i = 0; i < n; i++) {
        if (kind == PL_WHITE) {
            x[i] = gauss(s);
        } else if (kind == PL_PINK) {
            /* Paul Kellet's refined pink filter (-3 dB per octave within 0.05 dB). */
            double w = gauss(s);
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            x[i] = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
            b[6] = w * 0.115926;
        } else {
            static const double amp[5] = {1, 0.6, 0.4, 0.25, 0.15};
            double t = (double)i / PL_RATE, v = 0;
            for (int h = 0; h < 5; h++)
                v += amp[h] * sin(2 * M_PI * 60 * (2 * h + 1) * t + phase[h]);
            x[i] = v;
        }
    }
    double e = 0;
    for (size_t i = 0; i < n; i++) e += x[i] * x[i];
    double g = e > 0 ? sqrt((double)n / e) : 0;
    for (size_t i = 0; i < n; i++) x[i] *= g;
}

#define FULL_SCALE 32767.0
#define DB(d)      pow(10, (d) / 20.0)

/* Short noises, one every 250–450 ms in turn: a click (a spike ringing for 0.5 ms), a pop
 * (a 150 Hz thump decaying over 20 ms), a crackle (10 ms of noise) and a knock (noise
 * decaying with a 15 ms time constant, 80 ms long). */
static void clicks(double *x, size_t from, size_t to, uint64_t *s)
{
    for (size_t at = from, kind = 0; at < to; kind++) {
        size_t len = 0;
        switch (kind % 4) {
        case 0:
            len = 4;
            for (size_t i = 0; i < len; i++)
                x[at + i] += DB(-6) * FULL_SCALE * pow(-0.5, (double)i);
            break;
        case 1:
            len = 160;
            for (size_t i = 0; i < len; i++)
                x[at + i] += DB(-6) * FULL_SCALE * exp(-(double)i / 40) *
                             sin(2 * M_PI * 150 * (double)i / PL_RATE);
            break;
        case 2:
            len = 80;
            for (size_t i = 0; i < len; i++) x[at + i] += DB(-20) * FULL_SCALE * gauss(s) / 3;
            break;
        default:
            len = 640;
            for (size_t i = 0; i < len; i++)
                x[at + i] += DB(-10) * FULL_SCALE * exp(-(double)i / 120) * gauss(s) / 3;
            break;
        }
        at += len + 2000 + (size_t)(uniform(s) * 1600);
        if (at + 640 > to) break;
    }
}

/* DTMF digits (ITU-T Q.23 pairs), low tone at -10 dBFS and high at -8 (the usual twist):
 * each about `on` samples long and `off` apart, both varied by up to a fifth, so tones start
 * and end anywhere within a frame. */
static void dtmf(double *x, size_t from, size_t to, size_t on, size_t off, uint64_t *s)
{
    static const double low[4] = {697, 770, 852, 941}, high[3] = {1209, 1336, 1477};
    for (size_t at = from, d = 0;; d++) {
        size_t len = on - on / 5 + (size_t)(uniform(s) * (double)(2 * on / 5));
        if (at + len > to) break;
        double fl = low[d % 4], fh = high[d % 3];
        for (size_t i = 0; i < len; i++) {
            double t = (double)i / PL_RATE;
            x[at + i] +=
                FULL_SCALE * (DB(-10) * sin(2 * M_PI * fl * t) + DB(-8) * sin(2 * M_PI * fh * t));
        }
        at += len + off - off / 5 + (size_t)(uniform(s) * (double)(2 * off / 5));
    }
}

uint8_t *pl_line(const pl_cond *c, const int16_t *pcm, size_t n, double speech_rms,
                 unsigned lead_ms, unsigned tail_ms, uint64_t seed, size_t *len)
{
    size_t lead = (size_t)lead_ms * 8, total = lead + n + (size_t)tail_ms * 8;
    double *x = calloc(total ? total : 1, sizeof *x);
    uint8_t *out = malloc(total ? total : 1);
    if (!x || !out) {
        free(x);
        free(out);
        return NULL;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    if (c->noise != PL_SILENCE) {
        noise(c->noise, x, total, &s);
        double g = speech_rms * DB(-c->snr_db);
        for (size_t i = 0; i < total; i++)
            x[i] *= g * (c->events == PL_STEP && i < lead / 2 ? DB(-30) : 1);
    }
    for (size_t i = 0; i < n; i++) x[lead + i] += pcm[i];
    size_t from = 300 * 8, to = lead > 300 * 8 ? lead - 300 * 8 : 0;
    if (c->events == PL_CLICKS && to > from) clicks(x, from, to, &s);
    if (c->events == PL_DTMF && to > from) dtmf(x, from, to, 800, 800, &s);
    if (c->events == PL_DTMF_HELD && to > from) dtmf(x, from, to, 3200, 3200, &s);
    for (size_t i = 0; i < total; i++) {
        double v = x[i] > FULL_SCALE ? FULL_SCALE : x[i] < -FULL_SCALE ? -FULL_SCALE : x[i];
        out[i] = cs_pcm_to_ulaw((int16_t)lrint(v));
    }
    free(x);
    *len = total;
    return out;
}
