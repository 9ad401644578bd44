/* Voice activity detection: integer arithmetic only, a few operations per sample and a few
 * dozen per 10 ms frame. The constants below, and the settings' defaults, were chosen on the
 * tuning half of the speech corpus (bench/vad.c names it); each one measurably helped there
 * (README, Benchmarks). */
#include "audio/vad.h"

#include "audio/g711.h"

/* Levels are kept in half dB of 10·log10(Σ d²) over a frame, where d is the high-passed
 * sample (16-bit sample / 4); FS is a full-scale square wave's frame, within 0.5 dB. */
#define FS          194
#define DBFS(d)     (FS + 2 * (d)) /* a level in dBFS, as half dB */
#define ABS_FLOOR   DBFS(-60)      /* quieter frames are digital silence, never speech */
#define NOISE_BLOCK 25             /* frames per noise block (250 ms) */
#define NOISE_NONE  0xFF
#define MAX_GAP     15 /* frames without speech an onset candidate survives (150 ms) */
#define WEAK_BELOW  6  /* half dB under the threshold that still extends an onset back */
#define EXTEND_MAX  10 /* frames an onset is extended back at most (100 ms) */
#define ZC_MIN      3  /* fewer crossings per frame is hum or rumble (< 150 Hz) */
#define HP_SHIFT    3  /* first-order high-pass, pole 1 - 2^-HP_SHIFT (3: 160 Hz; 0: none) */
#define SMOOTH      1  /* the floor follows levels averaged over about 2^SMOOTH frames */
#define STEADY_DB   8  /* half dB: levels staying within this band are steady noise */
#define STEADY_MIN  30 /* frames of it (300 ms) before the floor jumps to it (0: never) */
#define TONE_DB     4  /* half dB: speech frames in a row whose level varies less than this */
#define TONE_ZC     4  /* and whose crossings per frame vary less than this are a tone */

enum { SILENCE, CANDIDATE, SPEECH };
enum { F_FED = 1, F_VARIED = 2, F_PREV1 = 4, F_PREV2 = 8 }; /* cs_vad.flags */

_Static_assert(sizeof(cs_vad) <= 72, "a detector stays small");

/* round(32·log2(1 + i/32)) */
static const uint8_t log2_frac[32] = {0,  1,  3,  4,  5,  7,  8,  9,  10, 11, 13,
                                      14, 15, 16, 17, 18, 19, 20, 21, 22, 22, 23,
                                      24, 25, 26, 27, 27, 28, 29, 30, 31, 31};

/* 10·log10(sum) in half dB, at most 255. */
static unsigned level(uint64_t sum)
{
    if (sum == 0) return 0;
    unsigned e = 63 - (unsigned)__builtin_clzll(sum);
    unsigned frac = (unsigned)(e >= 5 ? (sum >> (e - 5)) & 31 : (sum << (5 - e)) & 31);
    unsigned hdb = ((e * 32 + log2_frac[frac]) * 12330 + 32768) >> 16; /* 20·log10(2)/32 */
    return hdb > 255 ? 255 : hdb;
}

