/* Text to speech. An engine turns a text into μ-law 8 kHz audio for a call, sentence by
 * sentence, so the first sentence can play while the rest is being made. Synthesis runs
 * on the engine's worker threads; results come back on the loop thread through the
 * mailbox, never blocking it. Jobs from different calls share the workers fairly, one
 * sentence at a time: a worker makes the sentence of the call that would run out of audio
 * first, so a new reply's first sentence does not wait behind other calls' later
 * sentences, nor one long reply behind another. Engines are ops tables chosen by TTS; the
 * rest of the gateway never knows which one runs.
 *
 * Word timings come from the engine: espeak-ng's word events, flite's Word and Segment
 * relations. A word that the engine expands into several ("3.5" → "three point five") is
 * one entry spanning its text. */
#ifndef CS_TTS_H
#define CS_TTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/prom.h"
#include "core/worker.h"
#include "net/fetch.h"

#define CS_TTS_TEXT_MAX    (16u << 10) /* bytes of one job's text */
#define CS_TTS_VOICE_MAX   64          /* bytes of a voice name */
#define CS_TTS_SENTENCE_MS 60000       /* audio of one sentence; the rest is cut (counted) */
#define CS_TTS_RATE        8000        /* what comes out: μ-law at this rate */

typedef struct cs_tts cs_tts;         /* an engine, with its voices and workers */
typedef struct cs_tts_job cs_tts_job; /* one text being spoken */

/* A word of a sentence: bytes [off, off + len) of the sentence's text, and where its audio
 * starts, in ms from the start of the sentence's audio. Words come in order, neither
 * their text nor their times going back. */
typedef struct cs_tts_word {
    uint32_t off, len;
    uint32_t start_ms;
} cs_tts_word;

typedef struct cs_tts_opts {
    const char *text; /* UTF-8, at most CS_TTS_TEXT_MAX bytes; copied. Split into sentences
                         with tts/sentence.h's rules */
    size_t len;
    const char *voice; /* NULL or "": TTS_VOICE (or the engine's default); copied */
    int rate;          /* words per minute, 80–450; 0: TTS_RATE */
    int pitch;         /* 1–100, 50 the voice's own; 0: TTS_PITCH */
    /* On the loop, in order: for each sentence its audio (one or more calls; `ulaw` valid
     * during the call only), then the sentence — its text (a slice of the job's copy of
     * the text), its words and the length of its audio in ms. Either may cancel the job. */
    void (*on_audio)(void *data, const uint8_t *ulaw, size_t n);
    void (*on_sentence)(void *data, const char *text, size_t len, const cs_tts_word *words,
                        size_t nwords, uint32_t audio_ms);
    /* The last callback: every sentence was spoken (err 0) or the job failed (err < 0: the
     * voice is unknown to the engine, the engine failed, -ENOMEM, CS_ECLOSED when the engine
     * was destroyed first). Never called after cs_tts cancel, nor from inside speak. The
     * job handle is gone once it returns. */
    void (*on_done)(void *data, int err);
    /* Optional: why the job failed, in words (never the API key), just before on_done with
     * err < 0. */
    void (*on_error)(void *data, const char *why);
    void *data; /* must stay valid until on_done, or until cancel returns */
} cs_tts_opts;

typedef struct cs_tts_stats {
    uint64_t jobs;          /* accepted */
    uint64_t jobs_live;     /* now: waiting, being spoken, or in their on_done */
    uint64_t refused;       /* speak() refused: TTS_QUEUE_MAX jobs live */
    uint64_t failures;      /* jobs ended with an error */
    uint64_t cancels;       /* jobs cancelled before their end */
    uint64_t sentences;     /* delivered */
    uint64_t sentences_cut; /* sentences whose audio passed CS_TTS_SENTENCE_MS */
    uint64_t audio_ms;      /* delivered */
    uint64_t synth_us;      /* worker time synthesizing and converting (RTF: synth/audio) */
    uint64_t wait_us;       /* summed time jobs waited for a worker before their first
                               sentence began */
    cs_hist first_audio;    /* speak() → the first audio on the loop, seconds */
} cs_tts_stats;

/* What an engine is made with (the gateway's). */
typedef struct cs_tts_env {
    const cs_config *cfg;
    uv_loop_t *loop;
    cs_mailbox *mb;  /* local engines' results come back through it */
    cs_fetch *fetch; /* outbound HTTP on the loop, for cloud engines; may be NULL for local */
} cs_tts_env;

typedef struct cs_tts_ops {
    const char *name;
    /* A cloud engine: asynchronous on the loop, and it may fail at run time (unreachable,
     * refused, cut off), when a voice falls back to a local engine (TTS_FALLBACK). */
    bool cloud;
    /* Loads voices and starts the workers; may block (start-up only). 0, or a negative
     * code with a message in `err` (CS_ECONFIG for an unknown TTS_VOICE, a missing key). */
    int (*create)(cs_tts **out, const cs_tts_env *env, cs_buf *err);
    /* Stops the workers (blocking). Jobs not yet ended end with CS_ECLOSED, their on_done
     * coming later through the mailbox; the engine's memory goes after the last of them. */
    void (*destroy)(cs_tts *e);
    /* Queues a job; *out is its handle until on_done or cancel. CS_EFULL when TTS_QUEUE_MAX
     * jobs are live, -EMSGSIZE for a text over CS_TTS_TEXT_MAX, -EILSEQ for text that is
     * not UTF-8 (or holds a NUL), -EINVAL for a rate, pitch or voice name out of range,
     * CS_ECONFIG for a voice the engine does not have (when it can tell at once; else
     * on_done says so), -ENOMEM. A text with nothing to say ends at once: on_done(0). */
    int (*speak)(cs_tts *e, const cs_tts_opts *o, cs_tts_job **out);
    /* Loop only, at any time before on_done (from inside the job's own callbacks too): no
     * callback of the job runs after it; its worker stops within the sentence it is making
     * (espeak-ng) or after it (flite). */
    void (*cancel)(cs_tts_job *j);
    void (*stats)(cs_tts *e, cs_tts_stats *out);
} cs_tts_ops;

/* espeak-ng: one worker thread per engine; the engines of a process (one per event loop)
 * take turns at the library, whose state is global.
 * flite: voices kal (8 kHz), slt, rms, awb (16 kHz), TTS_THREADS workers sharing them.
 * elevenlabs, openai: cloud voices (tts/cloud.h); a job's text is spoken as one piece. */
extern const cs_tts_ops cs_tts_espeak;
extern const cs_tts_ops cs_tts_flite;
extern const cs_tts_ops cs_tts_elevenlabs;
extern const cs_tts_ops cs_tts_openai;

/* By TTS name; "none" or "" gives NULL with 0; an unknown name CS_ECONFIG. */
int cs_tts_find(const char *name, const cs_tts_ops **out);
/* "espeak, flite, elevenlabs, openai or none", for messages. */
const char *cs_tts_names(void);

#endif
