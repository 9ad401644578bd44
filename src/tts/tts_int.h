/* What the TTS engines share: tts.c runs the jobs (the fair queue, the worker threads,
 * the way back to the loop, cancelling, statistics) and each engine file supplies only
 * how to speak one sentence. Internal to src/tts. */
#ifndef CS_TTS_INT_H
#define CS_TTS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "tts/tts.h"

/* One sentence to speak, on a worker. */
typedef struct tts_req {
    const char *text; /* NUL-terminated */
    size_t len;
    const char *voice;       /* never empty: the job's, or the engine's default */
    int rate, pitch;         /* in range (tts.h) */
    const atomic_bool *stop; /* set when the job is cancelled: stop early if you can */
} tts_req;

/* What an engine made of a sentence, on a worker: samples at `rate` and words whose
 * start_ms count from the first sample. Reused from one sentence to the next. */
typedef struct tts_audio {
    int16_t *pcm;
    size_t n, cap;
    unsigned rate;
    cs_tts_word *words;
    size_t nwords, cap_words;
    bool cut;      /* reached CS_TTS_SENTENCE_MS: what came after was dropped */
    char why[160]; /* set with a failure, for the log */
} tts_audio;

/* Appends samples up to CS_TTS_SENTENCE_MS of audio: 0, CS_ELIMIT once it is full (the
 * rest is dropped and `cut` set: stop synthesizing), -ENOMEM. */
int tts_audio_add(tts_audio *a, const int16_t *pcm, size_t n);
/* Appends a word of the sentence `text` (length `len`): bytes [off, off + n) starting at
 * `ms`. Clamped to the text and cut at a space; a word overlapping the one before, or
 * starting before it, is merged into it (engines report the parts of "3.5" so). 0 or
 * -ENOMEM. */
int tts_audio_word(tts_audio *a, const char *text, size_t len, size_t off, size_t n, uint32_t ms);

/* What every job keeps of its speak(): the options, with its own copies of the text and
 * the voice. */
typedef struct tts_job_base {
    cs_tts_opts o; /* text and voice point to the copies below */
    char *text;    /* NUL-terminated */
    size_t len;
    char voice[CS_TTS_VOICE_MAX];
    int rate, pitch;
} tts_job_base;

/* Fills `b` from `o` with the job's voice, rate and pitch (tts_check's). 0 or -ENOMEM. */
int tts_job_base_init(tts_job_base *b, const cs_tts_opts *o, const char *voice, int rate,
                      int pitch);

/* The first-audio histogram's buckets. */
void tts_stats_init(cs_tts_stats *st);
/* speak()'s checks of `o`, every engine's: *rate, *pitch and *voice hold the engine's
 * defaults and come back with the job's. 0, -EINVAL, -EMSGSIZE or -EILSEQ (tts.h). */
int tts_check(const cs_tts_opts *o, int *rate, int *pitch, const char **voice);

/* ---- whose sentence is next ---- */

/* A job waiting for its next sentence, due at `due` (hrtime, ns): when its call would run
 * out of audio. A new job is due at once (when it was queued); one that has made audio is
 * due when that audio, played from the moment its first sentence was made, ends. Taking
 * the earliest due is fair between calls — a new reply's first sentence does not wait
 * behind other calls' later sentences, whose audio is still playing — and a call that
 * runs dry goes first. */
typedef struct tts_turn {
    uint64_t due;
    struct tts_turn *next;
} tts_turn;

typedef struct tts_turns {
    tts_turn *head, *tail;
} tts_turns;

void tts_turns_push(tts_turns *q, tts_turn *t);
/* The turn due first, out of the list (the one queued first among equals); NULL if none. */
tts_turn *tts_turns_take(tts_turns *q);
/* Takes `t` out if it is in the list; whether it was. */
bool tts_turns_remove(tts_turns *q, tts_turn *t);

/* An engine's part. `synth` runs on a worker thread (for espeak-ng always the same one);
 * 0 or a negative code with a.why set. `voice_ok` (optional) checks a voice name on the
 * loop at speak(). `release` frees the engine's own resources once the workers have
 * stopped. */
typedef struct tts_engine {
    const char *name;
    int (*synth)(cs_tts *e, const tts_req *r, tts_audio *a);
    int (*voice_ok)(cs_tts *e, const char *voice);
    void (*release)(cs_tts *e);
} tts_engine;

/* The base of every engine: an engine's struct starts with it. */
struct cs_tts {
    const tts_engine *eng;
    cs_mailbox *mb;
    char voice[CS_TTS_VOICE_MAX]; /* the default voice */
    int rate, pitch;              /* the defaults */
    size_t queue_max;

    pthread_mutex_t lock; /* guards `waiting` and `stopping` */
    pthread_cond_t cond;
    tts_turns waiting; /* jobs waiting for their next sentence */
    bool stopping;
    pthread_t *threads;
    size_t nthreads;

    /* Loop only. */
    cs_tts_stats stats;
    bool destroyed; /* freed when the last live job has ended */
};

/* Fills the base and starts `threads` workers; `voice` is the default voice. On failure
 * the base is torn down (the caller frees its struct). */
int tts_start(cs_tts *e, const tts_engine *eng, const cs_config *cfg, const char *voice,
              size_t threads, cs_mailbox *mb, cs_buf *err);

/* The ops every engine shares. */
void tts_destroy(cs_tts *e);
int tts_speak(cs_tts *e, const cs_tts_opts *o, cs_tts_job **out);
void tts_cancel(cs_tts_job *j);
void tts_stats(cs_tts *e, cs_tts_stats *out);

#endif
