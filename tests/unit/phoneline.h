/* Corpus speech as a phone line delivers it, for measuring voice activity detection: where
 * a recording's speech begins and ends (measured on its original-rate WAV), and the line
 * around it (digital silence; white, pink or mains-hum noise at a signal-to-noise ratio;
 * clicks and pops; DTMF digits). One definition for the VAD unit tests and bench/vad, so
 * their figures compare. Deterministic: the same arguments give the same bytes. */
#ifndef CS_PHONELINE_H
#define CS_PHONELINE_H

#include <stddef.h>
#include <stdint.h>

#define PL_RATE     8000 /* the line's sample rate */
#define PL_MAX_RUNS 256  /* speech runs kept per recording (the last one takes the rest) */

/* A stretch of speech (dips under 100 ms bridged), in ms from the recording's start. */
typedef struct pl_run {
    uint32_t start_ms, end_ms;
} pl_run;

/* Where speech is in a recording. */
typedef struct pl_ref {
    uint32_t onset_ms;  /* the first speech */
    uint32_t offset_ms; /* the end of the last speech */
    size_t nruns;
    pl_run runs[PL_MAX_RUNS];
} pl_ref;

/* Energy segmentation of clean speech at any rate (the method is described in
 * phoneline.c). 0, or -1 when nothing in it is speech. */
int pl_segment(const int16_t *pcm, size_t n, unsigned rate, pl_ref *r);

/* A corpus recording NAME: its reference from CORPUS/wav/NAME.wav and its audio from
 * CORPUS/ulaw8k/NAME.wav as 16-bit samples (*pcm malloc'd: caller frees). 0, or -1 with a
 * message on stderr. */
int pl_load(const char *corpus, const char *name, pl_ref *r, int16_t **pcm, size_t *n);

/* The active speech level of 8 kHz audio between the reference's bounds, as an RMS in sample
 * units: the 10 ms frames within 15.9 dB of the result count (ITU-T P.56's margin), found by
 * iterating from the plain RMS. */
double pl_speech_rms(const int16_t *pcm, size_t n, const pl_ref *r);

enum pl_noise {
    PL_SILENCE, /* digital silence around the recording (μ-law 0xFF) */
    PL_WHITE,
    PL_PINK,
    PL_HUM, /* 60 Hz mains and its odd harmonics to 540 Hz */
};

enum pl_events {
    PL_NONE,
    PL_CLICKS,    /* clicks, pops, crackles and knocks (10–80 ms) in the lead-in */
    PL_DTMF,      /* digits dialled in the lead-in: 100 ms tones, 100 ms apart */
    PL_DTMF_HELD, /* keys held 400 ms each in the lead-in */
    PL_STEP,      /* the noise starts 30 dB quieter and steps up half-way through the lead-in */
};

/* A line condition. */
typedef struct pl_cond {
    const char *name;
    enum pl_noise noise;
    int snr_db; /* the speech's active level over the noise's RMS */
    enum pl_events events;
} pl_cond;

/* The conditions bench/vad reports, in its order. */
extern const pl_cond pl_conds[];
extern const size_t pl_nconds;
/* The condition called `name`, or NULL. */
const pl_cond *pl_cond_named(const char *name);

/* μ-law line: lead_ms of the condition, then the recording pcm[0..n), then tail_ms, with the
 * noise running throughout at the SNR to `speech_rms` and events only in the lead-in. Returns
 * the bytes (malloc'd: caller frees; NULL if out of memory) and their count in *len; the
 * recording starts at lead_ms · 8. */
uint8_t *pl_line(const pl_cond *c, const int16_t *pcm, size_t n, double speech_rms,
                 unsigned lead_ms, unsigned tail_ms, uint64_t seed, size_t *len);

#endif