static uint32_t clamp_u32(uint32_t x, uint32_t lo, uint32_t hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

void cs_vad_init(cs_vad *v, const cs_vad_opts *o)
{
    static const cs_vad_opts defaults = {100, 600, 8};
    if (!o) o = &defaults;
    *v = (cs_vad){0};
    uint32_t ms = clamp_u32(o->min_speech_ms, CS_VAD_MIN_MS, CS_VAD_MAX_MS);
    v->min_frames = (uint16_t)((ms + 9) / 10);
    ms = clamp_u32(o->hangover_ms, CS_VAD_MIN_MS, CS_VAD_MAX_MS);
    v->hang_frames = (uint16_t)((ms + 9) / 10);
    int t = o->threshold_db < CS_VAD_MIN_THRESHOLD   ? CS_VAD_MIN_THRESHOLD
            : o->threshold_db > CS_VAD_MAX_THRESHOLD ? CS_VAD_MAX_THRESHOLD
                                                     : o->threshold_db;
    v->threshold = (uint8_t)(2 * t);
    v->state = SILENCE;
    v->last = CS_ULAW_SILENCE;
    v->block_min = NOISE_NONE;
    v->smooth = 0xFF; /* comes down to the first frames' level */
    v->seg_lo = v->seg_zlo = 0xFF;
    for (size_t i = 0; i < sizeof v->blocks; i++) v->blocks[i] = NOISE_NONE;
}

bool cs_vad_speaking(const cs_vad *v)
{
    return v->state == SPEECH;
}

/* The quietest (smoothed) level of the last 2 s, never under the absolute floor. */
static unsigned noise_floor(const cs_vad *v)
{
    unsigned f = v->block_min;
    for (size_t i = 0; i < sizeof v->blocks; i++)
        if (v->blocks[i] < f) f = v->blocks[i];
    return f == NOISE_NONE || f < ABS_FLOOR ? ABS_FLOOR : f;
}

int cs_vad_noise_dbfs(const cs_vad *v)
{
    return ((int)noise_floor(v) - FS) / 2;
}

typedef struct sink {
    cs_vad_edge *out;
    size_t max, n;
} sink;

static void emit(sink *s, bool speech, uint64_t pos, uint64_t confirmed_pos)
{
    if (s->n < s->max) s->out[s->n] = (cs_vad_edge){speech, pos, confirmed_pos};
    s->n++;
}

/* Tones (DTMF, beeps, dial tone) hold their level and zero crossings steady where speech
 * never does. Speech frames in a row form a segment; its inner frames (speech on both
 * sides, so not cut by a tone's start or end) are compared, and an onset candidate is
 * confirmed only once one of its segments has varied. */
static void track_tone(cs_vad *v, bool speech, unsigned lvl)
{
    if (!speech) {
        v->seg_lo = v->seg_zlo = 0xFF;
        v->seg_hi = v->seg_zhi = 0;
    } else if ((v->flags & (F_PREV1 | F_PREV2)) == (F_PREV1 | F_PREV2)) {
        if (v->prev_lvl < v->seg_lo) v->seg_lo = v->prev_lvl;
        if (v->prev_lvl > v->seg_hi) v->seg_hi = v->prev_lvl;
        if (v->prev_zc < v->seg_zlo) v->seg_zlo = v->prev_zc;
        if (v->prev_zc > v->seg_zhi) v->seg_zhi = v->prev_zc;
        if (v->seg_hi >= v->seg_lo + TONE_DB || v->seg_zhi >= v->seg_zlo + TONE_ZC)
            v->flags |= F_VARIED;
    }
    v->flags = (uint8_t)((v->flags & ~(F_PREV1 | F_PREV2)) | (v->flags & F_PREV1 ? F_PREV2 : 0) |
                         (speech ? F_PREV1 : 0));
    v->prev_lvl = (uint8_t)lvl;
    v->prev_zc = v->zc;
}

/* An onset candidate is confirmed once it has min_speech_ms of speech and is not a tone. */
static void maybe_confirm(cs_vad *v, uint64_t end, sink *s)
{
    if (v->run < v->min_frames || !(v->flags & F_VARIED)) return;
    v->state = SPEECH;
    emit(s, true, v->run_start, end);
}

/* One frame's verdict [end - CS_VAD_FRAME, end) through the state machine; lvl is its level
 * (0 for missing audio). */
static void decide(cs_vad *v, bool speech, bool weak, unsigned lvl, uint64_t end, sink *s)
{
    uint64_t start = end - CS_VAD_FRAME;
    if (speech) v->speech_end = end;
    switch (v->state) {
    case SILENCE:
        if (speech) {
            /* Back over the weaker frames just before: a soft consonant, a rising vowel. */
            unsigned back = (unsigned)__builtin_ctz(~v->weak);
            if (back > EXTEND_MAX) back = EXTEND_MAX;
            uint64_t ext = (uint64_t)back * CS_VAD_FRAME;
            v->run_start = start - (ext < start ? ext : start);
            v->run = 1;
            v->quiet = 0;
            v->flags &= (uint8_t)~F_VARIED;
            v->state = CANDIDATE;
        }
        break;
    case CANDIDATE:
        if (speech) {
            v->quiet = 0;
            if (v->run < UINT16_MAX) v->run++; /* a tone may last */
        } else if (++v->quiet > MAX_GAP) {
            v->state = SILENCE;
        }
        break;
    case SPEECH:
        if (speech) {
            v->quiet = 0;
        } else if (++v->quiet >= v->hang_frames) {
            v->state = SILENCE;
            emit(s, false, v->speech_end, end);
        }
        break;
    }
    track_tone(v, speech, lvl);
    if (v->state == CANDIDATE && speech) maybe_confirm(v, end, s);
    v->weak = v->weak << 1 | weak;
}

/* The floor: the quietest smoothed level of 8 blocks, and a jump to a level that has held
 * steady for STEADY_MIN frames (a new noise, so the caller is not "speaking" for 2 s). */
static unsigned track_noise(cs_vad *v, unsigned lvl)
{
    unsigned sm = v->smooth;
    sm = lvl < sm ? sm - ((sm - lvl) >> SMOOTH) : sm + ((lvl - sm) >> SMOOTH);
    v->smooth = (uint8_t)sm;
    if (sm < v->block_min) v->block_min = (uint8_t)sm;
    if (++v->block_frames == NOISE_BLOCK) {
        v->blocks[v->block_i] = v->block_min;
        v->block_i = (uint8_t)((v->block_i + 1) % sizeof v->blocks);
        v->block_min = NOISE_NONE;
        v->block_frames = 0;
    }
    if (sm >= v->steady_lo && sm <= (unsigned)v->steady_lo + STEADY_DB) {
        if (v->steady_n < 255) v->steady_n++;
    } else {
        v->steady_lo = (uint8_t)(sm > STEADY_DB / 2 ? sm - STEADY_DB / 2 : 0);
        v->steady_n = 1;
    }
    if (STEADY_MIN && v->steady_n == STEADY_MIN && v->steady_lo >= ABS_FLOOR) {
        for (size_t i = 0; i < sizeof v->blocks; i++) v->blocks[i] = NOISE_NONE;
        v->block_min = v->steady_lo;
    }
    return noise_floor(v);
}

/* A full frame ends at `end`. */
static void frame(cs_vad *v, uint64_t end, sink *s)
{
    unsigned lvl = level(v->sum);
    unsigned floor = track_noise(v, lvl);
    unsigned over = lvl > floor ? lvl - floor : 0;
    bool audible = lvl >= ABS_FLOOR && v->zc >= ZC_MIN;
    bool speech = audible && over >= v->threshold;
    bool weak = audible && over + WEAK_BELOW >= v->threshold;
    decide(v, speech, weak, lvl, end, s);
    v->sum = 0;
    v->zc = 0;
    v->fill = 0;
}

/* Audio missing from v->next to pos: the partial frame is dropped and the time counts as
 * non-speech, as far as it can matter (past an offset's hangover nothing changes). */
static void gap(cs_vad *v, uint64_t pos, sink *s)
{
    uint64_t start = v->next - v->fill;
    uint64_t frames = (pos - start) / CS_VAD_FRAME;
    uint64_t cap = (uint64_t)v->hang_frames + MAX_GAP + 1;
    if (frames > cap) frames = cap;
    for (uint64_t i = 1; i <= frames; i++) decide(v, false, false, 0, start + i * CS_VAD_FRAME, s);
    v->sum = 0;
    v->zc = 0;
    v->fill = 0;
    v->next = pos;
}

size_t cs_vad_feed(cs_vad *v, uint64_t pos, const uint8_t *ulaw, size_t n, cs_vad_edge *out,
                   size_t max)
{
    sink s = {out, max, 0};
    if (!(v->flags & F_FED)) {
        v->flags |= F_FED;
        v->next = pos;
    }
    if (pos > v->next) {
        gap(v, pos, &s);
    } else if (pos < v->next) {
        uint64_t seen = v->next - pos;
        if (seen >= n) return s.n;
        ulaw += seen;
        n -= (size_t)seen;
    }
    while (n) {
        size_t k = CS_VAD_FRAME - v->fill;
        if (k > n) k = n;
        uint64_t sum = v->sum;
        unsigned zc = v->zc, last = v->last;
        int32_t prev = cs_ulaw_to_pcm[last] >> 2, y = v->hp;
        for (size_t i = 0; i < k; i++) {
            unsigned b = ulaw[i];
            int32_t x = cs_ulaw_to_pcm[b] >> 2;
            y = HP_SHIFT ? x - prev + y - (y >> HP_SHIFT) : x;
            sum += (uint64_t)((int64_t)y * y);
            zc += (b ^ last) >> 7;
            last = b;
            prev = x;
        }
        v->hp = (int16_t)y;
        v->sum = sum;
        v->zc = (uint8_t)zc;
        v->last = (uint8_t)last;
        v->fill = (uint8_t)(v->fill + k);
        v->next += k;
        ulaw += k;
        n -= k;
        if (v->fill == CS_VAD_FRAME) frame(v, v->next, &s);
    }
    return s.n;
}
