/* Voice activity detection on 8 kHz μ-law, cheap enough to run on the event loop for every
 * caller (about 0.3 µs per 20 ms, integers only, 72 bytes per stream, no allocation). It
 * answers "is the caller talking" for barge-in and end-of-turn hints; it recognises nothing.
 *
 * Audio is high-passed at about 160 Hz (hum, rumble) and cut into 10 ms frames. A frame is
 * speech when its level is threshold_db over the noise floor and over an absolute floor of
 * -60 dBFS (digital silence), with at least 3 zero crossings (not hum). The floor is the
 * quietest smoothed level of the last 2 s, and jumps to a level that has held within 4 dB
 * for 300 ms (a new line noise ends false speech in about a second, not two). An onset is
 * declared once min_speech_ms of speech frames have come with no pause over 150 ms between
 * them, unless the frames hold level and zero crossings steady (a tone: DTMF, a beep); it
 * reports where that speech began (extended back up to 100 ms over frames within 3 dB of the
 * threshold) and where it was confirmed. An offset is declared after hangover_ms without
 * speech and reports where the speech ended. So the reported onset is close to the real one
 * while the decision comes min_speech_ms or more after it. Measurements, and how the
 * defaults were chosen: README, Benchmarks (build/bench_vad). */
#ifndef CS_VAD_H
#define CS_VAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_VAD_RATE          8000 /* samples per second of the audio fed */
#define CS_VAD_FRAME         80   /* samples per decision (10 ms) */
#define CS_VAD_MIN_MS        20   /* min_speech_ms and hangover_ms are raised to at least this */
#define CS_VAD_MAX_MS        60000
#define CS_VAD_MIN_THRESHOLD 1 /* threshold_db is clamped to [1, 60] */
#define CS_VAD_MAX_THRESHOLD 60

/* Edges are at least two frames apart, so feeding n bytes yields at most this many: an
 * `out` of CS_VAD_EDGES_MAX(n) never loses one (3 for a 20 ms frame of 160 bytes). */
#define CS_VAD_EDGES_MAX(n) ((size_t)(n) / (2 * CS_VAD_FRAME) + 2)

typedef struct cs_vad_opts {
    uint32_t min_speech_ms; /* speech before an onset is declared (BARGE_IN_MIN_MS) */
    uint32_t hangover_ms;   /* non-speech before an offset is declared (VAD_HANGOVER_MS) */
    int threshold_db;       /* a frame is speech this far over the noise floor (VAD_THRESHOLD_DB) */
} cs_vad_opts;

/* A change of state. Positions are sample positions (8 kHz) on the caller's timeline, as
 * given to cs_vad_feed. */
typedef struct cs_vad_edge {
    bool speech;            /* true: onset; false: offset */
    uint64_t pos;           /* onset: where the speech began; offset: where it ended */
    uint64_t confirmed_pos; /* where the detector decided: the end of the frame that brought
                               the onset to min_speech_ms, or the offset to hangover_ms */
} cs_vad_edge;

/* One stream's detector: plain data, no allocation, copyable; 72 bytes. */
typedef struct cs_vad {
    uint64_t next;       /* position after the last sample fed */
    uint64_t run_start;  /* where the current speech (or onset candidate) began */
    uint64_t speech_end; /* end of the last speech frame */
    uint64_t sum;        /* energy of the frame being filled */
    uint32_t weak;       /* bit i: the frame i+1 back was over the weak threshold */
    int16_t hp;          /* the high-pass filter's last output */
    uint16_t min_frames, hang_frames;
    uint16_t run;              /* speech frames in the onset candidate */
    uint16_t quiet;            /* non-speech frames since the last speech frame */
    uint8_t threshold;         /* in half dB */
    uint8_t state;             /* enum in vad.c */
    uint8_t fill;              /* samples in the frame being filled */
    uint8_t zc;                /* zero crossings in it */
    uint8_t last;              /* the last sample fed (μ-law), for crossings across frames */
    uint8_t flags;             /* enum in vad.c */
    uint8_t prev_lvl, prev_zc; /* the last frame's level (half dB) and crossings */
    uint8_t seg_lo, seg_hi;    /* level range of the current run of speech frames */
    uint8_t seg_zlo, seg_zhi;  /* and its range of zero crossings */
    uint8_t smooth;            /* smoothed level, half dB */
    uint8_t steady_lo;         /* bottom of the band the smoothed level has stayed in */
    uint8_t steady_n;          /* frames it has stayed there */
    uint8_t block_min;         /* quietest frame of the current noise block, half dB (0xFF: none) */
    uint8_t block_frames;      /* frames in the current noise block */
    uint8_t block_i;           /* next slot of `blocks` */
    uint8_t blocks[8]; /* quietest frame of each of the last 8 blocks, half dB (0xFF: none) */
} cs_vad;

/* Starts a detector (whatever `v` held). o == NULL: 100 ms, 600 ms, 8 dB (the defaults of
 * the settings). Out-of-range options are clamped to the limits above. */
void cs_vad_init(cs_vad *v, const cs_vad_opts *o);

/* Feeds n μ-law samples whose first is at position `pos`. Audio that continues the last
 * feed (pos == where it ended) may come in chunks of any size: the result does not depend
 * on how the audio is cut. A jump forward (lost audio) counts as that much non-speech; audio
 * before the end of what was fed is skipped. Writes the edges found, oldest first, to
 * out[0..max) and returns how many were found (more than max only when `out` is smaller than
 * CS_VAD_EDGES_MAX(n): the state still follows them, the edges past max are not written). */
size_t cs_vad_feed(cs_vad *v, uint64_t pos, const uint8_t *ulaw, size_t n, cs_vad_edge *out,
                   size_t max);

/* After an onset and before its offset. */
bool cs_vad_speaking(const cs_vad *v);

/* The noise floor in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine -3), or the
 * absolute floor while only digital silence was heard. For tests and diagnostics. */
int cs_vad_noise_dbfs(const cs_vad *v);

#endif
